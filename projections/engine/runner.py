"""Reading events in pages and applying a page to a set of view tables in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from projections.engine.store import Tx, ViewStore
from projections.engine.tables import (
    ACCOUNT_KEY,
    AUDIT_DAYS,
    BROKER_ACCOUNT,
    BROKER_LINES,
    BROKER_POSITIONS,
    LOCAL_LINES,
    LOCAL_POSITIONS,
    ORDERS,
    Table,
    account_from_row,
    account_row,
    day_from_row,
    day_row,
    line_from_row,
    line_row,
    order_from_row,
    order_row,
    position_from_row,
    position_row,
)
from projections.model.fold import (
    STAMPED_EVENTS,
    STATUS_ONLY_EVENTS,
    AuditIndexer,
    Changes,
    FoldState,
    OrderRecord,
    Stamp,
)
from projections.model.positions import OPEN_STATUSES, Line

Page = list[tuple[int, Any]]

# Large enough that per-page costs (a transaction, a few queries) vanish, small enough
# that a page of decoded events stays a few tens of megabytes.
DEFAULT_PAGE_SIZE = 10_000

_LINE_COLUMNS = ("seq", "n", "kind", "qty", "price", "ratio", "ref")


# Views change on what orders, syncs, corporate actions and adjustments say; the other
# events only place themselves in the audit index.
STAMPED_TOPICS = {get_topic(cls): cls for cls in STAMPED_EVENTS}
# A fold also needs no more than a Stamp of an order's status events.
FOLD_STAMPED_TOPICS = {
    **STAMPED_TOPICS,
    **{get_topic(cls): cls for cls in STATUS_ONLY_EVENTS},
}
# eventsourcing's JSON transcoder writes the timestamp first, as an ISO string.
_TIMESTAMP_PREFIX = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'


def stored_timestamp(state: bytes) -> str | None:
    """An event's timestamp as stored (ISO text), read from the start of its JSON state
    without decoding the rest; None if the state does not start with it (a cipher, say)."""
    if not state.startswith(_TIMESTAMP_PREFIX):
        return None
    start = len(_TIMESTAMP_PREFIX)
    end = state.find(b'"', start)
    return None if end < 0 else state[start:end].decode()


def read_page(
    ledger: Ledger,
    after: int,
    limit: int,
    stop: int | None = None,
    *,
    full: bool = True,
    statuses: bool = False,
) -> Page:
    """Up to `limit` events after notification `after` (and up to `stop`), decoded.

    With `full=False`, events in STAMPED_TOPICS come back as a `Stamp` read from the
    start of their stored state, skipping the decoding of fields no view uses (a
    decision's trades, a plan's rows): a rebuild is mostly decoding. With `statuses`
    too, so do an order's status-only events, for callers that only fold the page.
    """
    notifications = ledger.recorder.select_notifications(
        start=after, limit=limit, stop=stop, inclusive_of_start=False
    )
    decode = ledger.mapper.to_domain_event
    plain = ledger.mapper.cipher is None and ledger.mapper.compressor is None
    if full or not plain:
        return [(n.id, decode(n)) for n in notifications]
    stamped = FOLD_STAMPED_TOPICS if statuses else STAMPED_TOPICS
    page: Page = []
    for n in notifications:
        event_class = stamped.get(n.topic)
        stamp = None if event_class is None else _stamp(n, event_class)
        page.append((n.id, stamp if stamp is not None else decode(n)))
    return page


def _stamp(notification: Notification, event_class: type) -> Stamp | None:
    text = stored_timestamp(notification.state)
    if text is None:
        return None
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return Stamp(
        notification.originator_id, notification.originator_version, timestamp, event_class
    )


def pages(
    ledger: Ledger,
    after: int,
    limit: int,
    stop: int | None = None,
    *,
    full: bool = True,
    statuses: bool = False,
) -> Iterator[Page]:
    """Every page after notification `after`, in order.

    (Reading the next page on a thread while this one is folded was measured: the GIL
    makes both slower, on SQLite and on PostgreSQL alike.)
    """
    while True:
        page = read_page(ledger, after, limit, stop, full=full, statuses=statuses)
        if not page:
            return
        yield page
        after = page[-1][0]


class ViewWriter:
    """Folds pages into `FoldState` and writes what changed to one set of view tables.

    `views` names the views whose tables this writer owns; `suffix` says which copy
    ("" for the live tables, "__new" for a rebuild's). State the fold needs but these
    views do not hold (an order's purpose for a book, when the orders view is not being
    written) is read from the live tables, which only ever hold what events said.
    """

    def __init__(
        self, store: ViewStore, zone: ZoneInfo, views: Sequence[str], suffix: str = ""
    ) -> None:
        self.store = store
        self.zone = zone
        self.views = frozenset(views)
        self.suffix = suffix
        self._orders_suffix = suffix if "orders" in self.views else ""
        self._tx: Tx | None = None

    def _own(self, view: str) -> bool:
        return view in self.views

    # -- state ------------------------------------------------------------------------

    def fresh_state(self) -> FoldState:
        """State before event 1: a rebuild starts here."""
        return FoldState(
            self.zone,
            local_lines=self._lines_reader(LOCAL_LINES, "local_book"),
            broker_lines=self._lines_reader(BROKER_LINES, "broker_book"),
            audit=self._own("audit_index"),
        )

    def load_state(self, tx: Tx) -> FoldState:
        """State as the tables hold it: positions, account and the open audit day.

        Orders are loaded page by page (only those a page touches), lines only when a
        reversal or symbol change needs a symbol's history.
        """
        state = self.fresh_state()
        s = self.suffix
        if self._own("local_book"):
            state.local.positions = dict(
                position_from_row(r) for r in self.store.select(tx, LOCAL_POSITIONS, s)
            )
        if self._own("broker_book"):
            state.broker.positions = dict(
                position_from_row(r) for r in self.store.select(tx, BROKER_POSITIONS, s)
            )
            rows = self.store.select(
                tx, BROKER_ACCOUNT, s, where='"account_key" = ?', params=(ACCOUNT_KEY,)
            )
            if rows:
                state.account = account_from_row(rows[0])
                state.broker.start_seq = state.account.snapshot_seq
        if self._own("audit_index"):
            rows = self.store.select(tx, AUDIT_DAYS, s, order='"last_seq" DESC LIMIT 1')
            state.audit = AuditIndexer(self.zone, day_from_row(rows[0]) if rows else None)
            # The orders view holds every order as of this position: its open ones are
            # what the next close must list (the status index finds them).
            rows = self.store.select(
                tx,
                ORDERS,
                self._orders_suffix,
                columns=("order_id",),
                where=f'"status" IN ({", ".join("?" for _ in OPEN_STATUSES)})',
                params=sorted(OPEN_STATUSES),
            )
            state.open_order_ids = {UUID(row[0]) for row in rows}
        return state

    def _lines_reader(self, table: Table, view: str) -> Any:
        def lines(symbol: str, start_seq: int) -> list[Line]:
            if not self._own(view):
                return []  # this writer does not keep that book: its positions are not written
            query = {
                "columns": _LINE_COLUMNS,
                "where": '"symbol" = ? AND "seq" >= ?',
                "params": (symbol, start_seq),
                "order": '"seq", "n"',
            }
            if self._tx is not None:
                rows = self.store.select(self._tx, table, self.suffix, **query)
            else:
                with self.store.read() as tx:
                    rows = self.store.select(tx, table, self.suffix, **query)
            return [line_from_row(row) for row in rows]

        return lines

    # -- a page ---------------------------------------------------------------------------

    def apply(self, tx: Tx, state: FoldState, page: Page) -> list[OrderRecord]:
        """Fold the page and write its changes with `tx`; returns the orders it changed."""
        self.fold(tx, state, page)
        return self.flush(tx, state)

    def fold(self, tx: Tx, state: FoldState, page: Page) -> None:
        """Fold the page into `state` only. Its changes wait in `state` for `flush`, in the
        same transaction: until then the orders they touch must stay in `state`."""
        self._tx = tx
        try:
            missing = state.order_ids_to_load(page)
            if missing:
                rows = self.store.select_in(
                    tx, ORDERS, self._orders_suffix, "order_id", [str(i) for i in missing]
                )
                for row in rows:
                    record = order_from_row(row)
                    state.orders[record.order_id] = record
            apply = state.apply
            for seq, event in page:
                apply(seq, event)
        finally:
            self._tx = None

    def flush(self, tx: Tx, state: FoldState) -> list[OrderRecord]:
        """Write what the pages folded since the last flush changed; returns the orders."""
        changes = state.take_changes()
        self.write(tx, changes)
        return changes.orders

    def write(self, tx: Tx, changes: Changes) -> None:
        store, s = self.store, self.suffix
        if self._own("orders"):
            # In key order, the random UUID keys fill their index a leaf page at a time
            # (measured on SQLite: a fifth less time per new row).
            new = sorted(order_row(r) for r in changes.orders if not r.stored)
            store.insert(tx, ORDERS, s, new)
            store.upsert(tx, ORDERS, s, [order_row(r) for r in changes.orders if r.stored])
            for record in changes.orders:
                record.stored = True
        if self._own("local_book"):
            self._write_book(tx, LOCAL_POSITIONS, LOCAL_LINES, changes.local)
        if self._own("broker_book"):
            self._write_book(tx, BROKER_POSITIONS, BROKER_LINES, changes.broker)
            if changes.account is not None:
                store.upsert(tx, BROKER_ACCOUNT, s, [account_row(changes.account)])
        if self._own("audit_index"):
            store.upsert(tx, AUDIT_DAYS, s, [day_row(day) for day in changes.days])

    def _write_book(self, tx: Tx, positions: Table, lines: Table, changes: Any) -> None:
        store, s = self.store, self.suffix
        store.delete(tx, positions, s, [(symbol,) for symbol in sorted(changes.deletes)])
        store.upsert(
            tx,
            positions,
            s,
            [position_row(symbol, p) for symbol, p in sorted(changes.upserts.items())],
        )
        store.insert(tx, lines, s, [line_row(symbol, line) for symbol, line in changes.lines])
