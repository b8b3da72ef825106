"""A story with a difference between the books, served by `commands serve` as a real
subprocess, and a headless Chromium to read it. Written once per store for the package.

The story (DESIGN.md section 1, told through the CLI against the Alpaca sandbox):
4 AAPL reach Alpaca, a bug fills 6 more on paper, a real `reconcile` sends the compensating
buy of 6; then the bug strikes again on MSFT (3 on paper) and `reconcile --dry-run` plans
buy 3 MSFT without sending it. So the books differ on MSFT, with its cause, and the day
holds decisions, a compensating order, a real run and a dry run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledger.bootstrap import open_ledger
from ledger.settings import load_settings
from scripts.alpaca_sandbox import AlpacaSandbox
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
from tests.conftest import PG_URL, STORES
from tests.reconcile.story import invoke, reconcile, tell_story, use_paper

ZONE = "America/New_York"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Handed to the server on purpose: no page may ever show them.
SECRETS = {"ALPACA_API_KEY": "web-test-key-AKIA0000SECRET", "ALPACA_SECRET_KEY": "s3cr3t-w3b"}
_LISTENING = re.compile(r"tradeledger page at (http://\S+?)/? ")


@dataclass(frozen=True)
class Story:
    database_url: str
    day: date  # the trading day it happened on, in ZONE
    compensation_client_order_id: str
    decision_rationales: tuple[str, ...]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    story: Story


def _schema_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


def clean_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: ours, without any ALPACA_/BROKER_/LEDGER_ of the host."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_"))
    }
    env.update(LEDGER_DATABASE_URL=database_url, LEDGER_TIMEZONE=ZONE, **extra)
    return env


def _write_story(database_url: str, broker: AlpacaSandbox, workdir: Path) -> Story:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for name in list(os.environ):
            if name.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_")):
                patch.delenv(name, raising=False)
        patch.setenv("LEDGER_DATABASE_URL", database_url)
        patch.setenv("LEDGER_TIMEZONE", ZONE)
        tell_story(patch, broker)
        code, done, err = reconcile()
        assert code == 0 and done["summary"]["submitted"] == 1, err
        use_paper(patch)
        code, _, err = invoke("trade", "buy", "MSFT", "3", "--price", "401.50",
                              "--reason", "rebalance into MSFT")
        assert code == 0, err
        patch.setenv("BROKER_PROVIDER", "alpaca")
        code, plan, err = reconcile("--dry-run")
        assert code == 0 and plan["summary"]["planned"] == 1, err
    (compensation,) = done["orders"]
    return Story(database_url, _day_of(database_url, compensation["client_order_id"]),
                 compensation["client_order_id"],
                 ("momentum", "more", "rebalance into MSFT"))


def _day_of(database_url: str, client_order_id: str) -> date:
    from projections import catch_up

    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=database_url))
    try:
        views = catch_up(ledger, timezone=ZONE)
        record = views.order_by_client_order_id(client_order_id)
        assert record is not None
        return record.requested_at.astimezone(views.zone).date()
    finally:
        ledger.close()


@pytest.fixture(scope="package", params=STORES)
def story(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: AlpacaSandbox,  # noqa: F811 - the shared fixture, by name
) -> Iterator[Story]:
    folder = tmp_path_factory.mktemp(f"web-{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'ledger.db'}"
    else:
        schema = f"web_{uuid.uuid4().hex[:12]}"
        url = _schema_url(schema)
    sandbox_server.reset()
    try:
        yield _write_story(url, sandbox_server, folder)
    finally:
        sandbox_server.reset()
        if schema is not None:
            with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def start_server(database_url: str, workdir: Path, *args: str,
                 **env: str) -> tuple[subprocess.Popen[str], str | None, str]:
    """`commands serve ARGS` as a subprocess: (process, its URL or None, what it printed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "commands", "serve", "--port", "0", *args],
        cwd=workdir, env=clean_env(database_url, **env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # ends when the process does
        seen.append(line)
        found = _LISTENING.search(line)
        if found:
            # Keep reading what it prints (logs), so a full pipe never blocks the server.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, found.group(1), "".join(seen)
    process.wait(timeout=10)
    return process, None, "".join(seen)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="package")
def server(story: Story, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    process, url, printed = start_server(story.database_url, workdir, **SECRETS)
    try:
        assert url is not None, printed
        yield Server(url, process, story)
    finally:
        stop(process)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
