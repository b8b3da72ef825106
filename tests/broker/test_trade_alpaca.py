"""`trade` in alpaca mode: through the router to the sandbox, on both stores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.domain.values import OrderIntent
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke, order_posts
from tests.broker.fixtures_ledger import event_names, open_alpaca, recorded_executions


@pytest.fixture
def alpaca(open_store: Callable[..., Ledger], sandbox: AlpacaSandbox) -> Ledger:
    return open_alpaca(open_store, sandbox)


def broker_orders(sandbox: AlpacaSandbox, client_order_id: str) -> list[dict[str, object]]:
    return [o for o in sandbox.state()["orders"] if o["client_order_id"] == client_order_id]


def stored_order_id(ledger: Ledger, symbol: str = "AAPL", qty: str = "10") -> object:
    intent = OrderIntent(symbol=symbol, side="buy", qty=Decimal(qty))
    _, (order,) = ledger.record_decision(source="test", rationale="why", intents=[intent])
    return order.id


def test_a_trade_goes_to_alpaca_and_records_its_fill(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", price="187.20")
    order = alpaca.trade(side="buy", symbol="aapl", qty="10", reason="momentum")
    assert (order.status, order.broker, order.filled_qty, order.avg_fill_price) == (
        "filled",
        "alpaca",
        Decimal(10),
        Decimal("187.20"),
    )
    (broker_order,) = broker_orders(sandbox, order.client_order_id)
    assert broker_order["id"] == order.broker_order_id
    assert len(order_posts(sandbox)) == 1
    assert event_names(alpaca) == [
        "DecisionRecorded",
        "OrderRequested",
        "OrderSendStarted",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderFilled",
    ]


def test_fractional_and_limit_orders(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    fractional = alpaca.trade(side="buy", symbol="NVDA", qty="0.5")
    assert (fractional.status, fractional.filled_qty) == ("filled", Decimal("0.5"))
    resting = alpaca.trade(
        side="buy",
        symbol="MSFT",
        qty="2",
        order_type="limit",
        limit_price="300.01",
        time_in_force="gtc",
    )
    assert (resting.status, resting.filled_qty) == ("accepted", 0)
    body = order_posts(sandbox)[-1]["body"]
    assert (body["limit_price"], body["time_in_force"], body["type"]) == ("300.01", "gtc", "limit")


def test_a_rejected_order_is_recorded_with_its_reason(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    order = alpaca.trade(side="buy", symbol="AAPL", qty="10")
    assert order.status == "submission_failed"
    assert order.failures == [
        {
            "code": "40310000",
            "message": "insufficient buying power (HTTP 403, code 40310000)",
            "retryable": False,
        }
    ]
    assert event_names(alpaca)[-1] == "OrderSubmissionFailed"


def test_a_duplicate_client_order_id_is_looked_up(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    """The first POST worked but its answer was lost (alpaca-py's own retry of a 504 ends
    the same way): the broker already holds the id, so the ledger adopts that order."""
    order_id = stored_order_id(alpaca)
    order = alpaca.get_order(order_id)  # type: ignore[arg-type]
    earlier = sandbox.create_external_order(
        "AAPL", "buy", "10", client_order_id=order.client_order_id
    )
    executed, _ = alpaca.submit(order_id)  # type: ignore[arg-type]
    assert (executed.status, executed.broker_order_id) == ("accepted", earlier["id"])
    assert len(broker_orders(sandbox, order.client_order_id)) == 1
    alpaca.sync()
    settled = alpaca.get_order(order_id)  # type: ignore[arg-type]
    assert (settled.status, settled.filled_qty, settled.purpose) == (
        "filled",
        Decimal(10),
        "decision",
    )


def test_a_lost_reply_ends_with_one_broker_order(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    sandbox.add_fault("drop_after_create", method="POST", path="/v2/orders")
    order = alpaca.trade(side="buy", symbol="AAPL", qty="3")
    assert (order.status, order.filled_qty) == ("filled", Decimal(3))
    assert len(order_posts(sandbox)) == 1
    (broker_order,) = broker_orders(sandbox, order.client_order_id)
    assert broker_order["id"] == order.broker_order_id
    alpaca.sync()
    assert recorded_executions(alpaca) == [
        a["id"] for a in sandbox.state()["activities"] if a["activity_type"] == "FILL"
    ]


def test_a_timeout_is_settled_by_lookup_never_by_a_second_post(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    ledger = open_alpaca(open_store, sandbox, BROKER_TIMEOUT_SECONDS="0.3")
    sandbox.add_fault("slow", method="POST", path="/v2/orders", delay=0.8)
    order = ledger.trade(side="buy", symbol="AAPL", qty="2")
    # The broker had not created it yet when the ledger looked: outcome unknown.
    assert order.status == "outcome_unknown"
    assert order.failures[-1]["code"] == "timeout" and order.failures[-1]["retryable"]
    deadline = time.monotonic() + 5
    while not broker_orders(sandbox, order.client_order_id) and time.monotonic() < deadline:
        time.sleep(0.05)

    report = ledger.sync()
    settled = ledger.get_order(order.id)
    assert (settled.status, settled.filled_qty) == ("filled", Decimal(2))
    assert report.new_fills == 1 and report.new_orders == 0
    retried = ledger.submit(order.id)[0] if settled.status == "outcome_unknown" else settled
    assert retried.status == "filled"
    assert len(order_posts(sandbox)) == 1
    assert len(broker_orders(sandbox, order.client_order_id)) == 1


def test_a_retry_after_an_unknown_outcome_asks_first(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    sandbox.add_fault("502_html", method="POST", path="/v2/orders")
    failed = alpaca.trade(side="buy", symbol="AAPL", qty="1")
    assert failed.status == "outcome_unknown" and failed.failures[-1]["code"] == "http_502"
    retried, _ = alpaca.submit(failed.id)
    assert retried.status in ("accepted", "filled")
    assert [r["method"] for r in sandbox.requests(path="/v2/orders*")][-3:] == [
        "GET",
        "GET",
        "POST",
    ]
    assert len(order_posts(sandbox)) == 2  # the failed one (nothing created) and the retry


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def alpaca_cli(
    cli_env: dict[str, str], sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = alpaca_env(sandbox)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**cli_env, **env}


def event_total() -> int:
    code, out, _ = invoke("events", "--limit", "1000", "--json")
    assert code == 0
    return len(json.loads(out)["events"])


def test_commands_trade_prints_the_broker_answer(
    alpaca_cli: dict[str, str], sandbox: AlpacaSandbox
) -> None:
    code, out, err = invoke("trade", "buy", "AAPL", "10", "--reason", "momentum")
    assert (code, err) == (0, "")
    assert "buy 10 AAPL market -> alpaca: filled 10 @ 190" in out
    (broker_order,) = sandbox.state()["orders"]
    assert f"broker order id {broker_order['id']}" in out

    code, out, _ = invoke("trade", "sell", "AAPL", "2.5", "--limit", "250", "--json")
    document = json.loads(out)
    assert code == 0
    assert (document["status"], document["qty"], document["broker"]) == (
        "accepted",
        "2.5",
        "alpaca",
    )


def test_commands_trade_exits_1_when_the_order_failed(
    alpaca_cli: dict[str, str], sandbox: AlpacaSandbox
) -> None:
    sandbox.set_symbol("TSLA", behavior="not_tradable")
    code, out, _ = invoke("trade", "buy", "TSLA", "1")
    assert code == 1
    assert "submission_failed (42210000: asset TSLA is not tradable" in out
    code, out, _ = invoke("trade", "buy", "TSLA", "1", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "42210000"


def test_a_live_account_needs_the_confirmation_flag(
    alpaca_cli: dict[str, str], sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_PAPER_MODE", "false")
    code, _, err = invoke("trade", "buy", "AAPL", "1")
    assert code == 2 and "--confirm-live" in err
    assert event_total() == 0 and order_posts(sandbox) == []
    code, out, _ = invoke("trade", "buy", "AAPL", "1", "--confirm-live")
    assert code == 0 and "-> alpaca: filled" in out
