"""What the router asks of a broker, and what a broker answers, in the ledger's own terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class OrderTicket:
    """Everything a broker needs to place one order; built only by the router."""

    client_order_id: str
    symbol: str
    side: str
    qty: Decimal | None
    notional: Decimal | None
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    extended_hours: bool
    # The price a paper broker fills a market order at; real brokers ignore it.
    reference_price: Decimal | None = None


@dataclass(frozen=True)
class Execution:
    execution_id: str
    qty: Decimal
    price: Decimal
    filled_at: datetime


@dataclass(frozen=True)
class BrokerError:
    code: str
    message: str
    retryable: bool
    http_status: int | None = None
    # True when the order may exist at the broker although no answer came back
    # (a timeout, a dropped connection): it must be looked up, never resubmitted.
    outcome_unknown: bool = False


@dataclass(frozen=True)
class BrokerAnswer:
    """The broker's word on one order: either where it is, or why it is not there."""

    broker: str
    broker_order_id: str | None = None
    status: str | None = None  # the broker's own order status, lower-case
    executions: tuple[Execution, ...] = field(default_factory=tuple)
    error: BrokerError | None = None
    rejection_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.broker_order_id is not None


class BrokerAdapter(Protocol):
    """One per broker. Only the router calls `place_order` (DESIGN.md invariant 1)."""

    name: str

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer: ...

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        """The order the broker holds under this client order id, or None if it has none."""
        ...
