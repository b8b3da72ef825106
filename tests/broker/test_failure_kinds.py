"""Broker failures as kinds: the Alpaca adapter alone reads Alpaca's statuses, codes and
messages; the router and the hints act on the kind it decides."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError

from ledger.application import Ledger
from ledger.brokers.alpaca.broker import AlpacaBroker
from ledger.brokers.failures import HINTS, hint, hint_for
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import BrokerError, BrokerReadError, FailureKind, OrderTicket
from sandbox import AlpacaSandbox
from tests.broker.fixtures_ledger import make_broker, open_alpaca

ROOT = Path(__file__).resolve().parents[2]


def api_error(status: int, body: Any, headers: dict[str, str] | None = None) -> APIError:
    """An APIError exactly as alpaca-py raises one (`RESTClient._one_request`): the reply's
    text, and the HTTPError that `raise_for_status` gave for it."""
    response = requests.Response()
    response.status_code = status
    response.reason = "Reason"
    response.url = "https://paper-api.alpaca.markets/v2/orders"
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.headers.update(headers or {})
    try:
        response.raise_for_status()
    except requests.HTTPError as http_error:
        return APIError(response.text, http_error)
    raise AssertionError(f"HTTP {status} is not an error")


@pytest.fixture
def offline() -> AlpacaBroker:
    """An adapter that never connects: only its classification is exercised."""
    return AlpacaBroker(api_key="k", secret_key="s", base_url="http://127.0.0.1:9")


def alpaca(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


CLASSIFIED = [
    # status, body, kind, stored code
    (422, alpaca(40010001, "client_order_id must be unique"), FailureKind.DUPLICATE_ID,
     "40010001"),
    # Alpaca's generic validation code: the message, not the code, says what it is.
    (422, alpaca(40010001, 'asset "ZZZZ" not found'), FailureKind.NOT_FOUND, "40010001"),
    (404, alpaca(40410000, "asset not found"), FailureKind.NOT_FOUND, "40410000"),
    (422, alpaca(40010001, "could not find asset ZZZZ"), FailureKind.NOT_FOUND, "40010001"),
    (422, alpaca(42210000, "asset AAPL is not tradable"), FailureKind.NOT_TRADABLE, "42210000"),
    (422, alpaca(42210000, 'asset "XYZ" is not active'), FailureKind.NOT_TRADABLE, "42210000"),
    (422, alpaca(42210000, "asset BRK.A is not fractionable"), FailureKind.NOT_FRACTIONABLE,
     "42210000"),
    (403, alpaca(40310000, "insufficient buying power"), FailureKind.BUYING_POWER, "40310000"),
    (403, alpaca(40310000, "insufficient day trading buying power"), FailureKind.BUYING_POWER,
     "40310000"),
    (403, alpaca(40310000, "account is not authorized to trade"), FailureKind.BLOCKED,
     "40310000"),
    (403, alpaca(40310000, "trading is blocked for this account"), FailureKind.BLOCKED,
     "40310000"),
    (403, alpaca(40310100, "trade denied due to pattern day trading protection"),
     FailureKind.BLOCKED, "40310100"),
    (403, {"message": "account is blocked"}, FailureKind.BLOCKED, "forbidden"),
    (422, alpaca(42210000, "market orders are not accepted while the market is closed"),
     FailureKind.MARKET_CLOSED, "42210000"),
    (422, alpaca(42210000, "order submitted outside of market hours"),
     FailureKind.MARKET_CLOSED, "42210000"),
    (429, alpaca(42910000, "rate limit exceeded"), FailureKind.RATE_LIMITED, "42910000"),
    (429, "<html>Too Many Requests</html>", FailureKind.RATE_LIMITED, "42910000"),
    (401, alpaca(40110000, "request is not authorized"), FailureKind.UNAUTHORIZED,
     "unauthorized"),
    (403, {"message": "forbidden."}, FailureKind.UNAUTHORIZED, "forbidden"),
    (422, alpaca(40010001, "qty must be > 0"), FailureKind.REJECTED, "40010001"),
    # Names the client order id, but is no duplicate: must not be looked up as one.
    (422, alpaca(40010001, "client_order_id must be a string of at most 128 characters"),
     FailureKind.REJECTED, "40010001"),
    (403, alpaca(40310000, "insufficient qty available for order (requested: 10, "
                 "available: 0)"), FailureKind.REJECTED, "40310000"),
    (403, alpaca(40310000, "asset TSLA cannot be sold short"), FailureKind.REJECTED,
     "40310000"),
    (422, alpaca(42210000, "extended hours order must be DAY or GTC limit orders"),
     FailureKind.REJECTED, "42210000"),
    (400, alpaca(40010000, "request body format is invalid"), FailureKind.REJECTED,
     "40010000"),
    (500, alpaca(50010000, "internal server error occurred"), FailureKind.BROKER_FAILED,
     "50010000"),
    (502, "<html><body>502 Bad Gateway</body></html>", FailureKind.BROKER_FAILED, "http_502"),
    (503, alpaca(50310000, "service unavailable: the market is closed"),
     FailureKind.BROKER_FAILED, "50310000"),
]


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    CLASSIFIED,
    ids=[f"{row[0]}-{row[2].value}-{n}" for n, row in enumerate(CLASSIFIED)],
)
def test_the_adapter_decides_the_kind(
    offline: AlpacaBroker, status: int, body: Any, kind: FailureKind, code: str
) -> None:
    error = offline.classify(api_error(status, body), posted=True)
    assert (error.kind, error.code, error.http_status) == (kind, code, status)
    # Only a server failure after a POST leaves the order's fate open.
    assert error.outcome_unknown == (kind is FailureKind.BROKER_FAILED)


def test_a_failed_read_carries_its_kind_and_only_refused_keys_are_auth(
    offline: AlpacaBroker,
) -> None:
    cases = [
        (401, alpaca(40110000, "request is not authorized"), FailureKind.UNAUTHORIZED, True),
        (403, {"message": "forbidden."}, FailureKind.UNAUTHORIZED, True),
        (403, {"message": "account is blocked"}, FailureKind.BLOCKED, False),
        (429, alpaca(42910000, "rate limit exceeded"), FailureKind.RATE_LIMITED, False),
        (500, alpaca(50010000, "internal server error occurred"), FailureKind.BROKER_FAILED,
         False),
    ]
    for status, body, kind, auth in cases:
        read = offline._read_error("GET /v2/account", api_error(status, body))
        assert (read.kind, read.auth, read.http_status) == (kind, auth, status), body


@pytest.mark.parametrize(
    ("error", "kind", "unknown"),
    [
        (requests.exceptions.ConnectTimeout(), FailureKind.UNREACHABLE, False),
        (requests.exceptions.ReadTimeout(), FailureKind.TIMEOUT, True),
        (requests.exceptions.ConnectionError(), FailureKind.UNREACHABLE, True),
        (requests.exceptions.ChunkedEncodingError(), FailureKind.UNREACHABLE, True),
        (requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
         FailureKind.BROKER_FAILED, True),
        (RuntimeError("a bug"), FailureKind.UNKNOWN, True),
    ],
)
def test_transport_failures_have_kinds(
    offline: AlpacaBroker, error: BaseException, kind: FailureKind, unknown: bool
) -> None:
    mapped = offline.classify(error, posted=True)
    assert (mapped.kind, mapped.outcome_unknown) == (kind, unknown)


# -- against the sandbox, over real HTTP -----------------------------------------------------


def order(symbol: str = "AAPL", qty: str = "1", coid: str = "tl-kind-1") -> OrderTicket:
    return OrderTicket(coid, symbol, "buy", Decimal(qty), None, "market", "day", None, False)


def test_asset_not_found_gets_the_not_found_hint_not_the_duplicate_one(
    sandbox: AlpacaSandbox,
) -> None:
    broker = make_broker(sandbox)
    error = broker.place_order(order("ZZZZ")).error
    assert error is not None
    # Alpaca answers 422 with its generic code 40010001, the duplicate id's code too.
    assert (error.http_status, error.code, error.kind) == (422, "40010001", FailureKind.NOT_FOUND)
    assert hint_for(error) == HINTS[FailureKind.NOT_FOUND]
    assert hint_for(error) != HINTS[FailureKind.DUPLICATE_ID]
    assert "does not know this symbol" in hint_for(error)


def test_sandbox_refusals_get_their_kinds(sandbox: AlpacaSandbox) -> None:
    broker = make_broker(sandbox)
    assert broker.place_order(order()).ok
    duplicate = broker.place_order(order()).error
    assert duplicate is not None and duplicate.kind is FailureKind.DUPLICATE_ID
    for behavior, kind in [
        ("reject_buying_power", FailureKind.BUYING_POWER),
        ("not_tradable", FailureKind.NOT_TRADABLE),
    ]:
        sandbox.set_symbol("MSFT", behavior=behavior)
        refused = broker.place_order(order("MSFT", coid=f"tl-kind-{behavior}")).error
        assert refused is not None and refused.kind is kind, refused
    sandbox.set_symbol("BRKA", price="700000", fractionable=False)
    fraction = broker.place_order(order("BRKA", "0.5", coid="tl-kind-fraction")).error
    assert fraction is not None and fraction.kind is FailureKind.NOT_FRACTIONABLE
    sandbox.add_fault("429", method="POST", path="/v2/orders")
    limited = broker.place_order(order(coid="tl-kind-429")).error
    assert limited is not None and limited.kind is FailureKind.RATE_LIMITED


@pytest.mark.parametrize(
    ("fault", "options", "kind"),
    [
        ("500", {}, FailureKind.BROKER_FAILED),
        ("502_html", {}, FailureKind.BROKER_FAILED),
        ("malformed_json", {}, FailureKind.BROKER_FAILED),
        ("drop", {}, FailureKind.UNREACHABLE),
        ("slow", {"delay": 1.0}, FailureKind.TIMEOUT),
    ],
)
def test_sandbox_failures_get_their_kinds(
    sandbox: AlpacaSandbox, fault: str, options: dict[str, Any], kind: FailureKind
) -> None:
    broker = make_broker(sandbox, timeout="0.3")
    sandbox.add_fault(fault, method="POST", path="/v2/orders", **options)
    error = broker.place_order(order()).error
    assert error is not None and error.kind is kind


def test_an_unreachable_broker_and_bad_keys(sandbox: AlpacaSandbox) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = AlpacaBroker(api_key="k", secret_key="s", base_url=f"http://127.0.0.1:{port}")
    refused = closed.place_order(order()).error
    assert refused is not None and refused.kind is FailureKind.UNREACHABLE
    with pytest.raises(BrokerReadError) as unreachable:
        closed.get_account()
    assert unreachable.value.kind is FailureKind.UNREACHABLE and not unreachable.value.auth
    bad_keys = make_broker(sandbox, key="PKWRONGKEY1234567890", secret="wrong-secret-0123456789")
    with pytest.raises(BrokerReadError) as unauthorized:
        bad_keys.get_account()
    assert unauthorized.value.kind is FailureKind.UNAUTHORIZED and unauthorized.value.auth


def test_a_generic_validation_refusal_is_not_looked_up_as_a_duplicate(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    """422 40010001 for an unknown asset shares the duplicate id's code: the router must not
    take it for an order the broker already holds."""
    ledger = open_alpaca(open_store, sandbox)
    refused = ledger.trade(side="buy", symbol="ZZZZ", qty="1")
    assert refused.status == "submission_failed" and not refused.outcome_unknown
    assert refused.failures[-1]["code"] == "40010001"
    assert sandbox.requests("GET", "/v2/orders:by_client_order_id") == []


# -- the kinds outside the Alpaca adapter -------------------------------------------------------


def test_the_paper_broker_gives_its_refusal_a_kind() -> None:
    error = PaperBroker().place_order(order()).error
    assert error is not None and error.kind is FailureKind.REJECTED


def test_every_kind_has_a_hint_naming_no_broker_code() -> None:
    assert set(HINTS) == set(FailureKind)
    for kind, line in HINTS.items():
        assert line and not re.search(r"\d{5,}", line), kind


def test_failures_without_a_kind_get_the_general_hint() -> None:
    """Errors built before kinds existed (or by code that names none) still get a line."""
    old_style = BrokerError("40310000", "insufficient buying power", False, 403)
    assert old_style.kind is FailureKind.UNKNOWN
    assert hint_for(old_style) == hint(None) == HINTS[FailureKind.UNKNOWN]
    assert hint_for(None) == HINTS[FailureKind.UNKNOWN]


def test_no_alpaca_code_outside_the_alpaca_adapter() -> None:
    adapter = ROOT / "ledger" / "brokers" / "alpaca" / "errors.py"
    for folder in ("ledger", "projections", "commands"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == adapter:
                continue
            found = re.findall(r"4001\d{4}|4031\d{4}|4221\d{4}|4291\d{4}", path.read_text())
            assert not found, f"{path.relative_to(ROOT)} names Alpaca's codes {found}"
