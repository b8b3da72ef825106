"""Stored text on the web page: Rich markup, control characters and spreadsheet formula
prefixes in reasons, sources and symbols come back as written (escaped HTML), no crash."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from flask import Flask

from commands.web import create_app
from commands.web.context import WebContext
from ledger.application import Ledger

ZONE = "America/New_York"
HOSTILE = ["[/bold] x", "[red]y[/red]", "=HYPERLINK(\"http://e.x\")", "+1", "@SUM(A1)",
           "-2+3", "tab\there"]


def test_stored_text_reaches_every_page_literally(open_store: Callable[..., Ledger]) -> None:
    ledger = open_store()
    for reason in HOSTILE:
        ledger.trade(side="buy", symbol="NVDA", qty="1", price="100", reason=reason,
                     source="[/]bot=1")
    app = cast(Flask, create_app(WebContext(ledger, timezone=ZONE), token=None,
                                 loopback_only=True).app)
    client = app.test_client()
    day = datetime.now(ZoneInfo(ZONE)).date().isoformat()
    pages = {path: client.get(path) for path in
             ("/", "/transactions", f"/audit/{day}", "/reconciliations", f"/api/audit/{day}")}
    for path, response in pages.items():
        assert response.status_code == 200, (path, response.data[:300])
    audit = html.unescape(pages[f"/audit/{day}"].get_data(as_text=True))
    for reason in HOSTILE:
        assert reason.replace("\t", " ") in audit.replace("\t", " "), reason
    assert "[/]bot=1" in audit
    document = pages[f"/api/audit/{day}"].get_json()
    assert {e["details"]["rationale"] for e in document["timeline"]
            if e["event"] == "DecisionRecorded"} == set(HOSTILE)
