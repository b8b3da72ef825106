"""What the view tables should hold, computed without them: the plain fold, encoded as rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from ledger.domain import Order
from projections.engine.digest import Dump, digest
from projections.engine.memory_fold import MemoryFold, fold_events
from projections.engine.runner import read_page
from projections.engine.tables import (
    AUDIT_DAYS,
    BROKER_ACCOUNT,
    BROKER_LINES,
    BROKER_POSITIONS,
    LOCAL_LINES,
    LOCAL_POSITIONS,
    ORDERS,
    VIEWS_BY_NAME,
    Table,
    account_row,
    day_row,
    line_row,
    order_row,
    position_row,
)
from projections.model.positions import Position, apply_ratio, apply_trade, merge_moved, signed

ZONE = ZoneInfo("America/New_York")


def all_events(ledger: Ledger) -> list[tuple[int, Any]]:
    return read_page(ledger, 0, 10**9)


def _sorted(table: Table, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=table.key_of)


def memory_dumps(fold: MemoryFold) -> dict[str, Dump]:
    """The rows every view would hold after the plain in-memory fold."""
    state = fold.state
    local_lines = [line_row(s, line) for s, ls in fold.local_lines.by_symbol.items() for line in ls]
    broker_lines = [
        line_row(s, line) for s, ls in fold.broker_lines.by_symbol.items() for line in ls
    ]
    return {
        "orders": {ORDERS.name: _sorted(ORDERS, [order_row(r) for r in state.orders.values()])},
        "local_book": {
            LOCAL_POSITIONS.name: _sorted(
                LOCAL_POSITIONS, [position_row(s, p) for s, p in state.local.positions.items()]
            ),
            LOCAL_LINES.name: _sorted(LOCAL_LINES, local_lines),
        },
        "broker_book": {
            BROKER_POSITIONS.name: _sorted(
                BROKER_POSITIONS, [position_row(s, p) for s, p in state.broker.positions.items()]
            ),
            BROKER_LINES.name: _sorted(BROKER_LINES, broker_lines),
            BROKER_ACCOUNT.name: [] if state.account is None else [account_row(state.account)],
        },
        "audit_index": {
            AUDIT_DAYS.name: _sorted(AUDIT_DAYS, [day_row(d) for d in fold.days.values()])
        },
    }


def memory_digests(ledger: Ledger, zone: ZoneInfo = ZONE) -> dict[str, str]:
    dumps = memory_dumps(fold_events(all_events(ledger), zone))
    return {name: digest(VIEWS_BY_NAME[name], rows) for name, rows in dumps.items()}


# -- an independent reference: the books as plain loops over the events ----------------------


def reference_books(ledger: Ledger) -> tuple[dict[str, Position], dict[str, Position]]:
    """Local and broker books written as directly as the rules read, with reversed fills
    left out as if they never happened. Shares only the position arithmetic with the views."""
    events = [event for _, event in all_events(ledger)]
    reversed_fills = {
        (e.originator_id, e.execution_id)
        for e in events
        if type(e).__qualname__ == "Order.FillReversed"
    }
    orders: dict[Any, Any] = {}
    local: dict[str, Position] = {}
    broker: dict[str, Position] = {}
    snapshot_time = None
    for event in events:
        name = type(event).__qualname__
        if name == "Order.Requested":
            orders[event.originator_id] = {
                "symbol": event.symbol,
                "side": event.side,
                "purpose": event.purpose,
                "broker": None,
            }
        elif name in ("Order.Submitted", "Order.SubmissionFailed"):
            orders[event.originator_id]["broker"] = event.broker
        elif name in ("Order.Filled", "Order.PartiallyFilled"):
            if (event.originator_id, event.execution_id) in reversed_fills:
                continue
            info = orders[event.originator_id]
            qty = signed(info["side"], event.qty)
            symbol = info["symbol"]
            if info["purpose"] == "decision":
                local[symbol] = apply_trade(local.get(symbol, Position()), qty, event.price)
            if info["broker"] not in (None, "paper") and (
                snapshot_time is None or event.filled_at > snapshot_time
            ):
                broker[symbol] = apply_trade(broker.get(symbol, Position()), qty, event.price)
        elif name == "BrokerSnapshot.Synced":
            snapshot_time = event.broker_time
            broker = {
                p["symbol"]: Position(p["qty"], abs(p["qty"]) * p["avg_entry_price"])
                for p in event.positions
            }
        elif name == "CorporateAction.Recorded":
            books = [local]
            if snapshot_time is None or (
                event.effective_date > snapshot_time.astimezone(ZONE).date()
                if event.effective_date
                else event.timestamp > snapshot_time
            ):
                books.append(broker)
            for book in books:
                _corporate_action(book, event.symbol, event.new_symbol, event.ratio)
        elif name == "Adjustment.Recorded":
            book = local if event.book == "local" else broker
            book[event.symbol] = apply_trade(
                book.get(event.symbol, Position()), event.qty, event.price
            )
    return local, broker


def _corporate_action(
    book: dict[str, Position], symbol: str, new_symbol: str | None, ratio: Decimal
) -> None:
    if symbol not in book:
        return
    if new_symbol is None or new_symbol == symbol:
        book[symbol] = apply_ratio(book[symbol], ratio)
        return
    moving = book[symbol]
    book[symbol] = Position(Decimal(0), Decimal(0), moving.realised_pnl)
    book[new_symbol] = merge_moved(book.get(new_symbol, Position()), moving, ratio)


def order_facts(order: Order) -> tuple[Any, ...]:
    """What the orders view must say about an order, as the aggregate itself has it."""
    return (
        order.status,
        order.filled_qty,
        order.avg_fill_price,
        order.broker,
        order.broker_order_id,
        order.purpose,
        order.symbol,
        order.side,
        order.qty,
        order.client_order_id,
    )
