"""Alpaca's JSON, read tolerantly, and turned into the broker port's types.

Unknown fields are ignored and enum-like fields are plain strings, so a status Alpaca
adds next year is recorded, not refused (alpaca-py's own models refuse it). Amounts are
Decimal: the session parses JSON numbers as Decimal and Alpaca sends strings, so nothing
passes through a float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ledger.brokers.port import (
    BrokerAccount,
    BrokerActivity,
    BrokerAsset,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
)


def _exact(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise ValueError(f"expected a decimal string, got {value!r}")
    return Decimal(str(value).strip()) if not isinstance(value, Decimal) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _day(value: Any) -> Any:
    # Real non-trade activities carry a plain date where the spec says date-time.
    if isinstance(value, str) and len(value) > 10:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    return value


Exact = Annotated[Decimal, BeforeValidator(_exact)]
MaybeExact = Annotated[Decimal | None, BeforeValidator(_exact)]
Lower = Annotated[str, BeforeValidator(_lower)]
MaybeLower = Annotated[str | None, BeforeValidator(_lower)]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlpacaAccount(_Reply):
    id: str
    status: str = ""
    currency: str = "USD"
    cash: Exact
    equity: Exact
    buying_power: Exact
    # The flags that stop an account from trading (Alpaca's Account object).
    trading_blocked: bool | None = False
    account_blocked: bool | None = False
    trade_suspended_by_user: bool | None = False
    pattern_day_trader: bool | None = False

    def to_port(self) -> BrokerAccount:
        return BrokerAccount(
            account_id=self.id,
            status=self.status,
            currency=self.currency,
            cash=self.cash,
            equity=self.equity,
            buying_power=self.buying_power,
            trading_blocked=bool(self.trading_blocked),
            account_blocked=bool(self.account_blocked),
            trade_suspended_by_user=bool(self.trade_suspended_by_user),
            pattern_day_trader=bool(self.pattern_day_trader),
        )


class AlpacaAsset(_Reply):
    symbol: str
    asset_class: Lower = Field(alias="class")
    tradable: bool = False
    fractionable: bool = False
    shortable: bool = False
    min_order_size: MaybeExact = None

    def to_port(self) -> BrokerAsset:
        return BrokerAsset(
            symbol=self.symbol,
            asset_class=self.asset_class,
            tradable=self.tradable,
            fractionable=self.fractionable,
            shortable=self.shortable,
            min_order_size=self.min_order_size,
        )


class AlpacaTrade(_Reply):
    """One latest trade of the market data API (`p`: its price)."""

    p: Exact


# Quote currencies of Alpaca's crypto pairs, longest first (USDT before USD).
_CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")


def crypto_pair(symbol: str) -> str:
    """Alpaca's positions name a crypto pair without its slash (BTCUSD) where orders, fills
    and assets say BTC/USD: the ledger uses the one form, the pair's."""
    if "/" in symbol:
        return symbol
    for quote in _CRYPTO_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


class AlpacaClock(_Reply):
    timestamp: datetime
    is_open: bool | None = None
    next_open: datetime | None = None
    next_close: datetime | None = None


class AlpacaPosition(_Reply):
    symbol: str
    qty: Exact
    avg_entry_price: Exact
    side: Lower = "long"
    asset_class: Lower = "us_equity"
    market_value: MaybeExact = None
    cost_basis: MaybeExact = None

    def to_port(self) -> BrokerPosition:
        return BrokerPosition(
            symbol=crypto_pair(self.symbol) if self.asset_class == "crypto" else self.symbol,
            qty=self.qty,
            avg_entry_price=self.avg_entry_price,
            side=self.side,
            asset_class=self.asset_class,
            market_value=self.market_value,
            cost_basis=self.cost_basis,
        )


class AlpacaOrder(_Reply):
    id: str
    client_order_id: str
    status: Lower
    symbol: str = ""
    side: MaybeLower = None
    type: MaybeLower = None
    order_type: MaybeLower = None
    time_in_force: Lower = "day"
    qty: MaybeExact = None
    notional: MaybeExact = None
    limit_price: MaybeExact = None
    extended_hours: bool | None = False
    filled_qty: MaybeExact = None
    filled_avg_price: MaybeExact = None
    created_at: datetime
    updated_at: datetime | None = None

    def to_port(self) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id=self.id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side or "",
            order_type=self.type or self.order_type or "",
            time_in_force=self.time_in_force,
            status=self.status,
            qty=self.qty,
            notional=self.notional,
            limit_price=self.limit_price,
            extended_hours=bool(self.extended_hours),
            filled_qty=self.filled_qty or Decimal(0),
            filled_avg_price=self.filled_avg_price,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class AlpacaFill(_Reply):
    id: str
    order_id: str
    symbol: str
    side: Lower
    qty: Exact
    price: Exact
    cum_qty: Exact
    leaves_qty: MaybeExact = None
    transaction_time: datetime
    order_status: Lower = ""
    status: MaybeLower = None

    def to_port(self) -> BrokerFill:
        return BrokerFill(
            activity_id=self.id,
            broker_order_id=self.order_id,
            symbol=self.symbol,
            # "sell_short" is a sell that opens or grows a short: the order's side is sell.
            side="sell" if self.side.startswith("sell") else self.side,
            qty=self.qty,
            price=self.price,
            cum_qty=self.cum_qty,
            leaves_qty=self.leaves_qty,
            transaction_time=self.transaction_time,
            order_status=self.order_status,
            status=self.status,
        )


class AlpacaActivity(_Reply):
    id: str
    activity_type: str
    activity_sub_type: str | None = None
    symbol: str | None = None
    qty: MaybeExact = None
    price: MaybeExact = None
    net_amount: MaybeExact = None
    on: Annotated[date | None, BeforeValidator(_day), Field(alias="date")] = None
    description: str = ""
    group_id: str | None = None
    status: MaybeLower = None
    created_at: datetime | None = None

    def to_port(self) -> BrokerActivity:
        return BrokerActivity(
            activity_id=self.id,
            activity_type=self.activity_type.upper(),
            sub_type=self.activity_sub_type,
            symbol=self.symbol,
            qty=self.qty,
            price=self.price,
            net_amount=self.net_amount,
            on=self.on,
            description=self.description or "",
            group_id=self.group_id,
            status=self.status,
            created_at=self.created_at,
        )

