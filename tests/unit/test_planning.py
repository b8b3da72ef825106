"""The reconciliation rules, each checked with plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from ledger.domain.planning import (
    CAUSE_CORPORATE_ACTION,
    CAUSE_EXTERNAL_TRADE,
    CAUSE_LOCAL_NOT_EXECUTED,
    CAUSE_UNKNOWN,
    PlanRules,
    SymbolFacts,
    delta_for,
    likely_cause,
    limit_price_for,
    looks_like_split,
    plan,
)

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


_UNSET = object()


def own(symbol: str, local_qty: D, broker_qty: D, *, last_price: object = _UNSET,
        **facts: object) -> SymbolFacts:
    """A difference the ledger's own paper decisions explain, priced at the broker."""
    pending = facts.get("pending_qty", D(0))
    facts.setdefault("paper_decision_qty", local_qty - broker_qty - pending)  # type: ignore[operator]
    price = D(100) if last_price is _UNSET else last_price
    return SymbolFacts(symbol, local_qty, broker_qty, last_price=price, **facts)  # type: ignore[arg-type]


def one(facts: SymbolFacts, rules: PlanRules | None = None):
    (row,) = plan([facts], rules or PlanRules(), NOW)
    return row


def test_the_story_buy_six_aapl() -> None:
    row = one(own("AAPL", D(10), D(4)))
    assert row.delta == D(6) and row.status == "planned"
    assert (row.order.side, row.order.qty, row.order.order_type, row.order.time_in_force) == (
        "buy", D(6), "market", "day")
    assert row.reason == f"{CAUSE_LOCAL_NOT_EXECUTED} (filled by the paper broker)"


def test_delta_nets_out_pending_orders() -> None:
    assert delta_for(D(10), D(4), D(6)) == 0
    assert delta_for(D(10), D(4), D(2)) == D(4)
    assert delta_for(D("1.5"), D("0.25"), D(0)) == D("1.25")
    row = one(SymbolFacts("AAPL", local_qty=D(10), broker_qty=D(4), pending_qty=D(6)))
    assert row.status == "in_sync" and row.order is None and row.reason is None


def test_fractional_delta_is_a_fractional_order() -> None:
    row = one(own("VTI", D("2.75"), D("3.000000001")))
    assert (row.order.side, row.order.qty) == ("sell", D("0.250000001"))


@pytest.mark.parametrize(
    ("facts", "cause"),
    [
        (SymbolFacts("A", D(10), D(40)), f"{CAUSE_CORPORATE_ACTION} (one book is 4x the other)"),
        (SymbolFacts("A", D(10), D(40), has_corporate_action=True), CAUSE_UNKNOWN),
        (SymbolFacts("A", D(10), D(4), paper_decision_qty=D(6)),
         f"{CAUSE_LOCAL_NOT_EXECUTED} (filled by the paper broker)"),
        (SymbolFacts("A", D(10), D(15), external_qty=D(5)), CAUSE_EXTERNAL_TRADE),
        (SymbolFacts("A", D(10), D(7)), CAUSE_UNKNOWN),
    ],
)
def test_every_difference_carries_its_likely_cause(facts: SymbolFacts, cause: str) -> None:
    delta = delta_for(facts.local_qty, facts.broker_qty, facts.pending_qty)
    assert likely_cause(facts, delta) == cause


def test_split_ratio_detection() -> None:
    assert looks_like_split(D(10), D(40)) == D(4)
    assert looks_like_split(D(40), D(10)) == D(4)
    assert looks_like_split(D(10), D(7)) is None
    assert looks_like_split(D(10), D(-20)) is None
    assert looks_like_split(D(0), D(20)) is None


@pytest.mark.parametrize(
    ("facts", "rules", "reason"),
    [
        (own("A", D(10), D(4), in_flight=True), PlanRules(),
         "an order for this symbol is in flight at the broker"),
        (own("A", D(10), D(4), last_broker_fill_at=NOW - timedelta(seconds=5)),
         PlanRules(), "broker fill 5s ago"),
        (own("A", D(10), D(4), consecutive_compensations=3), PlanRules(),
         "oscillating: compensated in each of the last 3 runs"),
        (own("A", D(0), D(4), pending_qty=D(1)), PlanRules(),
         "would sell short at the broker while the local book is not short"),
        (own("A", D(10), D(4), last_local_trade_day=date(2026, 1, 2)),
         PlanRules(since=date(2026, 1, 5)), "not traded by the local book since 2026-01-05"),
        (own("A", D(10), D(4)), PlanRules(since=date(2026, 1, 5)),
         "not traded by the local book since 2026-01-05"),
        (own("A", D(10), D(4), last_price=D(200)), PlanRules(max_order_notional=D(1000)),
         "is above the per-order cap 1000"),
        (own("A", D(10), D(4), last_price=None), PlanRules(max_order_notional=D(1000)),
         "no broker price for this symbol"),
    ],
)
def test_safety_envelope_skips_with_reason(facts: SymbolFacts, rules: PlanRules,
                                           reason: str) -> None:
    row = one(facts, rules)
    assert row.status == "skipped" and row.order is None
    assert reason in (row.skip_reason or "")
    assert row.reason is not None, "a skipped difference is still explained"


def test_old_broker_fill_and_two_compensations_do_not_block() -> None:
    facts = own("A", D(10), D(4), last_broker_fill_at=NOW - timedelta(seconds=31),
                        consecutive_compensations=2, last_local_trade_day=date(2026, 1, 5))
    assert one(facts, PlanRules(since=date(2026, 1, 5))).status == "planned"


def test_short_sale_planned_when_local_book_is_short() -> None:
    row = one(own("A", D(-5), D(0)))
    assert (row.order.side, row.order.qty) == ("sell", D(5))


def test_run_notional_cap_skips_what_does_not_fit() -> None:
    facts = [own("A", D(10), D(0), last_price=D(50)),   # 500
             own("B", D(10), D(0), last_price=D(40)),   # 400
             own("C", D(1), D(0), last_price=D(50))]    # 50
    rows = plan(facts, PlanRules(max_run_notional=D(600)), NOW)
    assert [r.status for r in rows] == ["planned", "skipped", "planned"]
    assert "per-run cap 600" in rows[1].skip_reason


def test_extended_hours_uses_limit_orders_across_the_last_price() -> None:
    rules = PlanRules(extended_hours=True, extended_hours_slippage=D("0.01"))
    buy = one(own("A", D(10), D(4), last_price=D("187.20")), rules).order
    assert (buy.order_type, buy.limit_price, buy.extended_hours) == ("limit", D("189.07"), True)
    sell = one(own("A", D(4), D(10), last_price=D("0.5")), rules).order
    assert (sell.side, sell.limit_price) == ("sell", D("0.4950"))
    assert limit_price_for("buy", D(100), D("0.005")) == D("100.50")


def test_decision_order_in_flight_is_no_part_of_the_difference() -> None:
    """Its fills move both books alike; netting it would plan the opposite trade."""
    from projections.model.positions import OpenOrder, open_qty_by_symbol

    def order(purpose: str, client_order_id: str) -> OpenOrder:
        return OpenOrder(client_order_id=client_order_id, symbol="AAPL", side="buy",
                         purpose=purpose, status="accepted", broker="alpaca", qty=D(10),
                         filled_qty=D(0), requested_at=NOW)

    snapshot = [{"client_order_id": "tl-d", "symbol": "AAPL", "side": "buy", "qty": "10",
                 "filled_qty": "0", "purpose": "decision"}]
    assert open_qty_by_symbol(snapshot, NOW, [order("decision", "tl-d")]) == {}
    assert open_qty_by_symbol([], NOW - timedelta(seconds=1),
                              [order("compensation", "tl-c")]) == {"AAPL": D(10)}
