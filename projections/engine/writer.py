"""Applying pages of events to a set of view tables, a transaction at a time."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from projections.engine import reads
from projections.engine.audit_index import AuditIndexer
from projections.engine.runner import Page
from projections.engine.store import Tx, ViewStore
from projections.engine.tables import (
    AUDIT_DAYS,
    BROKER_ACCOUNT,
    ORDERS,
    account_row,
    day_from_row,
    day_row,
    line_row,
    order_from_row,
    order_row,
    position_row,
)
from projections.engine.tracked_fold import Changes, TrackedFold
from projections.model.book import BookChanges
from projections.model.fold import FoldState
from projections.model.positions import Line, LinesOf
from projections.model.records import OrderRecord


class ViewWriter:
    """Folds pages into a `TrackedFold` and writes what changed to one set of view tables.

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

    def _state(self) -> FoldState:
        return FoldState(
            self.zone,
            local_lines=self._lines_reader("local"),
            broker_lines=self._lines_reader("broker"),
        )

    def fresh_state(self) -> TrackedFold:
        """State before event 1: a rebuild starts here."""
        audit = AuditIndexer(self.zone) if self._own("audit_index") else None
        return TrackedFold(self._state(), audit=audit)

    def load_state(self, tx: Tx) -> TrackedFold:
        """State as the tables hold it: positions, account and the open audit day.

        Orders are loaded page by page (only those a page touches), lines only when a
        reversal or symbol change needs a symbol's history.
        """
        state = self._state()
        store, s = self.store, self.suffix
        if self._own("local_book"):
            state.local.positions = reads.positions(store, tx, "local", s)
        if self._own("broker_book"):
            state.broker.positions = reads.positions(store, tx, "broker", s)
            state.account = reads.account(store, tx, s)
            if state.account is not None:
                state.broker.start_seq = state.account.snapshot_seq
        if not self._own("audit_index"):
            return TrackedFold(state)
        rows = store.select(tx, AUDIT_DAYS, s, order='"last_seq" DESC LIMIT 1')
        audit = AuditIndexer(self.zone, day_from_row(rows[0]) if rows else None)
        # The orders view holds every order as of this position: its open ones are what
        # the next close must list.
        open_ids = reads.open_order_ids(store, tx, self._orders_suffix)
        return TrackedFold(state, audit=audit, open_order_ids=open_ids)

    def _lines_reader(self, book: str) -> LinesOf:
        def lines(symbol: str, start_seq: int) -> list[Line]:
            if not self._own(f"{book}_book"):
                return []  # this writer does not keep that book: its positions are not written
            if self._tx is not None:
                return reads.lines(self.store, self._tx, book, symbol, start_seq,
                                   suffix=self.suffix)
            with self.store.read() as tx:
                return reads.lines(self.store, tx, book, symbol, start_seq, suffix=self.suffix)

        return lines

    # -- a page ---------------------------------------------------------------------------

    def apply(self, tx: Tx, tracked: TrackedFold, page: Page) -> list[OrderRecord]:
        """Fold the page and write its changes with `tx`; returns the orders it changed."""
        self.fold(tx, tracked, page)
        return self.flush(tx, tracked)

    def fold(self, tx: Tx, tracked: TrackedFold, page: Page) -> None:
        """Fold the page only. Its changes wait in `tracked` for `flush`, in the same
        transaction: until then the orders they touch must stay in its state."""
        self._tx = tx
        try:
            orders = tracked.state.orders
            missing = tracked.state.order_ids_to_load(page)
            if missing:
                rows = self.store.select_in(
                    tx, ORDERS, self._orders_suffix, "order_id", [str(i) for i in missing]
                )
                for row in rows:
                    record = order_from_row(row)
                    orders[record.order_id] = record
            tracked.fold(page)
        finally:
            self._tx = None

    def flush(self, tx: Tx, tracked: TrackedFold) -> list[OrderRecord]:
        """Write what the pages folded since the last flush changed; returns the orders."""
        changes = tracked.take_changes()
        self.write(tx, changes)
        return changes.orders

    def write(self, tx: Tx, changes: Changes) -> None:
        store, s = self.store, self.suffix
        if self._own("orders"):
            # In key order, the random UUID keys fill their index a leaf page at a time
            # instead of dirtying pages all over it.
            is_new = changes.is_new
            new = sorted(order_row(r) for r in changes.orders if is_new(r))
            store.insert(tx, ORDERS, s, new)
            store.upsert(tx, ORDERS, s, [order_row(r) for r in changes.orders if not is_new(r)])
        if self._own("local_book"):
            self._write_book(tx, "local", changes.local)
        if self._own("broker_book"):
            self._write_book(tx, "broker", changes.broker)
            if changes.account is not None:
                store.upsert(tx, BROKER_ACCOUNT, s, [account_row(changes.account)])
        if self._own("audit_index"):
            store.upsert(tx, AUDIT_DAYS, s, [day_row(day) for day in changes.days])

    def _write_book(self, tx: Tx, book: str, changes: BookChanges) -> None:
        store, s = self.store, self.suffix
        positions, lines = reads.BOOKS[book]
        store.delete(tx, positions, s, [(symbol,) for symbol in sorted(changes.deletes)])
        store.upsert(
            tx,
            positions,
            s,
            [position_row(symbol, p) for symbol, p in sorted(changes.upserts.items())],
        )
        store.insert(tx, lines, s, [line_row(symbol, line) for symbol, line in changes.lines])
