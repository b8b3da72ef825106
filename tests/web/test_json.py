"""The JSON endpoints serve exactly the CLI's `--json` documents, for the same store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from commands.cli import cli
from tests.web.conftest import ZONE, Server
from tests.web.http import fetch


@pytest.fixture
def cli_json(server: Server, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Any]:
    """Runs `commands ... --json` on the served store and returns the parsed document."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_DATABASE_URL", server.story.database_url)
    monkeypatch.setenv("LEDGER_TIMEZONE", ZONE)

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    yield run


def served(server: Server, path: str) -> Any:
    reply = fetch(server.url + path)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    return reply.json()


@pytest.mark.parametrize("book", ["local", "broker", "diff"])
def test_positions_equal_the_cli(server: Server, cli_json: Any, book: str) -> None:
    as_of = datetime.now(UTC).isoformat()
    assert served(server, f"/api/positions?book={book}&as_of={quote(as_of)}") == cli_json(
        "positions", "--book", book, "--as-of", as_of
    )
    # Now (no --as-of): the same document but for the moment it was read.
    now_served = served(server, f"/api/positions?book={book}")
    now_cli = cli_json("positions", "--book", book)
    assert now_served.pop("as_of") and now_cli.pop("as_of")
    assert now_served == now_cli
    assert now_served["positions"], "the story leaves something in every book"


def test_audit_equals_the_cli(server: Server, cli_json: Any) -> None:
    day = server.story.day.isoformat()
    document = served(server, f"/api/audit/{day}")
    assert document == cli_json("audit", day)
    assert any(e["purpose"] == "compensation" for e in document["timeline"])
    assert served(server, f"/api/audit/{day}?symbol=msft") == cli_json(
        "audit", day, "--symbol", "MSFT"
    )


def test_reconciliations_equal_the_cli(server: Server, cli_json: Any) -> None:
    document = served(server, "/api/reconciliations")
    assert document == cli_json("reconciliations")
    assert served(server, "/api/reconciliations?limit=1") == cli_json(
        "reconciliations", "--limit", "1"
    )
    dry, real = document["runs"]  # newest first
    assert (dry["dry_run"], dry["outcome"], real["dry_run"], real["outcome"]) == (
        True, "dry_run", False, "submitted")
    (planned,) = dry["orders"]
    assert (planned["symbol"], planned["qty"], planned["status"]) == ("MSFT", "3", "planned")
    (sent,) = real["orders"]
    assert sent["client_order_id"] == server.story.compensation_client_order_id
    # The order's status now, from the orders view: the sandbox filled it.
    assert (sent["status"], sent["filled_qty"], sent["side"]) == ("filled", "6", "buy")
    assert real["summary"] == {"planned": 1, "submitted": 1, "failed": 0, "skipped": 0,
        "not_sent": 0, "unknown": 0}
    (row,) = [r for r in real["positions"] if r["symbol"] == "AAPL"]
    assert (row["local_qty"], row["broker_qty"], row["delta"]) == ("10", "4", "6")
