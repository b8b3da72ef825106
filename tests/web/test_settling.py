"""An order of unknown outcome on the reconciliations page and in its JSON: marked while
nobody knows whether the broker has it, then named with the run that settled it and how;
the interrupted run with its reason, and the settling run with what it settled."""

from __future__ import annotations

import html
import json
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from commands.cli import cli
from commands.web import create_app
from commands.web.context import WebContext
from tests.web.conftest import ZONE, SettlingServer
from tests.web.http import fetch

REASON = "interrupted by SIGINT (Ctrl-C)"


def run_section(page: str, run_id: str) -> str:
    """The markup of one run's section of the page."""
    found = re.search(rf'<section [^>]*id="run-{re.escape(run_id)}">(.*?)</section>', page,
                      re.DOTALL)
    assert found is not None, f"no section for run {run_id}"
    return found.group(1)


def text(markup: str) -> str:
    """What a reader sees: tags dropped (a block's or cell's edge as a space), entities read,
    runs of white space as one."""
    spaced = re.sub(r"</?(?:br|p|h\d|section|table|caption|thead|tbody|tr|th|td)\b[^>]*>", " ",
                    markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", spaced)).split())


def rows(markup: str, table: str) -> list[str]:
    found = re.search(rf'<table class="{table}">(.*?)</table>', markup, re.DOTALL)
    assert found is not None, f"no {table} table"
    return [text(row) for row in re.findall(r"<tr[ >].*?</tr>", found.group(1), re.DOTALL)]


def served(server: SettlingServer, path: str) -> Any:
    reply = fetch(server.url + path)
    assert reply.status == 200, reply.body
    return reply.json() if path.startswith("/api/") else reply.body


def test_while_unknown_the_order_is_marked_and_the_run_says_why_it_stopped(
    settling_server: SettlingServer,
) -> None:
    history = settling_server.history
    assert history.interrupted == REASON  # as `reconcile --json` reported it
    section = run_section(history.while_unknown_page, history.interrupted_run)
    assert '<span class="tag interrupted">interrupted</span>' in section
    assert f"Interrupted: {REASON}." in text(section)
    assert "failed 1, skipped 0, of unknown outcome 1" in text(section)
    (header, order) = rows(section, "orders")
    assert header.startswith("symbol side qty")
    assert order.startswith("AAPL buy 6 market outcome unknown timeout: no answer from Alpaca")
    assert history.client_order_id in order and "settled by" not in order
    assert '<tr class="outcome-unknown">' in section

    (run,) = history.while_unknown_json["runs"]
    assert (run["run_id"], run["outcome"], run["interrupted"], run["settled"]) == (
        history.interrupted_run, "interrupted", REASON, [])
    (planned,) = run["orders"]
    assert (planned["status"], planned["outcome_unknown"], planned["settled_by"]) == (
        "outcome_unknown", True, None)


def test_the_settled_order_names_the_run_that_settled_it_and_how(
    settling_server: SettlingServer,
) -> None:
    history = settling_server.history
    how = f"at the broker as {history.broker_order_id}"
    page = served(settling_server, "/reconciliations")
    section = run_section(page, history.interrupted_run)
    (_, order) = rows(section, "orders")
    # Settled: no longer marked unknown; the timeout that made it so stays on record.
    assert "outcome unknown" not in order and "outcome-unknown" not in section
    assert "timeout: no answer from Alpaca" in order
    assert f"settled by run {history.settling_run}: {how}" in order
    assert f'<a href="#run-{history.settling_run}">' in section
    assert f"Interrupted: {REASON}." in text(section)

    settling = run_section(page, history.settling_run)
    (header, settled) = rows(settling, "settled")
    assert header == "symbol was settled as how client order id left by"
    assert settled.startswith("AAPL outcome unknown ")
    assert settled.endswith(f"{how} {history.client_order_id} run {history.interrupted_run}")
    assert f'<a href="#run-{history.interrupted_run}">' in settling
    assert "Interrupted:" not in text(settling)

    document = served(settling_server, "/api/reconciliations")
    newest, interrupted = document["runs"]
    assert newest["run_id"] == history.settling_run and newest["interrupted"] is None
    (entry,) = newest["settled"]
    assert (entry["client_order_id"], entry["from_run"], entry["was"], entry["how"]) == (
        history.client_order_id, history.interrupted_run, "outcome_unknown", how)
    assert interrupted["outcome"] == "interrupted" and interrupted["interrupted"] == REASON
    (order_document,) = interrupted["orders"]
    assert order_document["outcome_unknown"] is False
    assert order_document["settled_by"] == {
        "run_id": history.settling_run, "status": entry["status"], "how": how,
    }
    assert order_document["broker_order_id"] == history.broker_order_id


def test_the_json_equals_the_cli(settling_server: SettlingServer, tmp_path: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settling_server.history.database_url)
    monkeypatch.setenv("LEDGER_TIMEZONE", ZONE)
    result = CliRunner().invoke(cli, ["reconciliations", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert served(settling_server, "/api/reconciliations") == json.loads(result.stdout)


# -- stored text is untrusted ---------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>'


def _hostile_document() -> dict[str, Any]:
    """A document whose every stored text is markup: the broker's words, ids, a reason."""
    earlier, later = str(uuid4()), str(uuid4())
    now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    order = {
        "symbol": "AAPL", "side": "buy", "qty": Decimal(6), "type": "market",
        "limit_price": None, "client_order_id": "tl-" + HOSTILE, "order_id": None,
        "status": "outcome_unknown", "filled_qty": Decimal(0), "avg_fill_price": None,
        "broker": "alpaca", "broker_order_id": HOSTILE, "error": "timeout: " + HOSTILE,
        "outcome_unknown": True,
        "settled_by": {"run_id": later + HOSTILE, "status": "accepted", "how": HOSTILE},
    }
    run = {
        "run_id": earlier, "started_at": now, "ended_at": now, "dry_run": False,
        "broker": "alpaca", "paper": True, "sync_id": None, "filters": {}, "market": None,
        "outcome": "interrupted", "positions": [], "orders": [order],
        "summary": {"planned": 1, "submitted": 0, "failed": 1, "skipped": 0,
                    "not_sent": 0, "unknown": 1},
        "interrupted": HOSTILE,
        "settled": [{
            "order_id": None, "client_order_id": HOSTILE, "symbol": HOSTILE,
            "from_run": '"><script>x</script>', "was": HOSTILE, "status": HOSTILE,
            "how": HOSTILE,
        }],
    }
    return {"limit": 20, "count": 1, "runs": [run]}


def test_stored_text_is_escaped() -> None:
    from flask import Flask, render_template

    stand_in = cast(WebContext, SimpleNamespace(zone=ZoneInfo(ZONE), timezone=ZONE))
    app = cast(Flask, create_app(stand_in, token=None, loopback_only=True).app)
    document = _hostile_document()
    settled_by = document["runs"][0]["orders"][0]["settled_by"]["run_id"]
    with app.test_request_context("/reconciliations"):
        page = render_template("reconciliations.html", document=document, limit=20)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'href="#run-&#34;&gt;&lt;script&gt;' in page
    assert f"Interrupted: {HOSTILE}." in text(page)
    assert f"settled by run {settled_by}: {HOSTILE}" in text(page)
