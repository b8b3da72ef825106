"""`positions --as-of`: the books at past instants of a scripted history, from the events alone."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from commands.cli import cli
from ledger.application import Ledger
from projections.engine.store import ViewStore
from projections.model.positions import apply_ratio, fold_trades

NY = ZoneInfo("America/New_York")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=NY).astimezone(UTC)


def positions(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["positions", "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def book(document: dict) -> dict[str, tuple[str, str]]:
    return {p["symbol"]: (p["qty"], p["avg_price"]) for p in document["positions"]}


def text(value: D) -> str:
    from projections.model.numbers import canonical

    return canonical(value)


def test_positions_at_several_instants(ledger: Ledger, script, clock, cli_env):
    clock.set(at(5, 10))
    script.order("AAPL", "buy", "10", [(D(10), D(100))])
    clock.set(at(5, 11))
    busted = script.order("AAPL", "buy", "5", [(D(5), D(110))])
    clock.set(at(6, 10))
    script.order("AAPL", "sell", "8", [(D(8), D(120))])
    clock.set(at(6, 10, 30))
    script.snapshot({"AAPL": ("4", "100")}, broker_time=at(6, 10, 30))
    clock.set(at(7, 9))
    script.corporate_action("AAPL", ratio="4", effective=date(2026, 1, 7))
    clock.set(at(7, 12))
    script.reverse(busted.id)

    fifteen = fold_trades([(D(10), D(100)), (D(5), D(110))])
    seven = fold_trades([(D(10), D(100)), (D(5), D(110)), (D(-8), D(120))])
    after_bust = apply_ratio(fold_trades([(D(10), D(100)), (D(-8), D(120))]), D(4))

    assert book(positions("--as-of", "2026-01-04")) == {}
    assert book(positions("--as-of", "2026-01-05T10:30:00-05:00")) == {"AAPL": ("10", "100")}
    day_one = positions("--as-of", "2026-01-05")
    assert day_one["as_of"] == "2026-01-05T23:59:59.999999-05:00"
    assert book(day_one) == {"AAPL": ("15", text(fifteen.avg_price))}
    # A time without an offset is in LEDGER_TIMEZONE; Z is UTC.
    assert book(positions("--as-of", "2026-01-06T10:15")) == {"AAPL": ("7", text(seven.avg_price))}
    assert positions("--as-of", "2026-01-06T15:15:00Z")["positions"][0]["realised_pnl"] == text(
        seven.realised_pnl
    )
    assert book(positions("--as-of", "2026-01-06", "--book", "broker")) == {"AAPL": ("4", "100")}
    assert book(positions("--as-of", "2026-01-07T10:00")) == {
        "AAPL": ("28", text(apply_ratio(seven, D(4)).avg_price))
    }
    assert book(positions("--as-of", "2026-01-07T10:00", "--book", "broker")) == {
        "AAPL": ("16", "25")
    }
    late = positions("--as-of", "2026-01-07", "--book", "diff")
    assert late["positions"] == [
        {"symbol": "AAPL", "local_qty": "8", "broker_qty": "16", "open_qty": "0", "delta": "-8"}
    ]
    # None of that read or wrote the live views.
    with ViewStore(ledger).read() as tx:
        assert "view_orders" not in ViewStore(ledger).existing_tables(tx)

    assert book(positions()) == {"AAPL": ("8", text(after_bust.avg_price))}
    assert book(positions("--as-of", "2026-01-07")) == book(positions())


def test_a_bad_instant_is_one_line_and_exit_2(cli_env):
    result = CliRunner().invoke(cli, ["positions", "--as-of", "yesterday"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "ISO-8601" in result.stderr and "yesterday" in result.stderr
    assert result.stdout == ""
