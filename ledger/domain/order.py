"""The order aggregate: one stream per order, from intent to its last fill."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.order_status import (
    ACCEPTED,
    ANSWERABLE_STATUSES,
    CANCELED,
    EXPIRED,
    FILLABLE_STATUSES,
    FILLED,
    OPEN_STATUSES,
    OUTCOME_UNKNOWN,
    PARTIALLY_FILLED,
    REJECTABLE_STATUSES,
    REJECTED,
    REQUESTED,
    SUBMITTED,
    TERMINAL_STATUSES,
    OrderStatus,
    after_fill,
    after_reversal,
    after_submission_failed,
    fill_completes,
)
from ledger.domain.values import InvalidInput, OrderIntent, Purpose

# Namespace of every id this ledger derives, so that the same request always gets
# the same id (and so the same client order id) however often it is retried.
LEDGER_NAMESPACE = UUID("6f1d3a52-8d0c-4b6e-9a53-0c5e3f0b7d21")

CLIENT_ORDER_ID_PREFIX = "tl-"


class OrderTerms(Protocol):
    """What an order asks for, as event fields: an `OrderIntent`, or the terms of an order
    found at the broker, which may be of a kind this ledger never places (a stop order)."""

    def as_event_fields(self) -> dict[str, Any]: ...


class OrderStateError(InvalidInput):
    """A transition the order's life cycle does not allow."""


def decision_order_id(decision_id: UUID, index: int) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"decision:{decision_id}:{index}")


def compensation_order_id(reconciliation_id: UUID, symbol: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"compensation:{reconciliation_id}:{symbol}")


def external_order_id(broker: str, broker_order_id: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"external:{broker}:{broker_order_id}")


def client_order_id_for(order_id: UUID) -> str:
    """Derived from the request's identity: unique, stable, 35 characters (Alpaca allows 128)."""
    return f"{CLIENT_ORDER_ID_PREFIX}{order_id.hex}"


def order_id_from_client_order_id(client_order_id: str) -> UUID | None:
    if not client_order_id.startswith(CLIENT_ORDER_ID_PREFIX):
        return None
    try:
        return UUID(hex=client_order_id[len(CLIENT_ORDER_ID_PREFIX) :])
    except ValueError:
        return None


class Order(Aggregate):
    @classmethod
    def request(
        cls,
        intent: OrderIntent,
        *,
        order_id: UUID,
        purpose: Purpose,
        decision_id: UUID | None = None,
        reconciliation_id: UUID | None = None,
        reason: str = "",
    ) -> Order:
        if purpose is Purpose.DECISION and decision_id is None:
            raise InvalidInput("a decision order needs its decision id")
        if purpose is Purpose.COMPENSATION and reconciliation_id is None:
            raise InvalidInput("a compensating order needs its reconciliation id")
        return cls(
            id=order_id,
            purpose=purpose.value,
            decision_id=decision_id,
            reconciliation_id=reconciliation_id,
            client_order_id=client_order_id_for(order_id),
            reason=reason,
            **intent.as_event_fields(),
        )

    @classmethod
    def adopt_external(
        cls,
        *,
        broker: str,
        broker_order_id: str,
        client_order_id: str,
        intent: OrderTerms,
    ) -> Order:
        """An order found at the broker that this ledger did not originate."""
        order = cls(
            id=external_order_id(broker, broker_order_id),
            purpose=Purpose.EXTERNAL.value,
            decision_id=None,
            reconciliation_id=None,
            client_order_id=client_order_id,
            reason="found at the broker; not originated by this ledger",
            **intent.as_event_fields(),
        )
        order.mark_submitted(broker=broker, broker_order_id=broker_order_id, via_lookup=True)
        return order

    @event("Requested")
    def __init__(
        self,
        *,
        id: UUID,
        purpose: str,
        decision_id: UUID | None,
        reconciliation_id: UUID | None,
        client_order_id: str,
        reason: str,
        symbol: str,
        side: str,
        qty: Decimal | None,
        notional: Decimal | None,
        order_type: str,
        time_in_force: str,
        limit_price: Decimal | None,
        extended_hours: bool,
    ) -> None:
        self.purpose = purpose
        self.decision_id = decision_id
        self.reconciliation_id = reconciliation_id
        self.client_order_id = client_order_id
        self.reason = reason
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.notional = notional
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.limit_price = limit_price
        self.extended_hours = extended_hours
        self.status: OrderStatus = REQUESTED
        self.broker: str | None = None
        self.broker_order_id: str | None = None
        self.filled_qty = Decimal(0)
        self.filled_value = Decimal(0)
        self.executions: dict[str, tuple[Decimal, Decimal]] = {}
        self.reversed_executions: set[str] = set()
        self.failures: list[dict[str, Any]] = []
        self.send_started_at: datetime | None = None

    # -- queries -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def outcome_unknown(self) -> bool:
        return self.status == OUTCOME_UNKNOWN

    @property
    def avg_fill_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return self.filled_value / self.filled_qty

    @property
    def remaining_qty(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    # -- commands: check the rule, then record the fact ---------------------------

    def mark_send_started(self, *, broker: str) -> None:
        """Stored before the first request to a remote broker leaves this process: from
        here on a POST may have landed, so only the broker's answer settles the order, and
        it is never withdrawn as "never sent". Saved with optimistic concurrency, it also
        loses to a withdrawal stored first by another run: then nothing is sent."""
        if self.status != REQUESTED:
            raise OrderStateError(f"cannot start sending an order that is {self.status}")
        self._send_started(broker=broker, at=datetime.now(UTC))

    @event("SendStarted")
    def _send_started(self, broker: str, at: datetime) -> None:
        self.broker = broker
        self.status = OUTCOME_UNKNOWN
        self.send_started_at = at

    def withdraw_unsent(self, *, reason: str) -> None:
        """Cancel an order that provably never left: no send of it ever started."""
        if self.status != REQUESTED:
            raise OrderStateError(
                f"order {self.client_order_id} is {self.status}: only an order no send of "
                "which ever started can be withdrawn"
            )
        self._canceled(reason=reason)

    def mark_submitted(
        self, *, broker: str, broker_order_id: str, via_lookup: bool = False
    ) -> None:
        if self.broker_order_id is not None:
            if self.broker_order_id == broker_order_id:
                return
            raise OrderStateError(
                f"order {self.id} is already at the broker as {self.broker_order_id}, "
                f"not {broker_order_id}"
            )
        if self.status not in ANSWERABLE_STATUSES:
            raise OrderStateError(f"cannot submit an order that is {self.status}")
        self._submitted(broker=broker, broker_order_id=broker_order_id, via_lookup=via_lookup)

    @event("Submitted")
    def _submitted(self, broker: str, broker_order_id: str, via_lookup: bool) -> None:
        self.broker = broker
        self.broker_order_id = broker_order_id
        self.status = SUBMITTED

    def mark_submission_failed(
        self,
        *,
        broker: str,
        code: str,
        message: str,
        retryable: bool,
        http_status: int | None,
        outcome_unknown: bool = False,
    ) -> None:
        """A send that got no order back. `outcome_unknown`: the order may exist all the same
        (a timeout, a lost connection, a gateway error after the POST)."""
        if self.status not in ANSWERABLE_STATUSES:
            raise OrderStateError(f"cannot fail the submission of an order that is {self.status}")
        self._submission_failed(
            broker=broker,
            code=code,
            message=message,
            retryable=retryable,
            http_status=http_status,
            outcome_unknown=outcome_unknown,
        )

    @event("SubmissionFailed")
    def _submission_failed(
        self,
        broker: str,
        code: str,
        message: str,
        retryable: bool,
        http_status: int | None,
        outcome_unknown: bool = False,  # absent from events stored before it existed
    ) -> None:
        self.broker = broker
        self.status = after_submission_failed(outcome_unknown)
        self.failures.append({"code": code, "message": message, "retryable": retryable})

    def mark_accepted(self, *, broker_status: str) -> None:
        if self.status == ACCEPTED:
            return
        if self.status != SUBMITTED:
            raise OrderStateError(f"cannot accept an order that is {self.status}")
        self._accepted(broker_status=broker_status)

    @event("Accepted")
    def _accepted(self, broker_status: str) -> None:
        self.status = ACCEPTED

    def mark_rejected(self, *, reason: str) -> None:
        if self.status == REJECTED:
            return
        if self.status not in REJECTABLE_STATUSES:
            raise OrderStateError(f"cannot reject an order that is {self.status}")
        self._rejected(reason=reason)

    @event("Rejected")
    def _rejected(self, reason: str) -> None:
        self.status = REJECTED

    def record_fill(
        self, *, execution_id: str, qty: Decimal, price: Decimal, filled_at: datetime
    ) -> bool:
        """Record one execution. Returns False when the execution was seen before."""
        if execution_id in self.executions:
            return False
        if self.status not in FILLABLE_STATUSES:
            raise OrderStateError(f"cannot fill an order that is {self.status}")
        if qty <= 0 or price <= 0:
            raise OrderStateError("a fill needs a positive qty and price")
        cumulative = self.filled_qty + qty
        if self.qty is not None and cumulative > self.qty:
            raise OrderStateError(
                f"fill of {qty} would overfill order {self.client_order_id} "
                f"({self.filled_qty} of {self.qty} filled)"
            )
        if fill_completes(self.status, self.qty, cumulative):
            self._filled(execution_id=execution_id, qty=qty, price=price, filled_at=filled_at)
        else:
            self._partially_filled(
                execution_id=execution_id, qty=qty, price=price, filled_at=filled_at
            )
        return True

    def _apply_fill(self, execution_id: str, qty: Decimal, price: Decimal) -> None:
        self.executions[execution_id] = (qty, price)
        self.filled_qty += qty
        self.filled_value += qty * price

    @event("Filled")
    def _filled(self, execution_id: str, qty: Decimal, price: Decimal, filled_at: datetime) -> None:
        self._apply_fill(execution_id, qty, price)
        self.status = after_fill(self.status, complete=True)

    @event("PartiallyFilled")
    def _partially_filled(
        self, execution_id: str, qty: Decimal, price: Decimal, filled_at: datetime
    ) -> None:
        self._apply_fill(execution_id, qty, price)
        self.status = after_fill(self.status, complete=False)

    def mark_notional_complete(self) -> None:
        """A notional order's last fill: the broker says it is filled, qty was unknown upfront."""
        if self.status == PARTIALLY_FILLED and self.qty is None:
            self._completed()

    @event("Completed")
    def _completed(self) -> None:
        self.status = FILLED

    def reverse_fill(self, *, execution_id: str, reason: str) -> None:
        """A busted or corrected trade: the execution is taken back, never edited away."""
        if execution_id not in self.executions:
            raise OrderStateError(f"no execution {execution_id} on order {self.client_order_id}")
        if execution_id in self.reversed_executions:
            return
        qty, price = self.executions[execution_id]
        self._fill_reversed(execution_id=execution_id, qty=qty, price=price, reason=reason)

    @event("FillReversed")
    def _fill_reversed(self, execution_id: str, qty: Decimal, price: Decimal, reason: str) -> None:
        # The execution id stays known, so a replayed activity never re-applies it.
        self.reversed_executions.add(execution_id)
        self.filled_qty -= qty
        self.filled_value -= qty * price
        self.status = after_reversal(self.status, self.qty, self.filled_qty)

    def mark_canceled(self, *, reason: str) -> None:
        if self.status == CANCELED:
            return
        if self.status in TERMINAL_STATUSES:
            raise OrderStateError(f"cannot cancel an order that is {self.status}")
        self._canceled(reason=reason)

    @event("Canceled")
    def _canceled(self, reason: str) -> None:
        self.status = CANCELED

    def mark_expired(self) -> None:
        if self.status == EXPIRED:
            return
        if self.status in TERMINAL_STATUSES:
            raise OrderStateError(f"cannot expire an order that is {self.status}")
        self._expired()

    @event("Expired")
    def _expired(self) -> None:
        self.status = EXPIRED
