"""`sync`: broker reads become events once, all or nothing (docs/design.md, "A failed read is
never flat", "Corporate actions are not drift")."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.brokers.alpaca import broker as alpaca_module
from ledger.brokers.port import BrokerActivity, BrokerFill, BrokerOrder, BrokerReadError
from ledger.domain import Order, event_name
from ledger.domain.order import external_order_id
from ledger.domain.values import OrderIntent
from ledger.services.corporate_actions import corporate_actions
from ledger.services.sync_cursor import SyncCursor, next_cursor
from ledger.services.sync_mapper import SyncMapper
from ledger.services.sync_reads import BrokerReads
from ledger.services.syncing import last_cursor
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke
from tests.broker.fixtures_ledger import all_events, event_names, open_alpaca, recorded_executions


@pytest.fixture
def alpaca(open_store: Callable[..., Ledger], sandbox: AlpacaSandbox) -> Ledger:
    return open_alpaca(open_store, sandbox)


def events_named(ledger: Ledger, name: str) -> list[object]:
    return [e for e in all_events(ledger) if event_name(e) == name]


def broker_fill_ids(sandbox: AlpacaSandbox) -> list[str]:
    return [a["id"] for a in sandbox.state()["activities"] if a["activity_type"] == "FILL"]


# -- the snapshot ----------------------------------------------------------------------------


def test_sync_appends_one_snapshot_of_the_account(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    sandbox.set_position("AAPL", "4", "187.2")
    sandbox.set_symbol("MSFT", behavior="hold")
    held = alpaca.trade(side="buy", symbol="MSFT", qty="1.5", order_type="limit", limit_price="1")
    report = alpaca.sync()
    (synced,) = events_named(alpaca, "BrokerSynced")
    assert synced.broker == "alpaca" and synced.paper is True  # type: ignore[attr-defined]
    assert synced.account_id == sandbox.account_id  # type: ignore[attr-defined]
    assert synced.cash == Decimal(100000)  # type: ignore[attr-defined]
    assert synced.positions == [  # type: ignore[attr-defined]
        {
            "symbol": "AAPL",
            "qty": Decimal(4),
            "avg_entry_price": Decimal("187.2"),
            "side": "long",
            "asset_class": "us_equity",
            "market_value": Decimal(760),
            "cost_basis": Decimal("748.8"),
        }
    ]
    (open_order,) = synced.open_orders  # type: ignore[attr-defined]
    assert open_order["client_order_id"] == held.client_order_id
    assert (open_order["order_id"], open_order["purpose"]) == (held.id, "decision")
    assert (open_order["qty"], open_order["limit_price"]) == (Decimal("1.5"), Decimal(1))
    assert report.sync_id == synced.originator_id  # type: ignore[attr-defined]
    assert alpaca.latest_sync() is not None
    assert alpaca.latest_sync().id == report.sync_id  # type: ignore[union-attr]


def test_an_empty_account_is_believed_from_a_good_read(alpaca: Ledger) -> None:
    report = alpaca.sync()
    (synced,) = events_named(alpaca, "BrokerSynced")
    assert synced.positions == [] and synced.open_orders == []  # type: ignore[attr-defined]
    assert report.new_fills == report.new_orders == 0


def stored_cursor(ledger: Ledger) -> SyncCursor | None:
    synced = ledger.latest_sync()
    assert synced is not None
    return SyncCursor.from_request(synced.request)


def test_a_sync_continues_from_the_newest_snapshot_whoever_stored_it(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    first, second = open_alpaca(open_store, sandbox), open_alpaca(open_store, sandbox)
    report = first.sync()
    # Its own snapshot's cursor, known without decoding it, is the one stored in it.
    assert last_cursor(first) == report.cursor == stored_cursor(first)

    sandbox.set_symbol("MSFT", behavior="hold")
    held = second.trade(side="buy", symbol="MSFT", qty="1", order_type="limit", limit_price="1")
    later = second.sync()
    assert later.cursor != report.cursor and held.id in later.cursor.unresolved
    # Another process synced since: the first continues from that snapshot, not its own.
    assert last_cursor(first) == later.cursor == stored_cursor(first)
    again = first.sync()
    assert again.cursor.through > later.cursor.through
    assert last_cursor(second) == again.cursor == stored_cursor(second)


# -- idempotency -----------------------------------------------------------------------------


def test_sync_three_times_records_each_fill_once(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    alpaca.trade(side="buy", symbol="AAPL", qty="2")  # its fill is recorded with the trade
    sandbox.set_symbol("MSFT", behavior="hold")
    held = alpaca.trade(side="buy", symbol="MSFT", qty="10", order_type="limit", limit_price="1")
    assert held.broker_order_id is not None
    sandbox.fill_order(held.broker_order_id, qty="4", price="0.99")
    sandbox.create_external_order("NVDA", "buy", "3")

    reports = [alpaca.sync() for _ in range(3)]
    assert [r.new_fills for r in reports] == [2, 0, 0]
    assert [r.new_orders for r in reports] == [1, 0, 0]
    executions = recorded_executions(alpaca)
    assert sorted(executions) == sorted(broker_fill_ids(sandbox))
    assert len(executions) == len(set(executions)) == 3

    sandbox.fill_order(held.broker_order_id, price="0.98")
    assert alpaca.sync().new_fills == 1
    assert alpaca.sync().new_fills == 0
    order = alpaca.get_order(held.id)
    assert (order.status, order.filled_qty) == ("filled", Decimal(10))
    assert order.avg_fill_price == (Decimal("3.96") + Decimal("5.88")) / 10
    assert len(events_named(alpaca, "BrokerSynced")) == 5


def test_fills_are_read_across_pages(
    alpaca: Ledger, sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca_module, "ACTIVITY_PAGE_SIZE", 2)
    sandbox.set_symbol("SPY", behavior="partial", partial_fraction="0.2")
    order = alpaca.trade(side="buy", symbol="SPY", qty="10")
    assert order.broker_order_id is not None
    for _ in range(4):
        sandbox.fill_order(order.broker_order_id, qty="2")
    alpaca.sync()
    settled = alpaca.get_order(order.id)
    assert (settled.status, settled.filled_qty, len(settled.executions)) == (
        "filled",
        Decimal(10),
        5,
    )
    assert [event_name(e) for e in all_events(alpaca)].count("OrderPartiallyFilled") == 4


def test_an_order_left_requested_by_a_crash_is_settled_by_lookup(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    """Intent stored, order sent, crash before the answer: sync finds it by client id."""
    intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal(5))
    _, (order,) = alpaca.record_decision(source="engine", rationale="x", intents=[intent])
    sandbox.create_external_order("AAPL", "buy", "5", client_order_id=order.client_order_id)
    report = alpaca.sync()
    settled = alpaca.get_order(order.id)
    assert (settled.status, settled.filled_qty, settled.purpose) == (
        "filled",
        Decimal(5),
        "decision",
    )
    assert report.new_orders == 0 and report.new_fills == 1


def test_orders_canceled_at_the_broker_are_recorded(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("MSFT", behavior="hold")
    first = alpaca.trade(side="buy", symbol="MSFT", qty="1", order_type="limit", limit_price="1")
    second = alpaca.trade(side="buy", symbol="MSFT", qty="1", order_type="limit", limit_price="2")
    alpaca.sync()
    assert first.broker_order_id and second.broker_order_id
    sandbox.cancel_order(first.broker_order_id)
    sandbox.cancel_order(second.broker_order_id, status="expired")
    report = alpaca.sync()
    assert alpaca.get_order(first.id).status == "canceled"
    assert alpaca.get_order(second.id).status == "expired"
    assert report.updated_orders == 2
    assert report.cursor.unresolved == ()


# -- external orders and corporate actions ---------------------------------------------------


def test_broker_trades_the_ledger_did_not_originate_are_external(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    placed = sandbox.create_external_order("TSLA", "sell", "2", price="251.5")
    report = alpaca.sync()
    assert (report.new_orders, report.new_fills) == (1, 1)
    external = alpaca.get_order(external_order_id("alpaca", placed["id"]))
    assert (external.purpose, external.decision_id, external.reason) == (
        "external",
        None,
        "found at the broker; not originated by this ledger",
    )
    assert (external.status, external.filled_qty, external.avg_fill_price) == (
        "filled",
        Decimal(2),
        Decimal("251.5"),
    )
    assert events_named(alpaca, "DecisionRecorded") == []
    assert alpaca.sync().new_orders == 0


def test_a_split_and_a_symbol_change_become_corporate_actions_once(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    sandbox.set_position("AAPL", "10", "200")
    sandbox.set_position("META", "3", "500")
    alpaca.sync()
    sandbox.add_split("AAPL", 4, on="2026-01-05")
    sandbox.change_symbol("META", "MVRS")
    report = alpaca.sync()
    assert report.corporate_actions == 2
    actions = {e.kind: e for e in events_named(alpaca, "CorporateActionRecorded")}  # type: ignore[attr-defined]
    split, change = actions["split"], actions["symbol_change"]
    assert (split.symbol, split.ratio, split.new_symbol, split.effective_date) == (
        "AAPL",
        Decimal(4),
        None,
        date(2026, 1, 5),
    )
    assert (change.symbol, change.new_symbol, change.ratio) == ("META", "MVRS", Decimal(1))
    assert alpaca.sync().corporate_actions == 0
    assert alpaca.sync().corporate_actions == 0
    assert len(events_named(alpaca, "CorporateActionRecorded")) == 2
    positions = {p["symbol"]: p["qty"] for p in report.positions}
    assert positions == {"AAPL": Decimal(40), "MVRS": Decimal(3)}


def test_a_reverse_split_ratio_is_exact(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    sandbox.set_position("NVDA", "30", "10")
    sandbox.add_split("NVDA", "0.1")
    alpaca.sync()
    (action,) = events_named(alpaca, "CorporateActionRecorded")
    assert action.ratio == Decimal("0.1")  # type: ignore[attr-defined]


# -- all or nothing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/account",
        "/v2/positions",
        "/v2/orders",
        "/v2/account/activities/FILL",
        "/v2/account/activities",
        "/v2/orders/*",
    ],
)
def test_any_failed_read_stores_nothing(alpaca: Ledger, sandbox: AlpacaSandbox, path: str) -> None:
    sandbox.create_external_order("AAPL", "buy", "1")
    sandbox.set_position("MSFT", "2")
    before = event_names(alpaca)
    sandbox.add_fault("500", method="GET", path=path)
    with pytest.raises(BrokerReadError):
        alpaca.sync()
    assert event_names(alpaca) == before
    sandbox.clear_faults()
    assert alpaca.sync().new_fills == 1


# -- the command -----------------------------------------------------------------------------


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


def test_commands_sync_json(alpaca_cli: dict[str, str], sandbox: AlpacaSandbox) -> None:
    sandbox.set_position("AAPL", "4", "187.2")
    sandbox.create_external_order("MSFT", "buy", "0.5", price="410.25")
    code, out, err = invoke("sync", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["account"]["cash"] == "99794.875"
    assert document["account"]["id"] == sandbox.account_id
    assert {p["symbol"]: (p["qty"], p["avg_entry_price"]) for p in document["positions"]} == {
        "AAPL": ("4", "187.2"),
        "MSFT": ("0.5", "410.25"),
    }
    assert document["new"] == {
        "fills": 1,
        "orders": 1,
        "order_updates": 0,
        "reversals": 0,
        "corporate_actions": 0,
    }
    assert (document["broker"], document["paper"], document["open_orders"]) == ("alpaca", True, [])
    code, out, _ = invoke("sync")
    assert code == 0 and "Synced alpaca (paper) account" in out and "New: 0 fills" in out


def test_commands_sync_with_bad_keys(
    alpaca_cli: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-the-secret-at-all")
    code, out, err = invoke("sync")
    assert code == 2 and out == ""
    assert err.startswith("Error: Failed to sync Alpaca account. Check your API keys")
    assert len(err.strip().splitlines()) == 1
    assert "not-the-secret-at-all" not in err
    assert event_total() == 0


def test_commands_sync_when_the_broker_is_down(
    alpaca_cli: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ALPACA_BASE_URL", f"http://127.0.0.1:{port}")
    code, _, err = invoke("sync", "--json")
    assert code == 1  # a broker that is down needs a later run, not other settings
    assert err.strip() == (
        f"Error: Failed to sync Alpaca account: GET /v2/account: cannot reach Alpaca at "
        f"http://127.0.0.1:{port} (connection refused or no route)"
    )
    assert event_total() == 0


def test_commands_sync_when_the_broker_hangs(
    alpaca_cli: dict[str, str], sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_TIMEOUT_SECONDS", "0.3")
    sandbox.add_fault("slow", path="/v2/positions", delay=1.0)
    started = time.monotonic()
    code, _, err = invoke("sync")
    assert time.monotonic() - started < 0.95
    assert code == 1 and "GET /v2/positions: no answer from Alpaca" in err and "0.3 s" in err
    assert event_total() == 0


def test_commands_sync_on_paper_says_what_to_do(cli_env: dict[str, str]) -> None:
    code, _, err = invoke("sync")
    assert code == 2 and "set BROKER_PROVIDER=alpaca" in err


# -- the mapping, with plain values (what the sandbox cannot stage) --------------------------

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


class Store:
    """The mapper's view of a store: a dict of aggregates."""

    def __init__(self, *orders: Order) -> None:
        self.orders = {o.id: o for o in orders}

    def load_order(self, order_id: UUID) -> Order | None:
        return self.orders.get(order_id)

    def has_aggregate(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.orders


def broker_order(status: str = "filled", qty: str = "10") -> BrokerOrder:
    return BrokerOrder(
        broker_order_id="b-1",
        client_order_id="outside-1",
        symbol="AAPL",
        side="buy",
        order_type="market",
        time_in_force="day",
        status=status,
        qty=Decimal(qty),
        notional=None,
        limit_price=None,
        extended_hours=False,
        filled_qty=Decimal(qty),
        filled_avg_price=Decimal(100),
        created_at=T0,
    )


def fill(
    activity_id: str, qty: str, cum: str, status: str | None = None, price: str = "100"
) -> BrokerFill:
    return BrokerFill(
        activity_id=activity_id,
        broker_order_id="b-1",
        symbol="AAPL",
        side="buy",
        qty=Decimal(qty),
        price=Decimal(price),
        cum_qty=Decimal(cum),
        leaves_qty=None,
        transaction_time=T0,  # all in the same millisecond
        order_status="filled",
        status=status,
    )


def reads(*fills: BrokerFill, order: BrokerOrder | None = None) -> BrokerReads:
    order = order or broker_order()
    return BrokerReads(
        broker_time=T0,
        account=None,
        positions=None,
        open_orders=[],
        fills=list(fills),
        activities=[],
        orders={order.broker_order_id: order},
        fills_after=T0 - timedelta(days=1),
        activities_after=T0 - timedelta(days=1),
    )


def map_and_keep(store: Store, broker_reads: BrokerReads) -> Order:
    outcome = SyncMapper(store, broker="alpaca", watched=[]).map(broker_reads)
    (order,) = outcome.orders
    order.collect_events()
    store.orders[order.id] = order
    return order


def test_partial_fills_in_the_same_millisecond_keep_their_order() -> None:
    store = Store()
    order = map_and_keep(store, reads(fill("z", "3", "10"), fill("a", "7", "7")))
    assert list(order.executions) == ["a", "z"] and order.status == "filled"


def test_a_busted_trade_is_reversed_once() -> None:
    store = Store()
    order = map_and_keep(store, reads(fill("x", "10", "10")))
    order = map_and_keep(store, reads(fill("x", "10", "10"), fill("x", "10", "10", "canceled")))
    assert order.filled_qty == 0 and order.reversed_executions == {"x"}
    again = SyncMapper(store, broker="alpaca", watched=[]).map(
        reads(fill("x", "10", "10"), fill("x", "10", "10", "canceled"))
    )
    assert again.orders == [] and again.reversals == 0


def test_a_corrected_trade_replaces_the_original() -> None:
    store = Store()
    map_and_keep(store, reads(fill("x", "10", "10")))
    order = map_and_keep(store, reads(fill("x", "10", "10", "correct", price="99.5")))
    assert order.filled_qty == Decimal(10) and order.avg_fill_price == Decimal("99.5")
    assert set(order.executions) == {"x", "x#corrected"}
    # Seen only corrected: booked once, at the corrected price.
    fresh = map_and_keep(Store(), reads(fill("x", "10", "10", "correct", price="99.5")))
    assert list(fresh.executions) == ["x#corrected"]


def test_a_fill_that_contradicts_the_order_is_reported_not_stored() -> None:
    outcome = SyncMapper(Store(), broker="alpaca", watched=[]).map(
        reads(fill("x", "11", "11"), order=broker_order(qty="10"))
    )
    assert outcome.orders == []
    assert "would overfill" in outcome.warnings[0]
    assert outcome.fills_after is not None and outcome.fills_after < T0  # read again next time


def activity(
    activity_id: str, kind: str, symbol: str, qty: str, group: str | None
) -> BrokerActivity:
    return BrokerActivity(
        activity_id=activity_id,
        activity_type=kind,
        sub_type=None,
        symbol=symbol,
        qty=Decimal(qty),
        price=None,
        net_amount=Decimal(0),
        on=date(2026, 1, 5),
        description=f"{kind} {symbol}",
        group_id=group,
        status="executed",
        created_at=T0,
    )


def test_corporate_action_legs_are_paired() -> None:
    complete, waiting = corporate_actions(
        [
            activity("1", "SPLIT", "AAPL", "-3", "g1"),
            activity("2", "SPLIT", "AAPL", "9", "g1"),
            activity("3", "NC", "FB", "-2", "g2"),
            activity("4", "MA", "XYZ", "-5", None),
            activity("5", "SPLIT", "TSLA", "-1", "g3"),
        ]
    )
    assert [(f.kind, f.symbol, f.new_symbol, f.ratio) for f in complete] == [
        ("split", "AAPL", None, Decimal(3)),
        ("merger", "XYZ", None, Decimal(0)),
    ]
    assert sorted(a.activity_id for a in waiting) == ["3", "5"]


def test_the_cursor_never_skips_what_must_be_read_again() -> None:
    after = T0 - timedelta(hours=1)
    assert next_cursor(after, [], []) == after
    assert next_cursor(after, [T0], []) == T0 - timedelta(minutes=2)
    assert next_cursor(after, [T0], [T0 - timedelta(minutes=30)]) == T0 - timedelta(minutes=32)
    assert next_cursor(after, [T0], [after + timedelta(seconds=1)]) == after
