"""The application service: the one object every caller uses.

The CLI, the service loop, a decision engine and the tests all record decisions
and orders through `Ledger`; none of them touches aggregates, the event store or a
broker directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    IntegrityError,
    JSONTranscoder,
    Notification,
    PersistenceError,
    Recording,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic

from ledger.brokers.answers import apply_answer
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import BrokerAnswer, BrokerReader, BrokerReadError
from ledger.brokers.router import BrokerRouter
from ledger.domain import Adjustment, BrokerSnapshot, Decision, Order, Reconciliation
from ledger.domain.order import ANSWERABLE_STATUSES, decision_order_id
from ledger.domain.values import InvalidInput, OrderIntent, Purpose, parse_price, validate
from ledger.infrastructure.collector import CollectorPaused
from ledger.infrastructure.failpoints import failpoint
from ledger.infrastructure.recording import LedgerTranscoder
from ledger.services.stopping import Interrupted
from ledger.services.syncing import (
    OVERLAP,
    SyncCursor,
    SyncMapper,
    SyncReport,
    WatchedOrder,
    needs_watching,
    open_order_record,
    position_record,
    read_broker,
)

log = logging.getLogger(__name__)

DEFAULT_SYNC_LOOKBACK = timedelta(days=30)
# A save that meets another writer is mapped again on fresh aggregates, this often.
SAVE_ATTEMPTS = 3
_REQUESTED_TOPIC = get_topic(Order.Requested)
_SYNCED_TOPIC = get_topic(BrokerSnapshot.Synced)
_STARTED_TOPIC = get_topic(Reconciliation.Started)


class DateAsISO(Transcoding):
    """Calendar dates (a split's effective date) as ISO strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


# A save of at least this many events runs with the cycle collector paused: it makes a
# stored event, a notification and a recording per event, none in a cycle.
PAUSE_COLLECTOR_FROM = 500


def _insert_in_binary(recorder: Any) -> None:
    """PostgreSQL: send new events as a binary array of eventsourcing's composite type.

    eventsourcing inserts `unnest(%s::stored_event[])`, so psycopg dumps the array as text,
    escaping every byte of every event's state with regular expressions in Python: most of
    a bulk save's time. `%b` picks the binary dumper that the same `register_composite`
    registered on every connection: the same rows, sent without escaping."""
    from eventsourcing.postgres import PostgresAggregateRecorder
    from psycopg.sql import SQL, Composable, Composed

    if not isinstance(recorder, PostgresAggregateRecorder):
        return

    def binary(part: Composable) -> Composable:
        if isinstance(part, Composed):
            return Composed([binary(p) for p in part])
        if isinstance(part, SQL):
            return SQL(part.as_string().replace("%s", "%b"))
        return part

    recorder.insert_events_statement = binary(recorder.insert_events_statement)


class NotSent(Exception):
    """The order was not sent: it was already settled, or another process changed it first."""

    def __init__(self, order: Order, why: str) -> None:
        super().__init__(f"order {order.client_order_id} was not sent: {why} ({order.status})")
        self.order = order


@dataclass(frozen=True)
class StoredEvent:
    """One event as read back from the store, with its place in the global sequence."""

    notification_id: int
    event: Any


class Ledger(Application[UUID]):
    # The PostgreSQL tables are named after the application: tradeledger_events.
    name = "TradeLedger"

    def __init__(
        self, env: dict[str, str] | None = None, *, router: BrokerRouter | None = None
    ) -> None:
        super().__init__(env)
        self.router = router or BrokerRouter(PaperBroker())
        _insert_in_binary(self.recorder)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """`Application.save`, with aggregates told apart from events by their class.

        eventsourcing asks `isinstance(obj, DomainEventProtocol)` of every object saved: a
        runtime-checkable Protocol, which Python 3.11 answers by walking the protocol's
        attributes on every call (a third of the time of a sync that brings thousands of
        fills). The rest is the library's own `save`, step by step."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        with CollectorPaused(when=len(processing_event.events) >= PAUSE_COLLECTOR_FROM):
            recordings = self._record(processing_event)
            self._take_snapshots(processing_event)
            self._notify(recordings)
            self.notify(processing_event.events)  # deprecated, but the library still calls it
        return recordings

    def construct_transcoder(self) -> Transcoder:
        # The library's JSON, written with fewer Python calls per value (same bytes).
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        # Decimal is stored as its exact string (DecimalAsStr), datetimes as ISO 8601
        # with their offset, UUIDs as hex: nothing passes through a float. These are
        # eventsourcing's own transcodings; `test_decimal_round_trip` holds them to it.
        transcoder.register(UUIDAsHex())
        transcoder.register(DecimalAsStr())
        transcoder.register(DatetimeAsISO())
        transcoder.register(DateAsISO())

    # -- writing ---------------------------------------------------------------------

    def record_decision(
        self, *, source: str, rationale: str, intents: Sequence[OrderIntent]
    ) -> tuple[Decision, list[Order]]:
        """Store a decision and the orders it requests, together, before any broker call."""
        if not intents:
            raise InvalidInput("a decision needs at least one trade")
        decision = Decision(
            source=source,
            rationale=rationale,
            trades=[intent.as_event_fields() for intent in intents],
        )
        orders = [
            Order.request(
                intent,
                order_id=decision_order_id(decision.id, index),
                purpose=Purpose.DECISION,
                decision_id=decision.id,
                reason=rationale,
            )
            for index, intent in enumerate(intents)
        ]
        self.save(decision, *orders)
        return decision, orders

    def trade(
        self,
        *,
        side: str,
        symbol: str,
        qty: Any,
        price: Any = None,
        reason: str = "",
        source: str = "cli",
        order_type: str = "market",
        limit_price: Any = None,
        time_in_force: str = "day",
        extended_hours: bool = False,
        notional: Any = None,
        confirm_live: bool = False,
        may_send: Callable[[], None] | None = None,
    ) -> Order:
        """Record one decision with its order, then execute it through the router.

        Pass `qty` or `notional` (a dollar amount, market orders only). A live account
        (ALPACA_PAPER_MODE=false) takes real money: it needs `confirm_live=True`.
        `may_send` raises to send nothing (see `submit`); the order is then withdrawn.
        """
        intent = validate(
            OrderIntent,
            symbol=symbol,
            side=side,
            qty=qty,
            notional=notional,
            order_type=order_type,
            limit_price=limit_price,
            time_in_force=time_in_force,
            extended_hours=extended_hours,
        )
        reference_price = None if price is None else parse_price(price, "price")
        if self.router.broker == "paper" and reference_price is None:
            raise InvalidInput("the paper broker fills at the given price: pass --price")
        if not self.router.paper and not confirm_live:
            raise InvalidInput(
                "ALPACA_PAPER_MODE=false trades a live account with real money: "
                "confirm with --confirm-live (confirm_live=True)"
            )
        _, (order,) = self.record_decision(source=source, rationale=reason, intents=[intent])
        try:
            order, answer = self.submit(
                order.id, reference_price=reference_price, may_send=may_send
            )
        except Interrupted as stopped:
            order.withdraw_unsent(reason=f"not sent: {stopped}")
            self.save(order)
            raise
        if self._fills_waiting(order, answer):
            # A broker reports executions apart from the order (account activities): fetch
            # them now so the caller sees the fill. If that fails, the next sync records them.
            try:
                self.poll()
            except (BrokerReadError, IntegrityError) as error:
                log.warning("fills of %s not recorded yet: %s", order.client_order_id, error)
            else:
                order = self.get_order(order.id)
        return order

    def adopt(
        self, adjustments: Sequence[tuple[str, Decimal, Decimal]], *, who: str, why: str
    ) -> list[Adjustment]:
        """Take the broker's quantities into the local book: one `Adjustment` per
        (symbol, signed qty to add, price) in one save. An operator's decision, recorded
        with who and why; it is no trade, and nothing is sent to a broker."""
        if not why.strip():
            raise InvalidInput("an adoption needs a reason: say why the broker's word stands")
        recorded = [
            Adjustment(book="local", symbol=symbol, qty=qty, price=price, who=who, why=why)
            for symbol, qty, price in adjustments
            if qty
        ]
        if recorded:
            self.save(*recorded)
        return recorded

    def _fills_waiting(self, order: Order, answer: BrokerAnswer) -> bool:
        reported = answer.filled_qty or Decimal(0)
        return self.router.reader is not None and reported > order.filled_qty

    def execute(self, order_id: UUID, *, reference_price: Decimal | None = None) -> Order:
        """Route a stored order to the broker and store the answer."""
        order, _ = self.submit(order_id, reference_price=reference_price)
        return order

    def submit(
        self,
        order_id: UUID,
        *,
        reference_price: Decimal | None = None,
        may_send: Callable[[], None] | None = None,
    ) -> tuple[Order, BrokerAnswer]:
        """Route a stored order to the broker; store and return the broker's answer.

        `may_send` is asked first: it raises to send nothing (an interrupted run, a lost
        reconciliation lock). Raises `NotSent` when another
        process settled or withdrew the order first.
        """
        if may_send is not None:
            may_send()
        order: Order = self.repository.get(order_id)
        if order.status not in ANSWERABLE_STATUSES:
            raise NotSent(order, f"it is {order.status}")

        def store_send_start(marked: Order) -> None:
            try:
                self.save(marked)
            except IntegrityError:
                # Another process wrote to this order since it was read: a run that took
                # over withdrew it, or a sync found it. Its events decide; nothing is sent.
                raise NotSent(
                    self.get_order(order_id), "another process changed it first"
                ) from None
            # Between the send's mark and the send: a crash here leaves an order of unknown
            # outcome that never left, which the next run sends under the same id.
            failpoint("submit:marked")

        answer = self.router.route(order, reference_price, store_send_start=store_send_start)
        # Between the broker's answer and its storage: the window a lost reply lives in.
        failpoint("submit:answered")
        for attempt in range(SAVE_ATTEMPTS):
            apply_answer(order, answer)
            try:
                self.save(order)
                return order, answer
            except IntegrityError:
                # A sync recorded the same answer first (it looks orders up by client order
                # id): apply ours to what is stored; what it already holds is ignored.
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                order = self.repository.get(order_id)
        raise AssertionError("unreachable")

    # -- broker sync -----------------------------------------------------------------

    def sync(self, *, lookback: timedelta = DEFAULT_SYNC_LOOKBACK) -> SyncReport:
        """Pull the broker's account, positions, open orders, fills and corporate actions,
        and append one `BrokerSynced` with the order and fill events, in one save.

        Every read happens before anything is written; a failed or incomplete read raises
        `BrokerReadError` and stores nothing. Running it again records nothing twice.
        `lookback` bounds how far back the very first sync reads fills.
        """
        return self._sync(self._last_cursor(), lookback=lookback, snapshot=True)

    def poll(
        self, cursor: SyncCursor | None = None, *, lookback: timedelta = DEFAULT_SYNC_LOOKBACK
    ) -> SyncReport:
        """Keep orders and fills current without a new snapshot: what `commands run` does
        between syncs. Continues from `cursor` (a previous report's) or the last sync."""
        if cursor is None:
            cursor = self._last_cursor()
        return self._sync(cursor, lookback=lookback, snapshot=False)

    # The newest snapshot this process stored, and the cursor stored in it.
    _own_sync: tuple[UUID, SyncCursor] | None = None

    def _last_cursor(self) -> SyncCursor | None:
        """Where the newest sync left off: the cursor in its request, all a sync needs of it.

        A snapshot holds a row per position held; decoding one to read its cursor cost a
        reconcile more than its planning. The newest snapshot is found from the end of the
        log as before; when it is the one this process stored, its cursor is known (events
        never change); when another process synced since, that one event is decoded.
        """
        newest = next(self._newest_first(_SYNCED_TOPIC), None)
        if newest is None:
            return None
        own = self._own_sync
        if own is not None and own[0] == newest.originator_id:
            return own[1]
        synced: BrokerSnapshot.Synced = self.mapper.to_domain_event(newest)
        return SyncCursor.from_request(synced.request)

    def keep_current(
        self,
        stop: threading.Event,
        *,
        interval: float = 5.0,
        resync_interval: float = 900.0,
        lookback: timedelta = DEFAULT_SYNC_LOOKBACK,
        on_report: Callable[[SyncReport], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> SyncReport:
        """The service loop: sync now, then poll every `interval` seconds (and take a full
        snapshot every `resync_interval`) until `stop` is set. A failed start-up sync
        raises; a failed poll (the broker, or the event store: a restarted database
        server) is reported to `on_error` and tried again next time."""
        report = self.sync(lookback=lookback)
        if on_report is not None:
            on_report(report)
        cursor = report.cursor
        last_snapshot = time.monotonic()
        while not stop.wait(interval):
            try:
                if time.monotonic() - last_snapshot >= resync_interval:
                    report = self.sync(lookback=lookback)
                    last_snapshot = time.monotonic()
                else:
                    report = self.poll(cursor, lookback=lookback)
            except (BrokerReadError, PersistenceError) as error:
                # IntegrityError (another writer first) is a PersistenceError too. A store
                # that went away is reconnected by the pool (pre-ping) once it is back.
                log.warning("poll failed: %s", error)
                if on_error is not None:
                    on_error(error)
                continue
            cursor = report.cursor
            if on_report is not None:
                on_report(report)
        return report

    def latest_sync(self) -> BrokerSnapshot | None:
        """The newest broker snapshot, found from the end of the log (syncs are frequent)."""
        found = self._newest_with_topic(_SYNCED_TOPIC, 1)
        if not found:
            return None
        snapshot: BrokerSnapshot = self.repository.get(found[0])
        return snapshot

    def recent_reconciliations(
        self, limit: int, *, include_dry_runs: bool = True
    ) -> list[Reconciliation]:
        """The newest reconciliation runs, newest first."""
        ids: list[UUID] = []
        for notification in self._newest_first(_STARTED_TOPIC):
            if len(ids) >= limit:
                break
            # A run's start says whether it was a dry run: only the runs asked for are
            # loaded (a plan holds a row per symbol held, so a run is costly to load).
            if include_dry_runs or not self.mapper.to_domain_event(notification).dry_run:
                ids.append(notification.originator_id)
        return [self.repository.get(run_id) for run_id in ids]

    def _newest_with_topic(self, topic: str, count: int) -> list[UUID]:
        """Aggregate ids of the newest `count` events of one topic, newest first."""
        return [n.originator_id for n in islice(self._newest_first(topic), count)]

    def _newest_first(self, topic: str) -> Iterator[Notification]:
        """The events of one topic, newest first, read back from the end of the log in
        growing windows (only as far back as the caller reads)."""
        window = 256
        stop = self.recorder.max_notification_id() or 0
        while stop >= 1:
            start = max(1, stop - window + 1)
            page = self.recorder.select_notifications(
                start=start, limit=window, stop=stop, topics=[topic]
            )
            yield from reversed(page)
            stop = start - 1
            window *= 2

    def load_order(self, order_id: UUID) -> Order | None:
        try:
            order: Order = self.repository.get(order_id)
        except AggregateNotFoundError:
            return None
        return order

    def has_aggregate(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    def _reader(self) -> BrokerReader:
        reader = self.router.reader
        if reader is None:
            raise InvalidInput(
                f"the {self.router.broker} broker keeps no account to sync: "
                "set BROKER_PROVIDER=alpaca"
            )
        return reader

    def _sync(
        self, cursor: SyncCursor | None, *, lookback: timedelta, snapshot: bool
    ) -> SyncReport:
        reader = self._reader()
        broker = reader.name
        through = self.last_notification_id()
        watched_ids = self._watched_order_ids(cursor, through)
        watched = [o for o in map(self.load_order, watched_ids) if o is not None]
        watched = [o for o in watched if needs_watching(o, broker)]
        fills_after, activities_after = self._starting_points(cursor, watched, lookback)
        reads = read_broker(
            reader,
            watched=[WatchedOrder(o.id, o.client_order_id, o.broker_order_id) for o in watched],
            fills_after=fills_after,
            activities_after=activities_after,
            with_account=snapshot,
        )
        for attempt in range(SAVE_ATTEMPTS):
            # Fresh aggregates on every attempt: a failed save leaves its events nowhere.
            fresh = [o for o in map(self.load_order, (o.id for o in watched)) if o is not None]
            outcome = SyncMapper(self, broker=broker, watched=fresh).map(reads)
            next_cursor = SyncCursor(
                fills_after=outcome.fills_after or fills_after,
                activities_after=outcome.activities_after or activities_after,
                unresolved=tuple(outcome.unresolved),
                through=through,
            )
            open_orders = [
                open_order_record(o, outcome.ledger_orders.get(o.broker_order_id))
                for o in reads.open_orders
            ]
            positions = [position_record(p) for p in reads.positions or []]
            aggregates: list[Any] = list(outcome.aggregates)
            synced: BrokerSnapshot | None = None
            if snapshot:
                assert reads.account is not None
                synced = BrokerSnapshot(
                    broker=broker,
                    paper=reader.paper,
                    account_id=reads.account.account_id,
                    cash=reads.account.cash,
                    equity=reads.account.equity,
                    buying_power=reads.account.buying_power,
                    positions=positions,
                    open_orders=open_orders,
                    broker_time=reads.broker_time,
                    request={
                        "fills_after": fills_after,
                        "activities_after": activities_after,
                        "watched_orders": len(watched),
                        **next_cursor.as_request(),
                    },
                )
                aggregates.insert(0, synced)
            try:
                if aggregates:
                    self.save(*aggregates)
            except IntegrityError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                log.info("another writer recorded part of this sync first; mapping again")
                continue
            if synced is not None:
                self._own_sync = (synced.id, next_cursor)
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

    def _watched_order_ids(self, cursor: SyncCursor | None, through: int) -> list[UUID]:
        """The orders still unsettled at the last sync, plus every order requested since."""
        ids = dict.fromkeys(cursor.unresolved if cursor else ())
        start = cursor.through if cursor else 0
        for notification in self._notifications(start, through, _REQUESTED_TOPIC):
            ids[self.mapper.to_domain_event(notification).originator_id] = None
        return list(ids)

    def _notifications(self, after: int, through: int, topic: str) -> Iterator[Notification]:
        position = after
        while position < through:
            page = self.recorder.select_notifications(
                start=position,
                limit=500,
                stop=through,
                topics=[topic],
                inclusive_of_start=False,
            )
            if not page:
                return
            yield from page
            position = page[-1].id

    @staticmethod
    def _starting_points(
        cursor: SyncCursor | None, watched: Sequence[Order], lookback: timedelta
    ) -> tuple[datetime, datetime]:
        if cursor is not None:
            return cursor.fills_after, cursor.activities_after
        start = datetime.now(UTC) - lookback
        # The first sync: an unsettled order older than the lookback needs all its fills.
        oldest = min((o.created_on for o in watched), default=start + OVERLAP)
        return min(start, oldest - OVERLAP), start

    # -- reading ---------------------------------------------------------------------

    def get_order(self, order_id: UUID) -> Order:
        return self.repository.get(order_id)

    def newest_events(self, limit: int) -> list[StoredEvent]:
        """The last `limit` events of the store, oldest first."""
        if limit <= 0:
            return []
        last = self.recorder.max_notification_id()
        if not last:
            return []
        # Notification ids may have gaps (a rolled-back insert), so widen the window
        # until it holds enough events or reaches the first one.
        window = limit
        while True:
            start = max(1, last - window + 1)
            found = self.recorder.select_notifications(start=start, limit=window, stop=last)
            if len(found) >= limit or start == 1:
                break
            window *= 2
        return [self.stored_event(n) for n in found[-limit:]]

    def stored_event(self, notification: Notification) -> StoredEvent:
        return StoredEvent(notification.id, self.mapper.to_domain_event(notification))

    def events_after(self, notification_id: int, limit: int) -> Iterable[StoredEvent]:
        for notification in self.recorder.select_notifications(
            start=notification_id, limit=limit, inclusive_of_start=False
        ):
            yield self.stored_event(notification)

    def last_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0
