"""`Views`: bring every view up to the newest event, then read them.

    views = projections.catch_up(ledger, timezone=settings.timezone)
    views.local_book()            # [PositionRow(symbol, qty, avg_price, realised_pnl)]
    views.broker_book()           # BrokerBook(account, positions)
    views.diff()                  # [DiffRow(symbol, local_qty, broker_qty, open_qty, delta)]
    views.orders(open_only=True)  # [OrderRecord]
    views.audit_day(date(2026, 1, 5))

Readers read the live tables only, in one snapshot; a rebuild swaps its tables in
whole, so nobody ever reads a half-built view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from projections.engine import reads
from projections.engine.audit_index import AuditDay
from projections.engine.digest import Dump, digest, dump
from projections.engine.runner import DEFAULT_PAGE_SIZE, read_page
from projections.engine.store import ViewStore
from projections.engine.tables import (
    AUDIT_DAYS,
    ORDERS,
    VIEW_NAMES,
    VIEWS,
    VIEWS_BY_NAME,
    Row,
    View,
    day_from_row,
    order_from_row,
)
from projections.engine.tracked_fold import TrackedFold
from projections.engine.writer import ViewWriter
from projections.model.numbers import ZERO
from projections.model.positions import (
    TRADE,
    DiffRow,
    Line,
    Position,
    diff_rows,
    open_qty_by_symbol,
)
from projections.model.records import BrokerAccountState, OrderRecord

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realised_pnl: Decimal
    cost_basis: Decimal = ZERO


@dataclass(frozen=True)
class BrokerBook:
    account: BrokerAccountState | None  # None until the first sync
    positions: list[PositionRow]


class _Moved(Exception):
    """Another process moved the views on between our read and our lock: start again there."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def position_rows(positions: dict[str, Position], include_flat: bool = False) -> list[PositionRow]:
    return [
        PositionRow(symbol, p.qty, p.avg_price, p.realised_pnl, p.cost)
        for symbol, p in sorted(positions.items())
        if include_flat or p.qty
    ]


class Views:
    def __init__(
        self,
        ledger: Ledger,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.ledger = ledger
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.page_size = page_size
        self.store = ViewStore(ledger)
        self._ready = False

    # -- keeping current ----------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply every event the views have not seen; returns the last notification id applied."""
        stale = self.set_up()
        if stale:
            from projections.engine.rebuilder import rebuild

            log.warning(
                "views %s were built for another layout or time zone: rebuilding", ", ".join(stale)
            )
            rebuild(self, stale)
        return self.catch_up_live(VIEW_NAMES)

    def setting(self, view: View) -> str:
        """What besides the events a view's rows depend on: the audit index, on the time zone."""
        return self.timezone if view.name == "audit_index" else ""

    def set_up(self) -> list[str]:
        """Create what is missing; return the views that must be rebuilt before use."""
        if self._ready:
            return []
        store = self.store
        store.ensure_tracking_table()
        with store.write() as tx:
            store.serialise_setup(tx)
            position = store.lock_position(tx)
            if position is None:
                store.write_position(tx, 0)
                position = 0
            store.ensure_meta(tx)
            meta = store.read_meta(tx)
            existing = store.existing_tables(tx)
            stale = [
                view.name
                for view in VIEWS
                if meta.get(view.name) != (view.layout, self.setting(view))
                or any(table.name not in existing for table in view.tables)
            ]
            if stale and position == 0:
                # Nothing applied yet: empty tables are exactly right.
                for name in stale:
                    view = VIEWS_BY_NAME[name]
                    for table in view.tables:
                        store.drop(tx, table.name)
                        store.create(tx, table)
                    store.write_meta(tx, view.name, view.layout, self.setting(view))
                stale = []
        self._ready = not stale
        return stale

    def catch_up_live(self, names: Sequence[str]) -> int:
        """Apply new events to the live tables of `names`, a page per transaction."""
        store = self.store
        head = self.ledger.recorder.max_notification_id() or 0
        position = store.read_position() or 0
        writer = ViewWriter(store, self.zone, names)
        state: TrackedFold | None = None
        while position < head:
            page = read_page(self.ledger, position, self.page_size, stop=head, full=False)
            if not page:
                break
            try:
                with store.write() as tx:
                    locked = store.lock_position(tx) or 0
                    if locked != position:
                        raise _Moved(locked)
                    if state is None:
                        state = writer.load_state(tx)
                    touched = writer.apply(tx, state, page)
                    store.write_position(tx, page[-1][0])
            except _Moved as moved:
                position, state = moved.position, None
                continue
            except BaseException:
                # The rows rolled back; the state in memory did not: never reuse it.
                state = None
                raise
            position = page[-1][0]
            state.forget_orders_except(touched)
        return position

    # -- reading -----------------------------------------------------------------------

    def local_book(self, *, include_flat: bool = False) -> list[PositionRow]:
        with self.store.read() as tx:
            positions = reads.positions(self.store, tx, "local")
        return position_rows(positions, include_flat)

    def broker_book(self, *, include_flat: bool = False) -> BrokerBook:
        with self.store.read() as tx:
            positions = reads.positions(self.store, tx, "broker")
            account = reads.account(self.store, tx)
        return BrokerBook(account, position_rows(positions, include_flat))

    def broker_account(self) -> BrokerAccountState | None:
        with self.store.read() as tx:
            return reads.account(self.store, tx)

    def orders(
        self, *, open_only: bool = False, symbol: str | None = None, purpose: str | None = None
    ) -> list[OrderRecord]:
        """Orders in the order they were requested."""
        clauses, params = [], []
        if open_only:
            clauses.append(reads.OPEN)
            params.extend(reads.OPEN_PARAMS)
        if symbol is not None:
            clauses.append('"symbol" = ?')
            params.append(symbol.upper())
        if purpose is not None:
            clauses.append('"purpose" = ?')
            params.append(purpose)
        with self.store.read() as tx:
            rows = self.store.select(
                tx, ORDERS, where=" AND ".join(clauses), params=params, order='"requested_seq"'
            )
        return [order_from_row(row) for row in rows]

    def order(self, order_id: UUID) -> OrderRecord | None:
        return self._one_order('"order_id" = ?', str(order_id))

    def order_by_client_order_id(self, client_order_id: str) -> OrderRecord | None:
        return self._one_order('"client_order_id" = ?', client_order_id)

    def _one_order(self, where: str, value: str) -> OrderRecord | None:
        with self.store.read() as tx:
            rows = self.store.select(tx, ORDERS, where=where, params=(value,))
        return order_from_row(rows[0]) if rows else None

    def diff(self) -> list[DiffRow]:
        """Per symbol: local qty, broker qty, qty still open at the broker, and the delta."""
        store = self.store
        with store.read() as tx:
            local = reads.positions(store, tx, "local")
            broker = reads.positions(store, tx, "broker")
            account = reads.account(store, tx)
            open_rows = store.select(tx, ORDERS, where=reads.OPEN, params=reads.OPEN_PARAMS)
            # An order the last snapshot lists as open may have finished since: the ledger
            # must vouch for it too, or it would be netted as an order it does not know.
            open_ids = {order_from_row(row).client_order_id for row in open_rows}
            listed = sorted(
                {str(o.get("client_order_id") or "") for o in account.open_orders} - open_ids
            ) if account else []
            if listed:
                open_rows = [*open_rows, *store.select(
                    tx,
                    ORDERS,
                    where=f'"client_order_id" IN ({", ".join("?" for _ in listed)})',
                    params=listed,
                )]
        open_orders = [order_from_row(row).for_netting() for row in open_rows]
        pending = open_qty_by_symbol(
            account.open_orders if account else [],
            account.broker_time if account else None,
            open_orders,
        )
        return diff_rows(
            {s: p.qty for s, p in local.items()}, {s: p.qty for s, p in broker.items()}, pending
        )

    def lines(
        self, book: str, symbol: str, since_seq: int = 0, before_seq: int | None = None
    ) -> list[Line]:
        """What changed one symbol of a book ("local" or "broker"), oldest first; with
        `before_seq`, only what came before that event (a replay of an earlier day must not
        read the lines of every day since)."""
        with self.store.read() as tx:
            return reads.lines(self.store, tx, book, symbol, since_seq, before_seq)

    def traded_symbols_since(self, day: date, book: str = "local") -> set[str]:
        """Symbols whose book changed on or after `day` (a trading day in the ledger's zone)."""
        first = self.first_seq_on_or_after(day)
        if first is None:
            return set()
        with self.store.read() as tx:
            rows = self.store.select(
                tx,
                reads.BOOKS[book][1],
                columns=("symbol",),
                where='"seq" >= ? AND "kind" = ?',
                params=(first, TRADE),
            )
        return {row[0] for row in rows}

    # -- the audit index ------------------------------------------------------------------

    def _days(self, where: str = "", params: Sequence[object] = (), order: str = '"first_seq"',
              columns: Sequence[str] | None = None) -> list[Row]:
        with self.store.read() as tx:
            return self.store.select(tx, AUDIT_DAYS, columns=columns, where=where,
                                     params=params, order=order)

    def audit_days(self) -> list[AuditDay]:
        return [day_from_row(row) for row in self._days()]

    def audit_day(self, day: date) -> AuditDay | None:
        """Where one trading day's events are: notification ids first_seq..last_seq."""
        rows = self._days('"day" = ?', (day.isoformat(),))
        return day_from_row(rows[0]) if rows else None

    def opening_document(self, day: date) -> str | None:
        """Both books before `day`'s first event: the previous indexed day's closing, or
        None when nothing happened before it."""
        found = self.audit_day(day)
        before = (
            ('"last_seq" < ?', (found.first_seq,)) if found is not None
            else ('"day" < ?', (day.isoformat(),))
        )
        rows = self._days(*before, order='"last_seq" DESC LIMIT 1')
        return day_from_row(rows[0]).closing if rows else None

    def first_seq_on_or_after(self, day: date) -> int | None:
        rows = self._days('"day" >= ?', (day.isoformat(),), '"first_seq" LIMIT 1', ("first_seq",))
        return rows[0][0] if rows else None

    def generation(self) -> str:
        """Changes whenever a view table is created, renamed or dropped (a rebuild's swap):
        what was read from the old tables must not be taken for what the new ones hold."""
        store = self.store
        with store.read() as tx:
            if store.dialect == "sqlite":
                return str(tx.query("PRAGMA schema_version")[0][0])
            rows = tx.query(
                "SELECT string_agg(c.oid::text, ',' ORDER BY c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = COALESCE(NULLIF(?, ''), current_schema()) "
                "AND left(c.relname, 5) = 'view_' AND c.relkind = 'r'",
                (store.schema or "",),
            )
            return str(rows[0][0])

    # -- digests --------------------------------------------------------------------------

    def dumps(self, names: Sequence[str] = VIEW_NAMES) -> dict[str, Dump]:
        with self.store.read() as tx:
            return {name: dump(self.store, tx, VIEWS_BY_NAME[name]) for name in names}

    def digests(self, names: Sequence[str] = VIEW_NAMES) -> dict[str, str]:
        return {name: digest(VIEWS_BY_NAME[name], rows) for name, rows in self.dumps(names).items()}


def catch_up(
    ledger: Ledger, *, timezone: str = DEFAULT_TIMEZONE, page_size: int = DEFAULT_PAGE_SIZE
) -> Views:
    """Bring every view up to the newest event and return the readers."""
    views = Views(ledger, timezone=timezone, page_size=page_size)
    views.catch_up()
    return views
