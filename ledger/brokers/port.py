"""What the router asks of a broker, and what a broker answers, in the ledger's own terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ledger.domain.planning import account_refusal


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


class FailureKind(StrEnum):
    """What kind of failure a broker answer is, decided by the broker's adapter.

    The adapter alone reads its broker's status codes and messages; the router and
    reconciliation act on the kind, so no broker's numbering leaks past its adapter.
    """

    NOT_FOUND = "not_found"  # the broker does not know the asset or symbol
    NOT_TRADABLE = "not_tradable"  # known, but the broker does not trade it
    NOT_FRACTIONABLE = "not_fractionable"  # a fractional order for a whole-share asset
    BUYING_POWER = "buying_power"  # the account cannot pay for it
    MARKET_CLOSED = "market_closed"  # refused because of the session, not the order
    DUPLICATE_ID = "duplicate_id"  # the broker already holds an order under this client id
    BLOCKED = "blocked"  # the account may not trade (blocked, restricted, not ACTIVE)
    RATE_LIMITED = "rate_limited"  # refused unseen: asking later works
    UNAUTHORIZED = "unauthorized"  # the keys were refused: configuration, not the order
    REJECTED = "rejected"  # any other refusal of the order as given
    BROKER_FAILED = "broker_failed"  # the broker failed on its side (5xx, a malformed reply)
    UNREACHABLE = "unreachable"  # no connection, or it dropped before an answer came
    TIMEOUT = "timeout"  # connected, but no answer in time
    UNKNOWN = "unknown"  # nothing said which (also: failures recorded before kinds existed)


@dataclass(frozen=True)
class BrokerError:
    code: str
    message: str
    retryable: bool
    http_status: int | None = None
    # True when the order may exist at the broker although no answer came back
    # (a timeout, a dropped connection): it must be looked up, never resubmitted.
    outcome_unknown: bool = False
    # Last and defaulted: callers that build errors positionally keep working. Not stored
    # in events (code and message are), so nothing that reads stored failures needs it.
    kind: FailureKind = FailureKind.UNKNOWN


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
    """One per broker. Only the router calls `place_order` (docs/design.md, "One router")."""

    name: str

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer: ...

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        """The order the broker holds under this client order id, or None if it has none.

        Raises BrokerReadError when the broker cannot be asked: "no answer" is not "no order".
        """
        ...


# -- reads: what a sync asks of a broker account ---------------------------------------


class BrokerReadError(Exception):
    """A read failed or came back incomplete: nothing read may be believed (docs/design.md,
    "A failed read is never flat").

    The message is one line a user can act on, and never holds a secret.
    """

    def __init__(
        self,
        message: str,
        *,
        auth: bool = False,
        http_status: int | None = None,
        kind: FailureKind = FailureKind.UNKNOWN,
    ) -> None:
        super().__init__(message)
        self.auth = auth
        self.http_status = http_status
        # Why the read failed, as the adapter judged it (a lookup that fails passes it on).
        self.kind = kind


@dataclass(frozen=True)
class BrokerAccount:
    account_id: str
    status: str
    currency: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    # What stops the account from trading, as the broker flags it.
    trading_blocked: bool = False
    account_blocked: bool = False
    trade_suspended_by_user: bool = False
    pattern_day_trader: bool = False

    def refusal(self) -> str | None:
        """Why the account cannot take orders now, or None."""
        return account_refusal(
            status=self.status,
            account_blocked=self.account_blocked,
            trading_blocked=self.trading_blocked,
            trade_suspended_by_user=self.trade_suspended_by_user,
        )


@dataclass(frozen=True)
class BrokerAsset:
    """An asset as the broker trades it: its class and the rules orders for it must keep."""

    symbol: str
    asset_class: str  # us_equity, crypto, us_option, ...
    tradable: bool
    fractionable: bool
    shortable: bool
    min_order_size: Decimal | None = None


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


@runtime_checkable
class MarketReader(Protocol):
    """What a plan asks of a broker beyond the account: its assets and its prices."""

    def get_asset(self, symbol: str) -> BrokerAsset | None:
        """The broker's asset, or None when it does not know the symbol."""
        ...

    def latest_prices(self, symbols: list[str]) -> dict[str, Decimal]:
        """The latest trade price per symbol; symbols without one are left out."""
        ...


# -- a broker's stream of order updates ---------------------------------------------------


@dataclass(frozen=True)
class OrderUpdate:
    """One order update a broker announced (Alpaca: a `trade_updates` message).

    Only a signal that something changed: the service records it by polling, the same code
    path as every other change, so an update announced twice, or an update and a later
    poll of the same fill, never make two fills.
    """

    event: str  # the broker's word: new, fill, partial_fill, canceled, ...
    broker_order_id: str | None = None
    execution_id: str | None = None


class StreamListener(Protocol):
    """What a stream reports, from its own thread."""

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None:
        """`reason`: one line a person can read ("connection lost", "authentication
        refused: ..."); never a secret."""
        ...

    def on_update(self, update: OrderUpdate | None) -> None:
        """An update; None when one came that could not be read (something changed)."""
        ...


class OrderUpdateStream(Protocol):
    """A broker's order update stream, run in a thread of its own; it reconnects itself
    (with backoff) until stopped."""

    def start(self, listener: StreamListener) -> None: ...

    def stop(self) -> None:
        """Stop and wait for the thread (bounded); no callback comes after it returns."""
        ...
