"""A reconcile run pauses Python's cycle collector, and always gives it back as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ledger.brokers.port import BrokerReadError
from ledger.infrastructure.collector import CollectorPaused
from ledger.services.reconciling import Reconciler, ReconcileRequest


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_resumed_after_even_on_error() -> None:
    with CollectorPaused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), CollectorPaused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused() -> None:
    gc.disable()
    with CollectorPaused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_a_failed_run_resumes_the_collector() -> None:
    seen: list[bool] = []

    def sync(**_: Any) -> None:
        seen.append(gc.isenabled())
        raise BrokerReadError("GET /v2/positions: the broker did not answer")

    settings = SimpleNamespace(broker_provider="alpaca", alpaca_paper_mode=True,
                               not_alpaca=lambda purpose: None)
    books = SimpleNamespace(catch_up=lambda: 0, unresolved_orders=lambda: [])
    ledger = SimpleNamespace(sync=sync, get_order=lambda order_id: None)
    reconciler = Reconciler(ledger, books=books, settings=settings)  # type: ignore[arg-type]
    with pytest.raises(BrokerReadError):
        reconciler.run(ReconcileRequest(dry_run=True))
    assert seen == [False] and gc.isenabled()
