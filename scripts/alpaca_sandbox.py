"""A local, in-memory stand-in for Alpaca's trading API v2.

It speaks the same JSON as ``paper-api.alpaca.markets`` closely enough that alpaca-py's
``TradingClient`` (pointed at it with ``url_override``) parses every reply with its own
models, and it adds a control API under ``/_sandbox/`` so tests can script the broker:
per-symbol fill behaviour, prices, positions the ledger did not create, broker-side
fills and cancels, corporate actions, the market clock, and transport faults.

Run it::

    python scripts/alpaca_sandbox.py [--host 127.0.0.1] [--port 8765] [--key K] [--secret S]

or embed it::

    from scripts.alpaca_sandbox import AlpacaSandbox

    with AlpacaSandbox() as sb:
        client = TradingClient(sb.key, sb.secret, paper=True, url_override=sb.base_url)

Only the standard library is used, so the script runs in any Python 3.11 environment.
Every amount is a ``Decimal``; amounts leave the server as strings, as Alpaca sends them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
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
    "BEHAVIORS",
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
    """An error reply in Alpaca's ``{"code": ..., "message": ...}`` shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"HTTP {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


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
            self._positions: dict[str, _Position] = {}
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
    ) -> dict[str, Any]:
        """Create or change a symbol; a new price may fill resting limit orders."""
        symbol = symbol.upper()
        with self._lock:
            cfg = self._symbols.get(symbol)
            if cfg is None:
                if price is None:
                    raise SandboxError(422, 40010001, f"a new symbol {symbol} needs a price")
                first = _dec(price, "price")
                cfg = _Symbol(
                    symbol=symbol,
                    asset_id=_asset_id(symbol),
                    price=first,
                    lastday_price=first,
                    name=f"{symbol} Sandbox Common Stock",
                )
                self._symbols[symbol] = cfg
            if behavior is not None:
                if behavior not in BEHAVIORS:
                    raise SandboxError(422, 40010001, f"behavior must be one of {BEHAVIORS}")
                cfg.behavior = behavior
            if price is not None:
                cfg.price = self._positive(price, "price")
            if lastday_price is not None:
                cfg.lastday_price = self._positive(lastday_price, "lastday_price")
            if partial_fraction is not None:
                fraction = _dec(partial_fraction, "partial_fraction")
                if not 0 < fraction < 1:
                    raise SandboxError(422, 40010001, "partial_fraction must be in (0, 1)")
                cfg.partial_fraction = fraction
            if tradable is not None:
                cfg.tradable = tradable
            if fractionable is not None:
                cfg.fractionable = fractionable
            if shortable is not None:
                cfg.shortable = shortable
            if exchange is not None:
                cfg.exchange = exchange
            if name is not None:
                cfg.name = name
            for order in list(self._orders.values()):
                if order.symbol == symbol:
                    self._try_execute(order)
            return self._symbol_json(cfg)

    def set_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
    ) -> dict[str, Any] | None:
        """Put a position in the account as if it came from outside the ledger.

        No order, no activity and no cash movement; ``qty`` 0 removes the position.
        """
        symbol = symbol.upper()
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = _dec(qty, "qty")
            if amount == 0:
                self._positions.pop(symbol, None)
                return None
            avg = cfg.price if avg_entry_price is None else self._positive(avg_entry_price, "avg")
            self._positions[symbol] = _Position(symbol, amount, avg)
            return self._position_json(self._positions[symbol])

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
        symbol = symbol.upper()
        if side not in ("buy", "sell"):
            raise SandboxError(422, 40010001, "side must be buy or sell")
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = self._positive(qty, "qty")
            at = cfg.price if price is None else self._positive(price, "price")
            coid = client_order_id or str(uuid.uuid4())
            if coid in self._by_client_id:
                raise SandboxError(422, 40010001, "client_order_id must be unique")
            now = self._tick()
            order = _Order(
                id=str(uuid.uuid4()),
                client_order_id=coid,
                symbol=symbol,
                asset_id=cfg.asset_id,
                side=side,
                type="market",
                time_in_force="day",
                qty=amount,
                notional=None,
                limit_price=None,
                extended_hours=False,
                position_intent=self._intent(symbol, side),
                status="new",
                created_at=now,
                updated_at=now,
                expires_at=self._expiry("day", now),
                origin="external",
            )
            self._store_order(order)
            self._apply_fill(order, amount, at)
            return self._order_json(order)

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
        cfg = self._symbols.get(symbol.upper())
        if cfg is None:
            raise SandboxError(404, 40410000, "asset not found")
        return cfg

    def _require_order(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise SandboxError(404, 40410000, "order not found")
        return order

    def _find_symbol(self, symbol_or_id: str) -> _Symbol | None:
        cfg = self._symbols.get(symbol_or_id.upper())
        if cfg is not None:
            return cfg
        return next((c for c in self._symbols.values() if c.asset_id == symbol_or_id), None)

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
        self._cash -= signed * price
        cumulative = order.filled_qty + qty
        order.status = "filled" if cumulative >= total else "partially_filled"
        order.updated_at = at
        if order.status == "filled":
            order.filled_at = at
        # Alpaca labels executions that open or grow a short as "sell_short"
        side = order.side
        if side == "sell" and held_before <= 0:
            side = "sell_short"
        activity = {
            "id": self._activity_id(at),
            "activity_type": "FILL",
            "transaction_time": _iso(at),
            "type": "fill" if order.status == "filled" else "partial_fill",
            "price": _fmt(price),
            "qty": _fmt(qty),
            "side": side,
            "symbol": order.symbol,
            "leaves_qty": _fmt(total - cumulative),
            "order_id": order.id,
            "cum_qty": _fmt(cumulative),
            "order_status": order.status,
            "_ts": at,
        }
        self._activities.append(activity)
        order.fills.append(_Fill(qty, price, at, activity["id"]))

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

    def _market_values(self) -> tuple[Decimal, Decimal]:
        long_value, short_value = _ZERO, _ZERO
        for position in self._positions.values():
            cfg = self._symbols.get(position.symbol)
            value = position.qty * (cfg.price if cfg else position.avg_entry_price)
            if value > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

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
        long_value, short_value = self._market_values()
        equity = self._cash + long_value + short_value
        gross = long_value - short_value
        initial_margin = gross * _INITIAL_MARGIN
        regt = max(equity - initial_margin, _ZERO) * _MARGIN_MULTIPLIER
        reserved = self._reserved_for_buys()
        return {
            "cash": self._cash,
            "long": long_value,
            "short": short_value,
            "equity": equity,
            "initial_margin": initial_margin,
            "maintenance_margin": gross * _MAINTENANCE_MARGIN,
            "regt": regt,
            "buying_power": max(regt - reserved, _ZERO),
            "non_marginable": max(self._cash - reserved, _ZERO),
        }

    def _account_json(self) -> dict[str, Any]:
        n = self._account_numbers()
        now = self._now()
        return {
            "id": self.account_id,
            "admin_configurations": {},
            "user_configurations": None,
            "account_number": self.account_number,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
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
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": _iso(self._created_at),
            "trade_suspended_by_user": False,
            "multiplier": _fmt(_MARGIN_MULTIPLIER),
            "shorting_enabled": True,
            "equity": _money(n["equity"]),
            "last_equity": _money(self._last_equity),
            "long_market_value": _money(n["long"]),
            "short_market_value": _money(n["short"]),
            "position_market_value": _money(n["long"] - n["short"]),
            "initial_margin": _money(n["initial_margin"]),
            "maintenance_margin": _money(n["maintenance_margin"]),
            "last_maintenance_margin": "0",
            "sma": _money(n["equity"]),
            "daytrade_count": 0,
            "balance_asof": (now.astimezone(_ET).date() - timedelta(days=1)).isoformat(),
            "crypto_tier": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def _position_json(self, position: _Position) -> dict[str, Any]:
        cfg = self._symbols[position.symbol]
        qty, price, last = position.qty, cfg.price, cfg.lastday_price
        market_value = qty * price
        cost_basis = qty * position.avg_entry_price
        unrealized = market_value - cost_basis
        intraday = (price - last) * qty
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
            "asset_id": cfg.asset_id,
            "symbol": position.symbol,
            "exchange": cfg.exchange,
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _fmt(qty),
            "avg_entry_price": _money(position.avg_entry_price),
            "side": "long" if qty > 0 else "short",
            "market_value": _money(market_value),
            "cost_basis": _money(cost_basis),
            "unrealized_pl": _money(unrealized),
            "unrealized_plpc": _ratio(unrealized / abs(cost_basis)) if cost_basis else "0",
            "unrealized_intraday_pl": _money(intraday),
            "unrealized_intraday_plpc": _ratio(intraday / abs(last * qty)) if last else "0",
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
            "asset_class": "us_equity",
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
        return {
            "id": cfg.asset_id,
            "class": "us_equity",
            "exchange": cfg.exchange,
            "symbol": cfg.symbol,
            "name": cfg.name or cfg.symbol,
            "status": "active",
            "tradable": cfg.tradable and cfg.behavior != "not_tradable",
            "marginable": True,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "30",
            "shortable": cfg.shortable,
            "easy_to_borrow": cfg.shortable,
            "fractionable": cfg.fractionable,
            "attributes": [],
        }

    def _symbol_json(self, cfg: _Symbol) -> dict[str, Any]:
        return {
            "symbol": cfg.symbol,
            "asset_id": cfg.asset_id,
            "price": _fmt(cfg.price),
            "lastday_price": _fmt(cfg.lastday_price),
            "behavior": cfg.behavior,
            "partial_fraction": _fmt(cfg.partial_fraction),
            "tradable": cfg.tradable,
            "fractionable": cfg.fractionable,
            "shortable": cfg.shortable,
            "exchange": cfg.exchange,
            "name": cfg.name,
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
        if not self._authorized(headers):
            return _Reply(401, {"code": 40110000, "message": "request is not authorized"})
        parts = [unquote(p) for p in path.strip("/").split("/")]
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
            case ["positions", ref]:
                handler = lambda: self._api_position(ref)  # noqa: E731
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
                handler = lambda: [self._asset_json(c) for c in self._symbols.values()]  # noqa: E731
            case ["assets", ref]:
                handler = lambda: self._api_asset(ref)  # noqa: E731
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
        if cfg is None:
            raise SandboxError(404, 40410000, "asset not found")
        return self._asset_json(cfg)

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
            and (not symbols or o.symbol in symbols)
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
        if fractional and tif != "day":
            raise bad("fractional orders must be DAY orders", 42210000)
        extended = body.get("extended_hours", False)
        extended = False if extended is None else _as_bool(extended, "extended_hours")
        if extended and (order_type != "limit" or tif not in ("day", "gtc")):
            raise bad("extended hours order must be DAY or GTC limit orders", 42210000)
        if coid is not None and coid in self._by_client_id:
            raise bad("client_order_id must be unique")
        cfg = self._find_symbol(symbol)
        if cfg is None:
            raise bad(f'asset "{symbol}" not found')
        if cfg.behavior == "reject_buying_power":
            raise SandboxError(403, 40310000, "insufficient buying power")
        if cfg.behavior == "not_tradable" or not cfg.tradable:
            raise bad(f"asset {cfg.symbol} is not tradable", 42210000)
        if fractional and not cfg.fractionable:
            raise bad(f"asset {cfg.symbol} is not fractionable", 42210000)
        held = self._positions[cfg.symbol].qty if cfg.symbol in self._positions else _ZERO
        unit = limit_price or cfg.price
        # notional orders are sized at the current price for these checks
        wanted = qty if qty is not None else (notional or _ZERO) / cfg.price
        if side == "sell":
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
        )
        if not self._can_trade_now(order):
            order.status = "accepted"  # queued for the next session
        self._store_order(order)
        return order

    def _check_buying_power(self, cost: Decimal) -> None:
        if cost > self._account_numbers()["buying_power"]:
            raise SandboxError(403, 40310000, "insufficient buying power")

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
            case "POST", ["symbols", symbol]:
                return ok(self.set_symbol(symbol, **_pick(body, _SYMBOL_FIELDS)))
            case "POST", ["positions"]:
                position = self.set_position(
                    body["symbol"], body["qty"], body.get("avg_entry_price")
                )
                return ok(position or {"ok": True, "removed": body["symbol"]})
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
    parser = argparse.ArgumentParser(description="Local Alpaca-compatible trading API v2.")
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
