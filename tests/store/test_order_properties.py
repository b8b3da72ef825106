"""Property-based: random order life cycles fold to the same state after a store round-trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.domain import Order
from ledger.domain.order import OrderStateError
from ledger.domain.values import OrderIntent, Purpose

BASE = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("500"), places=3)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=4)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit")),
        st.tuples(st.just("accept")),
        st.tuples(st.just("fill"), quantities, prices),
        st.tuples(st.just("fill_rest"), prices),
        st.tuples(st.just("refill")),
        st.tuples(st.just("reverse")),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("expire")),
        st.tuples(st.just("reject")),
        st.tuples(st.just("fail")),
    ),
    max_size=14,
)


def snapshot(order: Order) -> dict[str, Any]:
    return {
        "status": order.status,
        "version": order.version,
        "broker_order_id": order.broker_order_id,
        "filled_qty": order.filled_qty,
        "filled_value": order.filled_value,
        "executions": dict(order.executions),
        "reversed": set(order.reversed_executions),
        "failures": list(order.failures),
    }


def run(order: Order, ops: list[tuple[Any, ...]]) -> None:
    for n, op in enumerate(ops):
        before = order.version
        when = BASE + timedelta(seconds=n)
        try:
            match op:
                case ("submit",):
                    order.mark_submitted(broker="alpaca", broker_order_id="b-1")
                case ("accept",):
                    order.mark_accepted(broker_status="new")
                case ("fill", qty, price):
                    order.record_fill(execution_id=f"x-{n}", qty=qty, price=price, filled_at=when)
                case ("fill_rest", price):
                    rest = order.remaining_qty or Decimal(0)
                    order.record_fill(execution_id=f"x-{n}", qty=rest, price=price, filled_at=when)
                case ("refill",):
                    if order.executions:
                        seen = next(iter(order.executions))
                        assert not order.record_fill(
                            execution_id=seen, qty=Decimal(1), price=Decimal(1), filled_at=when
                        )
                case ("reverse",):
                    if order.executions:
                        order.reverse_fill(execution_id=next(iter(order.executions)),
                                           reason="busted")
                case ("cancel",):
                    order.mark_canceled(reason="test")
                case ("expire",):
                    order.mark_expired()
                case ("reject",):
                    order.mark_rejected(reason="test")
                case ("fail",):
                    order.mark_submission_failed(broker="alpaca", code="500", message="down",
                                                 retryable=True, http_status=500)
        except OrderStateError:
            assert order.version == before, "a refused transition must record nothing"
        assert order.filled_qty <= (order.qty or order.filled_qty)
        assert order.filled_qty >= 0


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(qty=quantities, ops=operations)
def test_random_life_cycles_survive_the_store(ledger: Ledger, qty: Decimal,
                                              ops: list[tuple[Any, ...]]) -> None:
    intent = OrderIntent(symbol="AAPL", side="buy", qty=qty)
    order = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION, decision_id=uuid4())
    run(order, ops)
    ledger.save(order)
    assert snapshot(ledger.repository.get(order.id)) == snapshot(order)


def submitted_order(qty: str = "10") -> Order:
    intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal(qty))
    order = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION, decision_id=uuid4())
    order.mark_submitted(broker="alpaca", broker_order_id="b-1")
    return order


def test_fill_on_rejected_order_is_refused() -> None:
    order = submitted_order()
    order.mark_rejected(reason="not tradable")
    with pytest.raises(OrderStateError, match="cannot fill an order that is rejected"):
        order.record_fill(execution_id="x", qty=Decimal(1), price=Decimal(1), filled_at=BASE)


def test_fill_before_the_broker_has_the_order_is_refused() -> None:
    intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal(1))
    order = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION, decision_id=uuid4())
    with pytest.raises(OrderStateError, match="cannot fill an order that is requested"):
        order.record_fill(execution_id="x", qty=Decimal(1), price=Decimal(1), filled_at=BASE)


def test_overfill_is_refused_and_records_nothing() -> None:
    order = submitted_order("10")
    order.record_fill(execution_id="a", qty=Decimal("9.5"), price=Decimal(1), filled_at=BASE)
    version = order.version
    with pytest.raises(OrderStateError, match="would overfill"):
        order.record_fill(execution_id="b", qty=Decimal("0.6"), price=Decimal(1), filled_at=BASE)
    assert order.version == version and order.filled_qty == Decimal("9.5")


def test_seen_execution_is_ignored() -> None:
    order = submitted_order("10")
    assert order.record_fill(execution_id="a", qty=Decimal(4), price=Decimal(2), filled_at=BASE)
    assert not order.record_fill(execution_id="a", qty=Decimal(4), price=Decimal(2),
                                 filled_at=BASE)
    assert order.filled_qty == Decimal(4)


def test_terminal_orders_cannot_be_canceled_or_resubmitted() -> None:
    order = submitted_order("1")
    order.record_fill(execution_id="a", qty=Decimal(1), price=Decimal(2), filled_at=BASE)
    assert order.status == "filled"
    with pytest.raises(OrderStateError):
        order.mark_canceled(reason="late")
    with pytest.raises(OrderStateError):
        order.mark_submitted(broker="alpaca", broker_order_id="b-2")
