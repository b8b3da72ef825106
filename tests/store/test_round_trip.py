"""Every aggregate's events survive a store round-trip exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

from ledger.application import Ledger
from ledger.domain import (
    Adjustment,
    BrokerSnapshot,
    CorporateAction,
    Decision,
    Order,
    Reconciliation,
    event_name,
)
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.values import OrderIntent, Purpose

TINY = Decimal("0.000001")
BIG = Decimal("123456789.123456789")
WHEN = datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)


def stored_events(ledger: Ledger, aggregate_id: object) -> list[object]:
    return list(ledger.events.get(aggregate_id))  # type: ignore[arg-type]


def test_order_life_cycle_round_trips_exactly(ledger: Ledger) -> None:
    intent = OrderIntent(symbol="AAPL", side="buy", qty=BIG, order_type="limit", limit_price=TINY)
    order = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION, decision_id=uuid4())
    order.mark_submitted(broker="alpaca", broker_order_id="b-1")
    order.mark_accepted(broker_status="new")
    order.record_fill(execution_id="x-1", qty=TINY, price=BIG, filled_at=WHEN)
    order.record_fill(execution_id="x-2", qty=BIG - TINY, price=TINY, filled_at=WHEN)
    ledger.save(order)

    copy: Order = ledger.repository.get(order.id)
    assert copy.qty == BIG and str(copy.qty) == "123456789.123456789"
    assert copy.limit_price == TINY and str(copy.limit_price) == "0.000001"
    assert copy.filled_qty == BIG
    assert copy.filled_value == TINY * BIG + (BIG - TINY) * TINY
    assert copy.status == "filled"
    assert copy.executions["x-1"] == (TINY, BIG)
    names = [event_name(e) for e in stored_events(ledger, order.id)]
    assert names == [
        "OrderRequested",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderPartiallyFilled",
        "OrderFilled",
    ]
    fill = stored_events(ledger, order.id)[3]
    assert fill.filled_at == WHEN  # type: ignore[attr-defined]
    assert isinstance(fill.qty, Decimal)  # type: ignore[attr-defined]


def test_failure_rejection_cancel_expiry_and_reversal_round_trip(ledger: Ledger) -> None:
    intent = OrderIntent(symbol="MSFT", side="sell", qty=Decimal("3"))
    failed = Order.request(intent, order_id=uuid4(), purpose=Purpose.COMPENSATION,
                           reconciliation_id=uuid4())
    failed.mark_submission_failed(broker="alpaca", code="40310000",
                                  message="insufficient buying power", retryable=False,
                                  http_status=403)
    rejected = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION,
                             decision_id=uuid4())
    rejected.mark_submitted(broker="alpaca", broker_order_id="b-2")
    rejected.mark_rejected(reason="market closed")
    canceled = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION,
                             decision_id=uuid4())
    canceled.mark_submitted(broker="alpaca", broker_order_id="b-3")
    canceled.record_fill(execution_id="x-9", qty=Decimal("1"), price=Decimal("10.01"),
                         filled_at=WHEN)
    canceled.mark_canceled(reason="user")
    expired = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION,
                            decision_id=uuid4())
    expired.mark_submitted(broker="alpaca", broker_order_id="b-4")
    expired.mark_expired()
    busted = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION,
                           decision_id=uuid4())
    busted.mark_submitted(broker="alpaca", broker_order_id="b-5")
    busted.record_fill(execution_id="x-10", qty=Decimal("3"), price=Decimal("2.5"), filled_at=WHEN)
    busted.reverse_fill(execution_id="x-10", reason="trade busted")
    ledger.save(failed, rejected, canceled, expired, busted)

    assert ledger.repository.get(failed.id).failures == [
        {"code": "40310000", "message": "insufficient buying power", "retryable": False}
    ]
    assert ledger.repository.get(rejected.id).status == "rejected"
    copy = ledger.repository.get(canceled.id)
    assert (copy.status, copy.filled_qty) == ("canceled", Decimal("1"))
    assert ledger.repository.get(expired.id).status == "expired"
    copy = ledger.repository.get(busted.id)
    assert (copy.status, copy.filled_qty) == ("accepted", Decimal("0"))
    assert event_name(stored_events(ledger, busted.id)[-1]) == "OrderFillReversed"


def test_decision_snapshot_corporate_action_adjustment_reconciliation(ledger: Ledger) -> None:
    decision = Decision(source="think-worker", rationale="mean reversion",
                        trades=[{"symbol": "AAPL", "qty": TINY}])
    snapshot = BrokerSnapshot(
        broker="alpaca", paper=True, account_id="acc-1", cash=BIG, equity=BIG + TINY,
        buying_power=Decimal("0.01"),
        positions=[{"symbol": "AAPL", "qty": Decimal("4"), "avg_entry_price": Decimal("187.2")}],
        open_orders=[{"client_order_id": "tl-1", "qty": Decimal("0.5")}],
        broker_time=WHEN, request={"fills_after": None},
    )
    action = CorporateAction(
        id=corporate_action_id("alpaca", "20260105::1"), broker="alpaca",
        activity_id="20260105::1", kind="split", symbol="AAPL", new_symbol=None,
        ratio=Decimal("4"), effective_date=date(2026, 1, 5), description="4-for-1",
    )
    adjustment = Adjustment(book="local", symbol="AAPL", qty=Decimal("-0.25"),
                            price=Decimal("1.5"), who="ops", why="adopt broker position")
    run = Reconciliation(id=uuid4(), dry_run=True, broker="alpaca", paper=True,
                         sync_id=snapshot.id,
                         filters={"symbols": ["AAPL"]})
    run.plan(rows=[{"symbol": "AAPL", "delta": Decimal("6")}], orders=[], market=None)
    run.complete(planned=1, submitted=0, failed=0, skipped=0)
    ledger.save(decision, snapshot, action, adjustment, run)

    assert ledger.repository.get(decision.id).trades == [{"symbol": "AAPL", "qty": TINY}]
    copy = ledger.repository.get(snapshot.id)
    assert (copy.cash, copy.equity, copy.buying_power) == (BIG, BIG + TINY, Decimal("0.01"))
    assert copy.positions[0]["avg_entry_price"] == Decimal("187.2")
    assert copy.broker_time == WHEN
    copy = ledger.repository.get(action.id)
    assert (copy.ratio, copy.effective_date) == (Decimal("4"), date(2026, 1, 5))
    assert ledger.repository.get(adjustment.id).qty == Decimal("-0.25")
    copy = ledger.repository.get(run.id)
    assert copy.completed and copy.rows[0]["delta"] == Decimal("6") and copy.sync_id == snapshot.id
    names = [event_name(e.event) for e in ledger.newest_events(10)]
    assert names == [
        "DecisionRecorded", "BrokerSynced", "CorporateActionRecorded", "AdjustmentRecorded",
        "ReconciliationStarted", "ReconciliationPlanned", "ReconciliationCompleted",
    ]


def test_stored_form_holds_decimals_as_exact_strings(ledger: Ledger) -> None:
    """No float anywhere between input and storage: the stored bytes carry the exact digits."""
    ledger.trade(side="buy", symbol="AAPL", qty="0.000001", price="123456789.123456789")
    states = b" ".join(n.state for n in ledger.recorder.select_notifications(start=1, limit=10))
    assert b'"0.000001"' in states
    assert b'"123456789.123456789"' in states
    assert b"1.23456789123456789e" not in states.lower()
