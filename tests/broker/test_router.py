"""One router, intent before effect (docs/design.md, "One router", "Intent before effect"),
and the paper broker."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import Ledger
from ledger.brokers import router as router_module
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import (
    BrokerAnswer,
    BrokerError,
    BrokerReadError,
    FailureKind,
    OrderTicket,
)
from ledger.brokers.router import LANDING_WINDOW, BrokerRouter
from ledger.domain.values import InvalidInput, OrderIntent, validate
from ledger.services.trading import NotSent
from tests.broker.fixtures_ledger import event_names

ROOT = Path(__file__).resolve().parents[2]
ROUTER = Path("ledger/brokers/router.py")
ADAPTER = Path("ledger/brokers/alpaca/broker.py")
# Methods that put an order at a broker: ours, and alpaca-py's own.
SUBMITTING = {"place_order": {ROUTER}, "submit_order": {ADAPTER}}


def project_sources() -> list[Path]:
    skip = {"tests", ".git", ".venv", "venv", "node_modules", "build", "dist"}
    return [
        path.relative_to(ROOT)
        for path in sorted(ROOT.rglob("*.py"))
        if not skip & set(path.relative_to(ROOT).parts)
    ]


def submitting_calls(source: str) -> list[tuple[str, int]]:
    """Every call of a submitting method, however reached: `x.place_order(...)`,
    `getattr(x, "place_order")`, or a bare `place_order(...)` after an import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if name in SUBMITTING:
                found.append((name, node.lineno))
        elif isinstance(node, ast.Constant) and node.value in SUBMITTING:
            found.append((str(node.value), node.lineno))
    return found


def test_the_scan_sees_the_whole_project() -> None:
    sources = {str(p) for p in project_sources()}
    assert {str(ROUTER), str(ADAPTER), "ledger/application.py", "commands/trade.py"} <= sources


@pytest.mark.parametrize(
    "source",
    [
        "broker.place_order(ticket)",
        "self.router.adapter.place_order(t)",
        "getattr(adapter, 'place_order')(t)",
        "from x import place_order\nplace_order(t)",
        "client.submit_order(request)",
    ],
)
def test_the_scan_catches_a_bypass(source: str) -> None:
    assert submitting_calls(source)


def test_only_the_router_submits_orders() -> None:
    bypasses = [
        f"{path}:{line} calls {name}"
        for path in project_sources()
        for name, line in submitting_calls((ROOT / path).read_text(encoding="utf-8"))
        if path not in SUBMITTING[name]
    ]
    assert not bypasses, "orders must go through ledger/brokers/router.py: " + "; ".join(bypasses)


def test_the_router_is_the_one_caller_of_place_order() -> None:
    calls = submitting_calls((ROOT / ROUTER).read_text(encoding="utf-8"))
    assert [name for name, _ in calls] == ["place_order"]


# -- the router's rules, with a broker double -------------------------------------------


class ScriptedBroker:
    """A broker that answers from a script and remembers what it was asked."""

    name = "scripted"
    paper = True

    def __init__(
        self,
        answers: list[BrokerAnswer],
        found: BrokerAnswer | None = None,
        *,
        on_place: Callable[[OrderTicket], None] | None = None,
        lookup_fails: bool = False,
    ) -> None:
        self.answers = answers
        self.found = found
        self.placed: list[OrderTicket] = []
        self.looked_up: list[str] = []
        self.on_place = on_place
        self.lookup_fails = lookup_fails

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer:
        if self.on_place is not None:
            self.on_place(ticket)
        self.placed.append(ticket)
        return self.answers.pop(0)

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        self.looked_up.append(client_order_id)
        if self.lookup_fails:
            raise BrokerReadError("GET /v2/orders:by_client_order_id: broker down")
        return self.found


def unknown(code: str = "connection_lost") -> BrokerAnswer:
    error = BrokerError(code, "lost", retryable=True, outcome_unknown=True)
    return BrokerAnswer(broker="scripted", error=error)


ACCEPTED = BrokerAnswer(broker="scripted", broker_order_id="B-1", status="new")


def test_intent_is_stored_before_the_broker_is_called(
    open_store: Callable[..., Ledger],
) -> None:
    seen_by_broker: list[list[str]] = []
    broker = ScriptedBroker([ACCEPTED], on_place=lambda _: seen_by_broker.append(names()))
    ledger = open_store(adapter=broker)

    def names() -> list[str]:
        return event_names(ledger)

    ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    # The intent, and that its send began, are stored before the broker is called.
    assert seen_by_broker == [["DecisionRecorded", "OrderRequested", "OrderSendStarted"]]
    assert event_names(ledger)[3:] == ["OrderSubmitted", "OrderAccepted"]


def test_lost_reply_is_looked_up_not_resubmitted(open_store: Callable[..., Ledger]) -> None:
    broker = ScriptedBroker([unknown()], found=ACCEPTED)
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert (order.status, order.broker_order_id) == ("accepted", "B-1")
    assert len(broker.placed) == 1 and broker.looked_up == [order.client_order_id]


def test_duplicate_id_is_looked_up(open_store: Callable[..., Ledger]) -> None:
    duplicate = BrokerAnswer(
        broker="scripted",
        # The adapter says what a refusal is; the router acts on the kind, not the code.
        error=BrokerError("40010001", "client_order_id must be unique", False,
                          kind=FailureKind.DUPLICATE_ID),
    )
    broker = ScriptedBroker([duplicate], found=ACCEPTED)
    order = open_store(adapter=broker).trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert order.broker_order_id == "B-1" and len(broker.placed) == 1


def test_a_failed_order_is_looked_up_before_any_retry(open_store: Callable[..., Ledger]) -> None:
    broker = ScriptedBroker([unknown()], found=None)
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert order.status == "outcome_unknown" and order.failures[-1]["retryable"]

    # The first attempt did reach the broker after all: a retry finds it and sends nothing.
    broker.found = ACCEPTED
    retried, _ = ledger.submit(order.id)
    assert retried.broker_order_id == "B-1" and len(broker.placed) == 1


def test_no_resubmission_when_the_lookup_itself_fails(open_store: Callable[..., Ledger]) -> None:
    broker = ScriptedBroker([unknown()], lookup_fails=True)
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert order.status == "outcome_unknown" and len(broker.placed) == 1
    retried, _ = ledger.submit(order.id)
    assert retried.status == "outcome_unknown"
    assert retried.failures[-1]["code"] == "lookup_failed"
    assert "nothing was sent" in retried.failures[-1]["message"]
    assert len(broker.placed) == 1


def test_only_stored_unsubmitted_orders_are_routable(open_store: Callable[..., Ledger]) -> None:
    broker = ScriptedBroker([ACCEPTED])
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    with pytest.raises(ValueError, match="not routable"):
        BrokerRouter(broker).route(ledger.get_order(order.id))


def _requested(ledger: Ledger) -> UUID:
    intent = validate(OrderIntent, symbol="AAPL", side="buy", qty="3")
    _, (order,) = ledger.record_decision(source="t", rationale="", intents=[intent])
    return order.id


def test_a_first_send_to_a_remote_broker_must_be_stored_as_started(
    open_store: Callable[..., Ledger],
) -> None:
    broker = ScriptedBroker([ACCEPTED])
    ledger = open_store(adapter=broker)
    order_id = _requested(ledger)
    with pytest.raises(ValueError, match="stored as started"):
        BrokerRouter(broker).route(ledger.get_order(order_id))
    assert broker.placed == []


def test_an_order_withdrawn_by_another_process_first_is_never_sent(
    open_store: Callable[..., Ledger],
) -> None:
    """The send's mark is appended with optimistic concurrency: when a run that took the
    lock over withdrew the order after this process read it, the mark loses, and nothing
    is sent."""
    broker = ScriptedBroker([ACCEPTED])
    ledger = open_store(adapter=broker)
    order_id = _requested(ledger)
    stale = ledger.get_order(order_id)
    other = ledger.get_order(order_id)
    other.withdraw_unsent(reason="never sent; superseded")
    ledger.save(other)
    with pytest.raises(IntegrityError):
        ledger.router.route(stale, store_send_start=lambda marked: ledger.save(marked))
    assert broker.placed == []
    # Read afresh, the order says why: it was withdrawn.
    with pytest.raises(NotSent, match="canceled"):
        ledger.submit(order_id)
    assert broker.placed == []


def test_a_live_account_needs_confirmation(open_store: Callable[..., Ledger]) -> None:
    broker = ScriptedBroker([ACCEPTED])
    broker.paper = False
    ledger = open_store(adapter=broker)
    with pytest.raises(InvalidInput, match="--confirm-live"):
        ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert event_names(ledger) == [] and broker.placed == []
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10", confirm_live=True)
    assert order.status == "accepted"


# -- the paper broker ----------------------------------------------------------------------


def test_paper_fills_market_orders_at_the_given_price(ledger: Ledger) -> None:
    order = ledger.trade(side="buy", symbol="AAPL", qty="10", price="187.20")
    assert (order.status, order.filled_qty, order.avg_fill_price) == (
        "filled",
        Decimal(10),
        Decimal("187.20"),
    )
    (execution_id,) = order.executions
    assert execution_id and order.broker == "paper"


@pytest.mark.parametrize(
    ("side", "limit", "price", "fills"),
    [
        ("buy", "100", "99.99", True),
        ("buy", "100", "100", True),
        ("buy", "100", "100.01", False),
        ("sell", "100", "100.01", True),
        ("sell", "100", "99.99", False),
    ],
)
def test_paper_limit_orders_fill_only_when_crossed(
    ledger: Ledger, side: str, limit: str, price: str, fills: bool
) -> None:
    order = ledger.trade(
        side=side, symbol="MSFT", qty="2", price=price, order_type="limit", limit_price=limit
    )
    assert order.status == ("filled" if fills else "accepted")
    assert order.filled_qty == (Decimal(2) if fills else 0)
    if fills:
        assert order.avg_fill_price == Decimal(price)


def test_paper_broker_alone() -> None:
    moment = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    broker = PaperBroker(clock=lambda: moment)
    ticket = OrderTicket(
        "tl-x", "AAPL", "buy", None, Decimal("100"), "market", "day", None, False, Decimal(200)
    )
    answer = broker.place_order(ticket)
    assert answer.executions[0].qty == Decimal("0.5") and answer.executions[0].filled_at == moment
    assert broker.place_order(ticket) == answer  # deterministic ids: same ticket, same fill
    no_price = broker.place_order(
        OrderTicket("tl-y", "AAPL", "buy", Decimal(1), None, "market", "day", None, False)
    )
    assert no_price.error is not None and no_price.error.code == "price_required"
    assert broker.find_order("tl-x") is None


REFUSED = BrokerAnswer(
    broker="scripted",
    error=BrokerError("40310000", "insufficient buying power", retryable=False, http_status=403),
)


def test_a_refused_resend_keeps_the_order_unknown_while_the_first_send_may_land(
    open_store: Callable[..., Ledger],
) -> None:
    """A refusal of a second send says nothing of the first, still perhaps on its way."""
    broker = ScriptedBroker([unknown("timeout"), REFUSED])
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert order.status == "outcome_unknown"
    resent, _ = ledger.submit(order.id)
    assert resent.status == "outcome_unknown", "it may still land"
    assert "may still land" in resent.failures[-1]["message"]
    assert [t.client_order_id for t in broker.placed] == [order.client_order_id] * 2


def test_a_refused_resend_settles_the_order_long_after_the_first_send(
    open_store: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = ScriptedBroker([unknown("timeout"), REFUSED])
    ledger = open_store(adapter=broker)
    order = ledger.trade(side="buy", symbol="AAPL", qty="3", price="10")
    later = datetime.now(UTC) + LANDING_WINDOW + timedelta(seconds=1)
    monkeypatch.setattr(router_module, "datetime", _FrozenAt(later))
    resent, _ = ledger.submit(order.id)
    assert resent.status == "submission_failed"
    assert resent.failures[-1]["code"] == "40310000"


def test_a_duplicate_refusal_the_lookup_cannot_see_yet_stays_unknown(
    open_store: Callable[..., Ledger],
) -> None:
    duplicate = BrokerAnswer(
        broker="scripted",
        error=BrokerError("40010001", "Alpaca already has an order with this client order "
                          "id: client_order_id must be unique", False,
                          kind=FailureKind.DUPLICATE_ID),
    )
    broker = ScriptedBroker([duplicate], found=None)
    order = open_store(adapter=broker).trade(side="buy", symbol="AAPL", qty="3", price="10")
    assert order.status == "outcome_unknown", "an order with its id exists at the broker"


class _FrozenAt:
    """`datetime` as the router sees it, with `now` fixed."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self, tz: object = None) -> datetime:
        return self.moment
