"""scripts/bench_rebuild.py's history: valid events over many days, and eventsourcing's own
clock and ids given back afterwards. No timing is asserted."""

from __future__ import annotations

import random
from decimal import Decimal

from eventsourcing import domain

from ledger.application import Ledger
from projections import Views
from testing import histories


def test_generate_spreads_days_and_restores_the_domain_module(ledger: Ledger) -> None:
    clock, ids = domain.datetime_now_with_tzinfo, domain.uuid4
    written = histories.generate(ledger, 2_500, per_day=500)
    assert (domain.datetime_now_with_tzinfo, domain.uuid4) == (clock, ids)
    assert written >= 2_500 and ledger.last_notification_id() == written
    views = Views(ledger, timezone="America/New_York")
    views.catch_up()
    days = [day.day for day in views.audit_days()]
    assert len(days) >= 4 and all(day.weekday() < 5 for day in days)


def test_a_smallest_quantity_is_filled_once() -> None:
    # A third of 0.01 used to make a 0.00 fill, which the order refuses.
    assert histories.two_fills(Decimal("0.01")) is None
    assert histories.two_fills(Decimal("0.02")) == (Decimal("0.01"), Decimal("0.01"))
    assert histories.two_fills(Decimal("10")) == (Decimal("3.33"), Decimal("6.67"))
    rng = random.Random(1)
    for _ in range(500):
        aggregates, _count = histories.decision(rng, {}, histories.SessionClock()())
        fills = [e for e in aggregates[1].pending_events if hasattr(e, "execution_id")]
        assert fills and all(e.qty > Decimal(0) for e in fills)
