"""The audit index: trading days in LEDGER_TIMEZONE, each a run of notification ids with both
books at its close, so one day replays from its own events through the views' fold."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from projections import replay_day
from projections.engine.audit_index import AuditIndexer

NY = ZoneInfo("America/New_York")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=NY).astimezone(UTC)


def test_days_follow_the_ledger_time_zone_and_never_overlap():
    indexer = AuditIndexer(NY)
    closes = iter(range(100))
    stamps = [at(5, 9), at(5, 23, 59), at(6, 0, 1), at(5, 23, 58), at(7, 12)]
    for seq, stamp in enumerate(stamps, 1):
        indexer.index(seq, stamp, lambda: str(next(closes)))
    days = indexer.take_changes(lambda: "open")
    # 23:59 UTC-5 is still the 5th; the late stamp of the 5th stays with the open 6th.
    assert [(d.day.day, d.first_seq, d.last_seq, d.events) for d in days] == [
        (5, 1, 2, 2),
        (6, 3, 4, 2),
        (7, 5, 5, 1),
    ]
    assert [d.closing for d in days] == ["0", "1", "open"]


def test_a_day_replays_from_the_previous_close(ledger: Ledger, script, clock, make_views):
    clock.set(at(5, 10))
    first = script.order("AAPL", "buy", "10", [(D(10), D(100))], broker="alpaca")
    script.order("MSFT", "sell", "1", [(D(1), D(300))])
    clock.set(at(6, 10))
    script.snapshot({"AAPL": ("10", "100")}, broker_time=at(6, 10))
    script.order("AAPL", "sell", "4", [(D(2), D(120)), (D(2), D(121))], broker="alpaca")
    script.reverse(first.id)  # a fill of the day before, busted today
    script.corporate_action("MSFT", ratio="2")
    clock.set(at(7, 10))
    script.order("NVDA", "buy", "1", [(D(1), D(50))])

    views = make_views(page_size=4)
    views.catch_up()
    days = views.audit_days()
    assert [d.day for d in days] == [date(2026, 1, d) for d in (5, 6, 7)]
    assert days[1].first_seq == days[0].last_seq + 1 and days[2].first_seq == days[1].last_seq + 1

    steps = []
    replay = replay_day(views, date(2026, 1, 6), lambda seq, event, state: steps.append(seq))
    assert replay is not None
    assert steps == list(range(days[1].first_seq, days[1].last_seq + 1))
    assert {r.symbol: r.qty for r in replay.opening_local} == {"AAPL": 10, "MSFT": -1}
    assert {r.symbol: r.qty for r in replay.closing_local} == {"AAPL": -4, "MSFT": -2}
    assert {r.symbol: r.qty for r in replay.closing_broker} == {"AAPL": 6}
    assert replay.closing_document == days[1].closing
    assert replay_day(views, date(2026, 1, 8)) is None

    assert views.traded_symbols_since(date(2026, 1, 6)) == {"AAPL", "NVDA"}
    assert views.traded_symbols_since(date(2026, 1, 7) + timedelta(days=1)) == set()
