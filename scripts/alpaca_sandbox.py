"""A local, in-memory stand-in for Alpaca's trading API v2 and the parts of its market data
API a ledger reads (latest trades).

It speaks the same JSON as ``paper-api.alpaca.markets`` and ``data.alpaca.markets`` closely
enough that alpaca-py's ``TradingClient``, ``StockHistoricalDataClient`` and
``CryptoHistoricalDataClient`` (each pointed at it with ``url_override``) parse every reply
with their own models, and it adds a control API under ``/_sandbox/`` so tests can script
the broker: per-symbol fill behaviour, prices, positions the ledger did not create (dust,
crypto, option contracts), broker-side fills and cancels, fills whose order is gone,
corporate actions, account flags, the market clock, and transport faults.

Run it::

    python scripts/alpaca_sandbox.py [--host 127.0.0.1] [--port 8765] [--key K] [--secret S]

or embed it::

    from scripts.alpaca_sandbox import AlpacaSandbox

    with AlpacaSandbox() as sb:
        client = TradingClient(sb.key, sb.secret, paper=True, url_override=sb.base_url)
        data = StockHistoricalDataClient(sb.key, sb.secret, url_override=sb.base_url)

Only the standard library is used, so the script runs in any Python 3.11 environment.
Every amount is a ``Decimal``; amounts leave the server as strings, as Alpaca sends them
(market data prices and sizes are JSON numbers, as the market data API sends them).

The universe
------------
Stocks AAPL, MSFT, NVDA, TSLA, META (NASDAQ) and SPY (ARCA), and the crypto pairs BTC/USD
and ETH/USD (``class: crypto``, ``exchange: CRYPTO``, fractionable, not shortable, with
``min_order_size``, ``min_trade_increment`` and ``price_increment``). Crypto follows Alpaca's
two symbologies: orders, fills and assets say ``BTC/USD`` while positions say ``BTCUSD``;
``/v2/assets/BTCUSD``, ``/v2/assets/BTC%2FUSD``, ``/v2/positions/BTCUSD`` and
``/v2/positions/BTC/USD`` all find the pair. Crypto trades around the clock (the market
clock is ignored), accepts only ``gtc`` and ``ioc`` orders, settles against cash only and
cannot be sold short. Option contracts (OCC symbols such as ``AAPL240119C00150000``) exist
only once a test places a position in one; they are served at
``/v2/options/contracts/{symbol_or_id}`` and are not assets (``/v2/assets/{occ}`` is a 404).

The API served
--------------
Trading (``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` required, else 401):
``GET /v2/account``, ``GET /v2/positions``, ``GET /v2/positions/{symbol_or_asset_id}``,
``GET|POST|DELETE /v2/orders``, ``GET|DELETE /v2/orders/{order_id}``,
``GET /v2/orders:by_client_order_id``, ``GET /v2/account/activities[/{activity_type}]``,
``GET /v2/clock``, ``GET /v2/assets`` (``status``, ``asset_class`` filters; us_equity by
default), ``GET /v2/assets/{symbol_or_asset_id}``, ``GET /v2/options/contracts/{symbol_or_id}``.

Market data (same headers; a missing or wrong key is a 403 for stocks; crypto needs none):
``GET /v2/stocks/trades/latest?symbols=A,B``, ``GET /v2/stocks/{symbol}/trades/latest``,
``GET /v1beta3/crypto/{loc}/latest/trades?symbols=BTC/USD,ETH/USD``. The latest trade's price
is the symbol's configured price; a symbol the sandbox does not know, or one set with
``latest_trade=False``, is left out of the map.

Faults and delays match on the request path, so they can target market data too.

The control API
---------------
Every endpoint is under ``/_sandbox``, takes and returns JSON, and answers 200 with the
result (``{"ok": true}`` when there is nothing else to say); a refused request is a 4xx in
Alpaca's ``{"code": ..., "message": ...}`` shape. Each one is also a Python method.

=======  ==============================  ===============================================
method   path                            body / query  -> Python method
=======  ==============================  ===============================================
POST     /reset                          {cash?} -> reset()
GET      /state                          -> state(): account, positions, orders, ...
GET      /requests                       ?method=&path= (glob) -> requests()
DELETE   /requests                       -> clear_requests()
GET      /symbols                        every symbol's configuration
POST     /symbols/{symbol}               {behavior?, price?, partial_fraction?,
                                         tradable?, lastday_price?, fractionable?,
                                         shortable?, exchange?, name?, asset_class?,
                                         status?, marginable?, min_order_size?,
                                         min_trade_increment?, price_increment?,
                                         latest_trade?} -> set_symbol()
                                         (``BTC/USD`` may be sent as ``BTC%2FUSD`` or as
                                         two path segments)
POST     /positions                      {symbol, qty, avg_entry_price?} -> set_position()
                                         (qty 0 removes; dust such as 0.000000001 is kept)
POST     /option_positions               {symbol, qty, avg_entry_price?, price?,
                                         lastday_price?} -> set_option_position()
POST     /account                        {status?, crypto_status?, trading_blocked?,
                                         account_blocked?, trade_suspended_by_user?,
                                         transfers_blocked?, shorting_enabled?,
                                         pattern_day_trader?, daytrade_count?}
                                         -> set_account_flags(); null for the last two
                                         leaves them out of /v2/account
POST     /orders/{order_id}/fill         {qty?, price?} -> fill_order()
POST     /orders/{order_id}/cancel       {status?: canceled|expired|rejected}
                                         -> cancel_order()
POST     /external_orders                {symbol, side, qty, price?, client_order_id?}
                                         -> create_external_order()
POST     /orphan_fills                   {symbol, side, qty, price?, order_id?, at?,
                                         apply?} -> add_orphan_fill(): a FILL whose
                                         order the orders endpoint does not know
POST     /splits                         {symbol, ratio, date?} -> add_split()
POST     /symbol_changes                 {old_symbol, new_symbol, date?} -> change_symbol()
POST     /activities                     {activity_type, net_amount?, symbol?, qty?,
                                         per_share_amount?, sub_type?, description?,
                                         date?, apply_cash?} -> add_activity()
POST     /clock                          {is_open?, next_open?, next_close?, timestamp?}
                                         -> set_clock()
POST     /cash                           {cash, last_equity?} -> set_cash()
POST     /faults                         {kind, method?, path?, count?, retry_after?,
                                         delay?, field?, value?} -> add_fault()
GET      /faults                         -> faults()
DELETE   /faults                         -> clear_faults()
POST     /delays                         {seconds, method?, path?} -> set_delay()
GET      /delays                         -> delays()
DELETE   /delays                         -> clear_delays()
=======  ==============================  ===============================================
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

try:
    from zoneinfo import ZoneInfo

    _ET: Any = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover - only on hosts without tz data
    # Activity ids and the clock are stamped in New York time by Alpaca; without tz data
    # UTC keeps them well-formed, which is all a test double needs.
    _ET = UTC

__all__ = [
    "ACCOUNT_STATUSES",
    "ASSET_CLASSES",
    "BEHAVIORS",
    "CRYPTO_STATUSES",
    "DEFAULT_KEY",
    "DEFAULT_SECRET",
    "FAULT_KINDS",
    "AlpacaSandbox",
    "SandboxError",
    "main",
]

DEFAULT_KEY = "sandbox-key"
DEFAULT_SECRET = "sandbox-secret"
DEFAULT_CASH = Decimal("100000")
DEFAULT_PORT = 8765

BEHAVIORS = ("fill", "partial", "hold", "reject_buying_power", "not_tradable")
FAULT_KINDS = (
    "429",
    "500",
    "502_html",
    "503",
    "504",
    "slow",
    "drop_after_create",
    "drop",
    "malformed_json",
    "unknown_enum",
)
# Faults that answer (or hang up) before the request reaches the API at all.
_PRE_FAULTS = frozenset({"429", "500", "502_html", "503", "504", "drop"})

# Alpaca's activity_type enum from the 2.0.1 spec; unknown types in the path are a 422.
ACTIVITY_TYPES = (
    "FILL",
    "TRANS",
    "MISC",
    "ACATC",
    "ACATS",
    "CFEE",
    "CSD",
    "CSW",
    "DIV",
    "DIVCGL",
    "DIVCGS",
    "DIVFEE",
    "DIVFT",
    "DIVNRA",
    "DIVROC",
    "DIVTW",
    "DIVTXEX",
    "FEE",
    "INT",
    "INTNRA",
    "INTTW",
    "JNL",
    "JNLC",
    "JNLS",
    "MA",
    "NC",
    "OPASN",
    "OPCA",
    "OPCSH",
    "OPEXC",
    "OPEXP",
    "OPTRD",
    "PTC",
    "PTR",
    "REORG",
    "SPIN",
    "SPLIT",
    "FOPT",
)
_CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
_TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
# Alpaca's crypto orders take only gtc and ioc (docs.alpaca.markets/docs/crypto-orders); any
# other time in force is refused with 422 {"code": 42210000, "message": "invalid crypto
# time_in_force"} (quoted in d-e-s-o/apca#27 and alpacahq/alpaca-py#681).
_CRYPTO_TIME_IN_FORCE = ("gtc", "ioc")
# The AccountStatus enum of the trading API spec (2.0.1); only ACTIVE may place orders.
ACCOUNT_STATUSES = (
    "ONBOARDING",
    "SUBMISSION_FAILED",
    "SUBMITTED",
    "ACCOUNT_UPDATED",
    "APPROVAL_PENDING",
    "ACTIVE",
    "REJECTED",
)
# crypto_status also takes INACTIVE, "Account not enabled" for crypto (the crypto-trading
# docs' table of crypto_status values).
CRYPTO_STATUSES = (*ACCOUNT_STATUSES, "INACTIVE")
ASSET_CLASSES = ("us_equity", "crypto", "us_option")
# Alpaca's crypto-trading docs show the pair as an asset of "class": "crypto" whose exchange
# alpaca-py's AssetExchange knows as "CRYPTO" (added in alpacahq/alpaca-py#277: "crypto
# assets with exchange value set to CRYPTO" since 2023-04-25); the spec's Exchange enum
# predates it.
_CRYPTO_EXCHANGE = "CRYPTO"
# OCC option symbology as Alpaca writes it, without padding: root, YYMMDD, C/P, strike x 1000
# in eight digits (the spec's examples: AAPL250620C00100000, TSLA231110C00021000).
_OCC = re.compile(r"^([A-Z]{1,6})(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
# A standard contract delivers 100 shares and its premium is quoted per share (the spec's
# OptionContract.multiplier: "if a contract is traded at $1.50 and the multiplier is 100,
# the total amount debited when buying the contract would be $150.00").
_OPTION_MULTIPLIER = Decimal(100)
_MARGIN_MULTIPLIER = Decimal(2)
_INITIAL_MARGIN = Decimal("0.5")
_MAINTENANCE_MARGIN = Decimal("0.3")
_ZERO = Decimal(0)
_QTY_STEP = Decimal("1e-9")  # Alpaca accepts up to 9 decimal places of quantity
_MONEY_STEP = Decimal("1e-10")
_RATIO_STEP = Decimal("1e-16")
_UNKNOWN_ENUM_VALUE = "pending_risk_review"

_DEFAULT_UNIVERSE: tuple[tuple[str, str, str, str], ...] = (
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
_CRYPTO_UNIVERSE: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("BTC/USD", "BTC/USD pair", "65000", "0.0001", "0.0001", "1"),
    ("ETH/USD", "ETH/USD pair", "3500", "0.001", "0.001", "0.1"),
)
# Defaults for a crypto pair a test creates: Alpaca quantities carry up to 9 decimals.
_CRYPTO_DEFAULT_INCREMENTS = (Decimal("1e-9"), Decimal("1e-9"), Decimal("0.01"))
# The market data API's exchange codes and tapes (v2/stocks/meta/exchanges, whose example
# has "V": "IEX"; the SIP's codes; stock_tape in the market data spec: A NYSE, B NYSE
# Arca/Bats/IEX/regionals, C NASDAQ).
_EXCHANGE_CODES = {
    "NASDAQ": "Q",
    "NYSE": "N",
    "ARCA": "P",
    "NYSEARCA": "P",
    "AMEX": "A",
    "BATS": "Z",
}
_TAPES = {"NYSE": "A", "NASDAQ": "C"}
# stock_latest_feed and crypto_latest_loc enums of the market data spec (1.1).
_STOCK_LATEST_FEEDS = ("delayed_sip", "iex", "otc", "sip", "boats", "overnight")
_CRYPTO_LOCATIONS = ("us", "us-1", "us-2", "eu-1", "bs-1")
_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_HTML_504 = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class SandboxError(Exception):
    """An error reply in Alpaca's ``{"code": ..., "message": ...}`` shape, with any extra
    fields Alpaca adds to some of them (``extra``)."""

    def __init__(
        self, status: int, code: int, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {**self.extra, "code": self.code, "message": self.message}


# --------------------------------------------------------------------------- helpers


def _fmt(value: Decimal) -> str:
    """Alpaca's decimal strings: plain notation, no trailing zeros, never ``-0``."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _fmt_opt(value: Decimal | None) -> str | None:
    return None if value is None else _fmt(value)


def _money(value: Decimal) -> str:
    return _fmt(value.quantize(_MONEY_STEP))


def _ratio(value: Decimal) -> str:
    return _fmt(value.quantize(_RATIO_STEP))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_opt(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


def _iso_et(moment: datetime) -> str:
    # The clock endpoint answers in New York time with an offset, like the real one.
    return moment.astimezone(_ET).isoformat(timespec="microseconds")


def _dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise SandboxError(422, 40010001, f"{name} must be a decimal number")
    try:
        # floats only arrive from Python callers; str() keeps their shortest repr
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise SandboxError(422, 40010001, f"invalid {name}: {value!r}") from None
    if not number.is_finite():
        raise SandboxError(422, 40010001, f"invalid {name}: {value!r}")
    return number


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if "T" in text:
            # a literal '+' in a query string arrives as a space
            text = text.replace(" ", "+")
        try:
            moment = (
                datetime.combine(date.fromisoformat(text), datetime.min.time())
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            raise SandboxError(422, 40010001, f"invalid {name}: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SandboxError(422, 40010001, f"{name} must be a boolean")


def _dumps(obj: Any) -> str:
    """JSON text in which a ``Decimal`` stays a JSON number (used by the request log)."""
    if isinstance(obj, Decimal):
        return _fmt(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(_dumps(v) for v in obj) + "]"
    if isinstance(obj, datetime):
        return json.dumps(_iso(obj))
    return json.dumps(obj)


def _loads(raw: bytes) -> Any:
    # parse_float keeps a client's 10.5 exact and tells it apart from the string "10.5"
    return json.loads(raw.decode("utf-8"), parse_float=Decimal)


def _public(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if not k.startswith("_")}


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sandbox/asset/{symbol}"))


# ------------------------------------------------------------------------------ state


@dataclass
class _Contract:
    """What an OCC option symbol says: underlying root, expiry, call or put, strike."""

    root: str
    expiration: date
    kind: str  # "call" or "put"
    strike: Decimal

    @property
    def name(self) -> str:
        # The spec's OptionContract.name example: "AAPL Jun 20 2025 100 Call".
        when = f"{self.expiration:%b} {self.expiration.day:02d} {self.expiration.year}"
        return f"{self.root} {when} {_fmt(self.strike)} {self.kind.title()}"


@dataclass
class _Symbol:
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
    contract: _Contract | None = None

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
        return _OPTION_MULTIPLIER if self.is_option else Decimal(1)


@dataclass
class _Position:
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class _Fill:
    qty: Decimal
    price: Decimal
    at: datetime
    activity_id: str


@dataclass
class _Order:
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
    fills: list[_Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status not in _CLOSED_STATUSES

    @property
    def filled_qty(self) -> Decimal:
        return sum((f.qty for f in self.fills), _ZERO)

    @property
    def filled_avg_price(self) -> Decimal | None:
        filled = self.filled_qty
        if filled == 0:
            return None
        return sum((f.qty * f.price for f in self.fills), _ZERO) / filled

    def total_qty(self, price: Decimal) -> Decimal:
        """The share quantity the order is for; notional orders settle it at first fill."""
        if self.qty is not None:
            return self.qty
        if self.notional_qty is None:
            assert self.notional is not None
            self.notional_qty = (self.notional / price).quantize(_QTY_STEP, ROUND_DOWN)
        return self.notional_qty


@dataclass
class _Fault:
    kind: str
    method: str | None
    path: str
    remaining: int
    retry_after: str | None = None
    delay: float = 1.0
    field: str | None = "status"
    value: str = _UNKNOWN_ENUM_VALUE

    def matches(self, method: str, path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "count": self.remaining,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "field": self.field,
            "value": self.value,
        }


@dataclass
class _Delay:
    """Every request matching `method` and `path` (a glob) waits `seconds` before the
    sandbox acts on it, as a slow broker does. The work is done whether or not the client
    is still there to hear the answer: a real server finishes what it started."""

    method: str | None
    path: str
    seconds: float

    def matches(self, method: str, path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "seconds": self.seconds}


@dataclass
class _Reply:
    status: int
    payload: Any = None  # JSON-able; None means an empty body
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.payload is None:
            return b""
        return _dumps(self.payload).encode("utf-8")


_UNSET: Any = object()


# --------------------------------------------------------------------------- sandbox


class AlpacaSandbox:
    """The sandbox: in-memory account state, the v2 API, the control API, a server.

    All state sits behind one re-entrant lock; the HTTP server answers each connection
    on its own thread. The Python control methods and the ``/_sandbox/`` endpoints are the
    same operations.
    """

    def __init__(
        self,
        key: str = DEFAULT_KEY,
        secret: str = DEFAULT_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cash: Decimal | str | int = DEFAULT_CASH,
        verbose: bool = False,
    ) -> None:
        self.key = key
        self.secret = secret
        self.host = host
        self.port = port
        self.verbose = verbose
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sandbox/account/{key}"))
        self.account_number = "PA" + self.account_id.replace("-", "")[:10].upper()
        self._created_at = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        self._reset_state(_dec(cash, "cash"))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AlpacaSandbox:
        """Serve on a daemon thread; ``port=0`` (the default) picks a free port."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="alpaca-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AlpacaSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Root URL without ``/v2``: alpaca-py appends ``/v2/...`` to ``url_override``."""
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------- control: state

    def reset(self, cash: Decimal | str | int | None = None) -> None:
        """Forget orders, positions, activities, faults and the request log."""
        with self._lock:
            self._reset_state(DEFAULT_CASH if cash is None else _dec(cash, "cash"))

    def _reset_state(self, cash: Decimal) -> None:
        with self._lock:
            self._cash = cash
            self._last_equity = cash
            self._symbols: dict[str, _Symbol] = {}
            for symbol, exchange, name, price in _DEFAULT_UNIVERSE:
                self._symbols[symbol] = _Symbol(
                    symbol=symbol,
                    asset_id=_asset_id(symbol),
                    price=Decimal(price),
                    lastday_price=Decimal(price),
                    exchange=exchange,
                    name=name,
                )
            for pair, name, price, min_size, increment, tick in _CRYPTO_UNIVERSE:
                self._symbols[pair] = self._new_crypto(
                    pair, Decimal(price), name, Decimal(min_size), Decimal(increment),
                    Decimal(tick),
                )
            self._positions: dict[str, _Position] = {}
            # Account flags as /v2/account reports them; None leaves a field out, as Alpaca
            # has done with pattern_day_trader and daytrade_count since 2026-07-06 (alpaca-py
            # 0.44's TradeAccount: "removed from Alpaca responses ... FINRA intraday-margin
            # migration").
            self._flags: dict[str, Any] = {
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "trading_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "transfers_blocked": False,
                "shorting_enabled": True,
                "pattern_day_trader": False,
                "daytrade_count": 0,
            }
            self._orders: dict[str, _Order] = {}
            self._by_client_id: dict[str, _Order] = {}
            self._activities: list[dict[str, Any]] = []
            self._faults: list[_Fault] = []
            self._delays: list[_Delay] = []
            self._requests: list[dict[str, Any]] = []
            self._frozen_now: datetime | None = None
            self._last_tick: datetime | None = None
            self._clock_open = True
            self._next_open: datetime | None = None
            self._next_close: datetime | None = None

    @staticmethod
    def _new_crypto(
        pair: str,
        price: Decimal,
        name: str,
        min_order_size: Decimal,
        min_trade_increment: Decimal,
        price_increment: Decimal,
    ) -> _Symbol:
        # As the crypto-trading docs' sample asset: fractionable, not marginable, shortable
        # or easy to borrow.
        return _Symbol(
            symbol=pair,
            asset_id=_asset_id(pair),
            price=price,
            lastday_price=price,
            exchange=_CRYPTO_EXCHANGE,
            name=name,
            asset_class="crypto",
            shortable=False,
            marginable=False,
            min_order_size=min_order_size,
            min_trade_increment=min_trade_increment,
            price_increment=price_increment,
        )

    def state(self) -> dict[str, Any]:
        """Everything, in API shapes: account, positions, orders, activities, and more."""
        with self._lock:
            return {
                "account": self._account_json(),
                "positions": [self._position_json(p) for p in self._positions.values()],
                "orders": [
                    {**self._order_json(o), "_origin": o.origin} for o in self._orders.values()
                ],
                "activities": [_public(a) for a in self._sorted_activities()],
                "symbols": {s: self._symbol_json(c) for s, c in self._symbols.items()},
                "clock": self._clock_json(),
                "faults": [f.to_json() for f in self._faults],
            }

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The log of API requests received, oldest first; ``path`` may be a glob.

        JSON numbers in request bodies are kept as ``Decimal`` and strings as ``str``, so
        a test can tell what the client actually put on the wire.
        """
        with self._lock:
            return [
                dict(r)
                for r in self._requests
                if (method is None or r["method"] == method.upper())
                and (path is None or fnmatch.fnmatchcase(r["path"], path))
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ----------------------------------------------------------- control: market

    def set_symbol(
        self,
        symbol: str,
        *,
        behavior: str | None = None,
        price: Decimal | str | int | None = None,
        partial_fraction: Decimal | str | int | None = None,
        tradable: bool | None = None,
        lastday_price: Decimal | str | int | None = None,
        fractionable: bool | None = None,
        shortable: bool | None = None,
        exchange: str | None = None,
        name: str | None = None,
        asset_class: str | None = None,
        status: str | None = None,
        marginable: bool | None = None,
        min_order_size: Decimal | str | int | None = None,
        min_trade_increment: Decimal | str | int | None = None,
        price_increment: Decimal | str | int | None = None,
        latest_trade: bool | None = None,
    ) -> dict[str, Any]:
        """Create or change a symbol; a new price may fill resting limit orders.

        A new symbol needs a price; one with a ``/`` (``SOL/USD``) is a crypto pair unless
        ``asset_class`` says otherwise. ``status`` ``inactive`` makes the asset untradable, as
        Alpaca's inactive assets are. ``latest_trade=False`` leaves the symbol out of the
        market data API's latest trades.
        """
        if asset_class is not None and asset_class not in ASSET_CLASSES:
            raise SandboxError(422, 40010001, f"asset_class must be one of {ASSET_CLASSES}")
        with self._lock:
            cfg = self._find_symbol(symbol)
            if cfg is None:
                symbol = symbol.upper()
                if price is None:
                    raise SandboxError(422, 40010001, f"a new symbol {symbol} needs a price")
                first = self._positive(price, "price")
                kind = asset_class or ("crypto" if "/" in symbol else "us_equity")
                if kind == "crypto":
                    size, increment, tick = _CRYPTO_DEFAULT_INCREMENTS
                    cfg = self._new_crypto(symbol, first, f"{symbol} pair", size, increment, tick)
                elif kind == "us_equity":
                    cfg = _Symbol(
                        symbol=symbol,
                        asset_id=_asset_id(symbol),
                        price=first,
                        lastday_price=first,
                        name=f"{symbol} Sandbox Common Stock",
                    )
                else:
                    raise SandboxError(
                        422, 40010001, "option contracts are made by set_option_position"
                    )
                cfg.price_time = self._now()
                self._symbols[symbol] = cfg
            elif asset_class is not None and asset_class != cfg.asset_class:
                raise SandboxError(422, 40010001, "asset_class cannot change")
            if behavior is not None:
                if behavior not in BEHAVIORS:
                    raise SandboxError(422, 40010001, f"behavior must be one of {BEHAVIORS}")
                cfg.behavior = behavior
            if price is not None:
                new_price = self._positive(price, "price")
                if new_price != cfg.price:
                    cfg.trade_id += 1  # a new price is a new trade on the tape
                cfg.price = new_price
                cfg.price_time = self._now()
            if lastday_price is not None:
                cfg.lastday_price = self._positive(lastday_price, "lastday_price")
            if partial_fraction is not None:
                fraction = _dec(partial_fraction, "partial_fraction")
                if not 0 < fraction < 1:
                    raise SandboxError(422, 40010001, "partial_fraction must be in (0, 1)")
                cfg.partial_fraction = fraction
            if status is not None:
                if status not in ("active", "inactive"):
                    raise SandboxError(422, 40010001, "status must be active or inactive")
                cfg.status = status
            if tradable is not None:
                cfg.tradable = tradable
            if fractionable is not None:
                cfg.fractionable = fractionable
            if shortable is not None:
                cfg.shortable = shortable
            if marginable is not None:
                cfg.marginable = marginable
            if exchange is not None:
                cfg.exchange = exchange
            if name is not None:
                cfg.name = name
            if min_order_size is not None:
                cfg.min_order_size = self._positive(min_order_size, "min_order_size")
            if min_trade_increment is not None:
                cfg.min_trade_increment = self._positive(
                    min_trade_increment, "min_trade_increment"
                )
            if price_increment is not None:
                cfg.price_increment = self._positive(price_increment, "price_increment")
            if latest_trade is not None:
                cfg.latest_trade = latest_trade
            for order in list(self._orders.values()):
                if order.symbol == cfg.symbol:
                    self._try_execute(order)
            return self._symbol_json(cfg)

    def set_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
    ) -> dict[str, Any] | None:
        """Put a position in the account as if it came from outside the ledger.

        No order, no activity and no cash movement; ``qty`` 0 removes the position. Any
        quantity Alpaca can hold is kept, down to broker dust such as ``0.000000001`` (Alpaca
        quantities carry up to 9 decimals: the spec's DELETE /v2/positions ``qty``).
        """
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = _dec(qty, "qty")
            if amount != amount.quantize(_QTY_STEP):
                raise SandboxError(422, 40010001, "qty can have at most 9 decimal places")
            if amount == 0:
                self._positions.pop(cfg.symbol, None)
                return None
            if cfg.is_crypto and amount < 0:
                raise SandboxError(422, 40010001, "crypto positions cannot be short")
            avg = cfg.price if avg_entry_price is None else self._positive(avg_entry_price, "avg")
            self._positions[cfg.symbol] = _Position(cfg.symbol, amount, avg)
            return self._position_json(self._positions[cfg.symbol])

    def set_option_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
        *,
        price: Decimal | str | int | None = None,
        lastday_price: Decimal | str | int | None = None,
    ) -> dict[str, Any] | None:
        """Hold ``qty`` contracts of the option with OCC symbol ``symbol`` (AAPL240119C00150000).

        Prices are per share, as Alpaca quotes premiums; the position's market value and cost
        basis carry the contract multiplier of 100. The contract is made on first use (its
        ``price`` defaults to ``avg_entry_price``) and is then served at
        ``/v2/options/contracts/{symbol_or_id}``. ``qty`` 0 removes the position.
        """
        occ = symbol.upper()
        match = _OCC.match(occ)
        if match is None:
            raise SandboxError(422, 40010001, f"not an OCC option symbol: {symbol}")
        root, yy, mm, dd, kind, strike = match.groups()
        try:
            expiration = date(2000 + int(yy), int(mm), int(dd))
        except ValueError:
            raise SandboxError(422, 40010001, f"not an OCC option symbol: {symbol}") from None
        amount = _dec(qty, "qty")
        if amount != amount.to_integral_value():
            # options trade in whole contracts
            raise SandboxError(422, 40010001, "option qty must be a whole number of contracts")
        with self._lock:
            cfg = self._symbols.get(occ)
            if cfg is None:
                first = price if price is not None else avg_entry_price
                if first is None:
                    raise SandboxError(422, 40010001, f"a new option contract {occ} needs a price")
                premium = self._positive(first, "price")
                contract = _Contract(
                    root,
                    expiration,
                    "call" if kind == "C" else "put",
                    Decimal(strike) / 1000,
                )
                cfg = _Symbol(
                    symbol=occ,
                    asset_id=_asset_id(occ),
                    price=premium,
                    lastday_price=premium,
                    # The spec's ExchangeForPosition: "Can be empty if not applicable (e.g.,
                    # for options contracts)".
                    exchange="",
                    name=contract.name,
                    asset_class="us_option",
                    fractionable=False,
                    shortable=False,
                    marginable=False,
                    contract=contract,
                    price_time=self._now(),
                )
                self._symbols[occ] = cfg
            elif price is not None:
                cfg.price = self._positive(price, "price")
            if lastday_price is not None:
                cfg.lastday_price = self._positive(lastday_price, "lastday_price")
            if amount == 0:
                self._positions.pop(occ, None)
                return None
            avg = cfg.price if avg_entry_price is None else self._positive(avg_entry_price, "avg")
            self._positions[occ] = _Position(occ, amount, avg)
            return self._position_json(self._positions[occ])

    def set_account_flags(
        self,
        *,
        status: str | None = None,
        crypto_status: str | None = None,
        trading_blocked: bool | None = None,
        account_blocked: bool | None = None,
        trade_suspended_by_user: bool | None = None,
        transfers_blocked: bool | None = None,
        shorting_enabled: bool | None = None,
        pattern_day_trader: bool | None = _UNSET,
        daytrade_count: int | None = _UNSET,
    ) -> dict[str, Any]:
        """Set the flags ``GET /v2/account`` reports; arguments left out stay as they are.

        ``status`` takes the spec's AccountStatus values (``crypto_status`` INACTIVE too). While
        ``trading_blocked`` or ``account_blocked`` is set or ``status`` is not ACTIVE, order
        POSTs are refused 403 ``account is not authorized to trade``; with
        ``trade_suspended_by_user`` they are refused 403 ``new orders are rejected by user
        request``; with ``crypto_status`` not ACTIVE crypto orders are refused. ``None`` for
        ``pattern_day_trader`` or ``daytrade_count`` leaves the field out of the reply.
        """
        with self._lock:
            for name, value, allowed in (
                ("status", status, ACCOUNT_STATUSES),
                ("crypto_status", crypto_status, CRYPTO_STATUSES),
            ):
                if value is not None:
                    if value not in allowed:
                        raise SandboxError(422, 40010001, f"{name} must be one of {allowed}")
                    self._flags[name] = value
            for name, flag in (
                ("trading_blocked", trading_blocked),
                ("account_blocked", account_blocked),
                ("trade_suspended_by_user", trade_suspended_by_user),
                ("transfers_blocked", transfers_blocked),
                ("shorting_enabled", shorting_enabled),
            ):
                if flag is not None:
                    self._flags[name] = _as_bool(flag, name)
            if pattern_day_trader is not _UNSET:
                self._flags["pattern_day_trader"] = (
                    None if pattern_day_trader is None
                    else _as_bool(pattern_day_trader, "pattern_day_trader")
                )
            if daytrade_count is not _UNSET:
                if daytrade_count is not None and (
                    isinstance(daytrade_count, bool)
                    or not isinstance(daytrade_count, int)
                    or daytrade_count < 0
                ):
                    raise SandboxError(422, 40010001, "daytrade_count must be an integer >= 0")
                self._flags["daytrade_count"] = daytrade_count
            return self._account_json()

    def set_cash(
        self,
        cash: Decimal | str | int,
        last_equity: Decimal | str | int | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self._cash = _dec(cash, "cash")
            if last_equity is not None:
                self._last_equity = _dec(last_equity, "last_equity")
            return self._account_json()

    def set_clock(
        self,
        *,
        is_open: bool | None = None,
        next_open: datetime | str | None = None,
        next_close: datetime | str | None = None,
        timestamp: datetime | str | None = _UNSET,
    ) -> dict[str, Any]:
        """Open or close the market, set next open/close, or freeze "now".

        ``timestamp`` freezes the sandbox's notion of now (``None`` unfreezes). Opening
        the market lets queued market orders execute.
        """
        with self._lock:
            if timestamp is not _UNSET:
                self._frozen_now = None if timestamp is None else _parse_time(timestamp, "ts")
            if next_open is not None:
                self._next_open = _parse_time(next_open, "next_open")
            if next_close is not None:
                self._next_close = _parse_time(next_close, "next_close")
            if is_open is not None:
                self._clock_open = is_open
                if is_open:
                    for order in list(self._orders.values()):
                        self._try_execute(order)
            return self._clock_json()

    # ----------------------------------------------------------- control: orders

    def fill_order(
        self,
        order_id: str,
        qty: Decimal | str | int | None = None,
        price: Decimal | str | int | None = None,
    ) -> dict[str, Any]:
        """Fill an open order now, fully or by ``qty``, at ``price`` or the symbol price."""
        with self._lock:
            order = self._require_order(order_id)
            if not order.is_open:
                raise SandboxError(422, 42210000, f'order is already in "{order.status}" state')
            cfg = self._require_symbol(order.symbol)
            at = cfg.price if price is None else self._positive(price, "price")
            remaining = order.total_qty(at) - order.filled_qty
            amount = remaining if qty is None else self._positive(qty, "qty")
            if amount > remaining:
                raise SandboxError(422, 40010001, f"qty exceeds the unfilled {_fmt(remaining)}")
            self._apply_fill(order, amount, at)
            return self._order_json(order)

    def cancel_order(self, order_id: str, status: str = "canceled") -> dict[str, Any]:
        """End an open order from the broker's side: ``canceled``, ``expired``, ``rejected``."""
        if status not in ("canceled", "expired", "rejected"):
            raise SandboxError(422, 40010001, "status must be canceled, expired or rejected")
        with self._lock:
            order = self._require_order(order_id)
            if not order.is_open:
                raise SandboxError(422, 42210000, f'order is already in "{order.status}" state')
            self._close_order(order, status)
            return self._order_json(order)

    def create_external_order(
        self,
        symbol: str,
        side: str,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        """An order placed outside the ledger (say, in Alpaca's web app) that fills at once."""
        if side not in ("buy", "sell"):
            raise SandboxError(422, 40010001, "side must be buy or sell")
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = self._positive(qty, "qty")
            at = cfg.price if price is None else self._positive(price, "price")
            coid = client_order_id or str(uuid.uuid4())
            if coid in self._by_client_id:
                raise SandboxError(422, 40010001, "client_order_id must be unique")
            tif = "gtc" if cfg.is_crypto else "day"  # crypto takes no day orders
            now = self._tick()
            order = _Order(
                id=str(uuid.uuid4()),
                client_order_id=coid,
                symbol=cfg.symbol,
                asset_id=cfg.asset_id,
                side=side,
                type="market",
                time_in_force=tif,
                qty=amount,
                notional=None,
                limit_price=None,
                extended_hours=False,
                position_intent=self._intent(cfg.symbol, side),
                status="new",
                created_at=now,
                updated_at=now,
                expires_at=self._expiry(tif, now),
                origin="external",
                asset_class=cfg.asset_class,
            )
            self._store_order(order)
            self._apply_fill(order, amount, at)
            return self._order_json(order)

    def add_orphan_fill(
        self,
        symbol: str,
        side: str,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        *,
        order_id: str | None = None,
        at: datetime | str | None = None,
        apply: bool = True,
    ) -> dict[str, Any]:
        """A FILL activity whose order the orders endpoint does not know (a 404).

        That is what an account shows for an order placed long ago or purged: the execution
        is in the activities, ``GET /v2/orders/{order_id}`` finds nothing. ``at`` backdates
        the execution (default: now); ``apply`` moves the position and cash as the fill did.
        """
        if side not in ("buy", "sell"):
            raise SandboxError(422, 40010001, "side must be buy or sell")
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = self._positive(qty, "qty")
            fill_price = cfg.price if price is None else self._positive(price, "price")
            oid = str(uuid.uuid4()) if order_id is None else str(order_id)
            try:
                uuid.UUID(oid)
            except ValueError:
                raise SandboxError(422, 40010001, "order_id must be a uuid") from None
            if oid in self._orders:
                raise SandboxError(422, 40010001, "order_id belongs to an order the API knows")
            when = self._tick() if at is None else _parse_time(at, "at")
            held_before = (
                self._positions[cfg.symbol].qty if cfg.symbol in self._positions else _ZERO
            )
            if apply:
                signed = amount if side == "buy" else -amount
                self._move_position(cfg.symbol, signed, fill_price)
                self._cash -= signed * fill_price * cfg.multiplier
            activity = self._fill_activity(
                when,
                order_id=oid,
                symbol=cfg.symbol,
                side=side,
                held_before=held_before,
                qty=amount,
                price=fill_price,
                cum_qty=amount,
                leaves_qty=_ZERO,
                status="filled",
            )
            self._activities.append(activity)
            return _public(activity)

    # -------------------------------------------------------- control: activities

    def add_split(
        self,
        symbol: str,
        ratio: Decimal | str | int,
        on: date | str | None = None,
    ) -> list[dict[str, Any]]:
        """A stock split: qty x ratio, avg price / ratio, prices / ratio.

        ``ratio`` 4 is a 4-for-1 forward split, 0.1 a 1-for-10 reverse split. Like a broker
        booking, a held position yields two ``SPLIT`` activities sharing a ``group_id``: the
        old shares leave (negative qty, old average price) and the new ones arrive.
        """
        symbol = symbol.upper()
        with self._lock:
            cfg = self._require_symbol(symbol)
            factor = self._positive(ratio, "ratio")
            cfg.price = cfg.price / factor
            cfg.lastday_price = cfg.lastday_price / factor
            position = self._positions.get(symbol)
            if position is None:
                return []
            old_qty, old_avg = position.qty, position.avg_entry_price
            position.qty = old_qty * factor
            position.avg_entry_price = old_avg / factor
            sub_type = "FSPLIT" if factor > 1 else "RSPLIT"
            text = f"{symbol} split {_fmt(factor)} for 1"
            group = str(uuid.uuid4())
            on_day = self._day(on)
            removed = self._add_nta(
                "SPLIT",
                sub_type=sub_type,
                symbol=symbol,
                qty=-old_qty,
                price=old_avg,
                description=text,
                group_id=group,
                on=on_day,
            )
            added = self._add_nta(
                "SPLIT",
                sub_type=sub_type,
                symbol=symbol,
                qty=position.qty,
                price=position.avg_entry_price,
                description=text,
                group_id=group,
                on=on_day,
            )
            return [_public(removed), _public(added)]

    def change_symbol(
        self, old_symbol: str, new_symbol: str, on: date | str | None = None
    ) -> list[dict[str, Any]]:
        """A ticker change (Alpaca's ``NC`` activity, sub-type ``SNC``).

        The asset keeps its id and moves to the new symbol; a held position moves too and
        yields two ``NC`` activities sharing a ``group_id`` (old symbol out, new one in).
        """
        old, new = old_symbol.upper(), new_symbol.upper()
        with self._lock:
            cfg = self._require_symbol(old)
            if new in self._symbols:
                raise SandboxError(422, 40010001, f"symbol {new} already exists")
            del self._symbols[old]
            cfg.symbol = new
            self._symbols[new] = cfg
            position = self._positions.pop(old, None)
            if position is None:
                return []
            position.symbol = new
            self._positions[new] = position
            text = f"Symbol change {old} -> {new}"
            group = str(uuid.uuid4())
            on_day = self._day(on)
            out = self._add_nta(
                "NC",
                sub_type="SNC",
                symbol=old,
                qty=-position.qty,
                price=position.avg_entry_price,
                description=text,
                group_id=group,
                on=on_day,
            )
            into = self._add_nta(
                "NC",
                sub_type="SNC",
                symbol=new,
                qty=position.qty,
                price=position.avg_entry_price,
                description=text,
                group_id=group,
                on=on_day,
            )
            return [_public(out), _public(into)]

    def add_activity(
        self,
        activity_type: str,
        *,
        net_amount: Decimal | str | int = 0,
        symbol: str | None = None,
        qty: Decimal | str | int | None = None,
        per_share_amount: Decimal | str | int | None = None,
        sub_type: str | None = None,
        description: str = "",
        on: date | str | None = None,
        apply_cash: bool = True,
    ) -> dict[str, Any]:
        """Any other non-trade activity (DIV, FEE, CSD, ...); ``net_amount`` moves cash."""
        kind = activity_type.upper()
        if kind == "FILL" or kind not in ACTIVITY_TYPES:
            raise SandboxError(422, 40010001, f"not a non-trade activity type: {activity_type}")
        with self._lock:
            amount = _dec(net_amount, "net_amount")
            if apply_cash:
                self._cash += amount
            activity = self._add_nta(
                kind,
                sub_type=sub_type,
                net_amount=amount,
                symbol=symbol.upper() if symbol else None,
                qty=None if qty is None else _dec(qty, "qty"),
                per_share_amount=(
                    None if per_share_amount is None else _dec(per_share_amount, "per_share")
                ),
                description=description,
                on=self._day(on),
            )
            return _public(activity)

    # ------------------------------------------------------------- control: faults

    def add_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str = "/v2/*",
        count: int = 1,
        retry_after: int | str | None = None,
        delay: float | str | None = None,
        field: str | None = "status",
        value: str = _UNKNOWN_ENUM_VALUE,
    ) -> dict[str, Any]:
        """Make the next ``count`` requests matching ``method`` and ``path`` (a glob) fail.

        Kinds: ``429`` (``Retry-After: retry_after`` if given), ``500``, ``502_html``,
        ``503`` (``Retry-After`` if given), ``504``, ``slow`` (sleep ``delay`` s, then answer
        normally), ``drop`` (hang up, no effect), ``drop_after_create`` (do the work, then
        hang up), ``malformed_json`` (do the work, send truncated JSON), ``unknown_enum``
        (do the work, then put ``value`` into ``field`` of each object replied and add
        fields alpaca-py does not know; ``field`` None only adds the fields).
        """
        if kind not in FAULT_KINDS:
            raise SandboxError(422, 40010001, f"kind must be one of {FAULT_KINDS}")
        if count < 1:
            raise SandboxError(422, 40010001, "count must be at least 1")
        fault = _Fault(
            kind=kind,
            method=method.upper() if method else None,
            path=path,
            remaining=int(count),
            retry_after=None if retry_after is None else str(retry_after),
            delay=1.0 if delay is None else float(delay),
            field=field,
            value=value,
        )
        with self._lock:
            self._faults.append(fault)
            return fault.to_json()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_delay(self, seconds: float | str, *, method: str | None = None,
                  path: str = "/v2/*") -> dict[str, Any]:
        """Hold every matching request ``seconds`` before acting on it, until cleared (a
        route's latency, where a ``slow`` fault delays a counted few). The newest delay
        set for a route wins; 0 removes it."""
        wait = float(seconds)
        if not 0 <= wait <= 600:
            raise SandboxError(422, 40010001, "seconds must be from 0 to 600")
        delay = _Delay(method.upper() if method else None, path, wait)
        with self._lock:
            self._delays = [d for d in self._delays
                            if (d.method, d.path) != (delay.method, delay.path)]
            if wait:
                self._delays.insert(0, delay)
            return delay.to_json()

    def delays(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.to_json() for d in self._delays]

    def clear_delays(self) -> None:
        with self._lock:
            self._delays.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    # ------------------------------------------------------------ internal: time

    def _now(self) -> datetime:
        return self._frozen_now or datetime.now(UTC)

    def _tick(self) -> datetime:
        """A strictly increasing "now", so activity ids sort in the order things happened."""
        now = self._now()
        if self._last_tick is not None and now <= self._last_tick:
            now = self._last_tick + timedelta(milliseconds=1)
        self._last_tick = now
        return now

    def _day(self, on: date | str | None) -> date | None:
        if on is None or isinstance(on, date):
            return on
        return _parse_time(on, "date").date()

    def _expiry(self, tif: str, now: datetime) -> datetime | None:
        return self._clock_values(now)[2] if tif == "day" else None

    def _clock_values(self, now: datetime) -> tuple[bool, datetime, datetime]:
        local = now.astimezone(_ET)
        close_today = local.replace(hour=16, minute=0, second=0, microsecond=0)
        next_close = close_today if local < close_today else close_today + timedelta(days=1)
        next_open = (local + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
        while next_open.weekday() >= 5:
            next_open += timedelta(days=1)
        while next_close.weekday() >= 5:
            next_close += timedelta(days=1)
        return (
            self._clock_open,
            self._next_open or next_open,
            self._next_close or next_close,
        )

    # ----------------------------------------------------------- internal: lookups

    @staticmethod
    def _positive(value: Any, name: str) -> Decimal:
        number = _dec(value, name)
        if number <= 0:
            raise SandboxError(422, 40010001, f"{name} must be > 0")
        return number

    def _require_symbol(self, symbol: str) -> _Symbol:
        cfg = self._find_symbol(symbol)
        if cfg is None:
            raise SandboxError(404, 40410000, "asset not found")
        return cfg

    def _require_order(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise SandboxError(404, 40410000, "order not found")
        return order

    def _find_symbol(self, symbol_or_id: str) -> _Symbol | None:
        """By symbol, by a crypto pair's old symbology (BTCUSD for BTC/USD, which Alpaca still
        accepts: "For crypto, the symbol has to follow old symbology, e.g. BTCUSD", the spec's
        GET /v2/assets/{symbol_or_asset_id}), or by asset id."""
        ref = symbol_or_id.upper()
        cfg = self._symbols.get(ref)
        if cfg is not None:
            return cfg
        for candidate in self._symbols.values():
            if candidate.asset_id == symbol_or_id:
                return candidate
            if candidate.is_crypto and candidate.position_symbol == ref:
                return candidate
        return None

    def _intent(self, symbol: str, side: str) -> str:
        held = self._positions[symbol].qty if symbol in self._positions else _ZERO
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _store_order(self, order: _Order) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.client_order_id] = order

    # ------------------------------------------------------- internal: execution

    def _can_trade_now(self, order: _Order) -> bool:
        # "Alpaca supports crypto trading 24 hours a day, every day" (the crypto-trading docs).
        if order.asset_class == "crypto":
            return True
        return self._clock_open or (order.extended_hours and order.type == "limit")

    def _try_execute(self, order: _Order) -> None:
        """Let the symbol's behaviour act on an order nothing has filled yet."""
        cfg = self._symbols.get(order.symbol)
        if cfg is None or not order.is_open or order.fills:
            return
        if order.status == "accepted" and self._can_trade_now(order):
            order.status = "new"
            order.updated_at = self._tick()
        if cfg.behavior not in ("fill", "partial") or not self._can_trade_now(order):
            return
        price = cfg.price
        if order.type == "limit":
            assert order.limit_price is not None
            crosses = (
                price <= order.limit_price if order.side == "buy" else price >= order.limit_price
            )
            if not crosses:
                return
        total = order.total_qty(price)
        if cfg.behavior == "fill":
            amount = total
        else:
            if order.time_in_force == "fok":
                return  # all or nothing: a partial fill is not allowed
            amount = (total * cfg.partial_fraction).quantize(_QTY_STEP, ROUND_DOWN)
        if amount > 0:
            self._apply_fill(order, amount, price)

    def _apply_fill(self, order: _Order, qty: Decimal, price: Decimal) -> None:
        at = self._tick()
        total = order.total_qty(price)
        held_before = (
            self._positions[order.symbol].qty if order.symbol in self._positions else _ZERO
        )
        signed = qty if order.side == "buy" else -qty
        self._move_position(order.symbol, signed, price)
        cfg = self._symbols.get(order.symbol)
        self._cash -= signed * price * (cfg.multiplier if cfg else Decimal(1))
        cumulative = order.filled_qty + qty
        order.status = "filled" if cumulative >= total else "partially_filled"
        order.updated_at = at
        if order.status == "filled":
            order.filled_at = at
        activity = self._fill_activity(
            at,
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            held_before=held_before,
            qty=qty,
            price=price,
            cum_qty=cumulative,
            leaves_qty=total - cumulative,
            status=order.status,
        )
        self._activities.append(activity)
        order.fills.append(_Fill(qty, price, at, activity["id"]))

    def _fill_activity(
        self,
        at: datetime,
        *,
        order_id: str,
        symbol: str,
        side: str,
        held_before: Decimal,
        qty: Decimal,
        price: Decimal,
        cum_qty: Decimal,
        leaves_qty: Decimal,
        status: str,
    ) -> dict[str, Any]:
        # Alpaca labels executions that open or grow a short as "sell_short"
        if side == "sell" and held_before <= 0:
            side = "sell_short"
        return {
            "id": self._activity_id(at),
            "activity_type": "FILL",
            "transaction_time": _iso(at),
            "type": "fill" if status == "filled" else "partial_fill",
            "price": _fmt(price),
            "qty": _fmt(qty),
            "side": side,
            "symbol": symbol,
            "leaves_qty": _fmt(leaves_qty),
            "order_id": order_id,
            "cum_qty": _fmt(cum_qty),
            "order_status": status,
            "_ts": at,
        }

    def _move_position(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        position = self._positions.get(symbol)
        before = position.qty if position else _ZERO
        avg = position.avg_entry_price if position else _ZERO
        after = before + signed
        if after == 0:
            self._positions.pop(symbol, None)
            return
        if before == 0 or (before > 0) == (signed > 0):
            avg = (abs(before) * avg + abs(signed) * price) / abs(after)
        elif abs(signed) > abs(before):
            avg = price  # flipped through zero: the new side starts at this price
        self._positions[symbol] = _Position(symbol, after, avg)

    def _close_order(self, order: _Order, status: str) -> None:
        at = self._tick()
        order.status = status
        order.updated_at = at
        if status == "canceled":
            order.canceled_at = at
        elif status == "expired":
            order.expired_at = at
        else:
            order.failed_at = at

    def _activity_id(self, at: datetime) -> str:
        # Alpaca's ids are "<New York time to the millisecond>::<uuid>"
        local = at.astimezone(_ET)
        return f"{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}::{uuid.uuid4()}"

    def _add_nta(
        self,
        activity_type: str,
        *,
        sub_type: str | None = None,
        net_amount: Decimal = _ZERO,
        symbol: str | None = None,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        per_share_amount: Decimal | None = None,
        description: str = "",
        group_id: str | None = None,
        on: date | None = None,
    ) -> dict[str, Any]:
        at = self._tick()
        activity: dict[str, Any] = {"id": self._activity_id(at), "activity_type": activity_type}
        if sub_type:
            activity["activity_sub_type"] = sub_type
        # Real NTAs carry a plain date here even though the spec says date-time.
        activity["date"] = (on or at.astimezone(_ET).date()).isoformat()
        activity["net_amount"] = _fmt(net_amount)
        activity["description"] = description
        if symbol is not None:
            activity["symbol"] = symbol
        if qty is not None:
            activity["qty"] = _fmt(qty)
        if price is not None:
            activity["price"] = _money(price)
        if per_share_amount is not None:
            activity["per_share_amount"] = _fmt(per_share_amount)
        if group_id is not None:
            activity["group_id"] = group_id
        activity["status"] = "executed"
        activity["created_at"] = _iso(at)
        activity["_ts"] = at
        self._activities.append(activity)
        return activity

    def _sorted_activities(self) -> list[dict[str, Any]]:
        return sorted(self._activities, key=lambda a: (a["_ts"], a["id"]))

    # --------------------------------------------------------- internal: shapes

    def _position_value(self, position: _Position) -> Decimal:
        cfg = self._symbols.get(position.symbol)
        if cfg is None:
            return position.qty * position.avg_entry_price
        return position.qty * cfg.price * cfg.multiplier

    def _market_values(self) -> tuple[Decimal, Decimal, Decimal]:
        """Long and short market value, and the part of the long value that cannot be margined
        (crypto: "cryptocurrencies are not eligible assets to be used as collateral for margin
        accounts", the spec's Account; and long options, which are paid in full)."""
        long_value, short_value, cash_only = _ZERO, _ZERO, _ZERO
        for position in self._positions.values():
            value = self._position_value(position)
            cfg = self._symbols.get(position.symbol)
            if value > 0:
                long_value += value
                if cfg is not None and not cfg.marginable:
                    cash_only += value
            else:
                short_value += value
        return long_value, short_value, cash_only

    def _reserved_for_buys(self) -> Decimal:
        reserved = _ZERO
        for order in self._orders.values():
            if order.side != "buy" or not order.is_open:
                continue
            cfg = self._symbols.get(order.symbol)
            if order.qty is None:
                reserved += (order.notional or _ZERO) - sum(
                    (f.qty * f.price for f in order.fills), _ZERO
                )
                continue
            unit = order.limit_price or (cfg.price if cfg else _ZERO)
            reserved += (order.qty - order.filled_qty) * unit
        return reserved

    def _account_numbers(self) -> dict[str, Decimal]:
        long_value, short_value, cash_only = self._market_values()
        equity = self._cash + long_value + short_value
        marginable_gross = long_value - cash_only - short_value
        # what cannot be margined needs its full value as margin
        initial_margin = marginable_gross * _INITIAL_MARGIN + cash_only
        maintenance_margin = marginable_gross * _MAINTENANCE_MARGIN + cash_only
        regt = max(equity - initial_margin, _ZERO) * _MARGIN_MULTIPLIER
        reserved = self._reserved_for_buys()
        return {
            "cash": self._cash,
            "long": long_value,
            "short": short_value,
            "equity": equity,
            "initial_margin": initial_margin,
            "maintenance_margin": maintenance_margin,
            "regt": regt,
            "buying_power": max(regt - reserved, _ZERO),
            "non_marginable": max(self._cash - reserved, _ZERO),
        }

    def _account_json(self) -> dict[str, Any]:
        n = self._account_numbers()
        now = self._now()
        account = {
            "id": self.account_id,
            "admin_configurations": {},
            "user_configurations": None,
            "account_number": self.account_number,
            "status": self._flags["status"],
            "crypto_status": self._flags["crypto_status"],
            "options_approved_level": 0,
            "options_trading_level": 0,
            "currency": "USD",
            "buying_power": _money(n["buying_power"]),
            "regt_buying_power": _money(n["regt"]),
            "daytrading_buying_power": "0",
            "effective_buying_power": _money(n["buying_power"]),
            "non_marginable_buying_power": _money(n["non_marginable"]),
            "options_buying_power": _money(n["regt"] / 2),
            "bod_dtbp": "0",
            "cash": _money(n["cash"]),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": _money(n["equity"]),
            "pattern_day_trader": self._flags["pattern_day_trader"],
            "trading_blocked": self._flags["trading_blocked"],
            "transfers_blocked": self._flags["transfers_blocked"],
            "account_blocked": self._flags["account_blocked"],
            "created_at": _iso(self._created_at),
            "trade_suspended_by_user": self._flags["trade_suspended_by_user"],
            "multiplier": _fmt(_MARGIN_MULTIPLIER),
            "shorting_enabled": self._flags["shorting_enabled"],
            "equity": _money(n["equity"]),
            "last_equity": _money(self._last_equity),
            "long_market_value": _money(n["long"]),
            "short_market_value": _money(n["short"]),
            "position_market_value": _money(n["long"] - n["short"]),
            "initial_margin": _money(n["initial_margin"]),
            "maintenance_margin": _money(n["maintenance_margin"]),
            "last_maintenance_margin": "0",
            "sma": _money(n["equity"]),
            "daytrade_count": self._flags["daytrade_count"],
            "balance_asof": (now.astimezone(_ET).date() - timedelta(days=1)).isoformat(),
            "crypto_tier": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }
        for name in ("pattern_day_trader", "daytrade_count"):
            if account[name] is None:
                del account[name]  # as Alpaca's replies since 2026-07-06
        return account

    def _position_json(self, position: _Position) -> dict[str, Any]:
        cfg = self._symbols[position.symbol]
        qty, price, last = position.qty, cfg.price, cfg.lastday_price
        # prices stay per share; an option's values carry the contract multiplier
        market_value = qty * price * cfg.multiplier
        cost_basis = qty * position.avg_entry_price * cfg.multiplier
        unrealized = market_value - cost_basis
        intraday = (price - last) * qty * cfg.multiplier
        held = sum(
            (
                o.qty - o.filled_qty
                for o in self._orders.values()
                if o.symbol == position.symbol
                and o.is_open
                and o.qty is not None
                and o.side == ("sell" if qty > 0 else "buy")
            ),
            _ZERO,
        )
        available = qty - held if qty > 0 else qty + held
        return {
            "asset_id": cfg.asset_id,  # "For options this represents the option contract ID"
            "symbol": cfg.position_symbol,
            "exchange": cfg.exchange,
            "asset_class": cfg.asset_class,
            "asset_marginable": cfg.marginable,
            "qty": _fmt(qty),
            "avg_entry_price": _money(position.avg_entry_price),
            "side": "long" if qty > 0 else "short",
            "market_value": _money(market_value),
            "cost_basis": _money(cost_basis),
            "unrealized_pl": _money(unrealized),
            "unrealized_plpc": _ratio(unrealized / abs(cost_basis)) if cost_basis else "0",
            "unrealized_intraday_pl": _money(intraday),
            "unrealized_intraday_plpc": (
                _ratio(intraday / abs(last * qty * cfg.multiplier)) if last else "0"
            ),
            "current_price": _money(price),
            "lastday_price": _money(last),
            "change_today": _ratio((price - last) / last) if last else "0",
            "qty_available": _fmt(available),
        }

    def _order_json(self, order: _Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "created_at": _iso(order.created_at),
            "updated_at": _iso(order.updated_at),
            "submitted_at": _iso(order.created_at),
            "filled_at": _iso_opt(order.filled_at),
            "expired_at": _iso_opt(order.expired_at),
            "canceled_at": _iso_opt(order.canceled_at),
            "failed_at": _iso_opt(order.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": order.asset_id,
            "symbol": order.symbol,
            "asset_class": order.asset_class,
            "notional": _fmt_opt(order.notional),
            "qty": _fmt_opt(order.qty),
            "filled_qty": _fmt(order.filled_qty),
            "filled_avg_price": (
                None if order.filled_avg_price is None else _money(order.filled_avg_price)
            ),
            "order_class": "",
            "order_type": order.type,
            "type": order.type,
            "side": order.side,
            "position_intent": order.position_intent,
            "time_in_force": order.time_in_force,
            "limit_price": _fmt_opt(order.limit_price),
            "stop_price": None,
            "status": order.status,
            "extended_hours": order.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": _iso_opt(order.expires_at),
        }

    def _asset_json(self, cfg: _Symbol) -> dict[str, Any]:
        tradable = cfg.tradable and cfg.behavior != "not_tradable" and cfg.status == "active"
        if cfg.is_crypto:
            # The fields of the sample pair in Alpaca's crypto-trading docs.
            return {
                "id": cfg.asset_id,
                "class": "crypto",
                "exchange": cfg.exchange,
                "symbol": cfg.symbol,
                "name": cfg.name or cfg.symbol,
                "status": cfg.status,
                "tradable": tradable,
                "marginable": cfg.marginable,
                "shortable": cfg.shortable,
                "easy_to_borrow": cfg.shortable,
                "fractionable": cfg.fractionable,
                "min_order_size": _fmt_opt(cfg.min_order_size),
                "min_trade_increment": _fmt_opt(cfg.min_trade_increment),
                "price_increment": _fmt_opt(cfg.price_increment),
            }
        asset: dict[str, Any] = {
            "id": cfg.asset_id,
            "class": cfg.asset_class,
            "exchange": cfg.exchange,
            "symbol": cfg.symbol,
            "name": cfg.name or cfg.symbol,
            "status": cfg.status,
            "tradable": tradable,
            "marginable": cfg.marginable,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "30",
            "shortable": cfg.shortable,
            "easy_to_borrow": cfg.shortable,
            "fractionable": cfg.fractionable,
            "attributes": [],
        }
        # increments a test set on a stock are served too (alpaca-py's Asset models them)
        for name in ("min_order_size", "min_trade_increment", "price_increment"):
            value = getattr(cfg, name)
            if value is not None:
                asset[name] = _fmt(value)
        return asset

    def _contract_json(self, cfg: _Symbol) -> dict[str, Any]:
        """An option contract in the spec's OptionContract shape."""
        contract = cfg.contract
        assert contract is not None
        underlying = self._symbols.get(contract.root)
        return {
            "id": cfg.asset_id,
            "symbol": cfg.symbol,
            "name": cfg.name,
            "status": cfg.status,
            "tradable": cfg.tradable and cfg.status == "active",
            "expiration_date": contract.expiration.isoformat(),
            "root_symbol": contract.root,
            "underlying_symbol": contract.root,
            "underlying_asset_id": underlying.asset_id if underlying else _asset_id(contract.root),
            "type": contract.kind,
            "style": "american",  # US equity options are American-style
            "strike_price": _fmt(contract.strike),
            "multiplier": _fmt(_OPTION_MULTIPLIER),
            "size": _fmt(_OPTION_MULTIPLIER),
            "close_price": _fmt(cfg.lastday_price),
            "close_price_date": (
                self._now().astimezone(_ET).date() - timedelta(days=1)
            ).isoformat(),
        }

    def _symbol_json(self, cfg: _Symbol) -> dict[str, Any]:
        return {
            "symbol": cfg.symbol,
            "asset_id": cfg.asset_id,
            "asset_class": cfg.asset_class,
            "price": _fmt(cfg.price),
            "lastday_price": _fmt(cfg.lastday_price),
            "behavior": cfg.behavior,
            "partial_fraction": _fmt(cfg.partial_fraction),
            "tradable": cfg.tradable,
            "fractionable": cfg.fractionable,
            "shortable": cfg.shortable,
            "marginable": cfg.marginable,
            "status": cfg.status,
            "exchange": cfg.exchange,
            "name": cfg.name,
            "min_order_size": _fmt_opt(cfg.min_order_size),
            "min_trade_increment": _fmt_opt(cfg.min_trade_increment),
            "price_increment": _fmt_opt(cfg.price_increment),
            "latest_trade": cfg.latest_trade,
        }

    def _clock_json(self) -> dict[str, Any]:
        now = self._now()
        is_open, next_open, next_close = self._clock_values(now)
        return {
            "timestamp": _iso_et(now),
            "is_open": is_open,
            "next_open": _iso_et(next_open),
            "next_close": _iso_et(next_close),
        }

    # ------------------------------------------------------------------ the v2 API

    def _authorized(self, headers: Any) -> bool:
        return (
            headers.get("APCA-API-KEY-ID") == self.key
            and headers.get("APCA-API-SECRET-KEY") == self.secret
        )

    def handle_api(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any
    ) -> _Reply:
        """One API request end to end: log, faults, auth, routing."""
        with self._lock:
            entry: dict[str, Any] = {
                "seq": len(self._requests) + 1,
                "time": _iso(datetime.now(UTC)),
                "method": method,
                "path": path,
                "query": dict(query),
                "body": None,
                "body_text": raw.decode("utf-8", "replace") if raw else None,
                "fault": None,
                "status": None,
            }
            if raw:
                try:
                    entry["body"] = _loads(raw)
                except ValueError:
                    entry["body"] = None
            self._requests.append(entry)
            delay = next((d.seconds for d in self._delays if d.matches(method, path)), 0.0)
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                entry["fault"] = fault.kind
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        if delay:
            time.sleep(delay)  # outside the lock: other requests carry on
        if fault is not None and fault.kind in _PRE_FAULTS:
            reply = self._fault_reply(fault)
        else:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)  # outside the lock: other requests carry on
            reply = self._route(method, path, query, raw, headers)
            if fault is not None:
                reply = self._distort(fault, reply)
        with self._lock:
            entry["status"] = None if reply.drop else reply.status
        return reply

    def _fault_reply(self, fault: _Fault) -> _Reply:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if fault.kind == "drop":
            return _Reply(0, drop=True)
        if fault.kind == "429":
            return _Reply(
                429, {"code": 42910000, "message": "rate limit exceeded"}, headers=headers
            )
        if fault.kind == "500":
            return _Reply(500, {"code": 50010000, "message": "internal server error occurred"})
        if fault.kind == "503":
            body = {"code": 50310000, "message": "service unavailable"}
            return _Reply(503, body, headers=headers)
        html = _HTML_502 if fault.kind == "502_html" else _HTML_504
        return _Reply(
            502 if fault.kind == "502_html" else 504,
            raw=html.encode(),
            content_type="text/html",
        )

    def _distort(self, fault: _Fault, reply: _Reply) -> _Reply:
        if fault.kind == "drop_after_create":
            return _Reply(0, drop=True)
        if fault.kind == "malformed_json":
            text = reply.body() or b'{"code":'
            return _Reply(reply.status or 200, raw=text[: max(1, len(text) // 2)])
        if fault.kind == "unknown_enum" and reply.payload is not None:
            items = reply.payload if isinstance(reply.payload, list) else [reply.payload]
            for item in items:
                if isinstance(item, dict):
                    if fault.field and fault.field in item:
                        item[fault.field] = fault.value
                    item["sandbox_unknown_field"] = {"note": "a field alpaca-py does not model"}
                    item["routing_venue"] = "XSBX"
        return reply

    def _route(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any
    ) -> _Reply:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["v2", "stocks"] or parts[:2] == ["v1beta3", "crypto"]:
            return self._route_market_data(method, parts, query, headers)
        if not self._authorized(headers):
            return _Reply(401, {"code": 40110000, "message": "request is not authorized"})
        try:
            with self._lock:
                return self._dispatch(method, parts, query, raw)
        except SandboxError as error:
            return _Reply(error.status, error.body())

    def _dispatch(self, method: str, parts: list[str], query: dict[str, str], raw: bytes) -> _Reply:
        route = parts[1:] if parts[:1] == ["v2"] else None
        allowed: tuple[str, ...] = ("GET",)
        match route:
            case ["account"]:
                handler = lambda: self._account_json()  # noqa: E731
            case ["positions"]:
                handler = lambda: [self._position_json(p) for p in self._positions.values()]  # noqa: E731
            case ["positions", *ref] if ref:
                # alpaca-py puts BTC/USD into the path as it is: /v2/positions/BTC/USD
                handler = lambda: self._api_position("/".join(ref))  # noqa: E731
            case ["orders"]:
                allowed = ("GET", "POST", "DELETE")
                if method == "POST":
                    return self._api_create_order(raw)
                if method == "DELETE":
                    return self._api_cancel_all()
                handler = lambda: self._api_list_orders(query)  # noqa: E731
            case ["orders:by_client_order_id"]:
                handler = lambda: self._api_order_by_client_id(query)  # noqa: E731
            case ["orders", order_id]:
                allowed = ("GET", "DELETE")
                if method == "DELETE":
                    return self._api_cancel(order_id)
                handler = lambda: self._order_json(self._api_order(order_id))  # noqa: E731
            case ["account", "activities"]:
                handler = lambda: self._api_activities(None, query)  # noqa: E731
            case ["account", "activities", kind]:
                handler = lambda: self._api_activities(kind, query)  # noqa: E731
            case ["clock"]:
                handler = lambda: self._clock_json()  # noqa: E731
            case ["assets"]:
                handler = lambda: self._api_assets(query)  # noqa: E731
            case ["assets", *ref] if ref:
                # BTC/USD arrives as BTC%2FUSD (the spec's advice) or, from alpaca-py's
                # get_asset, as two path segments
                handler = lambda: self._api_asset("/".join(ref))  # noqa: E731
            case ["options", "contracts", ref]:
                handler = lambda: self._api_option_contract(ref)  # noqa: E731
            case _:
                # Unknown routes get the Go router's plain-text 404, not JSON.
                return _Reply(404, raw=b"404 page not found", content_type="text/plain")
        if method not in allowed:
            return _Reply(405, {"code": 40510000, "message": "method not allowed"})
        return _Reply(200, handler())

    def _api_position(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        position = self._positions.get(cfg.symbol) if cfg else None
        if position is None:
            raise SandboxError(404, 40410000, "position does not exist")
        return self._position_json(position)

    def _api_asset(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        # Option contracts are looked up at /v2/options/contracts/{symbol_or_id}, the endpoint
        # the options docs introduced "to obtain contract details"; the sandbox does not
        # serve them as assets (what live /v2/assets says of an OCC symbol is undocumented).
        if cfg is None or cfg.is_option:
            raise SandboxError(404, 40410000, "asset not found")
        return self._asset_json(cfg)

    def _api_assets(self, query: dict[str, str]) -> list[dict[str, Any]]:
        # The spec's GET /v2/assets: asset_class "Defaults to us_equity"; status "By default,
        # all statuses are included".
        asset_class = query.get("asset_class") or "us_equity"
        if asset_class not in ASSET_CLASSES:
            raise SandboxError(422, 40010001, f"invalid asset_class: {asset_class}")
        status = query.get("status")
        return [
            self._asset_json(c)
            for c in self._symbols.values()
            if c.asset_class == asset_class
            and not c.is_option
            and (not status or c.status == status)
        ]

    def _api_option_contract(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        if cfg is None or not cfg.is_option:
            # the spec's 404 example for this endpoint
            raise SandboxError(404, 40410000, f"option contract {ref} not found")
        return self._contract_json(cfg)

    # ------------------------------------------------------------- market data API

    def _route_market_data(
        self, method: str, parts: list[str], query: dict[str, str], headers: Any
    ) -> _Reply:
        crypto = parts[0] == "v1beta3"
        given = any(headers.get(h) is not None for h in ("APCA-API-KEY-ID", "APCA-API-SECRET-KEY"))
        # Stock data needs the API keys; "The market data endpoints return HTTP 403 if ... the
        # request was not authenticated [or] the provided credentials were incorrect" (Market
        # Data FAQ), with the gateway's body {"message": "forbidden."} (quoted in
        # alpacahq/Alpaca-API#228). The crypto endpoints need none (the spec gives them
        # "security": []); keys that are sent must still be right, so a misconfigured
        # client is caught here (what Alpaca does with wrong keys there is undocumented).
        if (not crypto or given) and not self._authorized(headers):
            return _Reply(403, {"message": "forbidden."})
        match parts:
            case ["v2", "stocks", "trades", "latest"]:
                handler = lambda: self._md_stock_latest(query)  # noqa: E731
            case ["v2", "stocks", symbol, "trades", "latest"]:
                handler = lambda: self._md_stock_latest_single(symbol, query)  # noqa: E731
            case ["v1beta3", "crypto", loc, "latest", "trades"]:
                handler = lambda: self._md_crypto_latest(loc, query)  # noqa: E731
            case _:
                return _Reply(404, raw=b"404 page not found", content_type="text/plain")
        if method != "GET":
            return _Reply(405, {"code": 40510000, "message": "method not allowed"})
        try:
            with self._lock:
                return _Reply(200, handler())
        except SandboxError as error:
            return _Reply(error.status, error.body())

    @staticmethod
    def _md_symbols(query: dict[str, str]) -> list[str]:
        raw = query.get("symbols", "")
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not symbols:
            # "symbols" is required by the spec; the 400 body is the sandbox's own wording
            raise SandboxError(400, 40010001, "missing symbols")
        return symbols

    def _md_stock_params(self, query: dict[str, str]) -> str:
        feed = query.get("feed") or "iex"  # without a subscription Alpaca serves iex
        if feed not in _STOCK_LATEST_FEEDS:
            raise SandboxError(400, 40010001, f"invalid feed: {feed}")
        currency = query.get("currency")
        if currency not in (None, "", "USD"):
            raise SandboxError(400, 40010001, "the sandbox has prices in USD only")
        return feed

    def _stock_trade(self, cfg: _Symbol, feed: str) -> dict[str, Any]:
        # The spec's stock_trade: t, x, p, s (integer), c, i, z, all required.
        return {
            "t": _iso(cfg.price_time or self._now()),
            "x": "V" if feed == "iex" else _EXCHANGE_CODES.get(cfg.exchange, "Q"),
            "p": cfg.price,
            "s": 100,
            "c": ["@"],
            "i": cfg.trade_id,
            "z": _TAPES.get(cfg.exchange, "B"),
        }

    def _quoted(self, symbol: str, asset_class: str) -> _Symbol | None:
        cfg = self._symbols.get(symbol)
        if cfg is None or cfg.asset_class != asset_class or not cfg.latest_trade:
            return None
        return cfg

    def _md_stock_latest(self, query: dict[str, str]) -> dict[str, Any]:
        """``{"trades": {symbol: stock_trade}}``; a symbol without a trade is left out, as
        Alpaca's Go SDK expects (GetLatestTrade returns nil when the map lacks the symbol)."""
        feed = self._md_stock_params(query)
        trades = {}
        for symbol in self._md_symbols(query):
            cfg = self._quoted(symbol, "us_equity")
            if cfg is not None:
                trades[symbol] = self._stock_trade(cfg, feed)
        return {"trades": trades}

    def _md_stock_latest_single(self, symbol: str, query: dict[str, str]) -> dict[str, Any]:
        feed = self._md_stock_params(query)
        cfg = self._quoted(symbol.upper(), "us_equity")
        if cfg is None:
            # the spec's stock_latest_trades_resp_single requires a trade; with none to give
            # the sandbox answers 404 (its own wording)
            raise SandboxError(404, 40410000, f"no trade found for {symbol.upper()}")
        return {"symbol": cfg.symbol, "trade": self._stock_trade(cfg, feed)}

    def _md_crypto_latest(self, loc: str, query: dict[str, str]) -> dict[str, Any]:
        if loc not in _CRYPTO_LOCATIONS:
            raise SandboxError(400, 40010001, f"invalid location: {loc}")
        trades = {}
        for symbol in self._md_symbols(query):
            cfg = self._quoted(symbol, "crypto")
            if cfg is not None:
                # The spec's crypto_trade: t, p, s (a number), i, tks (taker side B/S).
                trades[symbol] = {
                    "t": _iso(cfg.price_time or self._now()),
                    "p": cfg.price,
                    "s": Decimal("0.01"),
                    "i": cfg.trade_id,
                    "tks": "B",
                }
        return {"trades": trades}

    def _api_order(self, order_id: str) -> _Order:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise SandboxError(422, 40010001, "order_id is not a valid uuid") from None
        return self._require_order(order_id)

    def _api_order_by_client_id(self, query: dict[str, str]) -> dict[str, Any]:
        coid = query.get("client_order_id")
        if not coid:
            raise SandboxError(422, 40010001, "client_order_id is required")
        order = self._by_client_id.get(coid)
        if order is None:
            raise SandboxError(404, 40410000, "order not found")
        return self._order_json(order)

    def _api_cancel(self, order_id: str) -> _Reply:
        order = self._api_order(order_id)
        if not order.is_open:
            raise SandboxError(422, 42210000, f'order is already in "{order.status}" state')
        self._close_order(order, "canceled")
        return _Reply(204)

    def _api_cancel_all(self) -> _Reply:
        canceled = [o for o in self._orders.values() if o.is_open]
        for order in canceled:
            self._close_order(order, "canceled")
        return _Reply(207, [{"id": o.id, "status": 200} for o in canceled])

    def _api_list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise SandboxError(422, 40010001, "invalid status")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise SandboxError(422, 40010001, "invalid direction")
        try:
            limit = min(max(int(query.get("limit", "50")), 1), 500)
        except ValueError:
            raise SandboxError(422, 40010001, "invalid limit") from None
        after = _parse_time(query["after"], "after") if query.get("after") else None
        until = _parse_time(query["until"], "until") if query.get("until") else None
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        side = query.get("side")
        chosen = [
            o
            for o in self._orders.values()
            if (status == "all" or o.is_open == (status == "open"))
            and (after is None or o.created_at > after)
            and (until is None or o.created_at < until)
            # "A currency pair is required for crypto orders (ex. BTCUSD,BCHUSD...)" (the
            # spec's GET /v2/orders symbols); BTC/USD is matched too
            and (not symbols or o.symbol in symbols or o.symbol.replace("/", "") in symbols)
            and (not side or o.side == side)
        ]
        chosen.sort(key=lambda o: (o.created_at, o.id), reverse=direction == "desc")
        return [self._order_json(o) for o in chosen[:limit]]

    def _api_activities(self, kind: str | None, query: dict[str, str]) -> list[dict[str, Any]]:
        if kind is not None:
            types = {kind.upper()}
        else:
            types = {t.strip().upper() for t in query.get("activity_types", "").split(",") if t}
        unknown = sorted(types - set(ACTIVITY_TYPES))
        if unknown:
            raise SandboxError(422, 40010001, f"invalid activity type: {unknown[0]}")
        category = query.get("category")
        if category is not None:
            if types:
                raise SandboxError(422, 40010001, "category cannot be used with activity_types")
            if category not in ("trade_activity", "non_trade_activity"):
                raise SandboxError(422, 40010001, "invalid category")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise SandboxError(422, 40010001, "invalid direction")
        on = _parse_time(query["date"], "date").date() if query.get("date") else None
        after = _parse_time(query["after"], "after") if query.get("after") else None
        until = _parse_time(query["until"], "until") if query.get("until") else None
        page_size: int | None = 100
        if "page_size" in query:
            try:
                page_size = min(max(int(query["page_size"]), 1), 100)
            except ValueError:
                raise SandboxError(422, 40010001, "invalid page_size") from None
        elif on is not None:
            page_size = None  # with date= Alpaca returns the whole day unless told otherwise

        def wanted(activity: dict[str, Any]) -> bool:
            is_trade = activity["activity_type"] == "FILL"
            moment: datetime = activity["_ts"]
            return (
                (not types or activity["activity_type"] in types)
                and (category is None or is_trade == (category == "trade_activity"))
                and (on is None or moment.astimezone(_ET).date() == on)
                and (after is None or moment > after)
                and (until is None or moment < until)
            )

        items = [a for a in self._sorted_activities() if wanted(a)]
        if direction == "desc":
            items.reverse()
        token = query.get("page_token")
        if token:
            # The token is the id of the last activity seen; continue strictly past it.
            anchor = next((a for a in self._activities if a["id"] == token), None)
            if anchor is not None:
                key = (anchor["_ts"], anchor["id"])
                items = [
                    a
                    for a in items
                    if (
                        (a["_ts"], a["id"]) > key
                        if direction == "asc"
                        else (a["_ts"], a["id"]) < key
                    )
                ]
            else:
                items = [
                    a for a in items if (a["id"] > token if direction == "asc" else a["id"] < token)
                ]
        if page_size is not None:
            items = items[:page_size]
        return [_public(a) for a in items]

    def _api_create_order(self, raw: bytes) -> _Reply:
        try:
            body = _loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SandboxError(400, 40010000, "request body format is invalid")
        order = self._validate_and_create(body)
        self._try_execute(order)
        if order.is_open and order.time_in_force in ("ioc", "fok") and self._can_trade_now(order):
            self._close_order(order, "canceled")  # the unfilled rest of an IOC/FOK dies at once
        return _Reply(200, self._order_json(order))

    def _validate_and_create(self, body: dict[str, Any]) -> _Order:
        def bad(message: str, code: int = 40010001) -> SandboxError:
            return SandboxError(422, code, message)

        self._check_account_may_trade()
        coid = body.get("client_order_id")
        if coid is not None and (not isinstance(coid, str) or len(coid) > 128):
            raise bad("client_order_id must be a string of at most 128 characters")
        order_type = body.get("type")
        if order_type is None:
            raise bad("type is required")
        if order_type in ("stop", "stop_limit", "trailing_stop"):
            raise bad(f'order type "{order_type}" is not supported by the sandbox')
        if order_type not in ("market", "limit"):
            raise bad(f"invalid order type: {order_type}")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise bad("side is required" if side is None else f"invalid side: {side}")
        tif = body.get("time_in_force")
        if tif not in _TIME_IN_FORCE:
            raise bad(
                "time_in_force is required" if tif is None else f"invalid time_in_force: {tif}"
            )
        if body.get("order_class") not in (None, "", "simple"):
            raise bad(f'order_class "{body["order_class"]}" is not supported by the sandbox')
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise bad("symbol is required")
        cfg = self._find_symbol(symbol)
        crypto = cfg is not None and cfg.is_crypto
        if crypto and tif not in _CRYPTO_TIME_IN_FORCE:
            raise bad("invalid crypto time_in_force", 42210000)
        if cfg is not None and cfg.is_option:
            raise bad("option orders are not supported by the sandbox")
        if crypto and self._flags["crypto_status"] != "ACTIVE":
            # By analogy with Alpaca's 422 "us_equity orders not allowed for account" (code
            # 40010001, quoted in Petersoj/alpaca-java#147); the crypto wording is inferred.
            raise bad("crypto orders not allowed for account")
        qty = None if body.get("qty") is None else _dec(body["qty"], "qty")
        notional = None if body.get("notional") is None else _dec(body["notional"], "notional")
        if (qty is None) == (notional is None):
            raise bad(
                "qty or notional is required" if qty is None else "qty and notional are exclusive"
            )
        if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
            raise bad("qty must be > 0" if qty is not None else "notional must be > 0")
        limit_price = (
            None if body.get("limit_price") is None else _dec(body["limit_price"], "limit_price")
        )
        if order_type == "limit" and (limit_price is None or limit_price <= 0):
            raise bad("limit_price is required for limit orders")
        if order_type == "market" and limit_price is not None:
            raise bad("limit_price is not allowed for market orders")
        if notional is not None and order_type != "market":
            raise bad("notional orders must be market orders", 42210000)
        fractional = notional is not None or (qty is not None and qty != qty.to_integral_value())
        if fractional and tif != "day" and not crypto:
            # crypto is fractional by nature and takes no day orders at all
            raise bad("fractional orders must be DAY orders", 42210000)
        extended = body.get("extended_hours", False)
        extended = False if extended is None else _as_bool(extended, "extended_hours")
        if extended and (order_type != "limit" or tif not in ("day", "gtc")):
            raise bad("extended hours order must be DAY or GTC limit orders", 42210000)
        if coid is not None and coid in self._by_client_id:
            raise bad("client_order_id must be unique")
        if cfg is None:
            raise bad(f'asset "{symbol}" not found')
        if cfg.behavior == "reject_buying_power":
            raise SandboxError(403, 40310000, "insufficient buying power")
        if cfg.behavior == "not_tradable" or not cfg.tradable or cfg.status != "active":
            raise bad(f"asset {cfg.symbol} is not tradable", 42210000)
        if fractional and not cfg.fractionable:
            raise bad(f"asset {cfg.symbol} is not fractionable", 42210000)
        held = self._positions[cfg.symbol].qty if cfg.symbol in self._positions else _ZERO
        unit = limit_price or cfg.price
        # notional orders are sized at the current price for these checks
        wanted = qty if qty is not None else (notional or _ZERO) / cfg.price
        if crypto:
            self._check_crypto_balance(cfg, side, held, wanted, wanted * unit)
        elif side == "sell":
            if held > 0:
                available = self._position_json(self._positions[cfg.symbol])["qty_available"]
                # Alpaca will not take a long position through zero in one order.
                if wanted > Decimal(available):
                    raise SandboxError(
                        403,
                        40310000,
                        f"insufficient qty available for order (requested: {_fmt(wanted)}, "
                        f"available: {available})",
                    )
            elif not cfg.shortable:
                raise SandboxError(403, 40310000, f"asset {cfg.symbol} cannot be sold short")
            else:
                self._check_buying_power(wanted * unit)
        elif held >= 0:
            self._check_buying_power(wanted * unit)
        now = self._tick()
        order = _Order(
            id=str(uuid.uuid4()),
            client_order_id=coid or str(uuid.uuid4()),
            symbol=cfg.symbol,
            asset_id=cfg.asset_id,
            side=side,
            type=order_type,
            time_in_force=tif,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            extended_hours=extended,
            position_intent=self._intent(cfg.symbol, side),
            status="new",
            created_at=now,
            updated_at=now,
            expires_at=self._expiry(tif, now),
            origin="api",
            asset_class=cfg.asset_class,
        )
        if not self._can_trade_now(order):
            order.status = "accepted"  # queued for the next session
        self._store_order(order)
        return order

    def _check_buying_power(self, cost: Decimal) -> None:
        if cost > self._account_numbers()["buying_power"]:
            raise SandboxError(403, 40310000, "insufficient buying power")

    def _check_account_may_trade(self) -> None:
        """Refuse an order POST as Alpaca does for an account that may not trade.

        "An order request may be rejected if the account is not authorized for trading" (the
        spec's POST /v2/orders); the reply is 403 {"code": 40310000, "message": "account is not
        authorized to trade"} (alpacahq/alpaca-trade-api-csharp#330), and for a user's own
        suspension 403 {"code": 40310000, "message": "new orders are rejected by user
        request"} (Lumiwealth/lumibot#373). ACCOUNT_UPDATED and the other statuses but ACTIVE
        are not allowed to trade (the spec's AccountStatus).
        """
        flags = self._flags
        if flags["account_blocked"] or flags["trading_blocked"] or flags["status"] != "ACTIVE":
            raise SandboxError(403, 40310000, "account is not authorized to trade")
        if flags["trade_suspended_by_user"]:
            raise SandboxError(403, 40310000, "new orders are rejected by user request")

    def _check_crypto_balance(
        self, cfg: _Symbol, side: str, held: Decimal, wanted: Decimal, cost: Decimal
    ) -> None:
        """Crypto is bought with cash and sold only from what is held: no margin, no shorts.

        Alpaca refuses a sale beyond the coins held with 403 {"available": "0", "balance":
        "0", "code": 40310000, "message": "insufficient balance for BTC (requested: 0.016135,
        available: 0)"}, as logs of real replies show (e.g. a sell without a holding). The
        same wording for a purchase beyond the cash ("insufficient balance for USD") is
        inferred from it.
        """
        base, _, quote = cfg.symbol.partition("/")
        if side == "sell":
            balance = max(held, _ZERO)
            available = (
                Decimal(self._position_json(self._positions[cfg.symbol])["qty_available"])
                if held > 0
                else _ZERO
            )
            if wanted > available:
                raise SandboxError(
                    403,
                    40310000,
                    f"insufficient balance for {base} (requested: {_fmt(wanted)}, "
                    f"available: {_fmt(available)})",
                    {"available": _fmt(available), "balance": _fmt(balance)},
                )
            return
        cash = self._account_numbers()["non_marginable"]
        if cost > cash:
            raise SandboxError(
                403,
                40310000,
                f"insufficient balance for {quote or 'USD'} (requested: {_money(cost)}, "
                f"available: {_money(cash)})",
                {"available": _money(cash), "balance": _money(max(self._cash, _ZERO))},
            )

    # ------------------------------------------------------------ control over HTTP

    def handle_control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> _Reply:
        parts = [unquote(p) for p in path.strip("/").split("/")][1:]
        try:
            body = _loads(raw) if raw else {}
        except ValueError:
            return _Reply(400, {"code": 40010000, "message": "request body is not JSON"})
        if not isinstance(body, dict):
            return _Reply(400, {"code": 40010000, "message": "request body must be an object"})
        try:
            return self._control(method, parts, query, body)
        except SandboxError as error:
            return _Reply(error.status, error.body())
        except (TypeError, KeyError, ValueError) as error:
            return _Reply(400, {"code": 40010000, "message": f"bad control request: {error}"})

    def _control(
        self, method: str, parts: list[str], query: dict[str, str], body: dict[str, Any]
    ) -> _Reply:
        ok = lambda payload=None: _Reply(200, {"ok": True} if payload is None else payload)  # noqa: E731
        match method, parts:
            case "POST", ["reset"]:
                self.reset(body.get("cash"))
                return ok()
            case "GET", ["state"]:
                return ok(self.state())
            case "GET", ["requests"]:
                return ok(self.requests(query.get("method"), query.get("path")))
            case "DELETE", ["requests"]:
                self.clear_requests()
                return ok()
            case "GET", ["symbols"]:
                with self._lock:
                    return ok({s: self._symbol_json(c) for s, c in self._symbols.items()})
            case "POST", ["symbols", *symbol] if symbol:
                # a pair may come as BTC%2FUSD or as two segments, BTC/USD
                return ok(self.set_symbol("/".join(symbol), **_pick(body, _SYMBOL_FIELDS)))
            case "POST", ["positions"]:
                position = self.set_position(
                    body["symbol"], body["qty"], body.get("avg_entry_price")
                )
                return ok(position or {"ok": True, "removed": body["symbol"]})
            case "POST", ["option_positions"]:
                position = self.set_option_position(
                    body["symbol"],
                    body["qty"],
                    body.get("avg_entry_price"),
                    **_pick(body, ("price", "lastday_price")),
                )
                return ok(position or {"ok": True, "removed": body["symbol"]})
            case "POST", ["account"]:
                return ok(self.set_account_flags(**_pick(body, _ACCOUNT_FIELDS)))
            case "POST", ["orphan_fills"]:
                return ok(
                    self.add_orphan_fill(
                        body["symbol"],
                        body["side"],
                        body["qty"],
                        body.get("price"),
                        **_pick(body, ("order_id", "at", "apply")),
                    )
                )
            case "POST", ["orders", order_id, "fill"]:
                return ok(self.fill_order(order_id, body.get("qty"), body.get("price")))
            case "POST", ["orders", order_id, "cancel"]:
                return ok(self.cancel_order(order_id, body.get("status", "canceled")))
            case "POST", ["external_orders"]:
                return ok(
                    self.create_external_order(
                        body["symbol"],
                        body["side"],
                        body["qty"],
                        body.get("price"),
                        body.get("client_order_id"),
                    )
                )
            case "POST", ["splits"]:
                return ok(self.add_split(body["symbol"], body["ratio"], body.get("date")))
            case "POST", ["symbol_changes"]:
                return ok(
                    self.change_symbol(body["old_symbol"], body["new_symbol"], body.get("date"))
                )
            case "POST", ["activities"]:
                extra = _pick(
                    body,
                    (
                        "net_amount",
                        "symbol",
                        "qty",
                        "per_share_amount",
                        "sub_type",
                        "description",
                        "apply_cash",
                    ),
                )
                return ok(self.add_activity(body["activity_type"], on=body.get("date"), **extra))
            case "POST", ["clock"]:
                kwargs = _pick(body, ("is_open", "next_open", "next_close"))
                if "timestamp" in body:
                    kwargs["timestamp"] = body["timestamp"]
                return ok(self.set_clock(**kwargs))
            case "POST", ["cash"]:
                return ok(self.set_cash(body["cash"], body.get("last_equity")))
            case "POST", ["faults"]:
                kwargs = _pick(
                    body, ("method", "path", "count", "retry_after", "delay", "field", "value")
                )
                if "count" in kwargs:
                    kwargs["count"] = int(kwargs["count"])
                return ok(self.add_fault(str(body["kind"]), **kwargs))
            case "GET", ["faults"]:
                return ok(self.faults())
            case "DELETE", ["faults"]:
                self.clear_faults()
                return ok()
            case "POST", ["delays"]:
                return ok(self.set_delay(body["seconds"], **_pick(body, ("method", "path"))))
            case "GET", ["delays"]:
                return ok(self.delays())
            case "DELETE", ["delays"]:
                self.clear_delays()
                return ok()
        return _Reply(404, {"code": 40410000, "message": "no such control endpoint"})


_SYMBOL_FIELDS = (
    "behavior",
    "price",
    "partial_fraction",
    "tradable",
    "lastday_price",
    "fractionable",
    "shortable",
    "exchange",
    "name",
    "asset_class",
    "status",
    "marginable",
    "min_order_size",
    "min_trade_increment",
    "price_increment",
    "latest_trade",
)
_ACCOUNT_FIELDS = (
    "status",
    "crypto_status",
    "trading_blocked",
    "account_blocked",
    "trade_suspended_by_user",
    "transfers_blocked",
    "shorting_enabled",
    "pattern_day_trader",
    "daytrade_count",
)


def _pick(body: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: body[name] for name in names if name in body}


# ------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: AlpacaSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' pooled sessions expect
    # Headers and body go out in separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "alpaca-sandbox/1.0"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        method = self.command.upper()
        try:
            if split.path == "/_sandbox" or split.path.startswith("/_sandbox/"):
                reply = sandbox.handle_control(method, split.path, query, raw)
            else:
                reply = sandbox.handle_api(method, split.path, query, raw, self.headers)
        except Exception:
            traceback.print_exc()
            reply = _Reply(500, {"code": 50010000, "message": "internal server error occurred"})
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        if reply.drop:
            # Hang up without a status line, as a dying proxy or a reset network would.
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = reply.body()
        try:
            self.send_response(reply.status)
            if body or reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (say, its read timeout fired during a "slow" fault).
            self.close_connection = True


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    # --help prints the whole module documentation: the API served and the control API.
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--key", default=None, help="API key id (env ALPACA_API_KEY)")
    parser.add_argument("--secret", default=None, help="API secret (env ALPACA_SECRET_KEY)")
    parser.add_argument("--cash", default=str(DEFAULT_CASH))
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    key = args.key or os.environ.get("ALPACA_API_KEY") or DEFAULT_KEY
    secret = args.secret or os.environ.get("ALPACA_SECRET_KEY") or DEFAULT_SECRET

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sandbox = AlpacaSandbox(
        key, secret, host=args.host, port=args.port, cash=args.cash, verbose=args.verbose
    )
    try:
        sandbox.start()
    except OSError as error:
        print(f"alpaca sandbox: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"Alpaca sandbox listening on {sandbox.base_url}", flush=True)
    # A timed wait keeps the main thread responsive to signals.
    while not stopping.wait(0.2):
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
