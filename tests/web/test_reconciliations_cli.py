"""`commands reconciliations`: the runs as a table, and on an empty store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.cli import cli
from tests.web.conftest import Story


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_table_shows_each_run_and_how_it_ended(
    story: Story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_DATABASE_URL", story.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run("reconciliations")
    assert (code, err) == (0, "")
    assert "Newest 2 reconciliation run(s)" in out
    assert "buy 3 MSFT: planned" in out and "buy 6 AAPL: filled" in out
    assert "dry_run" in out and "submitted" in out
    code, out, _ = run("reconciliations", "--limit", "0")
    assert code == 2


def test_an_empty_store_says_so(cli_env: dict[str, str]) -> None:
    code, out, err = run("reconciliations")
    assert (code, err) == (0, "")
    assert "No reconciliation has run yet" in out
    code, out, _ = run("reconciliations", "--json")
    assert json.loads(out) == {"limit": 20, "count": 0, "runs": []}
