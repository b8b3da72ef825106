"""An order's status and the rules that move it: the aggregate and the read side's fold both
call these, so the orders view says exactly what the `Order` aggregate would.

A `StrEnum`: stored events, view rows and JSON hold the plain strings ("filled"), and a
status read back from a row as a plain string compares equal to its member.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    REQUESTED = "requested"
    # A send to a remote broker began (`SendStarted`) and no answer that settles it is
    # stored yet: the order may exist at the broker. It keeps its client order id until a
    # lookup or a send under that same id settles it (docs/design.md, "Exactly once").
    OUTCOME_UNKNOWN = "outcome_unknown"
    SUBMITTED = "submitted"
    SUBMISSION_FAILED = "submission_failed"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"


REQUESTED = OrderStatus.REQUESTED
OUTCOME_UNKNOWN = OrderStatus.OUTCOME_UNKNOWN
SUBMITTED = OrderStatus.SUBMITTED
SUBMISSION_FAILED = OrderStatus.SUBMISSION_FAILED
ACCEPTED = OrderStatus.ACCEPTED
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
REJECTED = OrderStatus.REJECTED
CANCELED = OrderStatus.CANCELED
EXPIRED = OrderStatus.EXPIRED

OPEN_STATUSES = frozenset({REQUESTED, OUTCOME_UNKNOWN, SUBMITTED, ACCEPTED, PARTIALLY_FILLED})
# Statuses an order may leave for the broker's answer: never sent, sent with the answer
# lost, or refused before (a retry asks the broker first).
ANSWERABLE_STATUSES = frozenset({REQUESTED, OUTCOME_UNKNOWN, SUBMISSION_FAILED})
# Statuses a rejection may end: the broker's answer to a send, or to a lookup after one.
REJECTABLE_STATUSES = ANSWERABLE_STATUSES | {SUBMITTED, ACCEPTED}
TERMINAL_STATUSES = frozenset({FILLED, CANCELED, EXPIRED, REJECTED})
# A fill can only be reported for an order the broker has: a rejected order or one
# whose submission failed has no executions; a canceled or expired one may have had
# executions before it ended, reported late by the broker.
FILLABLE_STATUSES = frozenset({SUBMITTED, ACCEPTED, PARTIALLY_FILLED, CANCELED, EXPIRED})
# Sent and never answered, or refused: the orders a reconciliation counts as failed.
FAILED_STATUSES = frozenset({SUBMISSION_FAILED, REJECTED})
# Ended before it was wholly filled: a fill reported late leaves it ended.
_ENDED = (CANCELED, EXPIRED)


def after_submission_failed(outcome_unknown: bool) -> OrderStatus:
    """A send that got no order back: unknown when the order may exist all the same."""
    return OUTCOME_UNKNOWN if outcome_unknown else SUBMISSION_FAILED


def fill_completes(status: str, qty: Decimal | None, cumulative: Decimal) -> bool:
    """Whether a fill bringing the filled quantity to `cumulative` is the order's last: its
    whole quantity, or (a notional order has none) any fill after it ended."""
    if qty is not None:
        return cumulative == qty
    return status in _ENDED


def after_fill(status: str, complete: bool) -> OrderStatus:
    if status in _ENDED:
        return OrderStatus(status)
    return FILLED if complete else PARTIALLY_FILLED


def after_reversal(status: str, qty: Decimal | None, filled_qty: Decimal) -> OrderStatus:
    """A fill taken back: a filled order with a quantity is open again, with what remains."""
    if status == FILLED and qty is not None:
        return PARTIALLY_FILLED if filled_qty else ACCEPTED
    return OrderStatus(status)
