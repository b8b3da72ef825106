"""A story with a difference between the books, served by `commands serve` as a real
subprocess, and a headless Chromium to read it. Written once per store for the package.

The story (docs/design.md, "The story", told through the CLI against the Alpaca sandbox):
4 AAPL reach Alpaca, a bug fills 6 more on paper, a real `reconcile` sends the compensating
buy of 6; then the bug strikes again on MSFT (3 on paper) and `reconcile --dry-run` plans
buy 3 MSFT without sending it. So the books differ on MSFT, with its cause, and the day
holds decisions, a compensating order, a real run and a dry run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import open_ledger
from ledger.settings import load_settings
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
from tests.conftest import STORES, fresh_store
from tests.reconcile.story import reconcile, tell_story, use_paper
from tests.web.http import fetch

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


def clean_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: ours, without any ALPACA_/BROKER_/LEDGER_ of the host."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_"))
    }
    env.update(LEDGER_DATABASE_URL=database_url, LEDGER_TIMEZONE=ZONE, **extra)
    return env


def _cli_in(patch: pytest.MonkeyPatch, workdir: Path, database_url: str) -> None:
    """The CLI run in this process as from `workdir`, on `database_url`, without any
    ALPACA_/BROKER_/LEDGER_/RECONCILE_ setting of the host."""
    patch.chdir(workdir)
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_")):
            patch.delenv(name, raising=False)
    patch.setenv("LEDGER_DATABASE_URL", database_url)
    patch.setenv("LEDGER_TIMEZONE", ZONE)


def _write_story(database_url: str, broker: AlpacaSandbox, workdir: Path) -> Story:
    with pytest.MonkeyPatch.context() as patch:
        _cli_in(patch, workdir, database_url)
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
    with fresh_store(request.param, folder, sandbox_server, "web") as url:
        yield _write_story(url, sandbox_server, folder)


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


# -- a compensating order of unknown outcome, settled by the next run -----------------------

# The broker holds the first order POST longer than the interrupted run waits for it, and
# longer than the next run takes to sync: that sync must not find the order yet, or it
# would settle the order itself and the run would have nothing of its own to settle.
HELD_POST_SECONDS = 4.0
FIRST_RUN_TIMEOUT = "1"


@dataclass(frozen=True)
class Settling:
    """The story's first half (AAPL differs by 6), then a `reconcile` sent SIGINT while its
    order's POST was held by the broker: the POST timed out and the lookup found nothing,
    so the order is of unknown outcome. The page was read then (`while_unknown_*`). The
    next `reconcile` started at once: it sent the order again under its client order id,
    and the broker took it once (the held POST, answered later, is a duplicate)."""

    database_url: str
    interrupted_run: str
    interrupted: str  # the run's reason, as it reported it
    settling_run: str
    client_order_id: str
    broker_order_id: str
    while_unknown_page: str
    while_unknown_json: dict[str, Any]


@dataclass
class SettlingServer:
    url: str
    process: subprocess.Popen[str]
    history: Settling


def _order_posts(broker: AlpacaSandbox) -> list[dict[str, Any]]:
    return broker.requests("POST", "/v2/orders")


def _interrupted_reconcile(database_url: str, broker: AlpacaSandbox,
                           workdir: Path) -> dict[str, Any]:
    """`commands reconcile` as a subprocess, sent SIGINT once its order's POST arrived."""
    env = alpaca_env(broker, BROKER_TIMEOUT_SECONDS=FIRST_RUN_TIMEOUT,
                     RECONCILE_RECENT_FILL_SECONDS="0")
    posts = len(_order_posts(broker))
    process = subprocess.Popen(
        [sys.executable, "-m", "commands", "reconcile", "--json"],
        cwd=workdir, env=clean_env(database_url, **env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_order_posts(broker)) == posts:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the reconcile never sent its order"
            time.sleep(0.01)
        # A signal while the answer is awaited: the run finishes that call, sends no more.
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert out.strip(), err
    document: dict[str, Any] = json.loads(out)
    return document


def _await_answers(broker: AlpacaSandbox) -> None:
    """Until the held POST is answered: a sandbox reset before then would get its order."""
    deadline = time.monotonic() + HELD_POST_SECONDS + 30
    while any(post["status"] is None for post in _order_posts(broker)):
        assert time.monotonic() < deadline, "the sandbox never answered the held POST"
        time.sleep(0.05)


def _tell_settling(database_url: str, broker: AlpacaSandbox, workdir: Path,
                   page_url: str) -> Settling:
    with pytest.MonkeyPatch.context() as patch:
        _cli_in(patch, workdir, database_url)
        tell_story(patch, broker)
        # Only the first POST is held: a delay applies to the requests that arrive while set.
        broker.set_delay(HELD_POST_SECONDS, method="POST", path="/v2/orders")
        try:
            first = _interrupted_reconcile(database_url, broker, workdir)
        finally:
            broker.clear_delays()
        assert first["interrupted"] and first["summary"]["unknown"] == 1, first
        (order,) = first["orders"]
        assert order["outcome_unknown"], order
        page = fetch(page_url + "/reconciliations")
        document = fetch(page_url + "/api/reconciliations")
        assert page.status == 200 and document.status == 200, (page.body, document.body)
        code, second, err = reconcile()
        _await_answers(broker)
    assert code == 0, err
    assert second["settled"], (
        f"the second run settled nothing: its sync found the order first (it came within "
        f"{HELD_POST_SECONDS} s of the held POST?): {second}"
    )
    (at_broker,) = [o for o in broker.state()["orders"]
                    if o["client_order_id"] == order["client_order_id"]]
    return Settling(
        database_url=database_url,
        interrupted_run=str(first["run_id"]),
        interrupted=str(first["interrupted"]),
        settling_run=str(second["run_id"]),
        client_order_id=order["client_order_id"],
        broker_order_id=str(at_broker["id"]),
        while_unknown_page=page.body,
        while_unknown_json=document.json(),
    )


@pytest.fixture(scope="package", params=STORES)
def settling_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: AlpacaSandbox,  # noqa: F811 - the shared fixture, by name
) -> Iterator[SettlingServer]:
    """The page served from the first event on: it reads the history as it is written."""
    folder = tmp_path_factory.mktemp(f"settling-{request.param}")
    with fresh_store(request.param, folder, sandbox_server, "web") as database_url:
        process, url, printed = start_server(database_url, folder)
        try:
            assert url is not None, printed
            history = _tell_settling(database_url, sandbox_server, folder, url)
            yield SettlingServer(url, process, history)
        finally:
            stop(process)
