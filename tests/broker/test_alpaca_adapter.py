"""The Alpaca adapter: alpaca-py's TradingClient over real HTTP against the sandbox."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.brokers.alpaca import broker as alpaca_module
from ledger.brokers.alpaca.broker import AlpacaBroker
from ledger.brokers.port import BrokerReadError, OrderTicket
from ledger.settings import ConfigurationError, load_settings
from sandbox import AlpacaSandbox
from testing.doubles import order_posts
from tests.broker.fixtures_ledger import make_broker
from tests.broker.test_sandbox import POST_ORDER_SCHEMA, violations

LONG_KEY = "PKTESTKEY1234567890AB"
LONG_SECRET = "s3cr3t-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def broker(sandbox: AlpacaSandbox) -> AlpacaBroker:
    return make_broker(sandbox)


def ticket(
    symbol: str = "AAPL",
    qty: str | None = "10",
    *,
    side: str = "buy",
    notional: str | None = None,
    order_type: str = "market",
    tif: str = "day",
    limit: str | None = None,
    extended: bool = False,
    coid: str = "tl-test-1",
) -> OrderTicket:
    return OrderTicket(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        qty=None if qty is None else Decimal(qty),
        notional=None if notional is None else Decimal(notional),
        order_type=order_type,
        time_in_force=tif,
        limit_price=None if limit is None else Decimal(limit),
        extended_hours=extended,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- placing orders ------------------------------------------------------------------------


def test_from_settings_needs_keys() -> None:
    settings = load_settings(None, BROKER_PROVIDER="alpaca")
    with pytest.raises(ConfigurationError, match="ALPACA_API_KEY"):
        AlpacaBroker.from_settings(settings)


def test_from_settings_uses_the_url_override_and_retry_settings(sandbox: AlpacaSandbox) -> None:
    settings = load_settings(
        None,
        BROKER_PROVIDER="alpaca",
        ALPACA_API_KEY=sandbox.key,
        ALPACA_SECRET_KEY=sandbox.secret,
        ALPACA_BASE_URL=sandbox.base_url + "/v2",
        ALPACA_RETRY_ATTEMPTS="0",
        ALPACA_RETRY_WAIT_SECONDS="0.5",
        BROKER_TIMEOUT_SECONDS="4",
    )
    broker = AlpacaBroker.from_settings(settings)
    assert (broker.base_url, broker.paper, broker.timeout) == (sandbox.base_url, True, 4.0)
    assert (broker.client._retry, broker.client._retry_wait) == (0, 0.5)
    assert broker.get_account().cash == Decimal(100000)


@pytest.mark.parametrize(
    ("order", "wire"),
    [
        (ticket(qty="10"), {"qty": "10", "type": "market", "time_in_force": "day"}),
        (ticket(qty="0.123456789"), {"qty": "0.123456789", "type": "market"}),
        (ticket(qty=None, notional="1234.56"), {"notional": "1234.56", "type": "market"}),
        (
            ticket(qty="3", order_type="limit", limit="189.995", tif="gtc"),
            {"qty": "3", "type": "limit", "limit_price": "189.995", "time_in_force": "gtc"},
        ),
        (
            ticket(qty="2", order_type="limit", limit="200", extended=True),
            {"limit_price": "200", "extended_hours": True},
        ),
        (ticket(qty="1", tif="ioc"), {"time_in_force": "ioc"}),
        (ticket(qty="5", side="sell"), {"side": "sell", "qty": "5"}),
    ],
)
def test_orders_go_out_as_the_spec_asks(
    broker: AlpacaBroker, sandbox: AlpacaSandbox, order: OrderTicket, wire: dict[str, object]
) -> None:
    sandbox.set_position("AAPL", "10")
    answer = broker.place_order(order)
    assert answer.ok, answer.error
    (post,) = order_posts(sandbox)
    body = post["body"]
    # Exact decimal strings, as the spec types them: never a float on the wire.
    assert violations(body, POST_ORDER_SCHEMA) == [], body
    assert {**body, **wire} == body
    assert body["client_order_id"] == order.client_order_id and body["symbol"] == "AAPL"
    found = broker.find_order(order.client_order_id)
    assert found is not None and found.broker_order_id == answer.broker_order_id


def test_a_filled_answer_carries_the_broker_state(
    broker: AlpacaBroker, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", price="187.123456789")
    answer = broker.place_order(ticket(qty="4"))
    assert (answer.status, answer.filled_qty, answer.filled_avg_price) == (
        "filled",
        Decimal(4),
        Decimal("187.123456789"),
    )
    sandbox.set_symbol("MSFT", behavior="hold")
    held = broker.place_order(ticket("MSFT", "1", coid="tl-held"))
    assert (held.status, held.filled_qty) == ("new", Decimal(0))


def test_find_order_is_none_for_an_unknown_client_order_id(broker: AlpacaBroker) -> None:
    assert broker.find_order("tl-never-sent") is None


def test_a_request_alpaca_py_refuses_becomes_an_answer(broker: AlpacaBroker) -> None:
    answer = broker.place_order(ticket(order_type="stop"))
    assert answer.error is not None and answer.error.code == "invalid_order"
    assert not answer.error.retryable


# -- every error mapping -------------------------------------------------------------------


def test_insufficient_buying_power(broker: AlpacaBroker, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable, error.outcome_unknown) == (
        "40310000",
        403,
        False,
        False,
    )
    assert "insufficient buying power" in error.message


def test_not_tradable(broker: AlpacaBroker, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("AAPL", behavior="not_tradable")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable) == ("42210000", 422, False)
    assert "not tradable" in error.message


def test_invalid_order(broker: AlpacaBroker) -> None:
    error = broker.place_order(ticket("NOPE")).error
    assert error is not None and error.http_status == 422 and not error.retryable
    assert "not found" in error.message


def test_duplicate_client_order_id(broker: AlpacaBroker) -> None:
    assert broker.place_order(ticket()).ok
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable) == ("40010001", 422, False)
    assert "client order id" in error.message


@pytest.mark.parametrize("retry_after", [None, "7"])
def test_rate_limited(
    broker: AlpacaBroker, sandbox: AlpacaSandbox, retry_after: str | None
) -> None:
    sandbox.add_fault("429", method="POST", path="/v2/orders", retry_after=retry_after)
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable, error.outcome_unknown) == (
        "42910000",
        429,
        True,
        False,
    )
    assert ("retry after 7 s" in error.message) == (retry_after is not None)
    assert sandbox.state()["orders"] == []


def test_alpaca_py_retries_429_itself_with_our_wait(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox, retries=2)
    sandbox.add_fault("429", method="POST", path="/v2/orders", count=2)
    started = time.monotonic()
    answer = broker.place_order(ticket())
    assert answer.ok and len(order_posts(sandbox)) == 3
    assert time.monotonic() - started < 1  # 0.01 s waits, not alpaca-py's 3 s


@pytest.mark.parametrize(
    ("fault", "status", "code", "json_body"),
    [
        ("500", 500, "50010000", True),
        ("502_html", 502, "http_502", False),
        ("503", 503, "50310000", True),
        ("504", 504, "http_504", False),
    ],
)
def test_server_errors(
    broker: AlpacaBroker,
    sandbox: AlpacaSandbox,
    fault: str,
    status: int,
    code: str,
    json_body: bool,
) -> None:
    sandbox.add_fault(fault, method="POST", path="/v2/orders")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable) == (code, status, True)
    # After a POST a gateway error does not say whether the order exists: look it up.
    assert error.outcome_unknown
    assert ("not Alpaca's JSON" in error.message) != json_body
    assert "<html>" not in error.message


@pytest.mark.parametrize(
    ("fault", "code"),
    [("drop", "connection_lost"), ("drop_after_create", "connection_lost")],
)
def test_dropped_connections_leave_the_outcome_unknown(
    broker: AlpacaBroker, sandbox: AlpacaSandbox, fault: str, code: str
) -> None:
    sandbox.add_fault(fault, method="POST", path="/v2/orders")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.retryable, error.outcome_unknown) == (code, True, True)
    created = broker.find_order("tl-test-1")
    assert (created is not None) == (fault == "drop_after_create")


def test_malformed_json_leaves_the_outcome_unknown(
    broker: AlpacaBroker, sandbox: AlpacaSandbox
) -> None:
    sandbox.add_fault("malformed_json", method="POST", path="/v2/orders")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.outcome_unknown) == ("malformed_reply", True)


def test_a_slow_broker_times_out(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox, timeout="0.3")
    sandbox.add_fault("slow", method="POST", path="/v2/orders", delay=1.0)
    started = time.monotonic()
    error = broker.place_order(ticket()).error
    assert time.monotonic() - started < 0.9
    assert error is not None
    assert (error.code, error.retryable, error.outcome_unknown) == ("timeout", True, True)
    assert "within 0.3 s" in error.message


def test_every_call_has_a_timeout(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox, timeout="0.3")
    for path, call in [
        ("/v2/account", broker.get_account),
        ("/v2/positions", broker.list_positions),
        ("/v2/orders", broker.list_open_orders),
        ("/v2/clock", broker.get_clock),
        ("/v2/account/activities/FILL", lambda: broker.list_fills(datetime.now(UTC))),
    ]:
        sandbox.add_fault("slow", path=path, delay=1.0)
        started = time.monotonic()
        with pytest.raises(BrokerReadError, match=r"within 0\.3 s"):
            call()
        assert time.monotonic() - started < 0.9, path


def test_connection_refused_is_not_an_unknown_outcome() -> None:
    broker = AlpacaBroker(api_key="k", secret_key="s", base_url=f"http://127.0.0.1:{closed_port()}")
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.retryable, error.outcome_unknown) == ("unreachable", True, False)
    with pytest.raises(BrokerReadError, match="cannot reach Alpaca"):
        broker.get_account()


def test_bad_keys(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox, key=LONG_KEY, secret=LONG_SECRET)
    error = broker.place_order(ticket()).error
    assert error is not None
    assert (error.code, error.http_status, error.retryable) == ("unauthorized", 401, False)
    with pytest.raises(BrokerReadError) as raised:
        broker.get_account()
    assert raised.value.auth and raised.value.http_status == 401
    assert "API keys" in str(raised.value)


def test_secrets_never_appear_in_answers_or_errors(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox, key=LONG_KEY, secret=LONG_SECRET, base_url=sandbox.base_url)
    texts = [repr(broker.place_order(ticket())), repr(broker.__dict__.get("base_url"))]
    for call in (broker.get_account, broker.list_positions):
        with pytest.raises(BrokerReadError) as raised:
            call()
        texts.append(str(raised.value))
    for text in texts:
        assert LONG_KEY not in text and LONG_SECRET not in text


# -- reads -----------------------------------------------------------------------------------


def test_account_positions_clock(broker: AlpacaBroker, sandbox: AlpacaSandbox) -> None:
    sandbox.set_position("AAPL", "4", "187.2")
    sandbox.set_position("TSLA", "-2.5", "250.25")
    account = broker.get_account()
    assert account.cash == Decimal(100000) and account.account_id == sandbox.account_id
    positions = {p.symbol: p for p in broker.list_positions()}
    assert positions["AAPL"].qty == Decimal(4)
    assert positions["AAPL"].avg_entry_price == Decimal("187.2")
    assert (positions["TSLA"].qty, positions["TSLA"].side) == (Decimal("-2.5"), "short")
    assert abs(broker.get_clock() - datetime.now(UTC)) < timedelta(minutes=1)


def test_no_positions_is_an_empty_list(broker: AlpacaBroker) -> None:
    assert broker.list_positions() == []


def test_open_orders_are_paged(
    broker: AlpacaBroker, sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca_module, "ORDER_PAGE_SIZE", 3)
    sandbox.set_symbol("MSFT", behavior="hold")
    for n in range(5):
        assert broker.place_order(ticket("MSFT", "1", coid=f"tl-open-{n}")).ok
    assert broker.place_order(ticket("AAPL", "1", coid="tl-filled")).ok
    orders = broker.list_open_orders()
    assert sorted(o.client_order_id for o in orders) == [f"tl-open-{n}" for n in range(5)]
    # Each page starts a tick before the last one's time, so orders sharing a timestamp
    # across a page boundary are not skipped: [0 1 2] [2 3 4] [4].
    assert len(sandbox.requests("GET", "/v2/orders")) == 3


def test_fills_are_paged_oldest_first(
    broker: AlpacaBroker, sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca_module, "ACTIVITY_PAGE_SIZE", 2)
    start = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(5):
        sandbox.create_external_order("AAPL", "buy", str(n + 1), price=f"190.0{n}")
    fills = broker.list_fills(start)
    assert [f.qty for f in fills] == [Decimal(n + 1) for n in range(5)]
    assert fills[2].price == Decimal("190.02")
    pages = sandbox.requests("GET", "/v2/account/activities/FILL")
    assert len(pages) == 3
    assert [p["query"].get("page_token") for p in pages] == [
        None,
        fills[1].activity_id,
        fills[3].activity_id,
    ]
    assert all(p["query"]["direction"] == "asc" for p in pages)
    assert broker.list_fills(fills[-1].transaction_time) == []


def test_position_activities(broker: AlpacaBroker, sandbox: AlpacaSandbox) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    sandbox.set_position("AAPL", "3", "180")
    sandbox.set_position("META", "2", "500")
    sandbox.add_split("AAPL", 4)
    sandbox.change_symbol("META", "MVRS")
    sandbox.add_activity("DIV", net_amount="1.5", symbol="AAPL")
    activities = broker.list_position_activities(start)
    assert [(a.activity_type, a.symbol, a.qty) for a in activities] == [
        ("SPLIT", "AAPL", Decimal(-3)),
        ("SPLIT", "AAPL", Decimal(12)),
        ("NC", "META", Decimal(-2)),
        ("NC", "MVRS", Decimal(2)),
    ]
    assert activities[0].group_id == activities[1].group_id is not None


def test_unknown_enum_values_are_kept_not_refused(
    broker: AlpacaBroker, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("MSFT", behavior="hold")
    assert broker.place_order(ticket("MSFT", "1")).ok
    sandbox.add_fault("unknown_enum", path="/v2/orders")
    (order,) = broker.list_open_orders()
    assert order.status == "pending_risk_review"
    sandbox.add_fault("unknown_enum", method="POST", path="/v2/orders")
    answer = broker.place_order(ticket("MSFT", "1", coid="tl-2"))
    assert answer.ok and answer.status == "pending_risk_review"


@pytest.mark.parametrize("fault", ["500", "502_html", "malformed_json", "drop", "429"])
def test_a_failed_read_raises(broker: AlpacaBroker, sandbox: AlpacaSandbox, fault: str) -> None:
    sandbox.add_fault(fault, path="/v2/positions")
    with pytest.raises(BrokerReadError, match="GET /v2/positions"):
        broker.list_positions()


def test_get_order_by_id(broker: AlpacaBroker, sandbox: AlpacaSandbox) -> None:
    answer = broker.place_order(ticket())
    assert answer.broker_order_id is not None
    order = broker.get_order(answer.broker_order_id)
    assert order is not None and order.client_order_id == "tl-test-1"
    assert broker.get_order("00000000-0000-4000-8000-000000000000") is None
