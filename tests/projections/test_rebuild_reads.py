"""What a rebuild reads: order status events taken as Stamps fold exactly as whole events do."""

from __future__ import annotations

from decimal import Decimal as D

from ledger.application import Ledger
from ledger.domain import Order
from projections.engine.memory_fold import fold_events
from projections.engine.runner import read_page
from projections.model.catalogue import STATUS_ONLY_EVENTS, Stamp
from tests.projections.compare import ZONE, memory_dumps
from tests.projections.script import Script


def status_history(ledger: Ledger, script: Script) -> None:
    script.order("AAPL", "buy", "10", [(D(4), D(100))], cancel=True)
    script.order("MSFT", "buy", "2", [(D(2), D(400))], broker="alpaca")
    expiring = script.order("NVDA", "sell", "3", broker="alpaca")
    order: Order = ledger.repository.get(expiring.id)
    order.mark_expired()
    ledger.save(order)


def test_status_events_fold_alike_as_stamps(ledger: Ledger, script: Script) -> None:
    status_history(ledger, script)
    whole = read_page(ledger, 0, 1_000)
    light = read_page(ledger, 0, 1_000, full=False, statuses=True)
    stamped = {e.event_class for _, e in light if isinstance(e, Stamp)}
    assert {Order.Accepted, Order.Canceled, Order.Expired} <= stamped
    assert [seq for seq, _ in light] == [seq for seq, _ in whole]
    assert memory_dumps(fold_events(light, ZONE)) == memory_dumps(fold_events(whole, ZONE))


def test_status_events_stay_whole_for_other_readers(ledger: Ledger, script: Script) -> None:
    # The web page's explanations take a Stamp to mean "changes no view row".
    status_history(ledger, script)
    page = read_page(ledger, 0, 1_000, full=False)
    assert not [e for _, e in page if isinstance(e, Stamp) and e.event_class in STATUS_ONLY_EVENTS]
    assert any(type(e) is Order.Accepted for _, e in page)
