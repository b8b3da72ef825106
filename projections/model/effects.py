"""What each event does to the fold's views: one handler per event class.

The catalogue (`projections.model.catalogue`) names the handler of every event class; an
order's status moves by the rules of `ledger.domain.order_status`, as the `Order`
aggregate moves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.domain.order_status import (
    OUTCOME_UNKNOWN,
    REJECTED,
    REQUESTED,
    SUBMITTED,
    OrderStatus,
    after_fill,
    after_reversal,
    after_submission_failed,
)
from projections.model.numbers import CONTEXT, ONE, ZERO, canonical, to_decimal
from projections.model.positions import signed
from projections.model.records import BrokerAccountState, OrderRecord

if TYPE_CHECKING:
    from projections.model.fold import FoldState

log = logging.getLogger(__name__)

Handler = Callable[["FoldState", int, Any], None]

_add = CONTEXT.add
_sub = CONTEXT.subtract
_mul = CONTEXT.multiply

NOT_AT_A_BROKER = (None, "paper")


def corporate_action_move(e: Any) -> tuple[str, str]:
    """The symbol a corporate action acts on and the one it leaves the position under (the
    same for a split)."""
    return e.symbol.upper(), (e.new_symbol or e.symbol).upper()


def nothing(state: FoldState, seq: int, event: Any) -> None:
    """The event changes no view (the audit index still places it in its day)."""


def requested(state: FoldState, seq: int, e: Any) -> None:
    record = OrderRecord(
        order_id=e.originator_id,
        client_order_id=e.client_order_id,
        purpose=e.purpose,
        decision_id=e.decision_id,
        reconciliation_id=e.reconciliation_id,
        symbol=e.symbol,
        side=e.side,
        qty=e.qty,
        notional=e.notional,
        order_type=e.order_type,
        time_in_force=e.time_in_force,
        limit_price=e.limit_price,
        status=REQUESTED,
        broker=None,
        broker_order_id=None,
        filled_qty=ZERO,
        filled_value=ZERO,
        error=None,
        requested_seq=seq,
        requested_at=e.timestamp,
        updated_seq=seq,
        updated_at=e.timestamp,
    )
    state.orders[record.order_id] = record
    state.touched.append(record)


def submitted(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        record.broker_order_id = e.broker_order_id
        record.status = SUBMITTED


def send_started(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        record.status = OUTCOME_UNKNOWN


def submission_failed(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        # Events stored before `outcome_unknown` existed lack it: they were plain failures.
        record.status = after_submission_failed(getattr(e, "outcome_unknown", False))
        record.error = f"{e.code}: {e.message}"


def status(new: OrderStatus) -> Handler:
    """An event that only moves the order to `new`: it reads nothing but the envelope."""

    def handle(state: FoldState, seq: int, e: Any) -> None:
        record = state._order(seq, e)
        if record is not None:
            record.status = new

    return handle


def rejected(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.status = REJECTED
        record.error = e.reason


def _executed(state: FoldState, seq: int, e: Any, move: Callable[..., Decimal]
              ) -> OrderRecord | None:
    """The order of a fill or a reversal, its filled quantity and value moved by `move`."""
    record = state._order(seq, e)
    if record is not None:
        record.filled_qty = move(record.filled_qty, e.qty)
        record.filled_value = move(record.filled_value, _mul(e.qty, e.price))
    return record


def fill(complete: bool) -> Handler:
    def handle(state: FoldState, seq: int, e: Any) -> None:
        record = _executed(state, seq, e, _add)
        if record is None:
            return
        record.status = after_fill(record.status, complete)
        qty, ref = signed(record.side, e.qty), f"{record.key}:{e.execution_id}"
        if record.purpose == "decision":
            state.local.trade(seq, record.symbol, qty, e.price, ref)
        if record.broker not in NOT_AT_A_BROKER and state._broker_fill_counts(e.filled_at):
            state.broker.trade(seq, record.symbol, qty, e.price, ref)

    return handle


def fill_reversed(state: FoldState, seq: int, e: Any) -> None:
    record = _executed(state, seq, e, _sub)
    if record is None:
        return
    record.status = after_reversal(record.status, record.qty, record.filled_qty)
    ref = f"{record.key}:{e.execution_id}"
    books = [state.local] if record.purpose == "decision" else []
    if record.broker not in NOT_AT_A_BROKER:
        books.append(state.broker)
    for book in books:
        book.reverse(seq, record.symbol, ref)


def synced(state: FoldState, seq: int, e: Any) -> None:
    state.account = BrokerAccountState(
        snapshot_id=e.originator_id,
        snapshot_seq=seq,
        broker=e.broker,
        account_id=e.account_id,
        paper=e.paper,
        cash=e.cash,
        equity=e.equity,
        buying_power=e.buying_power,
        broker_time=e.broker_time,
        synced_at=e.timestamp,
        open_orders=[_plain(order) for order in e.open_orders],
    )
    state.broker.restart(seq, sorted(_snapshot_position(p) for p in e.positions))


def _snapshot_position(position: dict[str, Any]) -> tuple[str, Decimal, Decimal]:
    qty = to_decimal(position["qty"])
    # A broker that reports shorts as a positive qty with side "short" still means minus.
    if str(position.get("side", "")).lower() == "short" and qty > 0:
        qty = -qty
    avg = position.get("avg_entry_price", position.get("avg_price"))
    return str(position["symbol"]).upper(), qty, ZERO if avg is None else to_decimal(avg)


def _plain(value: Any) -> Any:
    """Snapshot content as JSON-ready values: decimals as canonical text."""
    if isinstance(value, Decimal):
        return canonical(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def corporate_action(state: FoldState, seq: int, e: Any) -> None:
    ratio = to_decimal(e.ratio)
    if ratio <= 0:
        log.warning("corporate action %s with ratio %s changes no book", e.activity_id, ratio)
        return
    symbol, target = corporate_action_move(e)
    books = [state.local]
    if state._broker_action_counts(e):
        books.append(state.broker)
    for book in books:
        if target == symbol:
            if ratio != ONE:
                book.split(seq, symbol, ratio)
        else:
            book.move(seq, symbol, target, ratio)


def adjustment(state: FoldState, seq: int, e: Any) -> None:
    book = {"local": state.local, "broker": state.broker}.get(e.book)
    if book is None:
        log.warning("adjustment %s names no known book (%r)", e.originator_id, e.book)
        return
    book.trade(seq, e.symbol.upper(), e.qty, e.price, f"adjustment:{e.originator_id.hex}")
