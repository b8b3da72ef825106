"""What the router asks of a broker, and what a broker answers, in the ledger's own terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable


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
    # The order's filled qty after this execution: orders partial fills that share a
    # timestamp (Alpaca stamps to the millisecond).
    cum_qty: Decimal | None = None


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
    # What the broker reports as filled so far; executions arrive separately (account
    # activities), so these say "filled at the broker" before the fills are recorded.
    filled_qty: Decimal | None = None
    filled_avg_price: Decimal | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.broker_order_id is not None


class BrokerAdapter(Protocol):
    """One per broker. Only the router calls `place_order` (DESIGN.md invariant 1)."""

    name: str

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer: ...

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        """The order the broker holds under this client order id, or None if it has none.

        Raises BrokerReadError when the broker cannot be asked: "no answer" is not "no order".
        """
        ...


# -- reads: what a sync asks of a broker account ---------------------------------------


class BrokerReadError(Exception):
    """A read failed or came back incomplete: nothing read may be believed (invariant 9).

    The message is one line a user can act on, and never holds a secret.
    """

    def __init__(self, message: str, *, auth: bool = False, http_status: int | None = None):
        super().__init__(message)
        self.auth = auth
        self.http_status = http_status


@dataclass(frozen=True)
class BrokerAccount:
    account_id: str
    status: str
    currency: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal


@dataclass(frozen=True)
class MarketClock:
    """The broker's clock: whether market orders execute now, and when they will."""

    timestamp: datetime
    is_open: bool
    next_open: datetime | None
    next_close: datetime | None


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    qty: Decimal  # signed: negative for a short position
    avg_entry_price: Decimal
    side: str
    asset_class: str
    market_value: Decimal | None = None
    cost_basis: Decimal | None = None


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker holds it, whoever placed it."""

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    status: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    created_at: datetime
    updated_at: datetime | None = None


@dataclass(frozen=True)
class BrokerFill:
    """One execution from the account's activities (Alpaca: activity type FILL)."""

    activity_id: str
    broker_order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal | None
    transaction_time: datetime
    order_status: str
    # Alpaca marks busted and corrected executions through the activity's status.
    status: str | None = None


@dataclass(frozen=True)
class BrokerActivity:
    """A non-trade activity that moves positions: split, symbol change, merger, spin-off."""

    activity_id: str
    activity_type: str
    sub_type: str | None
    symbol: str | None
    qty: Decimal | None
    price: Decimal | None
    net_amount: Decimal | None
    on: date | None
    description: str
    group_id: str | None
    status: str | None
    created_at: datetime | None


@runtime_checkable
class BrokerReader(Protocol):
    """The reads a sync makes. Every method raises BrokerReadError rather than guess."""

    name: str
    paper: bool

    def get_account(self) -> BrokerAccount: ...

    def get_clock(self) -> datetime: ...

    def list_positions(self) -> list[BrokerPosition]: ...

    def list_open_orders(self) -> list[BrokerOrder]: ...

    def get_order(self, broker_order_id: str) -> BrokerOrder | None: ...

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None: ...

    def list_fills(self, after: datetime) -> list[BrokerFill]: ...

    def list_position_activities(self, after: datetime) -> list[BrokerActivity]: ...
