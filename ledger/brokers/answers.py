"""Turning a broker's answer into events on the order it concerns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ledger.brokers.port import BrokerAnswer, Execution
from ledger.domain.order import ANSWERABLE_STATUSES, Order

_ACCEPTED = frozenset(
    {"new", "accepted", "pending_new", "accepted_for_bidding", "held", "calculated", "done_for_day"}
)
_FILLED = frozenset({"filled", "partially_filled"})


def execution_order(execution: Execution) -> tuple[datetime, Decimal, str]:
    """Time, then cumulative qty: partial fills in the same millisecond keep their order."""
    return (execution.filled_at, execution.cum_qty or Decimal(0), execution.execution_id)


def apply_answer(order: Order, answer: BrokerAnswer) -> None:
    """Record what the broker said. Executions seen before are ignored by the order itself."""
    if answer.error is not None:
        if order.status in ANSWERABLE_STATUSES:
            order.mark_submission_failed(
                broker=answer.broker,
                code=answer.error.code,
                message=answer.error.message,
                retryable=answer.error.retryable,
                http_status=answer.error.http_status,
                outcome_unknown=answer.error.outcome_unknown,
            )
        return
    if answer.broker_order_id is None:
        return
    order.mark_submitted(broker=answer.broker, broker_order_id=answer.broker_order_id)
    status = (answer.status or "").lower()
    if status == "rejected":
        order.mark_rejected(reason=answer.rejection_reason or "rejected by the broker")
        return
    known = status in _ACCEPTED or status in _FILLED
    if order.status == "submitted" and (known or answer.executions):
        order.mark_accepted(broker_status=status)
    for execution in sorted(answer.executions, key=execution_order):
        order.record_fill(
            execution_id=execution.execution_id,
            qty=execution.qty,
            price=execution.price,
            filled_at=execution.filled_at,
        )
    if status == "filled":
        order.mark_notional_complete()
    elif status == "canceled":
        order.mark_canceled(reason="canceled at the broker")
    elif status == "expired":
        order.mark_expired()
