"""Corrections audited on the day they happen: a busted fill taken back days later, an order
canceled after resting overnight, and an orders view damaged since. Paper trades; both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from ledger.domain.order import Order
from projections import books_at, catch_up
from projections.engine.tables import ORDERS
from projections.queries.audit import audit_document
from testing.clock import stamped_by
from tests.audit.history import Clock, utc

D = Decimal


def test_a_fill_busted_two_days_later_is_taken_back_on_that_day(
    open_store: Callable[..., Ledger],
) -> None:
    clock = Clock()
    ledger = open_store(adapter=PaperBroker(clock))
    with stamped_by(clock):
        clock.set(utc("2026-04-06T15:00:00"))
        ledger.trade(side="buy", symbol="SPY", qty="10", price="100", reason="open")
        clock.set(utc("2026-04-07T15:00:00"))
        sale = ledger.trade(side="sell", symbol="SPY", qty="4", price="110", reason="profit")
        clock.set(utc("2026-04-08T15:00:00"))
        ledger.trade(side="buy", symbol="SPY", qty="2", price="90", reason="cheap")
        clock.set(utc("2026-04-09T15:00:00"))
        order: Order = ledger.get_order(sale.id)
        (execution,) = order.executions
        order.reverse_fill(execution_id=execution, reason="busted by the exchange")
        ledger.save(order)
    views = catch_up(ledger, timezone="America/New_York")

    (reversal,) = audit_document(views, date(2026, 4, 9))["timeline"]
    assert (reversal["event"], reversal["execution_id"], reversal["qty"], reversal["price"]) == (
        "OrderFillReversed", execution, D(4), D(110)
    )
    # Filled, then taken back: nothing filled any more, so the order is back to accepted.
    assert (reversal["status"], reversal["filled_qty"]) == ("accepted", D(0))
    document = audit_document(views, date(2026, 4, 9))
    # Before: 10 @ 100, sold 4 @ 110 (+40), bought 2 @ 90 -> 8 @ (600 + 180) / 8 = 97.5.
    assert [(r["qty"], r["avg_price"], r["realised_pnl"]) for r in document["opening"]["local"]] \
        == [(D(8), D("97.5"), D(40))]
    # Without the sale: 10 @ 100 and 2 @ 90 -> 12 @ 1180 / 12; the 40 was never made.
    assert [(r["qty"], r["avg_price"], r["realised_pnl"]) for r in document["closing"]["local"]] \
        == [(D(12), D(1180) / D(12), D(0))]
    assert document["pnl"] == [{"symbol": "SPY", "local": D(-40), "broker": D(0)}]
    close = document["ends_at"] - timedelta(microseconds=1)
    (row,) = books_at(ledger, close, views.zone).local_book()
    assert (row.qty, row.avg_price, row.realised_pnl) == (D(12), D(1180) / D(12), D(0))


def test_order_statuses_come_from_the_events_not_from_the_orders_view(
    open_store: Callable[..., Ledger],
) -> None:
    """A limit order rests for a day and is canceled the next: each day shows it as it was
    then, even when the orders view has been damaged since."""
    clock = Clock()
    ledger = open_store(adapter=PaperBroker(clock))
    with stamped_by(clock):
        clock.set(utc("2026-06-01T15:00:00"))
        resting = ledger.trade(side="buy", symbol="SPY", qty="5", price="500",
                               order_type="limit", limit_price="450", reason="a bargain")
        clock.set(utc("2026-06-03T15:00:00"))
        order: Order = ledger.get_order(resting.id)
        order.mark_canceled(reason="no longer wanted")
        ledger.save(order)
    views = catch_up(ledger, timezone="America/New_York")
    with views.store.write() as tx:
        tx.execute(
            f'UPDATE {views.store.name(ORDERS.name)} SET "status" = ?, "filled_qty" = ?',
            ("filled", "5"),
        )

    (open_then,) = audit_document(views, date(2026, 6, 2))["unresolved"]["open_orders"]
    assert (open_then["status"], open_then["filled_qty"]) == ("accepted", D(0))
    (canceled,) = audit_document(views, date(2026, 6, 3))["timeline"]
    assert (canceled["event"], canceled["status"], canceled["filled_qty"]) == (
        "OrderCanceled", "canceled", D(0)
    )
    assert canceled["text"] == "no longer wanted"
    assert audit_document(views, date(2026, 6, 3))["unresolved"]["open_orders"] == []
