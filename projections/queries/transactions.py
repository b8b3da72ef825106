"""The transactions page: every order with its fills, newest first, a page at a time.

Orders come from the orders view, and a page costs about the same on a long history as on
a short one. The view has no index in request order, so the newest orders are found by
walking back through the log's `OrderRequested` notifications when most orders match,
and sorted in the database when few do (a symbol, an id). Fills are read from each shown
order's own stream: one short read per order on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Order
from ledger.domain.order_status import (
    ACCEPTED,
    CANCELED,
    EXPIRED,
    FILLED,
    PARTIALLY_FILLED,
    REJECTED,
    REQUESTED,
    SUBMISSION_FAILED,
    SUBMITTED,
)
from ledger.infrastructure.event_log import newest_windows
from projections.engine.tables import ORDERS, order_from_row
from projections.model.catalogue import kind_of
from projections.model.records import OrderRecord
from projections.queries.views import Views

PURPOSES = ("decision", "compensation", "external")
# The statuses the page filters by.
STATUSES = (
    REQUESTED,
    SUBMITTED,
    SUBMISSION_FAILED,
    ACCEPTED,
    PARTIALLY_FILLED,
    FILLED,
    REJECTED,
    CANCELED,
    EXPIRED,
)
PER_PAGE = 50
# Walking back through the log reads about this many order requests at most; past it the
# database sorts instead, so a page never walks further than this.
WALK_LIMIT = 5_000
_REQUESTED = get_topic(Order.Requested)


@dataclass(frozen=True)
class OrderQuery:
    day: date | None = None
    symbol: str | None = None
    purpose: str | None = None
    status: str | None = None
    ident: str | None = None  # an order id, client order id or broker order id


@dataclass(frozen=True)
class Fill:
    kind: str  # fill, partial fill, reversed
    execution_id: str
    qty: Decimal
    price: Decimal
    at: datetime  # the broker's execution time


@dataclass(frozen=True)
class Transaction:
    order: OrderRecord
    fills: list[Fill]
    reason: str  # the request's reason: a decision's rationale, a plan's cause
    rationale: str  # the decision's own rationale, for decision orders


@dataclass(frozen=True)
class TransactionsPage:
    items: list[Transaction]
    total: int
    page: int
    pages: int
    note: str | None = None  # why the result is empty, when the filters explain it


class PageOutOfRange(ValueError):
    pass


def _where(views: Views, query: OrderQuery) -> tuple[list[str], list[Any]] | None:
    """SQL conditions for the query; None when it cannot match anything."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.day is not None:
        found = views.audit_day(query.day)
        if found is None:
            return None
        clauses.append('"requested_seq" BETWEEN ? AND ?')
        params.extend((found.first_seq, found.last_seq))
    for column, value in (("symbol", query.symbol), ("purpose", query.purpose),
                          ("status", query.status)):
        if value is not None:
            clauses.append(f'"{column}" = ?')
            params.append(value)
    if query.ident is not None:
        clauses.append('("order_id" = ? OR "client_order_id" = ? OR "broker_order_id" = ?)')
        params.extend((query.ident, query.ident, query.ident))
    return clauses, params


def _note(query: OrderQuery) -> str:
    shown = [
        f"{name} {value}"
        for name, value in (("day", query.day), ("symbol", query.symbol),
                            ("purpose", query.purpose), ("status", query.status),
                            ("id", query.ident))
        if value is not None
    ]
    if not shown:
        return "No order has been recorded yet."
    return f"No order matches {', '.join(shown)}."


def find_orders(views: Views, query: OrderQuery, page: int, per_page: int = PER_PAGE
                ) -> tuple[list[OrderRecord], int, int]:
    """One page of orders, newest request first, with the total count and page count."""
    where = _where(views, query)
    if where is None:
        if page > 1:
            raise PageOutOfRange(f"page {page} is past the last page (1)")
        return [], 0, 1
    clauses, params = where
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    table = views.store.name(ORDERS.name)
    with views.store.read() as tx:
        total, everything = tx.query(
            f"SELECT COUNT(*), (SELECT COUNT(*) FROM {table}) FROM {table}{condition}", params
        )[0]
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise PageOutOfRange(f"page {page} is past the last page ({pages})")
    skip = (page - 1) * per_page
    # Requests to read walking back through the log, at the filter's share of all orders.
    walk = (skip + per_page) * everything // max(total, 1)
    if query.symbol is None and query.ident is None and walk <= WALK_LIMIT:
        found = walk_newest(views, query, skip, per_page)
    else:
        found = sort_newest(views, condition, params, skip, per_page)
    return found, total, pages


def sort_newest(views: Views, condition: str, params: list[Any], skip: int, limit: int
                ) -> list[OrderRecord]:
    """Sorted in the database: right for selective filters (a symbol, an id: indexed).
    Only the ids are sorted; carrying whole rows through the sort costs five times more."""
    table = views.store.name(ORDERS.name)
    with views.store.read() as tx:
        ids = [row[0] for row in tx.query(
            f'SELECT "order_id" FROM {table}{condition} ORDER BY "requested_seq" DESC '
            "LIMIT ? OFFSET ?",
            [*params, limit, skip],
        )]
    return _rows(views, ids)


def walk_newest(views: Views, query: OrderQuery, skip: int, limit: int) -> list[OrderRecord]:
    """Walked back from the end of the log, where the newest orders were requested: an
    order's `requested_seq` is its `OrderRequested` notification, so the log is already in
    the page's order and nothing is sorted. Right when most orders match."""
    low, high = 1, views.ledger.last_notification_id()
    if query.day is not None:
        found = views.audit_day(query.day)
        if found is None:
            return []
        low, high = found.first_seq, found.last_seq
    chosen: list[str] = []
    for ids in _requested_newest_first(views, low, high):
        matching = _matching(views, query, [str(i) for i in ids])
        for order_id in (str(i) for i in ids):
            if order_id not in matching:
                continue
            if skip:
                skip -= 1
                continue
            chosen.append(order_id)
            if len(chosen) == limit:
                return _rows(views, chosen)
    return _rows(views, chosen)


def _matching(views: Views, query: OrderQuery, ids: list[str]) -> set[str]:
    """Which of `ids` pass the status and purpose filters, from three columns of their
    rows: the orders a page skips are never loaded whole. (Filtering in the SQL instead
    lets SQLite pick the status index, which holds nearly every order, over the keys.)"""
    if query.purpose is None and query.status is None:
        return set(ids)
    table = views.store.name(ORDERS.name)
    found: set[str] = set()
    with views.store.read() as tx:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(
                order_id
                for order_id, purpose, status in tx.query(
                    f'SELECT "order_id", "purpose", "status" FROM {table} '
                    f'WHERE "order_id" IN ({marks})',
                    chunk,
                )
                if query.purpose in (None, purpose) and query.status in (None, status)
            )
    return found


def _requested_newest_first(views: Views, low: int, high: int) -> Iterator[list[UUID]]:
    """The ids of the orders requested at notifications low..high, a window at a time,
    newest first."""
    for window in newest_windows(views.ledger.recorder, topics=[_REQUESTED], low=low,
                                 high=high, first=512, largest=32_768):
        yield [n.originator_id for n in reversed(window.notifications)]


def _rows(views: Views, ids: list[Any]) -> list[OrderRecord]:
    """The orders view's rows of `ids`, in the order of `ids`."""
    if not ids:
        return []
    with views.store.read() as tx:
        rows = views.store.select_in(tx, ORDERS, "", "order_id", [str(i) for i in ids])
    by_id = {row[0]: order_from_row(row) for row in rows}
    return [by_id[str(i)] for i in ids if str(i) in by_id]


def _details(views: Views, record: OrderRecord) -> tuple[list[Fill], str]:
    fills, reason = [], ""
    for event in views.ledger.events.get(record.order_id):
        if type(event) is Order.Requested:
            reason = event.reason or ""
            continue
        shown = kind_of(type(event)).shown_as
        if shown is not None:
            at = getattr(event, "filled_at", None) or event.timestamp
            fills.append(Fill(shown, event.execution_id, event.qty, event.price, at))
    fills.reverse()  # newest first, like the orders
    return fills, reason


def decision_rationale(ledger: Ledger, decision_id: UUID) -> str:
    """The rationale of the decision an order came from ("" when the store lacks it: the
    order is shown without one)."""
    try:
        return str(ledger.repository.get(decision_id).rationale)
    except AggregateNotFoundError:
        return ""


def transactions(views: Views, query: OrderQuery, page: int,
                 rationale: Callable[[UUID], str], per_page: int = PER_PAGE
                 ) -> TransactionsPage:
    orders, total, pages = find_orders(views, query, page, per_page)
    items = []
    for record in orders:
        fills, reason = _details(views, record)
        why = rationale(record.decision_id) if record.decision_id is not None else ""
        items.append(Transaction(record, fills, reason, why))
    return TransactionsPage(items, total, page, pages, None if total else _note(query))
