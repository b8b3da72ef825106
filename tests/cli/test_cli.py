"""The CLI through click's runner and as the installed program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.cli import cli
from tests.conftest import PASSWORD_ROLE

COMMANDS = ["trade", "events", "sync", "run"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_on_every_command(command: list[str]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0 and "Usage:" in out


def test_trade_then_events(cli_env: dict[str, str]) -> None:
    code, out, err = invoke("trade", "buy", "aapl", "10", "--price", "187.20",
                            "--reason", "momentum")
    assert (code, err) == (0, "")
    assert "buy 10 AAPL market -> paper: filled 10 @ 187.20" in out
    code, out, _ = invoke("trade", "sell", "AAPL", "0.5", "--price", "190.01", "--json")
    order = json.loads(out)
    assert code == 0
    assert (order["status"], order["filled_qty"], order["avg_fill_price"]) == (
        "filled", "0.5", "190.01")
    assert order["client_order_id"].startswith("tl-")

    code, out, _ = invoke("events", "--limit", "3", "--json")
    document = json.loads(out)
    assert code == 0
    assert [e["type"] for e in document["events"]] == [
        "OrderSubmitted", "OrderAccepted", "OrderFilled"]
    assert document["events"][-1]["data"]["qty"] == "0.5"
    assert document["events"][-1]["data"]["price"] == "190.01"

    code, out, _ = invoke("events", "--limit", "100", "--json")
    names = [e["type"] for e in json.loads(out)["events"]]
    assert names.count("DecisionRecorded") == 2 and names.count("OrderFilled") == 2
    code, out, _ = invoke("events")
    assert code == 0 and "DecisionRecorded" in out


def event_count() -> int:
    code, out, _ = invoke("events", "--limit", "1000", "--json")
    assert code == 0
    return len(json.loads(out)["events"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trade", "buy", "AAPL", "-5", "--price", "1"], "qty must be greater than zero"),
        (["trade", "buy", "AAPL", "NaN", "--price", "1"], "qty must be a finite number"),
        (["trade", "buy", "", "1", "--price", "1"], "symbol must not be empty"),
        (["trade", "buy", "AAPL", "1"], "pass --price"),
        (["trade", "buy", "AAPL", "1", "--price", "zero"], "price must be a decimal number"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    invoke("trade", "buy", "MSFT", "1", "--price", "300")
    before = event_count()
    code, out, err = invoke(*args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""
    assert event_count() == before


def test_unknown_side_is_a_usage_error(cli_env: dict[str, str]) -> None:
    code, _, err = invoke("trade", "hold", "AAPL", "1", "--price", "1")
    assert code == 2 and "'hold' is not one of 'buy', 'sell'" in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BROKER_PROVIDER", "foo", "BROKER_PROVIDER must be one of: paper, alpaca (got 'foo')"),
        ("ALPACA_PAPER_MODE", "maybe", "ALPACA_PAPER_MODE must be one of: true, false"),
        ("LEDGER_DATABASE_URL", "mysql://u:hunter2@h/db", "unsupported scheme 'mysql'"),
        ("LEDGER_DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/db",
         "Cannot open the event store at postgresql://u:***@127.0.0.1:1/db"),
        ("LEDGER_DATABASE_URL", "postgresql://no_such_role:hunter2@127.0.0.1:5432/test",
         'role "no_such_role" does not exist'),
        ("LEDGER_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:5432/no_such_db",
         'database "no_such_db" does not exist'),
        # A role that must give its password, on a throwaway cluster (password_pg): the
        # shared server's pg_hba.conf is not ours to edit. The URL is made in the test.
        ("LEDGER_DATABASE_URL", "password_pg",
         f'password authentication failed for user "{PASSWORD_ROLE}"'),
    ],
)
def test_configuration_errors_exit_2_without_secrets(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    name: str, value: str, message: str
) -> None:
    if value == "password_pg":
        value = request.getfixturevalue("password_pg").url(PASSWORD_ROLE, "hunter2")
    monkeypatch.setenv(name, value)
    code, out, err = invoke("events")
    assert code == 2, err
    assert message in err and "hunter2" not in err + out
    assert err.startswith("Error: ") and err.count("\n") == 1


def test_dotenv_in_working_directory(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    monkeypatch.delenv("BROKER_PROVIDER")
    Path(".env").write_text("BROKER_PROVIDER=broker-x\n")
    code, _, err = invoke("events")
    assert code == 2 and "BROKER_PROVIDER must be one of: paper, alpaca (got 'broker-x')" in err


def _program() -> list[str]:
    found = shutil.which("commands", path=str(Path(sys.executable).parent))
    assert found, "the console script `commands` is not installed beside this Python"
    return [found]


@pytest.mark.parametrize("program", [_program, lambda: [sys.executable, "-m", "commands"]])
def test_installed_program_runs_as_a_subprocess(cli_env: dict[str, str], program: object) -> None:
    argv = program()  # type: ignore[operator]
    env = {**os.environ}
    help_run = subprocess.run([*argv, "--help"], capture_output=True, text=True, env=env,
                              timeout=60)
    assert help_run.returncode == 0 and "Usage: commands" in help_run.stdout
    trade = subprocess.run([*argv, "trade", "buy", "AAPL", "3", "--price", "10.5", "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert trade.returncode == 0, trade.stderr
    assert json.loads(trade.stdout)["filled_qty"] == "3"
    bad = subprocess.run([*argv, "trade", "buy", "AAPL", "0", "--price", "1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "qty must be greater than zero" in bad.stderr
