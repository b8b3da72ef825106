"""What the sandbox holds: symbols (stocks, crypto pairs, option contracts) and the default
universe of them, positions, orders and their fills."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal

from sandbox.wire import QTY_STEP, ZERO, asset_id, fmt

BEHAVIORS = ("fill", "partial", "hold", "reject_buying_power", "not_tradable")
ASSET_CLASSES = ("us_equity", "crypto", "us_option")
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
# Alpaca's crypto-trading docs show the pair as an asset of "class": "crypto" whose exchange
# alpaca-py's AssetExchange knows as "CRYPTO" (added in alpacahq/alpaca-py#277: "crypto
# assets with exchange value set to CRYPTO" since 2023-04-25); the spec's Exchange enum
# predates it.
CRYPTO_EXCHANGE = "CRYPTO"
# OCC option symbology as Alpaca writes it, without padding: root, YYMMDD, C/P, strike x 1000
# in eight digits (the spec's examples: AAPL250620C00100000, TSLA231110C00021000).
OCC = re.compile(r"^([A-Z]{1,6})(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
# A standard contract delivers 100 shares and its premium is quoted per share (the spec's
# OptionContract.multiplier: "if a contract is traded at $1.50 and the multiplier is 100,
# the total amount debited when buying the contract would be $150.00").
OPTION_MULTIPLIER = Decimal(100)

DEFAULT_UNIVERSE: tuple[tuple[str, str, str, str], ...] = (
    ("AAPL", "NASDAQ", "Apple Inc. Common Stock", "190"),
    ("MSFT", "NASDAQ", "Microsoft Corporation Common Stock", "410"),
    ("NVDA", "NASDAQ", "NVIDIA Corporation Common Stock", "130"),
    ("TSLA", "NASDAQ", "Tesla, Inc. Common Stock", "250"),
    ("META", "NASDAQ", "Meta Platforms, Inc. Class A Common Stock", "560"),
    ("SPY", "ARCA", "SPDR S&P 500 ETF Trust", "580"),
)
# (pair, name, price, min_order_size, min_trade_increment, price_increment). BTC/USD's name
# and increments are those of the sample asset in Alpaca's crypto-trading docs
# (alpaca.markets/docs/crypto-trading); ETH/USD's increments are the sandbox's own.
CRYPTO_UNIVERSE: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("BTC/USD", "BTC/USD pair", "65000", "0.0001", "0.0001", "1"),
    ("ETH/USD", "ETH/USD pair", "3500", "0.001", "0.001", "0.1"),
)
# Defaults for a crypto pair a test creates: Alpaca quantities carry up to 9 decimals.
CRYPTO_DEFAULT_INCREMENTS = (Decimal("1e-9"), Decimal("1e-9"), Decimal("0.01"))


@dataclass
class Contract:
    """What an OCC option symbol says: underlying root, expiry, call or put, strike."""

    root: str
    expiration: date
    kind: str  # "call" or "put"
    strike: Decimal

    @property
    def name(self) -> str:
        # The spec's OptionContract.name example: "AAPL Jun 20 2025 100 Call".
        when = f"{self.expiration:%b} {self.expiration.day:02d} {self.expiration.year}"
        return f"{self.root} {when} {fmt(self.strike)} {self.kind.title()}"


@dataclass
class Symbol:
    """A symbol's configuration: what it is, its price, and how the market treats it."""

    symbol: str
    asset_id: str
    price: Decimal
    lastday_price: Decimal
    exchange: str = "NASDAQ"
    name: str = ""
    behavior: str = "fill"
    partial_fraction: Decimal = Decimal("0.5")
    tradable: bool = True
    fractionable: bool = True
    shortable: bool = True
    asset_class: str = "us_equity"
    status: str = "active"
    marginable: bool = True
    min_order_size: Decimal | None = None
    min_trade_increment: Decimal | None = None
    price_increment: Decimal | None = None
    # Whether the market data API has a latest trade for it (a symbol with none is left out
    # of the latest-trades map, as Alpaca leaves out unknown symbols).
    latest_trade: bool = True
    price_time: datetime | None = None  # when the price was last set: the trade's "t"
    trade_id: int = 1  # the latest trade's "i", bumped with each new price
    contract: Contract | None = None

    @property
    def is_crypto(self) -> bool:
        return self.asset_class == "crypto"

    @property
    def is_option(self) -> bool:
        return self.asset_class == "us_option"

    @property
    def position_symbol(self) -> str:
        # Alpaca's positions still name a crypto pair in the old symbology, BTCUSD
        # (alpacahq/alpaca-trade-api-python#704: get_open_position('BTCUSD')).
        return self.symbol.replace("/", "") if self.is_crypto else self.symbol

    @property
    def multiplier(self) -> Decimal:
        return OPTION_MULTIPLIER if self.is_option else Decimal(1)


def new_crypto(
    pair: str,
    price: Decimal,
    name: str,
    min_order_size: Decimal,
    min_trade_increment: Decimal,
    price_increment: Decimal,
) -> Symbol:
    # As the crypto-trading docs' sample asset: fractionable, not marginable, shortable
    # or easy to borrow.
    return Symbol(
        symbol=pair,
        asset_id=asset_id(pair),
        price=price,
        lastday_price=price,
        exchange=CRYPTO_EXCHANGE,
        name=name,
        asset_class="crypto",
        shortable=False,
        marginable=False,
        min_order_size=min_order_size,
        min_trade_increment=min_trade_increment,
        price_increment=price_increment,
    )


def default_universe() -> dict[str, Symbol]:
    """The symbols a fresh (or reset) sandbox knows, by symbol."""
    symbols: dict[str, Symbol] = {}
    for symbol, exchange, name, price in DEFAULT_UNIVERSE:
        symbols[symbol] = Symbol(
            symbol=symbol,
            asset_id=asset_id(symbol),
            price=Decimal(price),
            lastday_price=Decimal(price),
            exchange=exchange,
            name=name,
        )
    for pair, name, price, min_size, increment, tick in CRYPTO_UNIVERSE:
        symbols[pair] = new_crypto(
            pair, Decimal(price), name, Decimal(min_size), Decimal(increment), Decimal(tick)
        )
    return symbols


@dataclass
class Position:
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class Fill:
    qty: Decimal
    price: Decimal
    at: datetime
    activity_id: str


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    position_intent: str
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    origin: str  # "api" or "external": who placed it, for the state dump only
    asset_class: str = "us_equity"
    notional_qty: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None  # the order that replaced this one
    replaces: str | None = None  # the order this one replaced
    fills: list[Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def filled_qty(self) -> Decimal:
        return sum((f.qty for f in self.fills), ZERO)

    @property
    def filled_avg_price(self) -> Decimal | None:
        filled = self.filled_qty
        if filled == 0:
            return None
        return sum((f.qty * f.price for f in self.fills), ZERO) / filled

    def total_qty(self, price: Decimal) -> Decimal:
        """The share quantity the order is for; notional orders settle it at first fill."""
        if self.qty is not None:
            return self.qty
        if self.notional_qty is None:
            assert self.notional is not None
            self.notional_qty = (self.notional / price).quantize(QTY_STEP, ROUND_DOWN)
        return self.notional_qty
