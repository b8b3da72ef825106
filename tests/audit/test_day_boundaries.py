"""Where one trading day ends and the next begins: the ledger's time zone, its midnight, and
the autumn change back to standard time (a 25-hour day). Paper trades only; both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from projections import Views, catch_up
from projections.queries.audit import audit_document, parse_day
from testing.clock import stamped_by
from tests.audit.history import Clock, utc

D = Decimal

# US daylight saving time ends Sunday 2026-11-01 at 02:00 EDT: 01:00-02:00 happens twice.
TRADES = [
    ("2026-11-01T04:30:00", "100"),  # 00:30 EDT Nov 1 (04:30 UTC Nov 1)
    ("2026-11-01T05:30:00", "101"),  # 01:30 EDT, the first time
    ("2026-11-01T06:30:00", "102"),  # 01:30 EST, the second time
    ("2026-11-02T04:30:00", "103"),  # 23:30 EST Nov 1 (04:30 UTC Nov 2)
    ("2026-11-02T05:00:05", "104"),  # 00:00:05 EST Nov 2
]


def hours(document: dict[str, Any]) -> timedelta:
    """How long the day lasts (subtracting two times of one zone would ignore a DST change)."""
    return document["ends_at"].astimezone(UTC) - document["starts_at"].astimezone(UTC)


def write_trades(open_store: Callable[..., Ledger]) -> Ledger:
    clock = Clock()
    ledger = open_store(adapter=PaperBroker(clock))
    with stamped_by(clock):
        for moment, price in TRADES:
            clock.set(utc(moment))
            ledger.trade(side="buy", symbol="SPY", qty="1", price=price, reason=f"at {moment}")
    return ledger


def prices(views: Views, day: str) -> list[Decimal]:
    document = audit_document(views, date.fromisoformat(day))
    return [e["price"] for e in document["timeline"] if e["event"] == "OrderFilled"]


def test_new_york_days_follow_the_eastern_clock_through_the_fall_back(
    open_store: Callable[..., Ledger],
) -> None:
    views = catch_up(write_trades(open_store), timezone="America/New_York")
    document = audit_document(views, date(2026, 11, 1))
    assert hours(document) == timedelta(hours=25)
    assert prices(views, "2026-10-31") == []
    assert prices(views, "2026-11-01") == [D(100), D(101), D(102), D(103)]
    assert prices(views, "2026-11-02") == [D(104)]
    # Four shares at 100..103: average 101.5; the fifth at 104: 507 / 5 = 101.4.
    assert [(r["qty"], r["avg_price"]) for r in document["closing"]["local"]] == [
        (D(4), D("101.5"))
    ]


def test_another_time_zone_draws_other_days(open_store: Callable[..., Ledger]) -> None:
    views = catch_up(write_trades(open_store), timezone="UTC")
    document = audit_document(views, date(2026, 11, 1))
    assert document["timezone"] == "UTC"
    assert hours(document) == timedelta(hours=24)
    assert prices(views, "2026-11-01") == [D(100), D(101), D(102)]
    assert prices(views, "2026-11-02") == [D(103), D(104)]


def test_parse_day_checks_the_date_against_today_in_the_ledgers_zone() -> None:
    from zoneinfo import ZoneInfo

    import pytest

    from ledger.domain.values import InvalidInput

    new_york = ZoneInfo("America/New_York")
    # 22:00 in New York on the 5th is already the 6th in UTC.
    now = datetime.fromisoformat("2026-01-06T03:00:00+00:00")
    assert parse_day(" 2026-01-05 ", new_york, now) == date(2026, 1, 5)
    with pytest.raises(InvalidInput, match="2026-01-06 is in the future"):
        parse_day("2026-01-06", new_york, now)
    assert parse_day("2026-01-06", ZoneInfo("UTC"), now) == date(2026, 1, 6)
    for text in ("2026-1-5", "2026-01-05T00:00", "2026-W02-1", ""):
        with pytest.raises(InvalidInput, match="is not a date"):
            parse_day(text, new_york, now)
