"""Each day's close in the audit index lists the orders open at that close, and a day's audit
finds the orders left open at its end from the list of the day before."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from ledger.domain.order import Order
from projections import Views, rebuild
from projections.queries.audit import audit_document
from testing.clock import Clock
from tests.projections.script import Script

NY = ZoneInfo("America/New_York")
DAYS = [date(2026, 1, d) for d in (5, 6, 7, 8, 9)]


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=NY).astimezone(UTC)


def cancel(ledger: Ledger, order_id: UUID) -> None:
    order: Order = ledger.repository.get(order_id)
    order.mark_canceled(reason="test")
    ledger.save(order)


def write_week(ledger: Ledger, script: Script, clock: Clock, views: Views) -> dict[date, set]:
    """Orders that stay open across days, close, and open again; the views catch up after
    every day (so each catch-up starts from the tables). Returns the open ids per close."""
    clock.set(at(5, 10))
    a = script.order("AAPL", "buy", "5", broker="alpaca")  # accepted, never filled
    b = script.order("MSFT", "buy", "4", [("1", "300")], broker="alpaca")  # partly filled
    c = script.order("NVDA", "buy", "2", [("2", "100")])  # filled on paper
    views.catch_up()
    clock.set(at(6, 11))
    script.fill(b.id, "3", "301")  # b filled
    script.reverse(c.id)  # c's fill busted: c is open again
    d = script.order("AAPL", "sell", "1", submit=False)  # requested, never sent
    views.catch_up()
    # 7 January: nothing happens.
    clock.set(at(8, 9))
    cancel(ledger, a.id)
    script.order("MSFT", "sell", "2", [("2", "310")], broker="alpaca")  # opens and closes
    views.catch_up()
    clock.set(at(9, 10))
    script.fill(c.id, "2", "99")  # c filled again
    views.catch_up()
    return {
        DAYS[0]: {a.id, b.id},
        DAYS[1]: {a.id, c.id, d.id},
        DAYS[2]: {a.id, c.id, d.id},
        DAYS[3]: {c.id, d.id},
        DAYS[4]: {d.id},
    }


def listed(closing: str) -> set[UUID]:
    return {UUID(hex=i) for i in json.loads(closing)["open_orders"]}


def audited_open(document: dict[str, Any]) -> set[UUID]:
    return {o["order_id"] for o in document["unresolved"]["open_orders"]}


def test_each_close_lists_the_orders_open_at_it(
    ledger: Ledger, script: Script, clock: Clock, make_views: Callable[..., Views]
) -> None:
    views = make_views(page_size=2)
    expected = write_week(ledger, script, clock, views)
    closes = {d.day: d.closing for d in views.audit_days()}
    assert sorted(closes) == [d for d in DAYS if d != DAYS[2]]
    assert {day: listed(closing) for day, closing in closes.items()} == {
        day: ids for day, ids in expected.items() if day in closes
    }
    # Kept current day by day (each catch-up reading the open orders from the orders
    # view) or rebuilt from the first event: the same closes, byte for byte.
    rebuild(views)
    assert {d.day: d.closing for d in views.audit_days()} == closes


def test_the_audit_finds_the_orders_open_at_each_close(
    ledger: Ledger, script: Script, clock: Clock, make_views: Callable[..., Views]
) -> None:
    views = make_views()
    expected = write_week(ledger, script, clock, views)
    # 7 January has no events: its audit carries 6 January's open orders through.
    assert {day: audited_open(audit_document(views, day)) for day in DAYS} == expected
    only_aapl = audit_document(views, DAYS[3], symbol="AAPL")
    assert audited_open(only_aapl) == {
        o for o in expected[DAYS[3]] if ledger.get_order(o).symbol == "AAPL"
    }
