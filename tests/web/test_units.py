"""The page's small rules, with plain values: no server, no browser, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from commands.serve import is_loopback_host
from commands.web import formatting, params
from commands.web.books import STALE_AFTER, banners
from commands.web.guard import host_name, is_loopback
from commands.web.svg import chart
from projections.model.records import BrokerAccountState
from projections.queries.books import Books, BookValue, Difference
from projections.queries.history import Point

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/New_York")


def test_money_is_exact_and_at_least_to_the_cent() -> None:
    assert formatting.money(Decimal("187.2")) == "187.20"
    assert formatting.money(Decimal("1234567.891")) == "1,234,567.891"
    assert formatting.money(Decimal("0.00001")) == "0.00001"
    assert formatting.number(Decimal("-0")) == "0"
    assert formatting.signed(Decimal("6")) == "+6" and formatting.signed(Decimal("-2.5")) == "-2.5"


def test_chart_axis_labels_are_round_exact_values() -> None:
    points = [Point(NOW, Decimal("100000.37"), Decimal("99000")),
              Point(NOW + timedelta(hours=1), Decimal("101872.2"), Decimal("101872.2"))]
    drawn = chart(points, ZONE)
    labels = [tick.label for tick in drawn.y_ticks]
    assert labels == ["99,000", "100,000", "101,000", "102,000"]
    assert drawn.local_path.startswith("M") and "H" in drawn.broker_path
    assert not chart([], ZONE).y_ticks and chart([], ZONE).empty


def test_a_flat_line_still_gets_an_axis() -> None:
    drawn = chart([Point(NOW, Decimal(0), Decimal(0))], ZONE)
    assert drawn.y_ticks[0].label == "-1"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("1", 1), ("42", 42), ("0", None), ("-1", None), ("1.5", None), ("²", None),
     ("9" * 5000, None)],
)
def test_whole_numbers(value: str, accepted: int | None) -> None:
    if accepted is None:
        with pytest.raises(params.BadQuery, match="is not a whole number"):
            params.whole({"page": value}, "page", 1)
    else:
        assert params.whole({"page": value}, "page", 1) == accepted
    assert params.whole({"page": "  "}, "page", 7) == 7


@pytest.mark.parametrize(
    ("header", "name", "loopback"),
    [("127.0.0.1:8000", "127.0.0.1", True), ("127.8.9.10", "127.8.9.10", True),
     ("[::1]:8000", "::1", True), ("localhost", "localhost", True),
     ("LOCALHOST:80", "localhost", True),
     # DNS rebinding: a name the attacker controls, however it starts, is another machine.
     ("127.0.0.1.attacker.example", "127.0.0.1.attacker.example", False),
     ("attacker.example:8000", "attacker.example", False), ("", "", False)],
)
def test_host_names(header: str, name: str, loopback: bool) -> None:
    assert host_name(header) == name
    assert is_loopback(name) is loopback


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("::1", True),
                                             ("localhost", True), ("0.0.0.0", False),
                                             ("192.0.2.1", False), ("example.org", False)])
def test_which_addresses_need_a_token(host: str, local: bool) -> None:
    assert is_loopback_host(host) is local


def _account(synced_at: datetime) -> BrokerAccountState:
    return BrokerAccountState(uuid4(), 1, "alpaca", "acct", True, Decimal(1000), Decimal(1000),
                              Decimal(1000), synced_at, synced_at, [])


def _books(account: BrokerAccountState | None, delta: Decimal) -> Books:
    value = BookValue(None, Decimal(0), ())
    difference = Difference("AAPL", Decimal(10), Decimal(10) - delta, Decimal(0), delta,
                            "unknown" if delta else None, False, None)
    return Books(1, [], [], account, [difference], value, value, [], 0)


def test_banners_say_what_needs_a_look() -> None:
    fresh = _account(NOW - timedelta(minutes=1))
    assert [b.level for b in banners(_books(fresh, Decimal(0)), NOW)] == ["ok"]
    (differ,) = banners(_books(fresh, Decimal(6)), NOW)
    assert differ.level == "alert" and "AAPL +6" in differ.text
    (stale,) = banners(_books(_account(NOW - STALE_AFTER - timedelta(minutes=1)), Decimal(0)),
                       NOW)
    assert stale.level == "warn" and "16 minute(s) old" in stale.text
    (never,) = banners(_books(None, Decimal(0)), NOW)
    assert never.level == "alert" and never.command == "commands sync"
