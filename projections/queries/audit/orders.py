"""Orders as they stood at a moment of the audited day, and what the day left unresolved.

An order's row in the orders view is as it stands today. The day's audit needs it as it
stood when the day began (before its first event that day) and at the day's close: when
the order changed since, its own stream is folded again up to that moment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.order_status import OPEN_STATUSES
from projections.engine.replay import OrdersFor, Page
from projections.engine.tables import ORDERS, order_from_row
from projections.model.fold import FoldState
from projections.model.positions import diff_rows, open_qty_by_symbol
from projections.model.records import BrokerAccountState, OrderRecord
from projections.queries.audit.day import DaySpan
from projections.queries.views import Views

_ORDER_DOCUMENT = (
    "order_id",
    "client_order_id",
    "purpose",
    "symbol",
    "side",
    "qty",
    "notional",
    "order_type",
    "limit_price",
    "status",
    "filled_qty",
    "avg_fill_price",
    "broker",
    "broker_order_id",
    "requested_at",
    "decision_id",
    "reconciliation_id",
)


def _folded(views: Views, aggregate_id: UUID, *, seq: int = 0, lte: int | None = None,
            before: datetime | None = None) -> FoldState:
    """A throwaway fold of one aggregate's events up to version `lte`, or stamped before
    `before`: only what it says of that aggregate is kept."""
    state = FoldState(views.zone)
    for event in views.ledger.events.get(aggregate_id, lte=lte):
        if before is not None and event.timestamp >= before:
            break
        state.apply(seq, event)
    return state


def fold_order(views: Views, order_id: UUID, *, lte: int | None = None,
               before: datetime | None = None) -> OrderRecord | None:
    """The order after its events up to version `lte`, or stamped before `before`."""
    return _folded(views, order_id, lte=lte, before=before).orders.get(order_id)


def as_the_day_began(views: Views, state: FoldState) -> OrdersFor:
    """Orders requested before the day, as they stood when it began."""

    def orders(page: Page) -> list[OrderRecord]:
        wanted = state.order_ids_to_load(page)
        first_version: dict[UUID, int] = {}
        for _, event in page:
            if event.originator_id in wanted:
                first_version.setdefault(event.originator_id, event.originator_version)
        found = []
        for order_id, version in first_version.items():
            if version > 1:  # else the request itself is in this page
                record = fold_order(views, order_id, lte=version - 1)
                if record is not None:
                    found.append(record)
        return found

    return orders


def _order_at_close(views: Views, record: OrderRecord, span: DaySpan) -> OrderRecord | None:
    """An order the day did not touch, as it stood at the day's close.

    The view's record is that state unless the order changed after the day; then its
    events from before the day are folded again. An untouched order has no event inside
    the day, so "stamped before the day began" is exactly "before the day's close".
    """
    if record.updated_seq <= span.last_seq:
        return record
    return fold_order(views, record.order_id, before=span.starts_at)


def _snapshot_open_orders(views: Views, account: BrokerAccountState, span: DaySpan) -> list[Any]:
    """The open orders of the day's last sync. A day's closing document keeps the account's
    numbers but not its open orders, so a sync from an earlier day is read again (one event)."""
    if account.snapshot_seq >= span.first_seq:
        return list(account.open_orders)
    synced = _folded(views, account.snapshot_id, seq=account.snapshot_seq, lte=1).account
    return [] if synced is None else list(synced.open_orders)


def untouched_orders(views: Views, state: FoldState, opening: frozenset[UUID],
                     symbol: str | None) -> list[OrderRecord]:
    """Orders open at the day's start that the day did not touch: still open at its close.
    The previous close lists their ids, so each is a lookup by key."""
    wanted = [str(order_id) for order_id in opening - state.orders.keys()]
    with views.store.read() as tx:
        rows = views.store.select_in(tx, ORDERS, "", "order_id", wanted)
    records = [order_from_row(row) for row in rows]
    return [r for r in records if symbol is None or r.symbol == symbol]


def _orders_at_close(views: Views, span: DaySpan, state: FoldState,
                     opening: frozenset[UUID], symbol: str | None) -> dict[UUID, OrderRecord]:
    """Every order the close depends on: those the day touched, and those open at its end."""
    known = dict(state.orders)
    for record in untouched_orders(views, state, opening, symbol):
        if record.order_id not in known:
            at_close = _order_at_close(views, record, span)
            if at_close is not None:
                known[record.order_id] = at_close
    return known


def _listed_at_broker(views: Views, span: DaySpan, listed: list[Any],
                      known: dict[UUID, OrderRecord]) -> list[OrderRecord]:
    """Orders the last sync listed that the ledger knows but the day did not touch: the
    netting must know whether the ledger had already seen them end."""
    have = {record.client_order_id for record in known.values()}
    found = []
    for item in listed:
        client_order_id = str(item.get("client_order_id") or "")
        if not client_order_id or client_order_id in have:
            continue
        record = views.order_by_client_order_id(client_order_id)
        if record is not None and record.requested_seq <= span.last_seq:
            at_close = _order_at_close(views, record, span)
            if at_close is not None:
                found.append(at_close)
    return found


def order_document(record: OrderRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _ORDER_DOCUMENT}


def unresolved(views: Views, span: DaySpan, state: FoldState, opening: frozenset[UUID],
               symbol: str | None) -> dict[str, list[dict[str, Any]]]:
    """The orders open at the day's close, and the differences between the books then."""
    known = _orders_at_close(views, span, state, opening, symbol)
    open_orders = sorted(
        (r for r in known.values() if r.status in OPEN_STATUSES),
        key=lambda r: (r.requested_at, r.client_order_id),
    )
    account = state.account
    listed = [] if account is None else _snapshot_open_orders(views, account, span)
    netted = [*known.values(), *_listed_at_broker(views, span, listed, known)]
    pending = open_qty_by_symbol(
        listed, None if account is None else account.broker_time,
        [record.for_netting() for record in netted],
    )
    rows = diff_rows(
        {s: p.qty for s, p in state.local.positions.items()},
        {s: p.qty for s, p in state.broker.positions.items()},
        pending,
    )
    return {
        "open_orders": [
            order_document(r) for r in open_orders if symbol is None or r.symbol == symbol
        ],
        "differences": [
            {"symbol": r.symbol, "local_qty": r.local_qty, "broker_qty": r.broker_qty,
             "open_qty": r.open_qty, "delta": r.delta}
            for r in rows
            if r.delta and (symbol is None or r.symbol == symbol)
        ],
    }
