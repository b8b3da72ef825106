"""The Alpaca broker, on alpaca-py's `TradingClient`.

alpaca-py 0.44 is used for every call, with four of its habits worked around here:
it sets no HTTP timeout (a hung broker would hang us), it retries 429/504 itself
(POSTs too, after a fixed wait, ignoring Retry-After), `APIError.code` raises on a
non-JSON body (nginx's HTML 502), and its models refuse enum values Alpaca adds later.
So the client runs with `raw_data=True` on a session that always has a timeout and
reads JSON numbers as `Decimal`, retries by the ledger's own rule (`retry_delay`), and
every reply is parsed by the tolerant models below.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from urllib3.exceptions import NewConnectionError

from ledger.brokers.port import (
    BrokerAccount,
    BrokerActivity,
    BrokerAnswer,
    BrokerAsset,
    BrokerError,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerReadError,
    FailureKind,
    MarketClock,
    OrderTicket,
)
from ledger.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Alpaca's error codes, stored when a reply lacks one. They stay in this module: the rest
# of the ledger acts on the `FailureKind` decided below.
DUPLICATE_OR_INVALID = "40010001"
RATE_LIMITED = "42910000"
# Alpaca's codes are coarse (40010001: any invalid request; 42210000: any unprocessable
# one; 40310000: any forbidden one), so the kind of a refusal is read from its message.
_CLIENT_ORDER_ID_TAKEN = re.compile(
    r"client_order_id.*\b(unique|duplicate|already (exists|used|in use|taken))\b"
)
_BY_MESSAGE = (
    (FailureKind.NOT_FOUND, re.compile(
        r"\b(asset|symbol)\b.*\bnot found\b|\bnot found\b.*\b(asset|symbol)\b"
        r"|could not find (asset|symbol)|\b(unknown|invalid) (asset|symbol)\b"
    )),
    (FailureKind.NOT_FRACTIONABLE, re.compile(
        r"not fractionable|fractional (trading|orders?|shares?) (is |are )?not "
        r"(supported|allowed|enabled|available)"
    )),
    (FailureKind.NOT_TRADABLE, re.compile(
        r"not trad(e)?able|\basset\b.*\bis not active\b|\binactive asset\b"
    )),
    (FailureKind.BLOCKED, re.compile(
        r"blocked|not (authorized|allowed|permitted) to trade|account is not active"
        r"|account (is )?(restricted|suspended|closed|disabled)"
        r"|trading (is )?(suspended|restricted|disabled)|pattern day trad"
    )),
    (FailureKind.BUYING_POWER, re.compile(r"buying power|insufficient (funds|balance|cash)")),
    (FailureKind.MARKET_CLOSED, re.compile(
        r"\bmarket\b.*\bclosed\b|\bclosed\b.*\bmarket\b"
        r"|outside (of )?(the )?(regular |market |trading )*hours"
    )),
)

ACTIVITY_PAGE_SIZE = 100  # Alpaca's maximum
ORDER_PAGE_SIZE = 500  # Alpaca's maximum
# Non-trade activities that change what or how much is held (DESIGN.md invariant 10).
POSITION_ACTIVITY_TYPES = ("SPLIT", "NC", "MA", "REORG", "SPIN")
# A command waits this long at most for one retry; a broker asking for longer gets its
# error reported ("retry after N s") instead of a command that seems to hang.
LONGEST_WAIT_SECONDS = 30.0
# Answers that say the request was not acted on, so sending it again cannot duplicate it.
_NOT_ACTED_ON = frozenset({429})
# Answers after which a read may simply be asked again; a POST may have been acted on.
_READ_AGAIN = frozenset({429, 500, 502, 503, 504})


def retry_delay(
    method: str, status: int | None, retry_after: str | None, attempt: int, *, base: float
) -> float | None:
    """Seconds to wait before sending a failed request again, or None when it must not be.

    Only what is safe is retried: any request Alpaca refused unseen (429: rate limited),
    and reads after a server error or a dropped connection (`status` None). An order POST
    that met a server error may have created the order: the router looks it up instead.
    The wait doubles each time, and is at least what the broker's Retry-After asks.
    """
    safe = _NOT_ACTED_ON if method.upper() not in ("GET", "HEAD") else _READ_AGAIN | {None}
    if status not in safe:
        return None
    wait = base * 2**attempt
    if retry_after is not None:
        try:
            asked = float(retry_after.strip())
        except ValueError:
            asked = 0.0  # an HTTP date: rare from Alpaca; the backoff stands
        wait = max(wait, asked)
    return wait if wait <= LONGEST_WAIT_SECONDS else None


# -- Alpaca's JSON, read tolerantly --------------------------------------------------------
# Unknown fields are ignored and enum-like fields are plain strings, so a status Alpaca
# adds next year is recorded, not refused. Amounts are Decimal: the session parses JSON
# numbers as Decimal and Alpaca sends strings, so nothing passes through a float.


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


class BrokerSession(requests.Session):
    """A requests session that never waits forever and never turns a price into a float."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # alpaca-py passes no timeout at all: without one a hung broker hangs the caller.
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        response = super().request(method, url, **kwargs)
        plain_json = response.json

        def exact_json(**options: Any) -> Any:
            # alpaca-py calls response.json(); a JSON number must become a Decimal, as written.
            options.setdefault("parse_float", Decimal)
            return plain_json(**options)

        response.json = exact_json  # type: ignore[method-assign]
        return response


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


class _ExactOrderFields:
    """Sends qty, notional and limit price as the exact decimal strings the spec asks for.

    alpaca-py's request models hold them as floats; these subclasses hold Decimals and
    turn them into strings on the way out, keeping the SDK's own checks and its POST.
    """

    def to_request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().to_request_fields()  # type: ignore[misc]
        return {k: _decimal_text(v) if isinstance(v, Decimal) else v for k, v in fields.items()}


class ExactMarketOrderRequest(_ExactOrderFields, MarketOrderRequest):
    qty: Decimal | None = None  # type: ignore[assignment]
    notional: Decimal | None = None  # type: ignore[assignment]


class ExactLimitOrderRequest(_ExactOrderFields, LimitOrderRequest):
    qty: Decimal | None = None  # type: ignore[assignment]
    notional: Decimal | None = None  # type: ignore[assignment]
    limit_price: Decimal | None = None  # type: ignore[assignment]


class RetryingTradingClient(TradingClient):
    """alpaca-py's client with the ledger's retry rule (`retry_delay`) in place of its own.

    alpaca-py's loop runs with `_retry = 0` (one attempt per call); this one decides per
    method and status, backs off, honours Retry-After, and stops after `retry_attempts`.
    """

    retry_attempts: int = 0

    def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return super()._request(method, path, *args, **kwargs)
            except APIError as error:
                response = getattr(error, "response", None)
                headers = getattr(response, "headers", None) or {}
                status, retry_after = _status(error), headers.get("Retry-After")
                failure: BaseException = error
            except requests.exceptions.ConnectionError as error:
                if isinstance(error, requests.exceptions.ConnectTimeout) or _never_connected(
                    error
                ):
                    raise  # nothing listening: asking again at once will not help
                status, retry_after, failure = None, None, error
            wait = None
            if attempt < self.retry_attempts:
                wait = retry_delay(method, status, retry_after, attempt, base=self._retry_wait)
            if wait is None:
                raise failure
            attempt += 1
            # INFO, not WARNING: a retry that works is no news; `-v` shows each one.
            log.info(
                "Alpaca answered %s %s with %s; trying again in %.2f s (retry %d of %d)",
                method,
                path,
                f"HTTP {status}" if status else "a dropped connection",
                wait,
                attempt,
                self.retry_attempts,
            )
            time.sleep(wait)


class AlpacaBroker:
    name = "alpaca"

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        paper: bool = True,
        base_url: str | None = None,
        data_url: str | None = None,
        timeout_seconds: Decimal = Decimal(10),
        retry_attempts: int = 3,
        retry_wait_seconds: Decimal = Decimal(3),
    ) -> None:
        self.paper = paper
        self.timeout = float(timeout_seconds)
        self._secrets = (api_key, secret_key)
        self.client = RetryingTradingClient(
            api_key,
            secret_key,
            paper=paper,
            url_override=base_url,
            raw_data=True,
        )
        self.client._session = BrokerSession(self.timeout)
        # alpaca-py's own loop makes one attempt; RetryingTradingClient retries what is safe,
        # `retry_attempts` times at most, with `_retry_wait` as the first backoff.
        self.client._retry = 0
        self.client.retry_attempts = retry_attempts
        self.client._retry_wait = float(retry_wait_seconds)
        self.base_url = str(self.client._base_url)
        # Market data (prices for the caps) lives on its own host; the sandbox serves both.
        self._data = [
            client(api_key, secret_key, url_override=data_url, raw_data=True)
            for client in (StockHistoricalDataClient, CryptoHistoricalDataClient)
        ]
        for client in self._data:
            client._session = BrokerSession(self.timeout)
            client._retry = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlpacaBroker:
        api_key, secret_key = settings.require_alpaca_keys()
        return cls(
            api_key=api_key,
            secret_key=secret_key,
            paper=settings.alpaca_paper_mode,
            base_url=settings.alpaca_base_url,
            data_url=settings.alpaca_data_url,
            timeout_seconds=settings.broker_timeout_seconds,
            retry_attempts=settings.alpaca_retry_attempts,
            retry_wait_seconds=settings.alpaca_retry_wait_seconds,
        )

    def close(self) -> None:
        self.client._session.close()
        for client in self._data:
            client._session.close()

    # -- orders ----------------------------------------------------------------------

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer:
        """Submit once. Never raises: every failure comes back as `BrokerAnswer.error`."""
        try:
            request = self._order_request(ticket)
        except (ValidationError, ValueError) as error:
            return BrokerAnswer(
                broker=self.name,
                error=BrokerError(
                    code="invalid_order",
                    message=self._scrub(f"alpaca-py refused the order: {_first_line(error)}"),
                    retryable=False,
                    kind=FailureKind.REJECTED,
                ),
            )
        try:
            raw = self.client.submit_order(request)
            order = AlpacaOrder.model_validate(raw).to_port()
        except Exception as error:  # every failure must become an answer
            return BrokerAnswer(broker=self.name, error=self.classify(error, posted=True))
        return self._answer(order)

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        order = self.get_order_by_client_id(client_order_id)
        return None if order is None else self._answer(order)

    def _order_request(self, ticket: OrderTicket) -> MarketOrderRequest | LimitOrderRequest:
        common: dict[str, Any] = {
            "symbol": ticket.symbol,
            "side": ticket.side,
            "time_in_force": ticket.time_in_force,
            "client_order_id": ticket.client_order_id,
        }
        if ticket.qty is not None:
            common["qty"] = ticket.qty
        else:
            common["notional"] = ticket.notional
        if ticket.extended_hours:
            common["extended_hours"] = True
        if ticket.order_type == "limit":
            return ExactLimitOrderRequest(limit_price=ticket.limit_price, **common)
        if ticket.order_type == "market":
            return ExactMarketOrderRequest(**common)
        raise ValueError(f"order type {ticket.order_type!r} is not supported")

    def _answer(self, order: BrokerOrder) -> BrokerAnswer:
        status = order.status
        return BrokerAnswer(
            broker=self.name,
            broker_order_id=order.broker_order_id,
            status=status,
            rejection_reason="rejected by Alpaca" if status == "rejected" else None,
            filled_qty=order.filled_qty,
            filled_avg_price=order.filled_avg_price,
        )

    # -- reads -------------------------------------------------------------------------

    def get_account(self) -> BrokerAccount:
        account = self._read("GET /v2/account", self.client.get_account, AlpacaAccount)
        return account.to_port()

    def get_clock(self) -> datetime:
        clock = self._read("GET /v2/clock", self.client.get_clock, AlpacaClock)
        return clock.timestamp

    def get_market_clock(self) -> MarketClock:
        clock = self._read("GET /v2/clock", self.client.get_clock, AlpacaClock)
        if clock.is_open is None:
            raise BrokerReadError("Alpaca's clock did not say whether the market is open")
        return MarketClock(clock.timestamp, clock.is_open, clock.next_open, clock.next_close)

    def list_positions(self) -> list[BrokerPosition]:
        raw = self._read("GET /v2/positions", self.client.get_all_positions)
        return [p.to_port() for p in self._parse_list("GET /v2/positions", raw, AlpacaPosition)]

    def list_open_orders(self) -> list[BrokerOrder]:
        """Every open order, paged by submission time: Alpaca answers at most 500 at once."""
        found: dict[str, BrokerOrder] = {}
        after: datetime | None = None
        while True:
            query = GetOrdersRequest(
                status=QueryOrderStatus.OPEN,
                limit=ORDER_PAGE_SIZE,
                direction=Sort.ASC,
                nested=False,
                after=after,
            )
            raw = self._read("GET /v2/orders", lambda q=query: self.client.get_orders(q))
            page = self._parse_list("GET /v2/orders", raw, AlpacaOrder)
            new = [o for o in page if o.id not in found]
            for order in new:
                found[order.id] = order.to_port()
            if len(page) < ORDER_PAGE_SIZE:
                return list(found.values())
            if not new:
                raise BrokerReadError(
                    "Alpaca's open orders could not be read completely (paging made no progress)"
                )
            # `after` is exclusive: step back a tick so orders sharing a timestamp are kept.
            after = page[-1].created_at - timedelta(microseconds=1)

    def get_order(self, broker_order_id: str) -> BrokerOrder | None:
        return self._read_optional(
            f"GET /v2/orders/{broker_order_id}",
            lambda: self.client.get_order_by_id(broker_order_id),
        )

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        return self._read_optional(
            "GET /v2/orders:by_client_order_id",
            lambda: self.client.get_order_by_client_id(client_order_id),
        )

    def get_asset(self, symbol: str) -> BrokerAsset | None:
        what = f"GET /v2/assets/{symbol}"
        try:
            raw = self.client.get_asset(symbol)
        except APIError as error:
            if _status(error) == 404:
                return None
            raise self._read_error(what, error) from None
        except Exception as error:
            raise self._read_error(what, error) from None
        return self._parse(what, raw, AlpacaAsset).to_port()

    def latest_prices(self, symbols: list[str]) -> dict[str, Decimal]:
        """Latest trades from Alpaca's market data API: stocks and crypto pairs apart."""
        stocks = [s for s in symbols if "/" not in s]
        pairs = [s for s in symbols if "/" in s]
        prices: dict[str, Decimal] = {}
        stock_data, crypto_data = self._data
        for wanted, what, call in (
            (stocks, "GET /v2/stocks/trades/latest", lambda: stock_data.get_stock_latest_trade(
                StockLatestTradeRequest(symbol_or_symbols=stocks))),
            (pairs, "GET /v1beta3/crypto/us/latest/trades",
             lambda: crypto_data.get_crypto_latest_trade(
                 CryptoLatestTradeRequest(symbol_or_symbols=pairs))),
        ):
            if not wanted:
                continue
            raw = self._read(what, call)
            if not isinstance(raw, dict):
                raise BrokerReadError(f"Alpaca's reply to {what} is not a map of trades")
            for symbol, trade in raw.items():
                if symbol in wanted:
                    prices[symbol] = self._parse(what, trade, AlpacaTrade).p
        return prices

    def list_fills(self, after: datetime) -> list[BrokerFill]:
        raw = self._activities("/account/activities/FILL", {"after": after.isoformat()})
        return [f.to_port() for f in self._parse_list("account activities", raw, AlpacaFill)]

    def list_position_activities(self, after: datetime) -> list[BrokerActivity]:
        query = {"activity_types": ",".join(POSITION_ACTIVITY_TYPES), "after": after.isoformat()}
        raw = self._activities("/account/activities", query)
        return [a.to_port() for a in self._parse_list("account activities", raw, AlpacaActivity)]

    def _activities(self, path: str, params: dict[str, str]) -> list[Any]:
        """All pages, oldest first. alpaca-py has no activities method: use its own GET."""
        items: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        what = f"GET /v2{path}"
        while True:
            query: dict[str, Any] = {
                **params,
                "direction": "asc",
                "page_size": ACTIVITY_PAGE_SIZE,
            }
            if token is not None:
                query["page_token"] = token
            page = self._read(what, lambda q=query: self.client.get(path, q))
            if not isinstance(page, list):
                raise BrokerReadError(f"Alpaca's reply to {what} is not a list of activities")
            items.extend(page)
            if len(page) < ACTIVITY_PAGE_SIZE:
                return items
            last = page[-1]
            token = last.get("id") if isinstance(last, dict) else None
            if not token or token in seen:
                raise BrokerReadError(
                    f"Alpaca's account activities could not be read completely ({what} paging)"
                )
            seen.add(token)

    # -- plumbing ----------------------------------------------------------------------

    def _read(self, what: str, call: Callable[[], Any], model: type[T] | None = None) -> Any:
        try:
            raw = call()
        except Exception as error:  # any failure makes the read unusable
            raise self._read_error(what, error) from None
        if model is None:
            return raw
        return self._parse(what, raw, model)

    def _read_optional(self, what: str, call: Callable[[], Any]) -> BrokerOrder | None:
        try:
            raw = call()
        except APIError as error:
            if _status(error) == 404:
                return None
            raise self._read_error(what, error) from None
        except Exception as error:
            raise self._read_error(what, error) from None
        return self._parse(what, raw, AlpacaOrder).to_port()

    def _parse(self, what: str, raw: Any, model: type[T]) -> T:
        try:
            return model.model_validate(raw)  # type: ignore[attr-defined,no-any-return]
        except ValidationError as error:
            raise BrokerReadError(
                f"Alpaca's reply to {what} could not be read: {_validation_line(error)}"
            ) from None

    def _parse_list(self, what: str, raw: Any, model: type[T]) -> list[T]:
        if not isinstance(raw, list):
            raise BrokerReadError(f"Alpaca's reply to {what} is not a list")
        return [self._parse(what, item, model) for item in raw]

    def _read_error(self, what: str, error: BaseException) -> BrokerReadError:
        mapped = self.classify(error, posted=False)
        # Only refused keys are configuration; a blocked account or a busy broker is not.
        auth = mapped.kind is FailureKind.UNAUTHORIZED
        return BrokerReadError(
            self._scrub(f"{what}: {mapped.message}"),
            auth=auth,
            http_status=mapped.http_status,
            kind=mapped.kind,
        )

    def classify(self, error: BaseException, *, posted: bool) -> BrokerError:
        """One Alpaca failure in the ledger's terms: what, whether retrying may help, and
        whether an order may exist although we were not told (only after a POST)."""
        mapped = _classify(error, self.base_url, self.timeout, posted=posted)
        return BrokerError(
            code=mapped.code,
            message=self._scrub(mapped.message),
            retryable=mapped.retryable,
            http_status=mapped.http_status,
            outcome_unknown=mapped.outcome_unknown,
            kind=mapped.kind,
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            # A very short "secret" would blank out ordinary words; real keys are 20+ chars.
            if len(secret) >= 8:
                text = text.replace(secret, "***")
        return text


# -- error mapping ---------------------------------------------------------------------


def _status(error: APIError) -> int | None:
    try:
        return error.status_code
    except Exception:  # a malformed error must not hide the real one
        return None


def _error_body(error: APIError) -> tuple[str | None, str | None]:
    """Alpaca's code and message, read defensively: `APIError.code` raises on HTML."""
    text = str(error)
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (None if code is None else str(code)), (None if message is None else str(message))


def _classify(error: BaseException, base_url: str, timeout: float, *, posted: bool) -> BrokerError:
    if isinstance(error, APIError):
        return _classify_api_error(error, posted=posted)
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return BrokerError(
            code="malformed_reply",
            message="Alpaca's reply is not valid JSON",
            retryable=True,
            outcome_unknown=posted,
            kind=FailureKind.BROKER_FAILED,
        )
    if isinstance(error, ValidationError):
        return BrokerError(
            code="malformed_reply",
            message=f"Alpaca's reply could not be read: {_validation_line(error)}",
            retryable=True,
            outcome_unknown=posted,
            kind=FailureKind.BROKER_FAILED,
        )
    if isinstance(error, requests.exceptions.ConnectTimeout):
        # The connection was never made, so no order can exist.
        return BrokerError(
            code="timeout",
            message=f"could not connect to Alpaca at {base_url} within {timeout:g} s",
            retryable=True,
            # Nothing answered at all: a network or address problem, not a slow broker.
            kind=FailureKind.UNREACHABLE,
        )
    if isinstance(error, requests.exceptions.Timeout):
        return BrokerError(
            code="timeout",
            message=f"no answer from Alpaca at {base_url} within {timeout:g} s",
            retryable=True,
            outcome_unknown=posted,
            kind=FailureKind.TIMEOUT,
        )
    if isinstance(error, requests.exceptions.ConnectionError):
        if _never_connected(error):
            return BrokerError(
                code="unreachable",
                message=f"cannot reach Alpaca at {base_url} (connection refused or no route)",
                retryable=True,
                kind=FailureKind.UNREACHABLE,
            )
        return BrokerError(
            code="connection_lost",
            message=f"the connection to Alpaca at {base_url} was lost before an answer came",
            retryable=True,
            outcome_unknown=posted,
            kind=FailureKind.UNREACHABLE,
        )
    if isinstance(error, requests.exceptions.RequestException):
        return BrokerError(
            code="transport_error",
            message=f"talking to Alpaca at {base_url} failed: {type(error).__name__}",
            retryable=True,
            outcome_unknown=posted,
            kind=FailureKind.UNREACHABLE,
        )
    log.exception("unexpected error talking to Alpaca")
    return BrokerError(
        code="unexpected_error",
        message=f"unexpected {type(error).__name__} while talking to Alpaca",
        retryable=True,
        outcome_unknown=posted,
        # A bug of ours or alpaca-py's as much as the broker's: nothing says which.
        kind=FailureKind.UNKNOWN,
    )


def _never_connected(error: requests.exceptions.ConnectionError) -> bool:
    reason: Any = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)


def failure_kind(status: int | None, code: str | None, message: str | None) -> FailureKind:
    """Alpaca's refusal as a kind: by HTTP status where that decides, else by its message.

    `message` is Alpaca's own (the body's `message`), not the line built from it.
    """
    said = (message or "").lower()
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status is not None and status >= 500:
        return FailureKind.BROKER_FAILED
    if status == 403 and _by_message(said) is FailureKind.BLOCKED:
        # A 403 that says the account may not trade is about the account, not the keys.
        return FailureKind.BLOCKED
    if status == 401 or (status == 403 and code is None):
        return FailureKind.UNAUTHORIZED
    if _CLIENT_ORDER_ID_TAKEN.search(said):
        return FailureKind.DUPLICATE_ID
    by_message = _by_message(said)
    if by_message is not None:
        return by_message
    if status == 404:
        return FailureKind.NOT_FOUND
    if status is not None and 400 <= status < 500:
        return FailureKind.REJECTED
    return FailureKind.UNKNOWN


def _by_message(said: str) -> FailureKind | None:
    return next((kind for kind, pattern in _BY_MESSAGE if pattern.search(said)), None)


def _classify_api_error(error: APIError, *, posted: bool) -> BrokerError:
    status = _status(error)
    code, said = _error_body(error)
    kind = failure_kind(status, code, said)
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    if said is None:
        reason = getattr(response, "reason", "") or ""
        message = f"HTTP {status} {reason}".strip() + " with a body that is not Alpaca's JSON"
    elif code is not None:
        message = f"{said} (HTTP {status}, code {code})"
    else:
        message = f"{said} (HTTP {status})"

    if kind is FailureKind.BLOCKED and code is None:
        return BrokerError(
            code="forbidden",
            message=f"Alpaca refuses to let this account trade: {message}",
            retryable=False,
            http_status=status,
            kind=kind,
        )
    if kind is FailureKind.UNAUTHORIZED:
        return BrokerError(
            code="unauthorized" if status == 401 else "forbidden",
            message=f"Alpaca refused the API keys: {message}",
            retryable=False,
            http_status=status,
            kind=kind,
        )
    if kind is FailureKind.RATE_LIMITED:
        retry_after = headers.get("Retry-After")
        hint = f"; retry after {retry_after} s" if retry_after else ""
        return BrokerError(
            code=code or RATE_LIMITED,
            message=f"Alpaca's rate limit was reached{hint}: {message}",
            retryable=True,
            http_status=status,
            kind=kind,
        )
    if kind is FailureKind.BROKER_FAILED:
        retry_after = headers.get("Retry-After")
        hint = f"; retry after {retry_after} s" if retry_after else ""
        return BrokerError(
            code=code or f"http_{status}",
            message=f"Alpaca failed on its side{hint}: {message}",
            retryable=True,
            http_status=status,
            # A gateway error after a POST does not say whether the order was created.
            outcome_unknown=posted,
            kind=kind,
        )
    if kind is FailureKind.DUPLICATE_ID:
        return BrokerError(
            code=code or DUPLICATE_OR_INVALID,
            message=f"Alpaca already has an order with this client order id: {message}",
            retryable=False,
            http_status=status,
            kind=kind,
        )
    return BrokerError(
        code=code or f"http_{status}",
        message=message,
        retryable=False,
        http_status=status,
        kind=kind,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _validation_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "reply"
    return f"{where}: {first.get('msg')}"
