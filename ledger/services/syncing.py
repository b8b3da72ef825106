"""Broker sync as the ledger's use case: read everything first, then map what the broker
said onto events and store them in one save.

The reads are `ledger.services.sync_reads`, the mapping `ledger.services.sync_mapper`, the
cursor a sync continues from `ledger.services.sync_cursor`. Each use case is a function of
the ledger (`ledger.application.Ledger` has them as its methods: `ledger.sync()`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification
from eventsourcing.utils import get_topic

from ledger.brokers.port import BrokerReader
from ledger.domain import BrokerSnapshot, Order
from ledger.domain.values import InvalidInput
from ledger.infrastructure.event_store import SAVE_ATTEMPTS, SYNCED_TOPIC
from ledger.services.sync_cursor import OVERLAP, SyncCursor, needs_watching
from ledger.services.sync_mapper import SyncMapper, SyncOutcome
from ledger.services.sync_reads import BrokerReads, WatchedOrder, read_broker
from ledger.services.sync_report import SyncReport, open_order_record, position_record

if TYPE_CHECKING:
    from ledger.application import Ledger

log = logging.getLogger(__name__)

DEFAULT_SYNC_LOOKBACK = timedelta(days=30)
_REQUESTED_TOPIC = get_topic(Order.Requested)
# Orders requested since the last sync are read forward from its position, this many a page.
_REQUESTED_PAGE = 500


@dataclass(frozen=True)
class OwnSync:
    """The newest snapshot this process stored, and the cursor stored in it."""

    sync_id: UUID
    cursor: SyncCursor


def sync(ledger: Ledger, *, lookback: timedelta = DEFAULT_SYNC_LOOKBACK) -> SyncReport:
    """Pull the broker's account, positions, open orders, fills and corporate actions,
    and append one `BrokerSynced` with the order and fill events, in one save.

    Every read happens before anything is written; a failed or incomplete read raises
    `BrokerReadError` and stores nothing. Running it again records nothing twice.
    `lookback` bounds how far back the very first sync reads fills.
    """
    return _sync(ledger, last_cursor(ledger), lookback=lookback, snapshot=True)


def poll(
    ledger: Ledger,
    cursor: SyncCursor | None = None,
    *,
    lookback: timedelta = DEFAULT_SYNC_LOOKBACK,
) -> SyncReport:
    """Keep orders and fills current without a new snapshot: what `commands run` does
    between syncs. Continues from `cursor` (a previous report's) or the last sync."""
    if cursor is None:
        cursor = last_cursor(ledger)
    return _sync(ledger, cursor, lookback=lookback, snapshot=False)


def last_cursor(ledger: Ledger) -> SyncCursor | None:
    """Where the newest sync left off: the cursor in its request, all a sync needs of it.

    A snapshot holds a row per position held: decoding one to read its cursor would cost
    a reconcile more than its planning. So the newest snapshot is found from the end of
    the log by its notification alone; when it is the one this process stored, its cursor
    is known (events never change); when another process synced since, that one event is
    decoded.
    """
    newest = next(ledger.newest_of(SYNCED_TOPIC), None)
    if newest is None:
        return None
    own = ledger.own_sync
    if own is not None and own.sync_id == newest.originator_id:
        return own.cursor
    synced: BrokerSnapshot.Synced = ledger.mapper.to_domain_event(newest)
    return SyncCursor.from_request(synced.request)


def sync_reader(ledger: Ledger) -> BrokerReader:
    """The broker account a sync reads; InvalidInput (exit 2) when the broker keeps none."""
    reader = ledger.router.reader
    if reader is None:
        raise InvalidInput(
            f"the {ledger.router.broker} broker keeps no account to sync: "
            "set BROKER_PROVIDER=alpaca"
        )
    return reader


def _sync(
    ledger: Ledger, cursor: SyncCursor | None, *, lookback: timedelta, snapshot: bool
) -> SyncReport:
    reader = sync_reader(ledger)
    broker = reader.name
    through = ledger.last_notification_id()
    watched = [o for o in map(ledger.load_order, _watched_order_ids(ledger, cursor, through))
               if o is not None and needs_watching(o, broker)]
    fills_after, activities_after = _starting_points(cursor, watched, lookback)
    now = time.monotonic()
    # A snapshot always reads the whole overlap; a poll may read only what is new.
    quick_start = None if snapshot or cursor is None else cursor.quick_start(now)
    reads = read_broker(
        reader,
        watched=[WatchedOrder(o.id, o.client_order_id, o.broker_order_id) for o in watched],
        fills_after=quick_start or fills_after,
        activities_after=activities_after,
        with_account=snapshot,
        # Executions the previous sync saw stored: read again in the overlap, they cost
        # no lookup. Only a cursor from this process has them (see SyncCursor.recorded).
        recorded=cursor.recorded if cursor is not None else frozenset(),
    )
    for attempt in range(SAVE_ATTEMPTS):
        # Fresh aggregates on every attempt: a failed save leaves its events nowhere.
        fresh = [o for o in map(ledger.load_order, (o.id for o in watched)) if o is not None]
        outcome = SyncMapper(ledger, broker=broker, watched=fresh).map(reads)
        next_cursor = _next_cursor(
            cursor, outcome, quick_start, now,
            fills_after=fills_after, activities_after=activities_after, through=through,
        )
        positions = [position_record(p) for p in reads.positions or []]
        open_orders = [
            open_order_record(o, outcome.ledger_orders.get(o.broker_order_id))
            for o in reads.open_orders
        ]
        aggregates: list[Any] = list(outcome.aggregates)
        synced: BrokerSnapshot | None = None
        if snapshot:
            synced = _snapshot(reader, reads, positions, open_orders, request={
                "fills_after": fills_after,
                "activities_after": activities_after,
                "watched_orders": len(watched),
                **next_cursor.as_request(),
            })
            aggregates.insert(0, synced)
        try:
            if aggregates:
                ledger.save(*aggregates)
        except IntegrityError:
            if attempt == SAVE_ATTEMPTS - 1:
                raise
            log.info("another writer recorded part of this sync first; mapping again")
            continue
        if synced is not None:
            ledger.own_sync = OwnSync(synced.id, next_cursor)
        return SyncReport(
            broker=broker,
            paper=reader.paper,
            broker_time=reads.broker_time,
            cursor=next_cursor,
            sync_id=None if synced is None else synced.id,
            account=reads.account,
            positions=positions,
            open_orders=open_orders,
            new_fills=outcome.new_fills,
            new_orders=outcome.new_orders,
            updated_orders=outcome.updated_orders,
            reversals=outcome.reversals,
            corporate_actions=len(outcome.actions),
            lookups=reads.lookups,
            warnings=outcome.warnings,
        )
    raise AssertionError("unreachable")


def _next_cursor(
    cursor: SyncCursor | None,
    outcome: SyncOutcome,
    quick_start: datetime | None,
    now: float,
    *,
    fills_after: datetime,
    activities_after: datetime,
    through: int,
) -> SyncCursor:
    """The cursor after a read. A full read (`quick_start` None) moves `fills_after` and
    keeps the executions it found stored; a quick read leaves `fills_after` where the last
    full read put it (it read only the newest fills: the older part of the overlap is still
    to be read again) and adds what it found stored to what the cursor knew."""
    if quick_start is None or cursor is None:
        fills_from = outcome.fills_after or fills_after
        recorded = frozenset(outcome.recorded)
        full_read_at: float | None = now
    else:
        fills_from = fills_after
        recorded = cursor.recorded | outcome.recorded
        full_read_at = cursor.full_read_at
    fresh = outcome.fresh_after or quick_start or fills_from
    return SyncCursor(
        fills_after=fills_from,
        activities_after=outcome.activities_after or activities_after,
        unresolved=tuple(outcome.unresolved),
        through=through,
        recorded=recorded,
        fresh_after=max(fresh, fills_from),
        full_read_at=full_read_at,
    )


def _snapshot(
    reader: BrokerReader,
    reads: BrokerReads,
    positions: list[dict[str, Any]],
    open_orders: list[dict[str, Any]],
    *,
    request: dict[str, Any],
) -> BrokerSnapshot:
    account = reads.account
    assert account is not None
    return BrokerSnapshot(
        broker=reader.name,
        paper=reader.paper,
        account_id=account.account_id,
        cash=account.cash,
        equity=account.equity,
        buying_power=account.buying_power,
        positions=positions,
        open_orders=open_orders,
        broker_time=reads.broker_time,
        request=request,
    )


def _watched_order_ids(ledger: Ledger, cursor: SyncCursor | None, through: int) -> list[UUID]:
    """The orders still unsettled at the last sync, plus every order requested since."""
    ids = dict.fromkeys(cursor.unresolved if cursor else ())
    start = cursor.through if cursor else 0
    for notification in _requested(ledger, start, through):
        ids[ledger.mapper.to_domain_event(notification).originator_id] = None
    return list(ids)


def _requested(ledger: Ledger, after: int, through: int) -> Iterator[Notification]:
    """The `Order.Requested` notifications after one position of the log, up to another."""
    position = after
    while position < through:
        page = ledger.recorder.select_notifications(
            start=position,
            limit=_REQUESTED_PAGE,
            stop=through,
            topics=[_REQUESTED_TOPIC],
            inclusive_of_start=False,
        )
        if not page:
            return
        yield from page
        position = page[-1].id


def _starting_points(
    cursor: SyncCursor | None, watched: Sequence[Order], lookback: timedelta
) -> tuple[datetime, datetime]:
    if cursor is not None:
        return cursor.fills_after, cursor.activities_after
    start = datetime.now(UTC) - lookback
    # The first sync: an unsettled order older than the lookback needs all its fills.
    oldest = min((o.created_on for o in watched), default=start + OVERLAP)
    return min(start, oldest - OVERLAP), start
