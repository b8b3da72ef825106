"""Reading the view tables back into the fold's values: a book's positions and lines, the
broker account, orders. The writer loading its state and the readers of `Views` both read
through these, from the live tables or a rebuild's (`suffix`)."""

from __future__ import annotations

from uuid import UUID

from ledger.domain.order_status import OPEN_STATUSES
from projections.engine.store import Tx, ViewStore
from projections.engine.tables import (
    ACCOUNT_KEY,
    BROKER_ACCOUNT,
    BROKER_LINES,
    BROKER_POSITIONS,
    LOCAL_LINES,
    LOCAL_POSITIONS,
    ORDERS,
    account_from_row,
    line_from_row,
    position_from_row,
)
from projections.model.positions import Line, Position
from projections.model.records import BrokerAccountState

BOOKS = {"local": (LOCAL_POSITIONS, LOCAL_LINES), "broker": (BROKER_POSITIONS, BROKER_LINES)}
_LINE_COLUMNS = ("seq", "n", "kind", "qty", "price", "ratio", "ref")
# Orders whose status is open: the status index finds them.
OPEN = f'"status" IN ({", ".join("?" for _ in OPEN_STATUSES)})'
OPEN_PARAMS = sorted(OPEN_STATUSES)


def positions(store: ViewStore, tx: Tx, book: str, suffix: str = "") -> dict[str, Position]:
    return dict(position_from_row(row) for row in store.select(tx, BOOKS[book][0], suffix))


def lines(
    store: ViewStore,
    tx: Tx,
    book: str,
    symbol: str,
    since_seq: int = 0,
    before_seq: int | None = None,
    suffix: str = "",
) -> list[Line]:
    """What changed one symbol of a book, oldest first, from `since_seq` (and before
    `before_seq`)."""
    where, params = '"symbol" = ? AND "seq" >= ?', [symbol, since_seq]
    if before_seq is not None:
        where += ' AND "seq" < ?'
        params.append(before_seq)
    rows = store.select(tx, BOOKS[book][1], suffix, columns=_LINE_COLUMNS, where=where,
                        params=params, order='"seq", "n"')
    return [line_from_row(row) for row in rows]


def account(store: ViewStore, tx: Tx, suffix: str = "") -> BrokerAccountState | None:
    rows = store.select(
        tx, BROKER_ACCOUNT, suffix, where='"account_key" = ?', params=(ACCOUNT_KEY,)
    )
    return account_from_row(rows[0]) if rows else None


def open_order_ids(store: ViewStore, tx: Tx, suffix: str = "") -> set[UUID]:
    rows = store.select(tx, ORDERS, suffix, columns=("order_id",), where=OPEN,
                        params=OPEN_PARAMS)
    return {UUID(row[0]) for row in rows}
