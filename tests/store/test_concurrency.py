"""Optimistic concurrency: a stale writer gets a conflict, never a silent overwrite."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import Ledger
from ledger.domain import Order, Reconciliation
from ledger.domain.values import OrderIntent, Purpose


def test_two_writers_on_one_order_second_gets_conflict(open_store: Callable[..., Ledger]) -> None:
    first, second = open_store(), open_store()
    intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal("1"))
    order = Order.request(intent, order_id=uuid4(), purpose=Purpose.DECISION, decision_id=uuid4())
    first.save(order)

    mine = first.repository.get(order.id)
    theirs = second.repository.get(order.id)
    mine.mark_submitted(broker="alpaca", broker_order_id="b-1")
    theirs.mark_submission_failed(broker="alpaca", code="500", message="down", retryable=True,
                                  http_status=500)
    first.save(mine)
    with pytest.raises(IntegrityError):
        second.save(theirs)

    final = second.repository.get(order.id)
    assert (final.status, final.broker_order_id, final.version) == ("submitted", "b-1", 2)


def test_conflict_on_every_aggregate_kind(open_store: Callable[..., Ledger]) -> None:
    first, second = open_store(), open_store()
    run = Reconciliation(id=uuid4(), dry_run=False, broker="alpaca", paper=True, sync_id=None,
                         filters={})
    first.save(run)
    a, b = first.repository.get(run.id), second.repository.get(run.id)
    a.plan(rows=[], orders=[], market=None)
    b.complete(planned=0, submitted=0, failed=0, skipped=0)
    first.save(a)
    with pytest.raises(IntegrityError):
        second.save(b)
    assert second.repository.get(run.id).version == 2


def test_same_deterministic_id_cannot_be_created_twice(ledger: Ledger) -> None:
    """Deterministic ids make a second request of the same order a conflict, not a twin."""
    intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal("1"))
    order_id = uuid4()
    ledger.save(Order.request(intent, order_id=order_id, purpose=Purpose.DECISION,
                              decision_id=uuid4()))
    before = ledger.last_notification_id()
    with pytest.raises(IntegrityError):
        ledger.save(Order.request(intent, order_id=order_id, purpose=Purpose.DECISION,
                                  decision_id=uuid4()))
    assert ledger.last_notification_id() == before
