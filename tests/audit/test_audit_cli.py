"""`commands audit` over the scripted history: JSON, CSV, tables, errors; and agreement
with `commands positions --as-of` at each day's close. Both stores."""

from __future__ import annotations

import csv
import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from commands.cli import cli
from commands.output import jsonable
from projections import Views
from projections.queries.audit import TIMELINE_FIELDS, audit_document
from tests.audit.history import ZONE, History

DAYS = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"]


@pytest.fixture
def env(history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI reads the history's store, from an empty folder (no .env)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_DATABASE_URL", history.database_url)
    monkeypatch.setenv("LEDGER_TIMEZONE", ZONE)
    monkeypatch.setenv("BROKER_PROVIDER", "paper")
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_json_is_the_document_with_decimal_strings(env: Path, views: Views) -> None:
    code, out, err = run("audit", "2026-03-09", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document == jsonable(audit_document(views, date(2026, 3, 9)))
    assert document["day"] == "2026-03-09"
    assert document["timezone"] == ZONE
    msft = next(r for r in document["closing"]["local"] if r["symbol"] == "MSFT")
    assert msft == {"symbol": "MSFT", "qty": "5", "avg_price": "401.2", "realised_pnl": "29"}
    assert document["pnl"] == [
        {"symbol": "MSFT", "local": "17.6", "broker": "17.6"},
        {"symbol": "NVDA", "local": "0", "broker": "0"},
    ]
    fill = document["timeline"][-1]
    assert (fill["qty"], fill["price"], fill["broker_time"]) == (
        "2", "410", "2026-03-09T14:00:00.001000+00:00"
    )
    assert set(document) >= {"timeline", "opening", "closing", "pnl", "unresolved"}
    assert set(document["unresolved"]) == {"open_orders", "differences"}


def test_csv_writes_one_row_per_event_of_the_timeline(env: Path) -> None:
    target = env / "friday.csv"
    code, out, _ = run("audit", "2026-03-06", "--csv", str(target))
    assert code == 0
    assert "Timeline written to" in out
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*TIMELINE_FIELDS, "details"]
    assert [int(row["seq"]) for row in rows] == list(range(1, 19))
    partial = next(row for row in rows if row["event"] == "OrderPartiallyFilled")
    assert (partial["qty"], partial["price"], partial["filled_qty"]) == ("4", "400", "4")
    assert partial["broker_time"] == "2026-03-06T15:00:00.001000+00:00"
    assert partial["local_time"].endswith("-05:00")
    assert json.loads(rows[0]["details"])["rationale"] == "momentum"


def test_json_and_csv_together_keep_stdout_one_document(env: Path) -> None:
    code, out, _ = run("audit", "2026-03-08", "--json", "--csv", str(env / "sunday.csv"))
    assert code == 0
    assert len(json.loads(out)["timeline"]) == 15
    assert (env / "sunday.csv").read_text(encoding="utf-8").count("\n") == 16


def test_the_tables_tell_the_day(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run("audit", "2026-03-08")
    assert code == 0
    for expected in (
        "Audit of 2026-03-08 in America/New_York (2026-03-08 00:00 EST to 2026-03-09 00:00 EDT)",
        "ReconciliationPlanned",
        "compensating: buy 8 AAPL",
        "insufficient buying power",
        "planned 1, submitted 0, failed 1, skipped 0",
        "engine: trim",
        "Realised P&L of the day",
        "11.4",
        "Local book vs broker book at the end of the day",
    ):
        assert expected in out, expected


def test_a_quiet_day_says_so_and_shows_what_it_carried(env: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run("audit", "2026-03-10")
    assert code == 0
    assert "No events on 2026-03-10: the books carried through it unchanged." in out
    assert "8 @ 100.75" in out  # AAPL in the local book, open and close
    assert "Orders still open at the end of the day" in out
    assert "partially_filled" in out


def test_a_day_before_anything_happened(env: Path) -> None:
    code, out, _ = run("audit", "2026-01-05", "--json")
    assert code == 0
    document = json.loads(out)
    assert (document["events"], document["timeline"]) == (0, [])
    assert document["opening"] == document["closing"] == {"local": [], "broker": []}


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("2026-02-30", "'2026-02-30' is not a date: use YYYY-MM-DD"),
        ("yesterday", "'yesterday' is not a date"),
        ("20260306", "'20260306' is not a date"),
        ("2999-01-01", "2999-01-01 is in the future"),
    ],
)
def test_a_bad_day_is_one_line_and_exit_2(env: Path, day: str, message: str) -> None:
    code, out, err = run("audit", day, "--json")
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: {message}")
    assert err.count("\n") == 1


def test_a_bad_symbol_is_exit_2(env: Path) -> None:
    code, out, err = run("audit", "2026-03-06", "--symbol", "not a symbol")
    assert (code, out) == (2, "")
    assert err.startswith("Error: symbol 'not a symbol' is malformed")


def test_an_unwritable_csv_is_exit_2(env: Path) -> None:
    code, _, err = run("audit", "2026-03-06", "--csv", str(env / "missing" / "x.csv"))
    assert code == 2
    assert "x.csv" in err


def _as_of(*args: str) -> dict[str, Any]:
    code, out, err = run("positions", "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("day", DAYS)
def test_the_close_agrees_with_positions_as_of(env: Path, day: str) -> None:
    code, out, _ = run("audit", day, "--json")
    assert code == 0
    audited = json.loads(out)

    def held(rows: list[dict[str, Any]]) -> dict[str, tuple[Decimal, Decimal]]:
        return {r["symbol"]: (Decimal(r["qty"]), Decimal(r["avg_price"])) for r in rows}

    for book in ("local", "broker"):
        listed = _as_of("--book", book, "--as-of", day)["positions"]
        assert held(audited["closing"][book]) == held(listed), book
    diff = _as_of("--book", "diff", "--as-of", day)["positions"]
    assert audited["unresolved"]["differences"] == [row for row in diff if row["delta"] != "0"]
