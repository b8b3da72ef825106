"""The Alpaca sandbox, exercised through alpaca-py's TradingClient over real HTTP.

Replies are parsed with alpaca-py's own models, and checked field by field against the
vendored part of Alpaca's published OpenAPI spec (trading API 2.0.1).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.models import Trade
from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    AssetClass,
    AssetExchange,
    AssetStatus,
    ContractType,
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Asset, NonTradeActivity, OptionContract, Order, TradeActivity
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from pydantic import ValidationError

from sandbox import AlpacaSandbox, SandboxError, control
from testing.doubles import make_client

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads(Path(__file__).with_name("alpaca_trading_api_subset.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
POST_ORDER_SCHEMA = SPEC["paths"]["/v2/orders"]["post"]["requestBody"]["content"][
    "application/json"
]["schema"]
# The market data API's own spec (latest-trades replies only).
DATA_SCHEMAS: dict[str, Any] = json.loads(
    Path(__file__).with_name("alpaca_market_data_api_subset.json").read_text()
)["components"]["schemas"]
# The spec's Exchange enums predate crypto: alpaca-py's AssetExchange has CRYPTO, which Alpaca
# has sent for crypto assets since 2023-04-25 (alpacahq/alpaca-py#277) and for crypto
# positions (alpacahq/alpaca-trade-api-python#704). That one value is allowed.
CRYPTO_EXCHANGE = frozenset({("$.exchange", "enum: 'CRYPTO'")})


# --------------------------------------------------------------------- helpers


def market(symbol: str, qty: Any = None, side: OrderSide = OrderSide.BUY, **extra: Any) -> Any:
    extra.setdefault("time_in_force", TimeInForce.DAY)
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, **extra)


def limit(symbol: str, qty: Any, price: Any, side: OrderSide = OrderSide.BUY, **extra: Any) -> Any:
    return LimitOrderRequest(
        symbol=symbol,
        qty=qty,
        limit_price=price,
        side=side,
        time_in_force=extra.pop("time_in_force", TimeInForce.DAY),
        **extra,
    )


def api_error(call: Any) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    return caught.value


def fills(client: TradingClient, **params: Any) -> list[dict[str, Any]]:
    return client.get("/account/activities/FILL", params or None)


def paginate(client: TradingClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Alpaca's activity paging: page_token is the id of the last activity seen."""
    pages: list[list[dict[str, Any]]] = []
    token: str | None = None
    while True:
        query = dict(params, **({"page_token": token} if token else {}))
        page = client.get(path, query)
        if not page:
            return pages
        pages.append(page)
        token = page[-1]["id"]


# ------------------------------------------------- a small OpenAPI 3.0 validator

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float | Decimal) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _resolve(schema: dict[str, Any], schemas: dict[str, Any] = SCHEMAS) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def violations(
    value: Any, schema: dict[str, Any], where: str = "$", schemas: dict[str, Any] = SCHEMAS
) -> list[tuple[str, str]]:
    """(path, problem) pairs for what the spec requires: presence, types, enums, nullability,
    string lengths and the uuid/date-time/date formats. ``schemas`` resolves ``$ref``s (the
    trading spec's by default)."""
    schema = _resolve(schema, schemas)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            results = [violations(value, branch, where, schemas) for branch in schema[combinator]]
            return [] if any(not r for r in results) else min(results, key=len)
    if value is None:
        return [] if schema.get("nullable") else [(where, "null but not nullable")]
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        return [(where, f"type: expected {kind}, got {type(value).__name__}")]
    found: list[tuple[str, str]] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append((where, f"enum: {value!r}"))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append((where, "minLength"))
        if len(value) > schema.get("maxLength", len(value)):
            found.append((where, "maxLength"))
        fmt = schema.get("format")
        if fmt == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                found.append((where, "format: uuid"))
        elif fmt == "date-time" and not _RFC3339.match(value):
            found.append((where, f"format: date-time {value!r}"))
    if isinstance(value, dict):
        found += [
            (where, f"required: {name}") for name in schema.get("required", ()) if name not in value
        ]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += violations(value[name], sub, f"{where}.{name}", schemas)
    if isinstance(value, list):
        for index, item in enumerate(value):
            found += violations(item, schema.get("items", {}), f"{where}[{index}]", schemas)
    return found


def conforms(
    value: Any, schema_name: str, allowed: frozenset[tuple[str, str]] = frozenset()
) -> None:
    problems = [p for p in violations(value, SCHEMAS[schema_name]) if p not in allowed]
    assert not problems, f"{schema_name}: {problems}"


def test_validator_catches_what_it_should() -> None:
    order = {"notional": None, "type": "market", "time_in_force": "day", "status": "new"}
    assert violations(order, SCHEMAS["Order"]) == []
    assert ("$", "required: notional") in violations(
        {"type": "market", "time_in_force": "day"}, SCHEMAS["Order"]
    )
    assert ("$.status", "enum: 'weird'") in violations(
        {**order, "status": "weird"}, SCHEMAS["Order"]
    )
    assert ("$.qty", "null but not nullable") not in violations(
        {**order, "qty": None}, SCHEMAS["Order"]
    )
    assert violations({**order, "extended_hours": "no"}, SCHEMAS["Order"]) == [
        ("$.extended_hours", "type: expected boolean, got str")
    ]
    assert violations({"id": "x", "status": "ACTIVE"}, SCHEMAS["Account"]) == [
        ("$.id", "format: uuid")
    ]


# --------------------------------------------------------------- account, assets


def test_account_parses_with_alpaca_models(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    account = client.get_account()
    assert str(account.id) == sandbox.account_id
    assert account.status == "ACTIVE"
    assert account.cash == "100000"
    assert account.equity == "100000"
    assert account.buying_power == "200000"  # a 2x Reg T margin account
    assert account.multiplier == "2"
    assert account.currency == "USD"


def test_amounts_are_decimal_strings_and_timestamps_rfc3339_utc(
    raw_client: TradingClient,
) -> None:
    raw_client.submit_order(market("AAPL", "0.5"))
    account = raw_client.get_account()
    order = raw_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))[0]
    position = raw_client.get_all_positions()[0]
    for payload, names in (
        (account, ("cash", "equity", "buying_power", "long_market_value", "portfolio_value")),
        (order, ("qty", "filled_qty", "filled_avg_price")),
        (position, ("qty", "avg_entry_price", "market_value", "cost_basis", "unrealized_pl")),
    ):
        for name in names:
            assert isinstance(payload[name], str), (name, payload[name])
            Decimal(payload[name])
    assert account["cash"] == "99905"
    for stamp in (order["created_at"], order["filled_at"], order["submitted_at"]):
        assert _RFC3339.match(stamp) and stamp.endswith("Z")
    uuid.UUID(order["id"])
    uuid.UUID(order["asset_id"])


def test_get_asset_and_unknown_asset(client: TradingClient) -> None:
    asset = client.get_asset("AAPL")
    assert asset.symbol == "AAPL"
    assert asset.exchange == AssetExchange.NASDAQ
    assert asset.tradable and asset.fractionable and asset.shortable
    assert client.get_asset(asset.id).symbol == "AAPL"
    error = api_error(lambda: client.get_asset("NOPE"))
    assert (error.status_code, error.code, error.message) == (404, 40410000, "asset not found")


def test_clock(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    assert client.get_clock().is_open is True
    sandbox.set_clock(
        is_open=False,
        next_open="2026-01-06T14:30:00Z",
        next_close="2026-01-06T21:00:00Z",
        timestamp="2026-01-06T01:00:00Z",
    )
    clock = client.get_clock()
    assert clock.is_open is False
    assert clock.next_open.isoformat() == "2026-01-06T09:30:00-05:00"  # New York time
    assert clock.next_close.isoformat() == "2026-01-06T16:00:00-05:00"
    assert clock.timestamp.isoformat() == "2026-01-05T20:00:00-05:00"


# ------------------------------------------------------------------------ orders


def test_market_order_fills_and_moves_position_and_cash(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    order = client.submit_order(market("AAPL", 10, client_order_id="buy-1"))
    assert isinstance(order, Order)
    assert order.status == OrderStatus.FILLED
    assert order.client_order_id == "buy-1"
    assert (order.qty, order.filled_qty, order.filled_avg_price) == ("10", "10", "190")
    assert order.order_class == OrderClass.SIMPLE  # sent as "" like Alpaca; alpaca-py maps it
    assert order.filled_at is not None

    position = client.get_open_position("AAPL")
    assert (position.qty, position.side, position.avg_entry_price) == (
        "10",
        PositionSide.LONG,
        "190",
    )
    assert (position.cost_basis, position.market_value, position.unrealized_pl) == (
        "1900",
        "1900",
        "0",
    )
    sandbox.set_symbol("AAPL", price="195.5")
    position = client.get_open_position("AAPL")
    assert (position.market_value, position.unrealized_pl) == ("1955", "55")
    assert position.unrealized_plpc == "0.0289473684210526"
    assert position.change_today == "0.0289473684210526"
    assert [p.symbol for p in client.get_all_positions()] == ["AAPL"]

    account = client.get_account()
    assert account.cash == "98100"
    assert account.long_market_value == "1955"
    assert account.equity == "100055"


def test_fractional_qty_and_notional_orders(client: TradingClient) -> None:
    half = client.submit_order(market("AAPL", 0.5))
    assert (half.qty, half.filled_qty, half.status) == ("0.5", "0.5", OrderStatus.FILLED)
    dollars = client.submit_order(market("NVDA", notional=1000))
    assert dollars.qty is None and dollars.notional == "1000"
    assert dollars.filled_qty == "7.692307692"  # 1000 / 130, cut to 9 places like Alpaca
    assert client.get_open_position("NVDA").qty == "7.692307692"
    assert client.get_account().cash == "98905.00000004"  # 100000 - 95 - 999.99999996

    gtc = api_error(lambda: client.submit_order(market("AAPL", 0.5, time_in_force=TimeInForce.GTC)))
    assert (gtc.status_code, gtc.code) == (422, 42210000)


def test_limit_order_fills_only_when_price_crosses(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    buy = client.submit_order(limit("AAPL", 5, 180))
    assert buy.status == OrderStatus.NEW and buy.filled_qty == "0" and buy.limit_price == "180"
    sandbox.set_symbol("AAPL", price="185")
    assert client.get_order_by_id(buy.id).status == OrderStatus.NEW
    sandbox.set_symbol("AAPL", price="179.25")
    filled = client.get_order_by_id(buy.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "179.25")

    sell = client.submit_order(
        limit("AAPL", 5, 200, side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
    )
    assert sell.status == OrderStatus.NEW
    assert client.get_open_position("AAPL").qty_available == "0"  # held for the open sell
    sandbox.set_symbol("AAPL", price="201")
    assert client.get_order_by_id(sell.id).status == OrderStatus.FILLED
    assert client.get_all_positions() == []


def test_get_orders_filters(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_clock(timestamp="2026-01-05T15:00:00Z")
    first = client.submit_order(market("AAPL", 1))
    sandbox.set_clock(timestamp="2026-01-05T16:00:00Z")
    resting = client.submit_order(limit("MSFT", 1, 100))
    sandbox.set_clock(timestamp="2026-01-05T17:00:00Z")
    last = client.submit_order(market("TSLA", 2, side=OrderSide.SELL))

    def ids(**filters: Any) -> list[str]:
        return [str(o.id) for o in client.get_orders(GetOrdersRequest(**filters))]

    assert ids() == [str(resting.id)]  # default: open only
    assert ids(status=QueryOrderStatus.CLOSED) == [str(last.id), str(first.id)]  # newest first
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == [
        str(first.id),
        str(resting.id),
        str(last.id),
    ]
    assert ids(status=QueryOrderStatus.ALL, limit=1) == [str(last.id)]
    assert ids(status=QueryOrderStatus.ALL, symbols=["AAPL", "TSLA"]) == [
        str(last.id),
        str(first.id),
    ]
    assert ids(status=QueryOrderStatus.ALL, side=OrderSide.SELL) == [str(last.id)]
    window = {"after": "2026-01-05T15:30:00Z", "until": "2026-01-05T16:30:00Z"}
    assert ids(status=QueryOrderStatus.ALL, **window) == [str(resting.id)]
    assert ids(status=QueryOrderStatus.ALL, nested=True, limit=500)[0] == str(last.id)


def test_get_order_by_id_and_client_order_id(client: TradingClient) -> None:
    placed = client.submit_order(market("AAPL", 1, client_order_id="mine-1"))
    assert client.get_order_by_id(placed.id).client_order_id == "mine-1"
    assert client.get_order_by_client_id("mine-1").id == placed.id
    missing = api_error(lambda: client.get_order_by_client_id("nobody"))
    assert (missing.status_code, missing.code) == (404, 40410000)
    missing = api_error(lambda: client.get_order_by_id(uuid.uuid4()))
    assert (missing.status_code, missing.message) == (404, "order not found")


def test_cancel_open_order_then_not_cancelable(client: TradingClient) -> None:
    resting = client.submit_order(limit("AAPL", 1, 100))
    assert client.cancel_order_by_id(resting.id) is None  # 204, empty body
    canceled = client.get_order_by_id(resting.id)
    assert canceled.status == OrderStatus.CANCELED and canceled.canceled_at is not None
    again = api_error(lambda: client.cancel_order_by_id(resting.id))
    assert (again.status_code, again.code) == (422, 42210000)
    assert again.message == 'order is already in "canceled" state'
    others = [client.submit_order(limit("MSFT", 1, 100)) for _ in range(2)]
    responses = client.cancel_orders()  # DELETE /v2/orders: 207 multi-status
    assert {(r.id, r.status) for r in responses} == {(o.id, 200) for o in others}
    assert client.get_orders() == []


def test_duplicate_client_order_id_is_rejected(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    client.submit_order(market("AAPL", 1, client_order_id="once"))
    error = api_error(lambda: client.submit_order(market("MSFT", 1, client_order_id="once")))
    assert (error.status_code, error.code, error.message) == (
        422,
        40010001,
        "client_order_id must be unique",
    )
    assert len(sandbox.state()["orders"]) == 1


@pytest.mark.parametrize(("key", "secret"), [("wrong", "sandbox-secret"), ("sandbox-key", "wrong")])
def test_bad_keys_get_401(sandbox: AlpacaSandbox, key: str, secret: str) -> None:
    error = api_error(lambda: make_client(sandbox, key=key, secret=secret).get_account())
    assert (error.status_code, error.code, error.message) == (
        401,
        40110000,
        "request is not authorized",
    )


def test_missing_keys_get_401(sandbox: AlpacaSandbox) -> None:
    response = requests.get(f"{sandbox.base_url}/v2/account", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"code": 40110000, "message": "request is not authorized"}


def test_position_that_does_not_exist(client: TradingClient) -> None:
    error = api_error(lambda: client.get_open_position("AAPL"))
    assert (error.status_code, error.code, error.message) == (
        404,
        40410000,
        "position does not exist",
    )


def test_short_selling(client: TradingClient) -> None:
    client.submit_order(market("TSLA", 4, side=OrderSide.SELL))
    position = client.get_open_position("TSLA")
    assert (position.qty, position.side, position.market_value) == (
        "-4",
        PositionSide.SHORT,
        "-1000",
    )
    account = client.get_account()
    assert (account.cash, account.short_market_value, account.equity) == (
        "101000",
        "-1000",
        "100000",
    )
    (activity,) = fills(client)
    assert activity["side"] == "sell_short"
    cover = client.submit_order(market("TSLA", 4))
    assert cover.position_intent == "buy_to_close"
    assert client.get_all_positions() == []


def test_a_sell_cannot_take_a_long_through_zero(client: TradingClient) -> None:
    client.submit_order(market("AAPL", 3))
    error = api_error(lambda: client.submit_order(market("AAPL", 5, side=OrderSide.SELL)))
    assert (error.status_code, error.code) == (403, 40310000)
    assert error.message == "insufficient qty available for order (requested: 5, available: 3)"


def test_buying_power_is_enforced(client: TradingClient) -> None:
    error = api_error(lambda: client.submit_order(market("SPY", 1000)))  # $580k > $200k
    assert (error.status_code, error.code, error.message) == (
        403,
        40310000,
        "insufficient buying power",
    )


def test_concurrent_orders_are_thread_safe(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    def buy_ten() -> None:
        own = make_client(sandbox)
        for _ in range(10):
            own.submit_order(market("AAPL", "0.1"))

    threads = [threading.Thread(target=buy_ten) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.get_open_position("AAPL").qty == "6"
    assert client.get_account().cash == "98860"
    assert len(fills(client)) == 60
    assert len({a["id"] for a in fills(client)}) == 60


# ------------------------------------------------------------ symbol behaviours


def test_partial_behaviour_then_broker_fills_the_rest(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", behavior="partial", partial_fraction="0.25")
    order = client.submit_order(market("AAPL", 8))
    assert (order.status, order.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "2")
    (first,) = fills(client)
    assert (first["type"], first["qty"], first["leaves_qty"], first["cum_qty"]) == (
        "partial_fill",
        "2",
        "6",
        "2",
    )
    sandbox.fill_order(str(order.id), qty="1", price="191")
    sandbox.fill_order(str(order.id))
    done = client.get_order_by_id(order.id)
    assert (done.status, done.filled_qty, done.filled_avg_price) == (
        OrderStatus.FILLED,
        "8",
        "190.125",
    )
    assert [a["order_status"] for a in fills(client, direction="asc")] == [
        "partially_filled",
        "partially_filled",
        "filled",
    ]


def test_hold_behaviour_keeps_the_order_open(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("MSFT", behavior="hold")
    order = client.submit_order(market("MSFT", 1))
    assert order.status == OrderStatus.NEW
    sandbox.set_symbol("MSFT", price="1")
    assert client.get_order_by_id(order.id).status == OrderStatus.NEW
    assert fills(client) == []
    sandbox.cancel_order(str(order.id), status="expired")
    assert client.get_order_by_id(order.id).status == OrderStatus.EXPIRED


def test_reject_buying_power_behaviour(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    error = api_error(lambda: client.submit_order(market("AAPL", 1)))
    assert (error.status_code, error.code, error.message) == (
        403,
        40310000,
        "insufficient buying power",
    )
    assert sandbox.state()["orders"] == []


def test_not_tradable_behaviour_and_unknown_asset(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", behavior="not_tradable")
    error = api_error(lambda: client.submit_order(market("AAPL", 1)))
    assert (error.status_code, error.code, error.message) == (
        422,
        42210000,
        "asset AAPL is not tradable",
    )
    assert client.get_asset("AAPL").tradable is False
    unknown = api_error(lambda: client.submit_order(market("ZZZZ", 1)))
    assert (unknown.status_code, unknown.code, unknown.message) == (
        422,
        40010001,
        'asset "ZZZZ" not found',
    )


def test_market_closed_queues_orders_until_the_open(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_clock(is_open=False)
    queued = client.submit_order(market("AAPL", 1))
    assert queued.status == OrderStatus.ACCEPTED
    early = client.submit_order(limit("MSFT", 1, 420, extended_hours=True))
    assert early.status == OrderStatus.FILLED  # extended-hours limit orders trade while closed
    sandbox.set_clock(is_open=True)
    assert client.get_order_by_id(queued.id).status == OrderStatus.FILLED


# ------------------------------------------------------------- control methods


def test_set_position_is_not_an_activity(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_position("MSFT", "12", "400")
    position = client.get_open_position("MSFT")
    assert (position.qty, position.avg_entry_price, position.unrealized_pl) == ("12", "400", "120")
    assert client.get("/account/activities") == []
    assert client.get_account().cash == "100000"
    sandbox.set_position("MSFT", 0)
    assert client.get_all_positions() == []


def test_external_order_fills_and_shows_up(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    placed = sandbox.create_external_order("META", "buy", "2", price="555", client_order_id="web-1")
    assert placed["status"] == "filled"
    assert client.get_order_by_client_id("web-1").filled_avg_price == "555"
    assert client.get_open_position("META").qty == "2"
    (activity,) = fills(client)
    assert (activity["order_id"], activity["price"]) == (placed["id"], "555")
    assert sandbox.requests() != [] and all(r["method"] == "GET" for r in sandbox.requests())


def test_set_cash(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_cash("2500.75", last_equity="2400")
    account = client.get_account()
    assert (account.cash, account.last_equity, account.buying_power) == (
        "2500.75",
        "2400",
        "5001.5",
    )


def test_control_api_over_http(client: TradingClient, sandbox: AlpacaSandbox, control: Any) -> None:
    control("POST", "/symbols/XYZ", {"price": "10.50", "behavior": "hold"})
    control("POST", "/cash", {"cash": "5000"})
    control("POST", "/positions", {"symbol": "XYZ", "qty": "3", "avg_entry_price": "9"})
    order = client.submit_order(market("XYZ", 2))
    assert order.status == OrderStatus.NEW
    filled = control("POST", f"/orders/{order.id}/fill", {"qty": "1", "price": 10.25})
    assert (filled["status"], filled["filled_qty"]) == ("partially_filled", "1")
    control("POST", f"/orders/{order.id}/cancel", {})
    control("POST", "/external_orders", {"symbol": "XYZ", "side": "sell", "qty": "1"})
    control("POST", "/splits", {"symbol": "XYZ", "ratio": "2", "date": "2026-01-05"})
    control("POST", "/symbol_changes", {"old_symbol": "XYZ", "new_symbol": "XYZN"})
    control(
        "POST",
        "/activities",
        {
            "activity_type": "DIV",
            "symbol": "XYZN",
            "net_amount": "1.5",
            "qty": "6",
            "per_share_amount": "0.25",
        },
    )
    control("POST", "/clock", {"is_open": False, "timestamp": "2026-01-05T23:00:00Z"})
    assert client.get_clock().is_open is False
    control("POST", "/clock", {"is_open": True, "timestamp": None})
    fault = control("POST", "/faults", {"kind": "500", "method": "GET", "path": "/v2/clock"})
    assert fault["count"] == 1 and control("GET", "/faults") == [fault]
    control("DELETE", "/faults")

    state = control("GET", "/state")
    assert state["positions"][0]["symbol"] == "XYZN" and state["positions"][0]["qty"] == "6"
    assert state["account"]["cash"] == "5001.75"  # 5000 - 10.25 + 10.50 (external sale) + 1.5
    assert [a["activity_type"] for a in state["activities"]] == [
        "FILL",
        "FILL",
        "SPLIT",
        "SPLIT",
        "NC",
        "NC",
        "DIV",
    ]
    assert {o["_origin"] for o in state["orders"]} == {"api", "external"}
    posts = control("GET", "/requests?method=POST&path=/v2/orders")
    assert len(posts) == 1 and posts[0]["body"]["qty"] == 2.0  # JSON number on the wire
    control("DELETE", "/requests")
    assert control("GET", "/requests") == []
    control("POST", "/reset", {})
    assert client.get_account().cash == "100000"

    error = requests.post(
        f"{sandbox.base_url}/_sandbox/symbols/AAPL", json={"behavior": "x"}, timeout=5
    )
    assert error.status_code == 422 and "behavior" in error.json()["message"]


def test_request_log_counts_order_posts(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    client.get_account()
    client.get_all_positions()
    client.get_orders()
    assert sandbox.requests(method="POST") == []  # what a dry run must look like
    client.submit_order(market("AAPL", 1, client_order_id="logged"))
    (post,) = sandbox.requests(method="POST", path="/v2/orders")
    assert post["body"]["client_order_id"] == "logged"
    assert post["status"] == 200 and post["fault"] is None
    assert [r["path"] for r in sandbox.requests()][:3] == [
        "/v2/account",
        "/v2/positions",
        "/v2/orders",
    ]
    assert sandbox.requests(method="GET", path="/v2/orders")[0]["query"] == {}


# -------------------------------------------------------------------- activities


def test_activity_ids_and_paging(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_clock(timestamp="2026-01-05T14:30:00Z")  # 09:30 in New York
    for qty in range(1, 8):
        client.submit_order(market("AAPL", qty))
    everything = fills(client, direction="asc")
    # the order is stamped 14:30:00.000Z and its fill one tick (1 ms) later
    assert everything[0]["transaction_time"] == "2026-01-05T14:30:00.001000Z"
    assert everything[0]["id"].startswith("20260105093000001::")
    assert all(re.fullmatch(r"\d{17}::[0-9a-f-]{36}", a["id"]) for a in everything)
    assert [a["qty"] for a in everything] == [str(q) for q in range(1, 8)]

    for direction in ("desc", "asc"):
        pages = paginate(client, "/account/activities/FILL", direction=direction, page_size=3)
        assert [len(p) for p in pages] == [3, 3, 1]
        flat = [a["id"] for page in pages for a in page]
        expected = [a["id"] for a in everything]
        assert flat == (expected if direction == "asc" else expected[::-1])

    # default direction is desc, default and maximum page size 100
    assert fills(client)[0]["id"] == everything[-1]["id"]
    assert len(fills(client, page_size=1000)) == 7
    # after/until are exclusive bounds on the activity time
    third = everything[2]["transaction_time"]
    assert [a["qty"] for a in fills(client, after=third, direction="asc")] == ["4", "5", "6", "7"]
    assert [a["qty"] for a in fills(client, until=third, direction="asc")] == ["1", "2"]
    assert len(fills(client, date="2026-01-05")) == 7
    assert fills(client, date="2026-01-06") == []


def test_activities_endpoint_with_types_and_category(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    client.submit_order(market("AAPL", 2))
    sandbox.add_split("AAPL", 2)
    sandbox.add_activity("FEE", net_amount="-0.01", description="TAF")
    both = client.get("/account/activities", {"activity_types": "FILL,SPLIT", "direction": "asc"})
    assert [a["activity_type"] for a in both] == ["FILL", "SPLIT", "SPLIT"]
    trades = client.get("/account/activities", {"category": "trade_activity"})
    assert [a["activity_type"] for a in trades] == ["FILL"]
    others = client.get("/account/activities", {"category": "non_trade_activity"})
    assert [a["activity_type"] for a in others] == ["FEE", "SPLIT", "SPLIT"]
    assert client.get_account().cash == "99619.99"
    bad = api_error(lambda: client.get("/account/activities/NOPE"))
    assert (bad.status_code, bad.code) == (422, 40010001)


def test_split_activity_adjusts_position(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    client.submit_order(market("AAPL", 10))
    removed, added = sandbox.add_split("AAPL", 4, on="2026-01-05")
    position = client.get_open_position("AAPL")
    assert (position.qty, position.avg_entry_price, position.current_price) == (
        "40",
        "47.5",
        "47.5",
    )
    assert position.cost_basis == "1900"
    splits = client.get("/account/activities/SPLIT", {"direction": "asc"})
    assert splits == [removed, added]
    assert (removed["qty"], removed["price"], added["qty"], added["price"]) == (
        "-10",
        "190",
        "40",
        "47.5",
    )
    assert removed["activity_sub_type"] == "FSPLIT" and removed["date"] == "2026-01-05"
    assert removed["group_id"] == added["group_id"] and removed["net_amount"] == "0"
    assert client.get_account().cash == "98100"  # a split moves no cash

    reverse = sandbox.add_split("AAPL", "0.5")
    assert reverse[0]["activity_sub_type"] == "RSPLIT"
    assert client.get_open_position("AAPL").qty == "20"


def test_symbol_change_activity_moves_position(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("ABCD", price="10")
    client.submit_order(market("ABCD", 3))
    asset_id = client.get_asset("ABCD").id
    out, into = sandbox.change_symbol("ABCD", "WXYZ")
    assert (out["activity_type"], out["activity_sub_type"]) == ("NC", "SNC")
    assert (out["symbol"], out["qty"], into["symbol"], into["qty"]) == ("ABCD", "-3", "WXYZ", "3")
    assert out["group_id"] == into["group_id"]
    assert client.get("/account/activities/NC", {"direction": "asc"}) == [out, into]
    moved = client.get_open_position("WXYZ")
    assert (moved.qty, moved.asset_id) == ("3", asset_id)
    assert client.get_open_position(asset_id).symbol == "WXYZ"
    assert api_error(lambda: client.get_asset("ABCD")).status_code == 404


def test_activities_parse_with_alpaca_models_when_given_an_account_id(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    """Trading-API activities carry no account_id, which alpaca-py's models require."""
    client.submit_order(market("AAPL", 1))
    client.submit_order(market("TSLA", 1, side=OrderSide.SELL))
    sandbox.add_split("AAPL", 2)
    buy, short = fills(client, direction="asc")
    with pytest.raises(ValidationError):
        TradeActivity(**buy)
    parsed = TradeActivity(**buy, account_id=sandbox.account_id)
    assert parsed.side == OrderSide.BUY and parsed.price == 190.0  # a float, in alpaca-py
    with pytest.raises(ValidationError):  # alpaca-py's OrderSide has no "sell_short"
        TradeActivity(**short, account_id=sandbox.account_id)
    split = client.get("/account/activities/SPLIT")[0]
    assert NonTradeActivity(**split, account_id=sandbox.account_id).activity_type == "SPLIT"


# ------------------------------------------------------------------------ faults


@pytest.mark.faults
@pytest.mark.parametrize("retry_after", [None, "7"])
def test_fault_429(client: TradingClient, sandbox: AlpacaSandbox, retry_after: str | None) -> None:
    sandbox.add_fault("429", method="POST", path="/v2/orders", retry_after=retry_after)
    error = api_error(lambda: client.submit_order(market("AAPL", 1)))
    assert (error.status_code, error.code) == (429, 42910000)
    assert error.response.headers.get("Retry-After") == retry_after
    assert sandbox.state()["orders"] == []
    assert client.submit_order(market("AAPL", 1)).status == OrderStatus.FILLED  # fault used up


@pytest.mark.faults
def test_alpaca_py_retries_429_and_504_but_ignores_retry_after(
    retrying_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.add_fault("429", method="POST", path="/v2/orders", count=2, retry_after="30")
    started = time.monotonic()
    assert retrying_client.submit_order(market("AAPL", 1)).status == OrderStatus.FILLED
    assert time.monotonic() - started < 5  # it slept _retry_wait (0 here), not Retry-After
    sandbox.add_fault("504", method="GET", path="/v2/account")
    assert retrying_client.get_account().cash == "99810"
    assert [r["fault"] for r in sandbox.requests()] == ["429", "429", None, "504", None]


@pytest.mark.faults
def test_fault_500_is_not_retried(retrying_client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("500", path="/v2/account")
    error = api_error(retrying_client.get_account)
    assert (error.status_code, error.code) == (500, 50010000)
    assert len(sandbox.requests()) == 1


@pytest.mark.faults
def test_fault_502_html_breaks_api_error_code(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.add_fault("502_html", method="POST", path="/v2/orders")
    error = api_error(lambda: client.submit_order(market("AAPL", 1)))
    assert error.status_code == 502
    assert "502 Bad Gateway" in str(error)
    with pytest.raises(json.JSONDecodeError):
        _ = error.code  # APIError.code json-decodes the body and blows up on HTML
    assert sandbox.state()["orders"] == []


@pytest.mark.faults
def test_fault_503_and_504(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("503", path="/v2/positions", retry_after="2")
    error = api_error(client.get_all_positions)
    assert (error.status_code, error.code) == (503, 50310000)
    assert error.response.headers["Retry-After"] == "2"
    sandbox.add_fault("504", path="/v2/positions")
    error = api_error(client.get_all_positions)  # with retries off, 504 surfaces at once
    assert error.status_code == 504 and "Gateway Time-out" in str(error)


@pytest.mark.faults
def test_fault_slow(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("slow", path="/v2/account", delay=0.3)
    started = time.monotonic()
    assert client.get_account().cash == "100000"
    assert time.monotonic() - started >= 0.3
    # alpaca-py sets no timeout at all; one has to be forced onto its requests session
    sandbox.add_fault("slow", path="/v2/account", delay=1.0)
    client._session.request = functools.partial(client._session.request, timeout=0.2)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get_account()


def test_a_route_delay_holds_every_request_and_finishes_after_the_client_left(
    client: TradingClient, sandbox: AlpacaSandbox, control: Any
) -> None:
    """A slow broker: each order POST waits, and one whose client gave up still lands,
    as on a real server; a second POST under the same client order id is refused."""
    assert control("POST", "/delays", {"seconds": 0.6, "method": "POST",
                                       "path": "/v2/orders"})["seconds"] == 0.6
    assert control("GET", "/delays") == [{"method": "POST", "path": "/v2/orders",
                                          "seconds": 0.6}]
    client._session.request = functools.partial(client._session.request, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.submit_order(market("AAPL", 3, client_order_id="slow-1"))
    with pytest.raises(APIError):  # not there yet: a 404 proves nothing
        client.get_order_by_client_id("slow-1")
    time.sleep(0.8)
    assert client.get_order_by_client_id("slow-1").status == OrderStatus.FILLED
    assert time.monotonic() - started >= 0.6
    reads = time.monotonic()
    client.get_account()  # other routes are not held
    assert time.monotonic() - reads < 0.5
    control("DELETE", "/delays")
    assert sandbox.delays() == []
    retry = api_error(lambda: client.submit_order(market("AAPL", 3, client_order_id="slow-1")))
    assert (retry.status_code, retry.code) == (422, 40010001)


@pytest.mark.faults
def test_fault_drop_after_create(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("drop_after_create", method="POST", path="/v2/orders")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market("AAPL", 3, client_order_id="lost-reply"))
    created = client.get_order_by_client_id("lost-reply")  # the order went through anyway
    assert (created.status, created.filled_qty) == (OrderStatus.FILLED, "3")
    retry = api_error(lambda: client.submit_order(market("AAPL", 3, client_order_id="lost-reply")))
    assert (retry.status_code, retry.code) == (422, 40010001)
    assert client.get_open_position("AAPL").qty == "3"
    assert [r["status"] for r in sandbox.requests(method="POST")] == [None, 422]


@pytest.mark.faults
def test_fault_drop(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("drop", method="POST", path="/v2/orders")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market("AAPL", 3, client_order_id="never"))
    assert api_error(lambda: client.get_order_by_client_id("never")).status_code == 404
    assert (
        client.submit_order(market("AAPL", 3, client_order_id="never")).status == OrderStatus.FILLED
    )


@pytest.mark.faults
def test_fault_malformed_json(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("malformed_json", method="POST", path="/v2/orders")
    with pytest.raises(requests.exceptions.JSONDecodeError) as caught:
        client.submit_order(market("AAPL", 1, client_order_id="garbled"))
    # a RequestException too: code that treats those as "network trouble" must look first
    assert isinstance(caught.value, requests.exceptions.RequestException)
    assert client.get_order_by_client_id("garbled").status == OrderStatus.FILLED


@pytest.mark.faults
def test_fault_unknown_enum(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.add_fault("unknown_enum", method="POST", path="/v2/orders")
    with pytest.raises(ValidationError):
        client.submit_order(market("AAPL", 1, client_order_id="odd"))
    assert client.get_order_by_client_id("odd").status == OrderStatus.FILLED
    sandbox.add_fault("unknown_enum", path="/v2/orders", method="GET")
    (odd,) = raw_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert odd["status"] == "pending_risk_review" and odd["routing_venue"] == "XSBX"
    sandbox.add_fault("unknown_enum", path="/v2/orders:by_client_order_id", field=None)
    assert client.get_order_by_client_id("odd").status == OrderStatus.FILLED  # extras ignored


# -------------------------------------------------------- spec conformance


def _busy_account(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    client.submit_order(market("AAPL", 10, client_order_id="spec-market"))
    client.submit_order(limit("MSFT", "1", "100.5", client_order_id="spec-limit"))
    client.submit_order(market("NVDA", notional="250.5"))
    client.submit_order(market("TSLA", 2, side=OrderSide.SELL))
    sandbox.set_symbol("META", behavior="partial")
    client.submit_order(limit("META", 4, 600, time_in_force=TimeInForce.GTC))
    canceled = client.submit_order(limit("SPY", 1, 1))
    client.cancel_order_by_id(canceled.id)
    sandbox.add_split("AAPL", 2)
    sandbox.add_activity(
        "DIV", symbol="AAPL", qty="20", per_share_amount="0.12", net_amount="2.4", sub_type="CDIV"
    )


def test_replies_conform_to_the_published_spec(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    _busy_account(client, sandbox)
    conforms(raw_client.get_account(), "Account")
    orders = raw_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert len(orders) == 6
    for order in orders:
        conforms(order, "Order")
    conforms(raw_client.get_order_by_client_id("spec-limit"), "Order")
    conforms(raw_client.submit_order(market("AAPL", 1)), "Order")
    positions = raw_client.get_all_positions()
    assert {p["symbol"] for p in positions} == {"AAPL", "NVDA", "TSLA", "META"}
    for position in positions:
        conforms(position, "Position")
    conforms(raw_client.get_clock(), "legacy_clock")
    conforms(raw_client.get_asset("SPY"), "Assets")
    for asset in raw_client.get("/assets"):
        conforms(asset, "Assets")

    activities = client.get("/account/activities")
    assert {a["activity_type"] for a in activities} == {"FILL", "SPLIT", "DIV"}
    # The spec calls NTA "date" a date-time, yet its own example and Alpaca's replies use a
    # plain YYYY-MM-DD; that one deviation is allowed.
    nta_date = frozenset({("$.date", "format: date-time")})
    for activity in activities:
        if activity["activity_type"] == "FILL":
            conforms(activity, "TradingActivities")
            assert set(activity) == set(SCHEMAS["TradingActivities"]["properties"])
        else:
            problems = [
                p
                for p in violations(activity, SCHEMAS["NonTradeActivities"])
                if (p[0], p[1].split(" '")[0]) not in nta_date
            ]
            assert not problems, problems
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", activity["date"])


def test_error_replies_conform_to_the_spec(client: TradingClient, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("SPY", behavior="reject_buying_power")
    client.submit_order(market("AAPL", 1, client_order_id="dup"))
    errors = [
        api_error(lambda: make_client(sandbox, key="bad").get_account()),
        api_error(lambda: client.get_open_position("MSFT")),
        api_error(lambda: client.get_asset("NOPE")),
        api_error(lambda: client.submit_order(market("AAPL", 1, client_order_id="dup"))),
        api_error(lambda: client.submit_order(market("SPY", 1))),
        api_error(lambda: client.submit_order(market("ZZZZ", 1))),
    ]
    assert [e.status_code for e in errors] == [401, 404, 404, 422, 403, 422]
    for error in errors:
        conforms(error.response.json(), "Error")


def test_order_requests_alpaca_py_sends_meet_the_spec(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    client.submit_order(market("AAPL", 2, client_order_id="req-market"))
    client.submit_order(market("AAPL", 0.25))
    client.submit_order(market("NVDA", notional=100))
    client.submit_order(limit("MSFT", 1, 99.5, client_order_id="req-limit", extended_hours=True))
    bodies = [r["body"] for r in sandbox.requests(method="POST", path="/v2/orders")]
    assert len(bodies) == 4
    # alpaca-py models qty/notional/limit_price as floats, so they go out as JSON numbers
    # while the spec types them as strings (Alpaca accepts both); nothing else may differ.
    numbers = frozenset(
        (f"$.{name}", "type: expected string, got Decimal")
        for name in ("qty", "notional", "limit_price")
    )
    for body in bodies:
        problems = [p for p in violations(body, POST_ORDER_SCHEMA) if p not in numbers]
        assert not problems, (body, problems)
        # required by the spec, and by its prose for every non-mleg order
        assert {"type", "time_in_force", "symbol", "side"} <= set(body)
        assert ("qty" in body) != ("notional" in body)
        for name in ("qty", "notional", "limit_price"):
            if name in body:
                assert isinstance(body[name], Decimal), name
    assert bodies[0] == {
        "symbol": "AAPL",
        "qty": Decimal("2.0"),
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "req-market",
    }
    assert bodies[3]["limit_price"] == Decimal("99.5") and bodies[3]["extended_hours"] is True


# ------------------------------------------------------------ market data API


def data_clients(
    sandbox: AlpacaSandbox, key: str | None = None, secret: str | None = None
) -> tuple[StockHistoricalDataClient, CryptoHistoricalDataClient]:
    """alpaca-py's market data clients aimed at the sandbox, retries off (as make_client)."""
    stocks = StockHistoricalDataClient(
        key or sandbox.key, secret or sandbox.secret, url_override=sandbox.base_url
    )
    crypto = CryptoHistoricalDataClient(
        key or sandbox.key, secret or sandbox.secret, url_override=sandbox.base_url
    )
    for client in (stocks, crypto):
        client._retry = 0
        client._retry_wait = 0
    return stocks, crypto


def data_conforms(value: Any, schema_name: str) -> None:
    problems = violations(value, DATA_SCHEMAS[schema_name], schemas=DATA_SCHEMAS)
    assert not problems, f"{schema_name}: {problems}"


def test_latest_stock_trades_through_alpaca_py(sandbox: AlpacaSandbox) -> None:
    stocks, _ = data_clients(sandbox)
    wanted = ["AAPL", "SPY", "NOPE", "BTC/USD"]
    latest = stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=wanted))
    # unknown symbols (and a crypto pair, which is not a stock) are left out of the map
    assert set(latest) == {"AAPL", "SPY"}
    assert isinstance(latest["AAPL"], Trade)
    assert (latest["AAPL"].price, latest["SPY"].price) == (190.0, 580.0)
    (request,) = sandbox.requests(path="/v2/stocks/trades/latest")
    assert request["query"] == {"symbols": "AAPL,SPY,NOPE,BTC/USD"}  # what alpaca-py sends

    first_id = latest["AAPL"].id
    sandbox.set_symbol("AAPL", price="201.25")
    sandbox.set_symbol("MSFT", latest_trade=False)  # a symbol with no trade to report
    again = stocks.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=["AAPL", "MSFT"], feed=DataFeed.SIP)
    )
    assert set(again) == {"AAPL"}
    assert again["AAPL"].price == 201.25 and again["AAPL"].id == first_id + 1
    assert again["AAPL"].exchange == "Q"  # NASDAQ's code on the SIP feed (IEX is "V")
    assert stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="NOPE")) == {}

    raw = stocks.get("/stocks/trades/latest", {"symbols": "AAPL,SPY"})
    data_conforms(raw, "stock_latest_trades_resp")
    for trade in raw["trades"].values():
        data_conforms(trade, "stock_trade")
    single = stocks.get("/stocks/SPY/trades/latest")
    data_conforms(single, "stock_latest_trades_resp_single")
    assert single["symbol"] == "SPY" and single["trade"]["p"] == 580
    missing = api_error(lambda: stocks.get("/stocks/NOPE/trades/latest"))
    assert missing.status_code == 404


def test_latest_crypto_trades_through_alpaca_py(sandbox: AlpacaSandbox) -> None:
    _, crypto = data_clients(sandbox)
    sandbox.set_symbol("BTC/USD", price="64123.5")
    request = CryptoLatestTradeRequest(symbol_or_symbols=["BTC/USD", "ETH/USD", "DOGE/USD", "AAPL"])
    latest = crypto.get_crypto_latest_trade(request)
    assert set(latest) == {"BTC/USD", "ETH/USD"}
    assert (latest["BTC/USD"].price, latest["ETH/USD"].price) == (64123.5, 3500.0)
    (logged,) = sandbox.requests(path="/v1beta3/crypto/us/latest/trades")
    assert logged["query"] == {"symbols": "BTC/USD,ETH/USD,DOGE/USD,AAPL"}
    raw = crypto.get("/crypto/us/latest/trades", {"symbols": "BTC/USD"})
    data_conforms(raw, "crypto_latest_trades_resp")
    data_conforms(raw["trades"]["BTC/USD"], "crypto_trade")
    # the crypto endpoints need no keys (the spec's "security": []), and alpaca-py's crypto
    # client may be built without any
    keyless = CryptoHistoricalDataClient(url_override=sandbox.base_url)
    assert set(keyless.get_crypto_latest_trade(request)) == {"BTC/USD", "ETH/USD"}


def test_market_data_keys_and_parameters(sandbox: AlpacaSandbox) -> None:
    stocks, crypto = data_clients(sandbox, key="wrong")
    denied = api_error(
        lambda: stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    )
    # the Market Data FAQ: a wrong or missing key is a 403 there (not the trading API's 401)
    assert denied.status_code == 403 and denied.response.json() == {"message": "forbidden."}
    plain = requests.get(f"{sandbox.base_url}/v2/stocks/trades/latest?symbols=AAPL", timeout=5)
    assert plain.status_code == 403
    wrong_crypto = api_error(
        lambda: crypto.get_crypto_latest_trade(
            CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD")
        )
    )
    assert wrong_crypto.status_code == 403
    keyless = requests.get(
        f"{sandbox.base_url}/v1beta3/crypto/us/latest/trades",
        params={"symbols": "BTC/USD"},
        timeout=5,
    )
    assert keyless.status_code == 200 and set(keyless.json()["trades"]) == {"BTC/USD"}

    good, good_crypto = data_clients(sandbox)
    for params in (
        {"symbols": "AAPL", "feed": "bogus"},  # not in the spec's stock_latest_feed
        {},  # symbols is required
        {"symbols": "AAPL", "currency": "EUR"},  # the sandbox has no FX rates
    ):
        assert api_error(lambda p=params: good.get("/stocks/trades/latest", p)).status_code == 400
    bad_loc = api_error(lambda: good_crypto.get("/crypto/mars/latest/trades", {"symbols": "X"}))
    assert bad_loc.status_code == 400  # not in the spec's crypto_latest_loc
    assert requests.get(f"{sandbox.base_url}/v2/stocks/AAPL/bars", timeout=5).status_code == 403
    # faults and delays reach market data like any other path
    sandbox.add_fault("503", path="/v2/stocks/*")
    busy = api_error(
        lambda: good.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    )
    assert busy.status_code == 503


# ---------------------------------------------------------------------- crypto


def test_crypto_assets_in_both_symbologies(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    asset = client.get_asset("BTC/USD")  # alpaca-py sends /v2/assets/BTC/USD
    assert isinstance(asset, Asset)
    assert (asset.asset_class, asset.exchange, asset.symbol) == (
        AssetClass.CRYPTO,
        AssetExchange.CRYPTO,
        "BTC/USD",
    )
    assert asset.fractionable and asset.tradable and not asset.shortable and not asset.marginable
    assert (asset.min_order_size, asset.min_trade_increment, asset.price_increment) == (
        0.0001,
        0.0001,
        1.0,
    )
    headers = {"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret}
    for ref in ("BTCUSD", "BTC%2FUSD", asset.id):
        reply = requests.get(f"{sandbox.base_url}/v2/assets/{ref}", headers=headers, timeout=5)
        assert reply.status_code == 200 and reply.json()["symbol"] == "BTC/USD", ref
    raw = raw_client.get_asset("ETH/USD")
    assert (raw["min_order_size"], raw["min_trade_increment"], raw["price_increment"]) == (
        "0.001",
        "0.001",
        "0.1",
    )
    conforms(raw, "Assets", CRYPTO_EXCHANGE)
    # GET /v2/assets lists us_equity unless asked ("Defaults to us_equity")
    assert "BTC/USD" not in {a["symbol"] for a in raw_client.get("/assets")}
    pairs = raw_client.get("/assets", {"asset_class": "crypto"})
    assert {a["symbol"] for a in pairs} == {"BTC/USD", "ETH/USD"}
    sandbox.set_symbol("SOL/USD", price="150")  # a slash makes a new symbol a crypto pair
    assert client.get_asset("SOLUSD").asset_class == AssetClass.CRYPTO


def test_crypto_orders_positions_and_fills(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_clock(is_open=False)  # crypto trades 24/7; the market clock is ignored
    bought = client.submit_order(market("BTC/USD", "0.5", time_in_force=TimeInForce.GTC))
    assert (bought.symbol, bought.asset_class, bought.status) == (
        "BTC/USD",
        AssetClass.CRYPTO,
        OrderStatus.FILLED,
    )
    assert (bought.qty, bought.filled_qty, bought.time_in_force) == ("0.5", "0.5", TimeInForce.GTC)
    legacy = client.submit_order(market("ETHUSD", "1.25", time_in_force=TimeInForce.IOC))
    assert (legacy.symbol, legacy.status) == ("ETH/USD", OrderStatus.FILLED)

    positions = {p.symbol: p for p in client.get_all_positions()}
    assert set(positions) == {"BTCUSD", "ETHUSD"}  # positions use the old symbology
    btc = positions["BTCUSD"]
    assert (btc.asset_class, btc.exchange, btc.qty, btc.market_value) == (
        AssetClass.CRYPTO,
        AssetExchange.CRYPTO,
        "0.5",
        "32500",
    )
    assert client.get_open_position("BTCUSD").qty == client.get_open_position("BTC/USD").qty
    for position in raw_client.get_all_positions():
        conforms(position, "Position", CRYPTO_EXCHANGE)
    fills_ = {a["order_id"]: a for a in fills(client)}
    assert fills_[str(bought.id)]["symbol"] == "BTC/USD"
    conforms(fills_[str(bought.id)], "TradingActivities")
    conforms(raw_client.get_order_by_id(bought.id), "Order")
    assert client.get_account().cash == "63125"  # 100000 - 32500 - 4375

    by_pair = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["BTCUSD"]))
    assert [o.id for o in by_pair] == [bought.id]  # the spec's crypto filter form
    sold = client.submit_order(
        market("BTC/USD", "0.2", side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
    )
    assert sold.status == OrderStatus.FILLED
    assert client.get_open_position("BTCUSD").qty == "0.3"
    resting = client.submit_order(limit("BTC/USD", "0.1", 60000, time_in_force=TimeInForce.GTC))
    assert resting.status == OrderStatus.NEW
    sandbox.set_symbol("BTC/USD", price="59999")
    assert client.get_order_by_id(resting.id).status == OrderStatus.FILLED


@pytest.mark.parametrize("tif", [TimeInForce.DAY, TimeInForce.FOK, TimeInForce.OPG])
def test_crypto_takes_only_gtc_and_ioc(client: TradingClient, tif: TimeInForce) -> None:
    error = api_error(lambda: client.submit_order(market("BTC/USD", "0.01", time_in_force=tif)))
    assert (error.status_code, error.code, error.message) == (
        422,
        42210000,
        "invalid crypto time_in_force",
    )


def test_crypto_cannot_be_sold_short_or_bought_on_margin(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    short = api_error(
        lambda: client.submit_order(
            market("BTC/USD", "0.1", side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
        )
    )
    assert (short.status_code, short.code) == (403, 40310000)
    assert short.message == "insufficient balance for BTC (requested: 0.1, available: 0)"
    assert short.response.json() == {
        "available": "0",
        "balance": "0",
        "code": 40310000,
        "message": "insufficient balance for BTC (requested: 0.1, available: 0)",
    }
    client.submit_order(market("ETH/USD", "2", time_in_force=TimeInForce.GTC))
    too_much = api_error(
        lambda: client.submit_order(
            market("ETH/USD", "2.5", side=OrderSide.SELL, time_in_force=TimeInForce.GTC)
        )
    )
    assert too_much.message == "insufficient balance for ETH (requested: 2.5, available: 2)"
    # crypto settles against cash: a $200k margin account still has only $93k of cash
    margin = api_error(
        lambda: client.submit_order(market("BTC/USD", "2", time_in_force=TimeInForce.GTC))
    )
    assert (margin.status_code, margin.code) == (403, 40310000)
    assert margin.message.startswith("insufficient balance for USD (requested: 130000")
    assert sandbox.state()["positions"][0]["symbol"] == "ETHUSD"


# ------------------------------------------------------------------- options


OCC = "AAPL240119C00150000"


def test_option_position_and_contract(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    placed = sandbox.set_option_position(OCC, 2, "3.5", price="4")
    assert placed is not None and placed["symbol"] == OCC
    (position,) = client.get_all_positions()
    assert (position.symbol, position.asset_class, position.exchange) == (
        OCC,
        AssetClass.US_OPTION,
        AssetExchange.EMPTY,  # "Can be empty ... for options contracts"
    )
    # per-share prices, values x100 (a contract delivers 100 shares)
    assert (position.qty, position.avg_entry_price, position.current_price) == ("2", "3.5", "4")
    assert (position.cost_basis, position.market_value, position.unrealized_pl) == (
        "700",
        "800",
        "100",
    )
    conforms(raw_client.get_open_position(OCC), "Position")

    contract = client.get_option_contract(OCC)
    assert isinstance(contract, OptionContract)
    assert (contract.underlying_symbol, contract.type, contract.strike_price) == (
        "AAPL",
        ContractType.CALL,
        150.0,
    )
    assert contract.expiration_date.isoformat() == "2024-01-19"
    assert contract.name == "AAPL Jan 19 2024 150 Call"
    assert str(contract.underlying_asset_id) == str(client.get_asset("AAPL").id)
    assert client.get_open_position(contract.id).symbol == OCC  # by contract id, too
    conforms(raw_client.get_option_contract(contract.id), "OptionContract")
    missing = api_error(lambda: client.get_option_contract("AAPL240119P00100000"))
    assert (missing.status_code, missing.code, missing.message) == (
        404,
        40410000,
        "option contract AAPL240119P00100000 not found",
    )
    assert api_error(lambda: client.get_asset(OCC)).status_code == 404  # not an asset
    assert client.get_account().long_market_value == "800"
    refused = api_error(lambda: client.submit_order(limit(OCC, 1, "4")))
    assert refused.status_code == 422
    for bad in (("AAPL", 1), ("AAPL241313C00150000", 1), (OCC, "1.5")):
        with pytest.raises(SandboxError):
            sandbox.set_option_position(*bad)
    sandbox.set_option_position(OCC, 0)
    assert client.get_all_positions() == []


# -------------------------------------------------------------------- assets


def test_asset_flags_and_unknown_assets(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", fractionable=False)
    asset = client.get_asset("AAPL")
    assert (asset.asset_class, asset.status) == (AssetClass.US_EQUITY, AssetStatus.ACTIVE)
    assert asset.tradable and asset.shortable and not asset.fractionable
    fraction = api_error(lambda: client.submit_order(market("AAPL", "0.5")))
    assert (fraction.status_code, fraction.code, fraction.message) == (
        422,
        42210000,
        "asset AAPL is not fractionable",
    )
    assert client.submit_order(market("AAPL", 1)).status == OrderStatus.FILLED
    sandbox.set_symbol("NVDA", min_order_size="1", min_trade_increment="1")
    nvda = client.get_asset("NVDA")
    assert (nvda.min_order_size, nvda.min_trade_increment, nvda.price_increment) == (1, 1, None)

    sandbox.set_symbol("TSLA", status="inactive")
    inactive = raw_client.get_asset("TSLA")
    assert (inactive["status"], inactive["tradable"]) == ("inactive", False)
    conforms(inactive, "Assets")
    assert api_error(lambda: client.submit_order(market("TSLA", 1))).code == 42210000
    assert "TSLA" not in {a["symbol"] for a in raw_client.get("/assets", {"status": "active"})}

    unknown = api_error(lambda: client.get_asset("XYZ"))
    assert (unknown.status_code, unknown.response.json()) == (
        404,
        {"code": 40410000, "message": "asset not found"},
    )
    order = api_error(lambda: client.submit_order(market("XYZ", 1)))
    assert (order.status_code, order.code, order.message) == (
        422,
        40010001,
        'asset "XYZ" not found',
    )


# ------------------------------------------------------------- account flags


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"trading_blocked": True}, "account is not authorized to trade"),
        ({"account_blocked": True}, "account is not authorized to trade"),
        ({"status": "ACCOUNT_UPDATED"}, "account is not authorized to trade"),
        ({"status": "ONBOARDING"}, "account is not authorized to trade"),
        ({"trade_suspended_by_user": True}, "new orders are rejected by user request"),
    ],
)
def test_account_flags_refuse_orders(
    client: TradingClient, sandbox: AlpacaSandbox, flags: dict[str, Any], message: str
) -> None:
    sandbox.set_account_flags(**flags)
    account = client.get_account()
    for name, value in flags.items():
        assert getattr(account, name) == value
    error = api_error(lambda: client.submit_order(market("AAPL", 1)))
    assert (error.status_code, error.code, error.message) == (403, 40310000, message)
    conforms(error.response.json(), "Error")
    assert sandbox.state()["orders"] == []
    assert client.get_all_positions() == []  # reads still work
    sandbox.set_account_flags(
        status="ACTIVE", trading_blocked=False, account_blocked=False, trade_suspended_by_user=False
    )
    assert client.submit_order(market("AAPL", 1)).status == OrderStatus.FILLED


def test_account_flags_reported_and_omitted(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_account_flags(pattern_day_trader=True, daytrade_count=3, transfers_blocked=True)
    account = client.get_account()
    assert (account.pattern_day_trader, account.daytrade_count, account.transfers_blocked) == (
        True,
        3,
        True,
    )
    assert account.status == AccountStatus.ACTIVE
    conforms(raw_client.get_account(), "Account")
    # Alpaca dropped both fields from its replies on 2026-07-06; None leaves them out
    sandbox.set_account_flags(pattern_day_trader=None, daytrade_count=None)
    raw = raw_client.get_account()
    assert "pattern_day_trader" not in raw and "daytrade_count" not in raw
    assert client.get_account().daytrade_count is None
    sandbox.set_account_flags(crypto_status="INACTIVE")
    assert client.get_account().crypto_status == AccountStatus.INACTIVE
    crypto = api_error(
        lambda: client.submit_order(market("BTC/USD", "0.01", time_in_force=TimeInForce.GTC))
    )
    assert (crypto.status_code, crypto.code) == (422, 40010001)
    assert client.submit_order(market("AAPL", 1)).status == OrderStatus.FILLED  # stocks still
    for bad in ({"status": "SLEEPING"}, {"daytrade_count": -1}, {"trading_blocked": "maybe"}):
        with pytest.raises(SandboxError):
            sandbox.set_account_flags(**bad)


# ---------------------------------------------------------- dust and orphans


def test_dust_position(
    client: TradingClient, raw_client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_position("AAPL", "0.000000001")
    sandbox.set_position("BTCUSD", "0.000000001", "60000")
    dust = client.get_open_position("AAPL")
    assert (dust.qty, dust.market_value, dust.side) == (
        "0.000000001",
        "0.00000019",
        PositionSide.LONG,
    )
    assert client.get_open_position("BTC/USD").cost_basis == "0.00006"
    for position in raw_client.get_all_positions():
        conforms(position, "Position", CRYPTO_EXCHANGE)
    with pytest.raises(SandboxError):
        sandbox.set_position("AAPL", "0.0000000001")  # finer than Alpaca's 9 decimals
    with pytest.raises(SandboxError):
        sandbox.set_position("BTC/USD", "-1")  # crypto is never short


def test_fill_whose_order_cannot_be_fetched(
    client: TradingClient, sandbox: AlpacaSandbox
) -> None:
    fill = sandbox.add_orphan_fill("MSFT", "buy", "3", "400", at="2024-03-01T15:00:00Z")
    assert fill["transaction_time"] == "2024-03-01T15:00:00.000000Z"
    assert fill["id"].startswith("20240301100000000::")  # New York time, like Alpaca's ids
    (listed,) = fills(client)
    assert listed == fill
    conforms(listed, "TradingActivities")
    gone = api_error(lambda: client.get_order_by_id(fill["order_id"]))
    assert (gone.status_code, gone.code, gone.message) == (404, 40410000, "order not found")
    assert client.get_open_position("MSFT").qty == "3"
    assert client.get_account().cash == "98800"
    untouched = sandbox.add_orphan_fill("AAPL", "sell", "1", apply=False)
    assert untouched["side"] == "sell_short" and untouched["price"] == "190"
    assert [p.symbol for p in client.get_all_positions()] == ["MSFT"]
    placed = client.submit_order(market("AAPL", 1))
    with pytest.raises(SandboxError):
        sandbox.add_orphan_fill("AAPL", "buy", "1", order_id=str(placed.id))


# ------------------------------------------------------------- control docs


def test_new_control_endpoints_over_http(
    client: TradingClient, sandbox: AlpacaSandbox, control: Any
) -> None:
    control("POST", "/symbols/SOL/USD", {"price": "150", "min_order_size": "0.01"})
    assert client.get_asset("SOL/USD").min_order_size == 0.01
    control("POST", "/symbols/BTC%2FUSD", {"latest_trade": False})
    assert control("GET", "/symbols")["BTC/USD"]["latest_trade"] is False
    control("POST", "/positions", {"symbol": "NVDA", "qty": "0.000000001"})
    control("POST", "/option_positions", {"symbol": OCC, "qty": "-1", "price": "2"})
    control(
        "POST",
        "/account",
        {"trading_blocked": True, "status": "ACCOUNT_UPDATED", "daytrade_count": None},
    )
    fill = control(
        "POST", "/orphan_fills", {"symbol": "AAPL", "side": "buy", "qty": "1", "price": 180}
    )
    account = client.get_account()
    assert (account.status, account.trading_blocked, account.daytrade_count) == (
        AccountStatus.ACCOUNT_UPDATED,
        True,
        None,
    )
    assert {p.symbol: p.qty for p in client.get_all_positions()} == {
        "NVDA": "0.000000001",
        OCC: "-1",
        "AAPL": "1",
    }
    assert api_error(lambda: client.get_order_by_id(fill["order_id"])).status_code == 404
    bad = requests.post(
        f"{sandbox.base_url}/_sandbox/account", json={"status": "NOPE"}, timeout=5
    )
    assert bad.status_code == 422 and "status" in bad.json()["message"]


def test_module_docstring_lists_every_control_endpoint() -> None:
    """The control API is documented in the module docstring; every route _control serves
    must be in its table (method and path)."""
    source = inspect.getsource(control.dispatch)
    routes = re.findall(r'case "(\w+)", \[([^\]]*)\]', source)
    assert len(routes) >= 24
    doc = control.__doc__ or ""
    for method, pattern in routes:
        segments = []
        for part in (p.strip() for p in pattern.split(",")):
            name = part.strip('"') if part.startswith('"') else f"{{{part.lstrip('*')}}}"
            segments.append(name)
        path = "/" + "/".join(segments)
        assert re.search(rf"^{method}\s+{re.escape(path)}\s", doc, re.M), (method, path)


# ------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("how", ["flags+SIGTERM", "env+SIGINT"])
def test_cli_prints_its_address_and_stops_on_signals(how: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    args = [sys.executable, "-m", "sandbox", "--port", "0"]
    if how.startswith("flags"):
        args += ["--key", "cli-key", "--secret", "cli-secret"]
    else:
        env.update(ALPACA_API_KEY="cli-key", ALPACA_SECRET_KEY="cli-secret")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "the sandbox printed nothing"
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"Alpaca sandbox listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match and match.group(2) != "0", line
        base_url = match.group(1)
        headers = {"APCA-API-KEY-ID": "cli-key", "APCA-API-SECRET-KEY": "cli-secret"}
        assert requests.get(f"{base_url}/v2/clock", headers=headers, timeout=5).status_code == 200
        assert requests.get(f"{base_url}/v2/clock", timeout=5).status_code == 401
        proc.send_signal(signal.SIGTERM if how.endswith("SIGTERM") else signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
