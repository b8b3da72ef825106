"""The Alpaca broker: the broker port (orders, account reads, assets and prices) on
alpaca-py's clients.

Every reply is parsed by the tolerant models of `ledger.brokers.alpaca.models`, and every
failure becomes a `BrokerError` or `BrokerReadError` with the kind
`ledger.brokers.alpaca.errors` decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from pydantic import ValidationError

from ledger.brokers.alpaca.client import (
    BrokerSession,
    ExactLimitOrderRequest,
    ExactMarketOrderRequest,
    RetryingTradingClient,
)
from ledger.brokers.alpaca.errors import as_broker_error, first_line, http_status, validation_line
from ledger.brokers.alpaca.models import (
    AlpacaAccount,
    AlpacaActivity,
    AlpacaAsset,
    AlpacaClock,
    AlpacaFill,
    AlpacaOrder,
    AlpacaPosition,
    AlpacaTrade,
)
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

T = TypeVar("T")
PortType = TypeVar("PortType", covariant=True)


class ToPort(Protocol[PortType]):
    """A reply model of `ledger.brokers.alpaca.models`: it reads as a type of the port."""

    def to_port(self) -> PortType: ...

ACTIVITY_PAGE_SIZE = 100  # Alpaca's maximum
ORDER_PAGE_SIZE = 500  # Alpaca's maximum
# Non-trade activities that change what or how much is held (docs/design.md, "Corporate
# actions are not drift").
POSITION_ACTIVITY_TYPES = ("SPLIT", "NC", "MA", "REORG", "SPIN")


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
                    message=self._scrub(f"alpaca-py refused the order: {first_line(error)}"),
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
            AlpacaOrder,
        )

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        return self._read_optional(
            "GET /v2/orders:by_client_order_id",
            lambda: self.client.get_order_by_client_id(client_order_id),
            AlpacaOrder,
        )

    def get_asset(self, symbol: str) -> BrokerAsset | None:
        return self._read_optional(
            f"GET /v2/assets/{symbol}", lambda: self.client.get_asset(symbol), AlpacaAsset
        )

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

    def _read_optional(
        self, what: str, call: Callable[[], Any], model: type[ToPort[PortType]]
    ) -> PortType | None:
        """A read for which Alpaca's 404 means "there is none": None, not a failure."""
        try:
            raw = call()
        except APIError as error:
            if http_status(error) == 404:
                return None
            raise self._read_error(what, error) from None
        except Exception as error:
            raise self._read_error(what, error) from None
        return self._parse(what, raw, model).to_port()

    def _parse(self, what: str, raw: Any, model: type[T]) -> T:
        try:
            return model.model_validate(raw)  # type: ignore[attr-defined,no-any-return]
        except ValidationError as error:
            raise BrokerReadError(
                f"Alpaca's reply to {what} could not be read: {validation_line(error)}"
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
        mapped = as_broker_error(error, self.base_url, self.timeout, posted=posted)
        return replace(mapped, message=self._scrub(mapped.message))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            # A very short "secret" would blank out ordinary words; real keys are 20+ chars.
            if len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

