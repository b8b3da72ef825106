"""`commands audit --csv`: a text cell a spreadsheet would run as a formula is written
behind a single quote (OWASP's advice); numbers, negative ones too, stay numbers. Both
stores; a client order id from the broker through the Alpaca sandbox."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from commands.audit import csv_cell
from commands.cli import cli
from ledger.application import Ledger
from ledger.domain.values import OrderIntent
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401


def ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    return result.stdout


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1", "'+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("-", "'-"),
        ("-3e5", "'-3e5"),
        ("-3\n=1", "'-3\n=1"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        # Numbers run nothing: a negative one stays a number the spreadsheet can add up.
        ("-3", "-3"),
        ("-12.5", "-12.5"),
        (Decimal("-3"), "-3"),
        (Decimal("-12.50"), "-12.50"),
        (Decimal("-0.000000001"), "-0.000000001"),
        (Decimal("187.2"), "187.2"),
        # A formula character later in the cell is not at its start: nothing runs.
        ("cli: =1+2", "cli: =1+2"),
        ("a-b", "a-b"),
        ("", ""),
        (None, ""),
        ({"reason": "=1+2"}, '{"reason": "=1+2"}'),  # JSON starts with {
    ],
)
def test_csv_cell(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


def test_the_help_says_so() -> None:
    result = CliRunner().invoke(cli, ["audit", "--help"], terminal_width=200)
    help_text = " ".join(result.stdout.split())
    assert "leading '" in help_text and "formula" in help_text
    assert "=, +, -, @, a tab or a carriage return" in help_text
    assert "negative ones too" in help_text


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_audit_csv_defuses_every_stored_text(
    ledger: Ledger, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    sandbox: AlpacaSandbox, tmp_path: Path,  # noqa: F811
) -> None:
    monkeypatch.setenv("LEDGER_TIMEZONE", "UTC")
    # A decision whose source starts a formula; an order the broker rejected with one, and
    # one whose refusal message begins with a tab.
    _, (rejected,) = ledger.record_decision(
        source="=HYPERLINK(\"http://evil\")", rationale="@SUM(1+1)",
        intents=[OrderIntent(symbol="MSFT", side="buy", qty=Decimal(2))],
    )
    rejected.mark_submitted(broker="alpaca", broker_order_id="b-1")
    rejected.mark_rejected(reason="=1+2")
    _, (refused,) = ledger.record_decision(
        source="cli", rationale="\r=cmd", intents=[OrderIntent(symbol="MSFT", side="sell",
                                                               qty=Decimal(1))],
    )
    refused.mark_canceled(reason="\t@SUM(1)")
    ledger.save(rejected, refused)
    # A negative quantity that must stay a number: an adoption that takes 3 away.
    ledger.adopt([("AAPL", Decimal("-3"), Decimal("12.5"))], who="ops", why="-broker says")
    # Client order ids chosen by another program at the broker.
    for key, value in alpaca_env(sandbox).items():
        monkeypatch.setenv(key, value)
    sandbox.set_symbol("AAPL", price="100")
    for client_order_id in ("=2+5", "-2+3", "@cmd", "+1"):
        sandbox.create_external_order("AAPL", "buy", 1, client_order_id=client_order_id)
    ok("sync")

    events = json.loads(ok("events", "--limit", "1000", "--json"))["events"]
    day = events[-1]["timestamp"][:10]
    target = tmp_path / "day.csv"
    ok("audit", day, "--csv", str(target))
    rows = _rows(target)

    decision = next(r for r in rows if r["event"] == "DecisionRecorded")
    assert decision["text"] == "'=HYPERLINK(\"http://evil\"): @SUM(1+1)"
    assert next(r for r in rows if r["event"] == "OrderRejected")["text"] == "'=1+2"
    assert next(r for r in rows if r["event"] == "OrderCanceled")["text"] == "'\t@SUM(1)"
    adjusted = next(r for r in rows if r["event"] == "AdjustmentRecorded")
    assert (adjusted["qty"], adjusted["price"]) == ("-3", "12.5")
    external = {r["client_order_id"] for r in rows if r["purpose"] == "external"}
    assert external == {"'=2+5", "'-2+3", "'@cmd", "'+1"}
    # The details column is JSON (it starts with "{"): exact, and runs nothing.
    assert json.loads(decision["details"])["source"] == "=HYPERLINK(\"http://evil\")"
    for row in rows:
        for column, cell in row.items():
            if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                assert cell.lstrip("-").replace(".", "", 1).isdigit(), (column, cell)

    # JSON carries the stored text exactly: the quote is for spreadsheets only.
    timeline = json.loads(ok("audit", day, "--json"))["timeline"]
    assert next(e for e in timeline if e["event"] == "OrderRejected")["text"] == "=1+2"
    assert {e["client_order_id"] for e in timeline if e["purpose"] == "external"} == {
        "=2+5", "-2+3", "@cmd", "+1"}
