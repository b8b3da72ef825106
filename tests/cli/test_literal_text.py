"""Stored and broker text reaches the terminal as it was written: never read as Rich markup
or emoji codes, with control characters shown as escapes; JSON keeps it exact. Also: off a
terminal nothing wraps, and `positions --book diff` says when the broker was never read.
Both stores; the broker's side through the Alpaca sandbox."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from alpaca.trading.requests import MarketOrderRequest
from click.testing import CliRunner
from rich.table import Table

import ledger.application
from commands.cli import cli
from commands.reconcile import show as show_reconcile
from commands.sync import sync_failure
from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from ledger.brokers.port import BrokerAnswer, BrokerError, BrokerReadError, FailureKind
from ledger.domain import Reconciliation
from ledger.domain.values import OrderIntent
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, make_client
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401
from tests.projections.script import Script

# Each would vanish, crash the printer, or steer the terminal if printed as it is.
REASONS = [
    "[/bold] x",  # a closing tag with nothing open: MarkupError
    "[red]x[/red]",  # would print "x" in red
    "[/]",  # closes nothing: MarkupError
    "[momentum] breakout",  # an unknown tag: the word would vanish
    ":smile: \x1b[31mred\r\x07",  # an emoji code, a colour code, a carriage return, a bell
]
# How a control character must look on the screen: as Python writes it.
ESCAPES = {"\x1b": r"\x1b", "\r": r"\r", "\x07": r"\x07", "\n": r"\n", "\t": r"\t"}
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    return "".join(ESCAPES.get(char, char) for char in text)


def assert_literal(output: str, *texts: str) -> None:
    assert not RAW_CONTROL.search(output), f"a raw control character reached: {output!r}"
    for text in texts:
        assert shown(text) in output, (shown(text), output)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = invoke(*args)
    assert (code, err) == (0, ""), (code, out, err)
    return out


def events_json() -> list[dict[str, Any]]:
    return json.loads(ok("events", "--limit", "1000", "--json"))["events"]


def today() -> str:
    """The day of the newest event, in LEDGER_TIMEZONE (UTC here): the day to audit."""
    return events_json()[-1]["timestamp"][:10]


@pytest.fixture(autouse=True)
def no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COLUMNS: what a pipe gets. (UTC: the audited day is the events' UTC date.)"""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("LEDGER_TIMEZONE", "UTC")


# -- the rendering itself ------------------------------------------------------------------------


def test_the_consoles_print_strings_literally() -> None:
    from commands.output import TerminalConsole, error_console, literal_console

    for console in (literal_console, error_console):
        buffer = io.StringIO()
        printer = TerminalConsole(file=buffer, markup=False, emoji=False, highlight=False,
                                  stderr=console.stderr)
        table = Table(title="[/] title")
        table.add_column("[red]column")
        for reason in REASONS:
            table.add_row(reason)
        printer.print(table)
        printer.print(*REASONS)
        assert_literal(buffer.getvalue(), "[/] title", "[red]column", *REASONS)


def test_bidirectional_controls_show_as_escapes() -> None:
    from commands.output import TerminalConsole

    buffer = io.StringIO()
    TerminalConsole(file=buffer, markup=False).print("abc\u202edcba\u2066x\u0085y\x7fz")
    assert buffer.getvalue() == "abc\\u202edcba\\u2066x\\x85y\\x7fz\n"


def test_a_terminal_keeps_its_width_a_pipe_has_none() -> None:
    from commands.output import TerminalConsole

    terminal = TerminalConsole(file=io.StringIO(), force_terminal=True, width=60)
    assert terminal.width == 60
    assert TerminalConsole(file=io.StringIO(), width=60).width > 10_000


# -- trade, events, audit ------------------------------------------------------------------------


def test_reasons_print_literally_in_events_and_audit(cli_env: dict[str, str]) -> None:
    for reason in REASONS:
        ok("trade", "buy", "NVDA", "1", "--price", "100", "--reason", reason)

    out = ok("events", "--limit", "100")
    assert_literal(out, *REASONS)
    rationales = [e["data"]["rationale"] for e in events_json() if e["type"] == "DecisionRecorded"]
    assert rationales == REASONS  # JSON: exact, control characters and all

    day = today()
    out = ok("audit", day)
    assert_literal(out, *(f"cli: {reason}" for reason in REASONS))
    timeline = json.loads(ok("audit", day, "--json"))["timeline"]
    assert [e["details"]["rationale"] for e in timeline if e["event"] == "DecisionRecorded"] == (
        REASONS)


def test_a_source_and_a_broker_refusal_print_literally(
    ledger: Ledger, cli_env: dict[str, str]
) -> None:
    source = "[/]bot \x1b]0;pwned\x07"  # also an OSC sequence that retitles a terminal
    _, (refused,) = ledger.record_decision(
        source=source, rationale="[red]x[/red]",
        intents=[OrderIntent(symbol="MSFT", side="buy", qty=Decimal(2))],
    )
    refused.mark_submission_failed(broker="alpaca", code="[/bold]",
                                   message="[red]denied[/red] \x1b[2J\r", retryable=False,
                                   http_status=403)
    _, (rejected,) = ledger.record_decision(
        source="cli", rationale="later",
        intents=[OrderIntent(symbol="MSFT", side="sell", qty=Decimal(1))],
    )
    rejected.mark_submitted(broker="alpaca", broker_order_id="b-1")
    rejected.mark_rejected(reason="[/] \x1b[31mno\x07")
    ledger.save(refused, rejected)

    out = ok("events", "--limit", "100")
    assert_literal(out, "[/]bot \x1b]0;pwned\x07", "[red]denied[/red] \x1b[2J\r",
                   "reason=[/] \x1b[31mno\x07")
    day = today()
    out = ok("audit", day)
    assert_literal(out, f"{source}: [red]x[/red]",
                   "alpaca refused: [/bold]: [red]denied[/red] \x1b[2J\r", "[/] \x1b[31mno\x07")
    timeline = json.loads(ok("audit", day, "--json"))["timeline"]
    assert timeline[0]["details"]["source"] == source
    failed = next(e for e in timeline if e["event"] == "OrderSubmissionFailed")
    assert failed["details"]["message"] == "[red]denied[/red] \x1b[2J\r"


def test_the_trade_line_shows_a_broker_message_literally(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = "[red]no[/red] \x1b[31mbuying power\x07"

    def refuse(self: PaperBroker, ticket: Any) -> BrokerAnswer:
        return BrokerAnswer(broker="paper", error=BrokerError(
            code="[/]", message=message, retryable=False, kind=FailureKind.REJECTED))

    monkeypatch.setattr(PaperBroker, "place_order", refuse)
    code, out, _ = invoke("trade", "buy", "AAPL", "1", "--price", "1")
    assert code == 1
    assert_literal(out, f"([/]: {message})")
    code, out, _ = invoke("trade", "buy", "AAPL", "1", "--price", "1", "--json")
    assert json.loads(out)["error"]["message"] == message
    assert_literal(ok("events"), message)


def test_a_sync_failure_shows_the_broker_message_literally(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Ledger, **_: Any) -> None:
        raise BrokerReadError("[/] gateway said \x1b[31mno\r")

    monkeypatch.setattr(ledger.application.Ledger, "sync", fail)
    code, out, err = invoke("sync")
    assert (code, out) == (1, "")
    assert_literal(err, "Failed to sync Alpaca account: [/] gateway said \x1b[31mno\r")
    assert err.count("\n") == 1
    assert str(sync_failure(BrokerReadError("\x07", auth=True))).endswith(r"(\x07)")


# -- the broker's words: sync, positions, events, audit ------------------------------------------


def test_the_brokers_text_prints_literally_everywhere(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox  # noqa: F811
) -> None:
    for key, value in alpaca_env(sandbox).items():
        monkeypatch.setenv(key, value)
    # An order another program placed and Alpaca filled, one still open, and positions
    # under symbols the ledger would never accept from a person but keeps from the broker.
    sandbox.set_symbol("AAPL", price="100")
    sandbox.create_external_order("AAPL", "buy", 1, client_order_id="[/]my-bot-order")
    sandbox.set_symbol("MSFT", price="50", behavior="hold")
    held = "[red]x[/red]\x1b[31m\x07"
    make_client(sandbox).submit_order(MarketOrderRequest(
        symbol="MSFT", qty=1, side="buy", time_in_force="day", client_order_id=held))
    for symbol in ("[BOLD]X", "AB\x1b[2J"):
        sandbox.set_symbol(symbol, price="10")
        sandbox.set_position(symbol, 2)

    out = ok("sync")
    assert_literal(out, held, "[BOLD]X", "AB\x1b[2J")
    document = json.loads(ok("sync", "--json"))
    assert [o["client_order_id"] for o in document["open_orders"]] == [held]

    for book in ("broker", "diff"):
        assert_literal(ok("positions", "--book", book), "[BOLD]X", "AB\x1b[2J")
    broker = json.loads(ok("positions", "--book", "broker", "--json"))["positions"]
    assert {"[BOLD]X", "AB\x1b[2J"} <= {row["symbol"] for row in broker}

    assert_literal(ok("events", "--limit", "100"), "[/]my-bot-order", held)
    day = today()
    # The table shortens ids to 12 characters (JSON and CSV carry them whole).
    assert_literal(ok("audit", day), "[/]my-bot-o…", "[BOLD]X", "AB\x1b[2J", held)
    timeline = json.loads(ok("audit", day, "--json"))["timeline"]
    assert {"[/]my-bot-order", held} <= {e["client_order_id"] for e in timeline}


# -- reconciliations and reconcile ---------------------------------------------------------------


def test_reconciliation_runs_print_literally(ledger: Ledger, cli_env: dict[str, str]) -> None:
    first = Reconciliation(id=uuid4(), dry_run=False, broker="alpaca", paper=True,
                           sync_id=None, filters={})
    client_order_id = "[/]tl-run"
    first.plan(
        [{"symbol": "AAPL", "local_qty": Decimal(10), "broker_qty": Decimal(4),
          "open_qty": Decimal(0), "delta": Decimal(6), "reason": "[red]x[/red]",
          "status": "planned"}],
        [{"symbol": "AAPL", "side": "buy", "qty": Decimal(6), "type": "market",
          "client_order_id": client_order_id, "order_id": None}],
        None,
    )
    first.complete(1, 1, 0, 0, interrupted="[/bold] stopped by \x1b[31mSIGTERM\x07")
    second = Reconciliation(id=uuid4(), dry_run=False, broker="alpaca", paper=True,
                            sync_id=None, filters={})
    how = "[/] filled \r later"
    second.plan([], [], None, [{"client_order_id": client_order_id, "symbol": "AAPL",
                                "from_run": str(first.id), "status": "filled", "how": how}])
    second.complete(0, 0, 0, 0)
    ledger.save(first, second)

    out = ok("reconciliations")
    assert_literal(out, "[/bold] stopped by \x1b[31mSIGTERM\x07", how)
    runs = json.loads(ok("reconciliations", "--json"))["runs"]
    assert runs[1]["interrupted"] == "[/bold] stopped by \x1b[31mSIGTERM\x07"
    assert_literal(ok("audit", today()), client_order_id)


def test_reconcile_shows_broker_errors_literally(capsys: pytest.CaptureFixture[str]) -> None:
    error = "[/bold] insufficient \x1b[31mbuying power\x07"
    result = SimpleNamespace(dry_run=False, paper=True, broker="alpaca", clock=None, rows=[],
                             settled=[{"client_order_id": "[/]x", "symbol": "AAPL",
                                       "from_run": None, "how": "[red]gone[/red]\r"}])
    order = {"symbol": "AAPL", "side": "buy", "qty": Decimal(6), "type": "market",
             "limit_price": None, "price": None, "notional": None, "status": "failed",
             "outcome_unknown": False, "error": error, "hint": "[/] wait"}
    skipped = {**order, "symbol": "MSFT", "status": "skipped", "error": "[momentum] cap"}
    document = {
        "positions": [
            {"symbol": "AAPL", "local_qty": Decimal(10), "broker_qty": Decimal(4),
             "open_qty": Decimal(0), "delta": Decimal(6), "reason": ":smile: [/]"},
            {"symbol": "MSFT", "local_qty": Decimal(1), "broker_qty": Decimal(0),
             "open_qty": Decimal(0), "delta": Decimal(1), "reason": None},
        ],
        "orders": [order, skipped],
        "summary": {"planned": 1, "submitted": 0, "failed": 1, "skipped": 1, "not_sent": 0,
                    "unknown": 0},
    }
    show_reconcile(result, document)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert_literal(out, "Settled [/]x (AAPL, left by run a trade): [red]gone[/red]\r",
                   ":smile: [/]", "buy 6 market: FAILED", "skipped: [momentum] cap",
                   f"FAILED AAPL: {error}. What to do: [/] wait")


# -- width off a terminal ------------------------------------------------------------------------


def _summary_of_last_fill() -> str:
    fill = next(e for e in reversed(events_json()) if e["type"] == "OrderFilled")
    return f"execution_id={fill['data']['execution_id']}"


def test_events_keep_their_details_whole_in_a_pipe(cli_env: dict[str, str]) -> None:
    reason = "a reason long enough to be cut into slivers by an eighty-column table"
    ok("trade", "buy", "AAPL", "3", "--price", "10.5", "--reason", reason)
    whole = _summary_of_last_fill()
    lines = ok("events").splitlines()
    assert any(whole in line and "filled_at=" in line for line in lines)
    # `events` shortens each value to 40 characters itself; the table cuts nothing more.
    assert any(f"rationale={reason[:37]}... trades=" in line for line in lines)
    audited = ok("audit", today()).splitlines()
    assert any(f"buy 3 AAPL market day: {reason}" in line for line in audited)
    # The real program, its stdout a pipe, with no COLUMNS in its environment.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    piped = subprocess.run([sys.executable, "-m", "commands", "events"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert any(whole in line for line in piped.stdout.splitlines())


# -- positions --book diff before any sync -------------------------------------------------------


NO_SYNC = "No broker sync yet: the broker column is empty until `commands sync`."


def test_diff_says_when_the_broker_was_never_read(ledger: Ledger, cli_env: dict[str, str]
                                                 ) -> None:
    out = ok("positions", "--book", "diff")
    assert NO_SYNC in out and "Neither book holds anything" in out
    ok("trade", "buy", "AAPL", "2", "--price", "10")
    out = ok("positions", "--book", "diff")
    assert NO_SYNC in out and "AAPL" in out
    before_sync = datetime.now(UTC).isoformat()
    Script(ledger).snapshot({"AAPL": ("2", "10")})
    out = ok("positions", "--book", "diff")
    assert "No broker sync yet" not in out and "AAPL" in out
    out = ok("positions", "--book", "diff", "--as-of", before_sync)
    assert "No broker sync yet as of" in out
    assert "No broker sync yet" not in ok("positions", "--book", "diff", "--as-of",
                                          datetime.now(UTC).isoformat())
    # The JSON document is what the web API serves too: unchanged.
    document = json.loads(ok("positions", "--book", "diff", "--json"))
    assert set(document) == {"book", "as_of", "positions"}
