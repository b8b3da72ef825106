"""The scripted history (tests/audit/history.py) audited day by day, on both stores.

Every expected number is worked out by hand in the comments: average cost, realised P&L
per sale, what each book holds, and what netting leaves as the difference.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.domain.order import client_order_id_for
from projections import Views, books_at
from projections.queries.audit import audit_document
from tests.audit.history import History, utc

D = Decimal


def hours(document: dict[str, Any]) -> timedelta:
    """How long the day lasts (subtracting two times of one zone would ignore a DST change)."""
    return document["ends_at"].astimezone(UTC) - document["starts_at"].astimezone(UTC)


def audit(views: Views, day: str, symbol: str | None = None) -> dict[str, Any]:
    return audit_document(views, date.fromisoformat(day), symbol)


def events(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(entry["event"], entry["symbol"]) for entry in document["timeline"]]


def book(rows: list[dict[str, Any]]) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    return {row["symbol"]: (row["qty"], row["avg_price"], row["realised_pnl"]) for row in rows}


def pnl(document: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    return {row["symbol"]: (row["local"], row["broker"]) for row in document["pnl"]}


def differences(document: dict[str, Any]) -> dict[str, tuple[Decimal, ...]]:
    return {
        row["symbol"]: (row["local_qty"], row["broker_qty"], row["open_qty"], row["delta"])
        for row in document["unresolved"]["differences"]
    }


def fills(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in document["timeline"] if entry["execution_id"] is not None]


PAPER_TRADE = ["DecisionRecorded", "OrderRequested", "OrderSubmitted", "OrderAccepted",
               "OrderFilled"]

# Local MSFT: 4 @ 400 and 6 @ 402 -> (1600 + 2412) / 10 = 401.2 a share.
# Local AAPL: 10 @ 100, sell 4 @ 110 (realises 4 x 10 = 40), buy 2 @ 103
#   -> (6 x 100 + 2 x 103) / 8 = 806 / 8 = 100.75.
FRIDAY_CLOSE_LOCAL = {"AAPL": (D(6), D(100), D(40)), "MSFT": (D(10), D("401.2"), D(0))}
SATURDAY_CLOSE_LOCAL = {"AAPL": (D(8), D("100.75"), D(40)), "MSFT": (D(10), D("401.2"), D(0))}
# Sunday 23:30 EDT: sell 3 MSFT @ 405 realises 3 x (405 - 401.2) = 11.4.
SUNDAY_CLOSE_LOCAL = {"AAPL": (D(8), D("100.75"), D(40)), "MSFT": (D(7), D("401.2"), D("11.4"))}
# Monday: buy 1 NVDA @ 130; sell 2 MSFT @ 410 realises 2 x 8.8 = 17.6 (11.4 + 17.6 = 29).
MONDAY_CLOSE_LOCAL = {
    "AAPL": (D(8), D("100.75"), D(40)),
    "MSFT": (D(5), D("401.2"), D(29)),
    "NVDA": (D(1), D(130), D(0)),
}
# The broker's own word at each sync: MSFT 10 at Alpaca's average entry 401.2.
BROKER_SNAPSHOT = {"MSFT": (D(10), D("401.2"), D(0))}
# Monday's broker fill (after Sunday's sync) counts in the broker book: 10 - 2, 2 x 8.8 realised.
MONDAY_CLOSE_BROKER = {"MSFT": (D(8), D("401.2"), D("17.6"))}


def test_friday_two_brokers_a_partial_fill_a_sync_and_a_trade_a_minute_before_midnight(
    views: Views, history: History
) -> None:
    friday = audit(views, "2026-03-06")
    assert friday["events"] == 18
    assert events(friday) == [
        *((name, "AAPL") for name in PAPER_TRADE),
        ("DecisionRecorded", "MSFT"),
        ("OrderRequested", "MSFT"),
        ("OrderSendStarted", "MSFT"),
        ("OrderSubmitted", "MSFT"),
        ("OrderAccepted", "MSFT"),
        ("OrderPartiallyFilled", "MSFT"),
        ("BrokerSynced", None),
        ("OrderFilled", "MSFT"),
        *((name, "AAPL") for name in PAPER_TRADE),
    ]
    decision = friday["timeline"][0]
    assert decision["details"]["rationale"] == "momentum"
    assert decision["details"]["orders"] == [history.orders["buy_aapl"].client_order_id]
    assert friday["timeline"][1]["client_order_id"] == client_order_id_for(
        history.orders["buy_aapl"].id
    )

    paper_buy, partial, rest, paper_sell = fills(friday)
    assert (paper_buy["side"], paper_buy["qty"], paper_buy["price"]) == ("buy", D(10), D(100))
    assert (partial["qty"], partial["price"], partial["status"], partial["filled_qty"]) == (
        D(4), D(400), "partially_filled", D(4)
    )
    # Broker time: when the sandbox executed; ledger time: when the ledger recorded it.
    assert partial["broker_time"] == utc("2026-03-06T15:00:00.001")
    assert (rest["qty"], rest["price"], rest["status"], rest["filled_qty"]) == (
        D(6), D(402), "filled", D(10)
    )
    assert rest["broker_time"] == utc("2026-03-06T16:00:00")
    assert rest["ledger_time"] == utc("2026-03-06T20:00:00")  # recorded by the evening's sync
    assert all(f["execution_id"] for f in fills(friday))
    assert len({f["execution_id"] for f in fills(friday)}) == 4

    sync = friday["timeline"][11]
    assert sync["broker_time"] == utc("2026-03-06T20:00:00")
    assert [(p["symbol"], D(str(p["qty"]))) for p in sync["details"]["positions"]] == [
        ("MSFT", D(10))
    ]

    # 23:59:00 EST is 04:59 UTC on Saturday, still Friday in New York.
    assert paper_sell["ledger_time"].date() == date(2026, 3, 7)
    assert paper_sell["local_time"].date() == date(2026, 3, 6)
    assert (paper_sell["side"], paper_sell["qty"], paper_sell["price"]) == ("sell", D(4), D(110))

    assert friday["opening"] == {"local": [], "broker": []}
    assert book(friday["closing"]["local"]) == FRIDAY_CLOSE_LOCAL
    assert book(friday["closing"]["broker"]) == BROKER_SNAPSHOT
    # AAPL: 4 x (110 - 100). MSFT was only bought. The broker book only restarted at a sync.
    assert pnl(friday) == {"AAPL": (D(40), D(0)), "MSFT": (D(0), D(0))}
    assert friday["pnl_total"] == {"local": D(40), "broker": D(0)}
    assert friday["unresolved"]["open_orders"] == []
    assert differences(friday) == {"AAPL": (D(6), D(0), D(0), D(6))}


def test_saturday_starts_at_the_eastern_midnight(views: Views) -> None:
    saturday = audit(views, "2026-03-07")
    assert saturday["starts_at"].utcoffset() == timedelta(hours=-5)
    assert hours(saturday) == timedelta(hours=24)
    assert events(saturday) == [(name, "AAPL") for name in PAPER_TRADE]
    assert saturday["timeline"][0]["ledger_time"] == utc("2026-03-07T05:00:30")  # 00:00:30 EST
    assert saturday["timeline"][0]["text"] == "engine: buy the dip"
    assert book(saturday["opening"]["local"]) == FRIDAY_CLOSE_LOCAL
    assert book(saturday["closing"]["local"]) == SATURDAY_CLOSE_LOCAL
    assert book(saturday["closing"]["broker"]) == BROKER_SNAPSHOT
    assert pnl(saturday) == {"AAPL": (D(0), D(0))}  # a purchase realises nothing
    assert differences(saturday) == {"AAPL": (D(8), D(0), D(0), D(8))}


def test_sunday_a_reconciliation_whose_order_fails_across_the_daylight_saving_change(
    views: Views, history: History
) -> None:
    sunday = audit(views, "2026-03-08")
    # Clocks go forward at 02:00: the day has 23 hours, from 05:00 to 04:00 UTC.
    assert sunday["starts_at"] == utc("2026-03-08T05:00:00")
    assert sunday["ends_at"] == utc("2026-03-09T04:00:00")
    compensation = history.reconciliation.orders[0]
    assert events(sunday) == [
        ("ReconciliationLockCreated", None),
        ("ReconciliationLockAcquired", None),
        ("BrokerSynced", None),
        ("ReconciliationStarted", None),
        ("ReconciliationPlanned", None),
        ("OrderRequested", "AAPL"),
        ("OrderSendStarted", "AAPL"),
        ("OrderSubmissionFailed", "AAPL"),
        ("ReconciliationCompleted", None),
        ("ReconciliationLockReleased", None),
        *((name, "MSFT") for name in PAPER_TRADE),
    ]
    timeline = sunday["timeline"]
    run_id = history.reconciliation.run_id
    assert {e["reconciliation_id"] for e in timeline[1:10] if e["event"] != "BrokerSynced"} == {
        run_id
    }
    planned = timeline[4]["details"]
    # Local 8 AAPL (all paper fills), broker 0: buy 8, a decision the broker never executed.
    (aapl_row,) = [row for row in planned["rows"] if row["symbol"] == "AAPL"]
    assert (aapl_row["local_qty"], aapl_row["broker_qty"], aapl_row["delta"]) == (D(8), D(0), D(8))
    assert "never executed" in aapl_row["reason"]
    assert [(o["side"], o["qty"], o["client_order_id"]) for o in planned["orders"]] == [
        ("buy", D(8), compensation.client_order_id)
    ]
    requested, started, failed = timeline[5], timeline[6], timeline[7]
    assert started["event"] == "OrderSendStarted" and "sending to alpaca" in started["text"]
    assert (requested["purpose"], requested["qty"], requested["client_order_id"]) == (
        "compensation", D(8), compensation.client_order_id
    )
    assert failed["status"] == "submission_failed"
    assert failed["details"]["code"] == "40310000"
    assert "insufficient buying power" in failed["text"]
    assert timeline[8]["details"] == {"planned": 1, "submitted": 0, "failed": 1, "skipped": 0,
                                       "not_sent": 0, "unknown": 0, "interrupted": None}

    # 23:30 EDT on Sunday is 03:30 UTC on Monday.
    trim = timeline[-1]
    assert trim["ledger_time"] == utc("2026-03-09T03:30:01.250")
    assert trim["local_time"].utcoffset() == timedelta(hours=-4)
    assert book(sunday["opening"]["local"]) == SATURDAY_CLOSE_LOCAL
    assert book(sunday["closing"]["local"]) == SUNDAY_CLOSE_LOCAL
    assert book(sunday["closing"]["broker"]) == BROKER_SNAPSHOT
    assert pnl(sunday) == {"MSFT": (D("11.4"), D(0))}  # a paper sale never reaches the broker
    assert sunday["unresolved"]["open_orders"] == []  # the failed order is not open
    assert differences(sunday) == {
        "AAPL": (D(8), D(0), D(0), D(8)),
        "MSFT": (D(7), D(10), D(0), D(-3)),
    }
    assert sunday["broker_account"]["closing"]["broker_time"] == utc("2026-03-08T15:00:00")


def test_monday_begins_at_midnight_eastern_daylight_time_and_ends_with_an_open_order(
    views: Views, history: History
) -> None:
    monday = audit(views, "2026-03-09")
    assert monday["starts_at"] == utc("2026-03-09T04:00:00")
    # 04:30 UTC: 00:30 EDT Monday, although 23:30 on Sunday by standard time.
    assert monday["timeline"][0]["ledger_time"] == utc("2026-03-09T04:30:00")
    assert events(monday) == [
        *((name, "NVDA") for name in PAPER_TRADE),
        ("DecisionRecorded", "MSFT"),
        ("OrderRequested", "MSFT"),
        ("OrderSendStarted", "MSFT"),
        ("OrderSubmitted", "MSFT"),
        ("OrderAccepted", "MSFT"),
        ("OrderPartiallyFilled", "MSFT"),
    ]
    partial = fills(monday)[-1]
    assert (partial["side"], partial["qty"], partial["price"], partial["filled_qty"]) == (
        "sell", D(2), D(410), D(2)
    )
    assert book(monday["opening"]["local"]) == SUNDAY_CLOSE_LOCAL
    assert book(monday["closing"]["local"]) == MONDAY_CLOSE_LOCAL
    assert book(monday["closing"]["broker"]) == MONDAY_CLOSE_BROKER
    assert pnl(monday) == {"MSFT": (D("17.6"), D("17.6")), "NVDA": (D(0), D(0))}
    (still_open,) = monday["unresolved"]["open_orders"]
    assert still_open["client_order_id"] == history.orders["sell_msft"].client_order_id
    assert (still_open["status"], still_open["qty"], still_open["filled_qty"]) == (
        "partially_filled", D(4), D(2)
    )
    # MSFT: the open sell is a decision order: its last 2 will leave both books alike
    # (local 3, broker 6), so it is no part of the difference: 5 - 8 - 0 = -3.
    assert differences(monday) == {
        "AAPL": (D(8), D(0), D(0), D(8)),
        "MSFT": (D(5), D(8), D(0), D(-3)),
        "NVDA": (D(1), D(0), D(0), D(1)),
    }


def test_a_day_without_events_carries_the_books_and_the_open_order_through(
    views: Views, history: History
) -> None:
    tuesday = audit(views, "2026-03-10")
    monday = audit(views, "2026-03-09")
    assert (tuesday["events"], tuesday["timeline"], tuesday["pnl"]) == (0, [], [])
    assert tuesday["opening"] == tuesday["closing"] == monday["closing"]
    # Filled on Wednesday, so the orders view says "filled" today; on Tuesday it was open.
    (still_open,) = tuesday["unresolved"]["open_orders"]
    assert (still_open["client_order_id"], still_open["status"], still_open["filled_qty"]) == (
        history.orders["sell_msft"].client_order_id, "partially_filled", D(2)
    )
    assert tuesday["unresolved"]["differences"] == monday["unresolved"]["differences"]


def test_wednesday_the_broker_fills_the_rest_and_a_sync_records_it(views: Views) -> None:
    wednesday = audit(views, "2026-03-11")
    assert events(wednesday) == [("BrokerSynced", None), ("OrderFilled", "MSFT")]
    fill = fills(wednesday)[0]
    assert (fill["qty"], fill["price"], fill["status"], fill["filled_qty"]) == (
        D(2), D(412), "filled", D(4)
    )
    assert fill["broker_time"] == utc("2026-03-11T15:00:00")
    # Local: 2 x (412 - 401.2) = 21.6. The broker book restarted from the sync, which
    # already held the fill (6 left), so the fill moves no broker position; it realised
    # against the broker book before that sync (8 @ 401.2): 21.6 too.
    assert pnl(wednesday) == {"MSFT": (D("21.6"), D("21.6"))}
    assert wednesday["pnl_notes"] == []
    assert book(wednesday["closing"]["local"])["MSFT"] == (D(3), D("401.2"), D("50.6"))
    assert book(wednesday["closing"]["broker"]) == {"MSFT": (D(6), D("401.2"), D(0))}
    assert wednesday["unresolved"]["open_orders"] == []
    assert differences(wednesday)["MSFT"] == (D(3), D(6), D(0), D(-3))


DAYS = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"]


def test_each_day_opens_where_the_day_before_closed(views: Views) -> None:
    documents = [audit(views, day) for day in DAYS]
    for before, after in pairwise(documents):
        assert after["opening"] == before["closing"]


def test_every_event_of_the_store_is_in_exactly_one_day(views: Views, reader: Ledger) -> None:
    seqs = [entry["seq"] for day in DAYS for entry in audit(views, day)["timeline"]]
    assert seqs == list(range(1, reader.last_notification_id() + 1))


@pytest.mark.parametrize("day", DAYS)
def test_the_close_agrees_with_the_books_as_of_the_end_of_the_day(
    views: Views, reader: Ledger, day: str
) -> None:
    document = audit(views, day)
    close: datetime = document["ends_at"] - timedelta(microseconds=1)
    books = books_at(reader, close, views.zone)

    def plain(rows: list[Any]) -> dict[str, tuple[Decimal, Decimal]]:
        return {row.symbol: (row.qty, row.avg_price) for row in rows}

    for name, rows in (("local", books.local_book()), ("broker", books.broker_book())):
        assert {s: v[:2] for s, v in book(document["closing"][name]).items()} == plain(rows)
    assert differences(document) == {
        row.symbol: (row.local_qty, row.broker_qty, row.open_qty, row.delta)
        for row in books.diff()
        if row.delta
    }


def test_one_symbol_keeps_its_own_events_and_the_account_wide_ones(views: Views) -> None:
    friday = audit(views, "2026-03-06", symbol="msft")
    assert friday["symbol"] == "MSFT"
    assert {e["symbol"] for e in friday["timeline"]} == {"MSFT", None}
    assert [e["event"] for e in friday["timeline"]][-2:] == ["BrokerSynced", "OrderFilled"]
    assert friday["events"] == 18  # the day's events, before the filter
    assert book(friday["closing"]["local"]) == {"MSFT": FRIDAY_CLOSE_LOCAL["MSFT"]}
    assert pnl(friday) == {"MSFT": (D(0), D(0))}
    assert differences(friday) == {}
    sunday = audit(views, "2026-03-08", symbol="MSFT")
    planned = next(e for e in sunday["timeline"] if e["event"] == "ReconciliationPlanned")
    assert [row["symbol"] for row in planned["details"]["rows"]] == ["MSFT"]
    assert planned["details"]["orders"] == []
    assert "OrderSubmissionFailed" not in [e["event"] for e in sunday["timeline"]]
