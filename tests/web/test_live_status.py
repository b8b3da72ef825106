"""The books page and `commands run`: the drift banner, the service's status (asked of its
/healthz), and a first answer that never waits for every explanation. Both stores."""

from __future__ import annotations

import html
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commands.health import serve_health
from commands.web import create_app, pages
from commands.web.context import WebContext
from commands.web.service import probe
from ledger.application import Ledger
from ledger.domain import Drift
from ledger.domain.planning import SymbolFacts
from ledger.services.service_status import DriftState, DriftSymbol, ServiceStatus
from projections.queries.reconcile_books import ReconcileBooks

ZONE = "America/New_York"
CAUSE = "a local decision the broker never executed"


def _unused_port() -> int:
    # Bound and closed: nothing listens there while the test runs (a port the system
    # hands out is not handed out again at once).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        return int(holder.getsockname()[1])


def _client(ledger: Ledger, health: tuple[str, int]) -> FlaskClient:
    web = WebContext(ledger, timezone=ZONE, health=health)
    return cast(Flask, create_app(web, token=None, loopback_only=True).app).test_client()


def _page(client: FlaskClient, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.data[:500]
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def status() -> ServiceStatus:
    return ServiceStatus(poll_interval=5.0, stream_enabled=True)


@pytest.fixture
def service(status: ServiceStatus) -> Iterator[tuple[str, int]]:
    running = serve_health(status, "127.0.0.1", 0, dict)
    yield running.address
    running.close()


def _drift(symbol: str = "AAPL", delta: str = "10") -> Drift:
    since = datetime.now(UTC) - timedelta(seconds=75)
    return Drift(id=uuid4(), began_at=since, symbols=[{
        "symbol": symbol, "local_qty": delta, "broker_qty": "0", "open_qty": "0",
        "delta": delta, "cause": "ledger-originated", "since": since.isoformat(),
    }])


def test_an_open_drift_is_a_banner_until_it_ends(ledger: Ledger) -> None:
    ledger.trade(side="buy", symbol="AAPL", qty="10", price="100", reason="momentum")
    client = _client(ledger, ("127.0.0.1", _unused_port()))
    page = _page(client)
    assert "Drift open" not in page

    drift = _drift()
    ledger.save(drift)
    page = _page(client)
    banner = page.index("Drift open for")
    # First of the banners: it is what a person must act on.
    assert banner < page.index("The books differ on 1 symbol(s)")
    text = page[banner:page.index("</p>", banner)]
    assert "the books stayed apart on 1 symbol(s): AAPL +10 (ledger-originated)" in text
    assert "commands reconcile --dry-run" in text
    assert 'class="banner alert"' in page[page.rindex("<p", 0, banner):banner]

    drift.end(datetime.now(UTC))
    ledger.save(drift)
    assert "Drift open" not in _page(client)


def test_the_days_audit_shows_its_drift_windows(ledger: Ledger) -> None:
    ledger.trade(side="buy", symbol="AAPL", qty="10", price="100", reason="momentum")
    drift = _drift()
    ledger.save(drift)
    drift.end(datetime.now(UTC))
    ledger.save(drift)
    client = _client(ledger, ("127.0.0.1", _unused_port()))
    page = _page(client, f"/audit/{datetime.now(ZoneInfo(ZONE)).date().isoformat()}")
    section = page[page.index("<h3>Drift windows</h3>"):page.index("Left unresolved")]
    assert "AAPL 10 (ledger-originated)" in section
    assert "still open" not in section


def test_the_status_says_when_the_service_is_not_answering(ledger: Ledger) -> None:
    port = _unused_port()
    client = _client(ledger, ("127.0.0.1", port))
    started = time.monotonic()
    page = _page(client)
    assert time.monotonic() - started < 5
    assert "service not answering" in page
    assert f"nothing answered at 127.0.0.1:{port}/healthz" in page
    # The last sync the events hold is shown either way.
    assert 'id="last-sync">never' in page


def test_a_hung_service_is_not_answering_within_the_probe_timeout() -> None:
    # Listening, never answering: the page must not wait on it.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        started = time.monotonic()
        view = probe("127.0.0.1", hung.getsockname()[1])
        took = time.monotonic() - started
    assert not view.answering and took < 1.0, (view, took)


def test_the_status_shows_what_the_service_says(
    ledger: Ledger, status: ServiceStatus, service: tuple[str, int]
) -> None:
    client = _client(ledger, service)
    page = _page(client)
    # Started, never synced yet: the service answers 503, and that is its status.
    assert 'id="service-health">unhealthy' in page
    assert "no successful sync yet" in page
    assert "stream down (not connected yet): polling" in page

    synced = datetime.now(UTC)
    status.synced(synced, new_fills=1)
    status.stream_up()
    time.sleep(1.1)  # the page asks the service at most once a second
    page = _page(client)
    assert 'id="service-health">healthy' in page
    assert 'id="service-stream">stream connected' in page
    assert "last sync none yet" not in page

    symbol = DriftSymbol("AAPL", Decimal(10), Decimal(0), Decimal(0), Decimal(10),
                         "ledger-originated", synced)
    status.drift_opened(DriftState(uuid4(), synced, (symbol,)))
    status.stream_down("connection reset")
    time.sleep(1.1)
    page = _page(client)
    assert 'id="service-health">unhealthy' in page
    assert "drift open since" in page
    assert "stream down (connection reset): polling" in page


def test_the_first_answer_does_not_wait_for_every_explanation(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a long history, where explaining every differing symbol takes seconds: the
    page answers with the books and marks the causes still being worked out, then shows
    them once they are in."""
    ledger.trade(side="buy", symbol="AAPL", qty="10", price="100", reason="momentum")
    release = threading.Event()
    original = ReconcileBooks._explain

    def slow(self: ReconcileBooks, fact: SymbolFacts) -> SymbolFacts:
        release.wait(30)
        return original(self, fact)

    drawn = pages.book_history

    def slow_history(*args: Any) -> Any:
        release.wait(30)
        return drawn(*args)

    monkeypatch.setattr(ReconcileBooks, "_explain", slow)
    monkeypatch.setattr(pages, "book_history", slow_history)
    monkeypatch.setattr(pages, "WARM_UP_SECONDS", 0.1)
    monkeypatch.setattr(pages, "REQUEST_WAIT_SECONDS", 0.2)
    web = WebContext(ledger, timezone=ZONE, health=("127.0.0.1", _unused_port()))
    started = time.monotonic()
    pages.warm_up(web)  # what `commands serve` does before listening
    assert time.monotonic() - started < 5
    client = cast(Flask, create_app(web, token=None, loopback_only=True).app).test_client()
    try:
        started = time.monotonic()
        page = _page(client)
        assert time.monotonic() - started < 5
        assert "working out the cause" in page and CAUSE not in page
        assert 'id="chart-pending"' in page and "Nothing to draw yet" not in page
        assert '<meta http-equiv="refresh" content="2">' in page
        # The quantities are there already: the banner and the row.
        assert "The books differ on 1 symbol(s): AAPL +10" in page
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while 'http-equiv="refresh"' in page and time.monotonic() < deadline:
        time.sleep(0.05)
        page = _page(client)
    assert CAUSE in page and "working out the cause" not in page
    # No sync has told the cash: the chart, drawn, says there is nothing to draw yet.
    assert "Nothing to draw yet" in page and 'id="chart-pending"' not in page
    assert 'http-equiv="refresh"' not in page


def test_a_failed_background_explanation_is_a_500_then_tried_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.trade(side="buy", symbol="AAPL", qty="10", price="100", reason="momentum")
    original = ReconcileBooks._explain
    failures = [RuntimeError("the store went away")]

    def flaky(self: ReconcileBooks, fact: SymbolFacts) -> Any:
        if failures:
            raise failures.pop()
        return original(self, fact)

    monkeypatch.setattr(ReconcileBooks, "_explain", flaky)
    # Long enough that the request sees the background failure, on any machine.
    monkeypatch.setattr(pages, "REQUEST_WAIT_SECONDS", 30.0)
    client = _client(ledger, ("127.0.0.1", _unused_port()))
    assert client.get("/").status_code == 500
    assert CAUSE in _page(client)
