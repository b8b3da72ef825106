"""`commands run`'s /healthz and /metrics (commands/health.py), read over real HTTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from prometheus_client.parser import text_string_to_metric_families

from commands.errors import EXIT_USAGE, CommandError
from commands.health import HealthPortInUse, HealthServer, serve_health
from ledger.application import Ledger
from ledger.domain.values import OrderIntent
from ledger.services.service_status import DriftState, DriftSymbol, ServiceStatus
from projections.queries.order_counts import OrderCounts, orders_by_status
from projections.queries.views import Views

NAMES = {
    "tradeledger_last_sync_age_seconds",
    "tradeledger_stream_connected",
    "tradeledger_open_drift_symbols",
    "tradeledger_orders",
    "tradeledger_fills_recorded",
    "tradeledger_broker_errors",
}


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def status() -> ServiceStatus:
    return ServiceStatus(poll_interval=5.0, stream_enabled=True)


@pytest.fixture
def server(status: ServiceStatus) -> Iterator[HealthServer]:
    counts = {"filled": 3, "canceled": 1}
    running = serve_health(status, "127.0.0.1", 0, lambda: dict(counts))
    yield running
    running.close()


def _url(server: HealthServer, path: str) -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


def _drift(now: datetime) -> DriftState:
    symbol = DriftSymbol("AAPL", Decimal(10), Decimal(4), Decimal(0), Decimal(6),
                         "local_decision_not_executed", now)
    return DriftState(uuid4(), now, (symbol,))


def test_healthz_turns_503_and_back_with_the_reason(
    server: HealthServer, status: ServiceStatus
) -> None:
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0
    code, kind, body = _get(_url(server, "/healthz"))
    # Nothing synced yet: not healthy, and it says why.
    assert code == 503 and kind == "application/json"
    document = json.loads(body)
    assert document["healthy"] is False and document["reasons"] == ["no successful sync yet"]

    now = datetime.now(UTC)
    status.synced(now, new_fills=2)
    code, _, body = _get(_url(server, "/healthz"))
    document = json.loads(body)
    assert code == 200 and document["healthy"] is True and document["reasons"] == []
    # The status' snapshot rides along: an operator sees stream and fills without /metrics.
    assert document["fills_recorded"] == 2 and document["stream_connected"] is False
    assert document["stream_reason"] == "not connected yet"

    status.drift_opened(_drift(now))
    code, _, body = _get(_url(server, "/healthz"))
    document = json.loads(body)
    assert code == 503 and document["healthy"] is False
    assert len(document["reasons"]) == 1 and "drift open" in document["reasons"][0]
    assert "AAPL" in document["reasons"][0]
    assert document["open_drift"]["symbols"][0]["delta"] == "6"

    status.drift_closed()
    assert _get(_url(server, "/healthz"))[0] == 200

    # A stream that is down while polls are current is reported, not unhealthy.
    status.stream_up()
    status.stream_down("connection reset")
    code, _, body = _get(_url(server, "/healthz"))
    assert code == 200 and json.loads(body)["stream_reason"] == "connection reset"


def test_healthz_is_503_when_polls_stop(status: ServiceStatus) -> None:
    status.synced(datetime.now(UTC) - timedelta(seconds=status.stale_after() + 5))
    running = serve_health(status, "127.0.0.1", 0, dict)
    try:
        code, _, body = _get(_url(running, "/healthz"))
    finally:
        running.close()
    assert code == 503
    (reason,) = json.loads(body)["reasons"]
    assert reason.startswith("no successful sync for")


def _families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_follow_the_status(server: HealthServer, status: ServiceStatus) -> None:
    code, kind, text = _get(_url(server, "/metrics"))
    assert code == 200 and kind.startswith("text/plain")
    assert set(_families(text)) == NAMES
    samples = _samples(text)
    assert samples[("tradeledger_stream_connected", ())] == 0
    assert samples[("tradeledger_open_drift_symbols", ())] == 0
    assert samples[("tradeledger_fills_recorded_total", ())] == 0
    assert samples[("tradeledger_orders", (("status", "filled"),))] == 3
    assert samples[("tradeledger_orders", (("status", "canceled"),))] == 1
    assert samples[("tradeledger_last_sync_age_seconds", ())] >= 0

    now = datetime.now(UTC)
    status.synced(now - timedelta(seconds=42), new_fills=5)
    status.stream_up()
    status.broker_error("timeout")
    status.broker_error("timeout")
    status.broker_error("read")
    status.drift_opened(_drift(now))
    samples = _samples(_get(_url(server, "/metrics"))[2])
    assert samples[("tradeledger_stream_connected", ())] == 1
    assert samples[("tradeledger_open_drift_symbols", ())] == 1
    assert samples[("tradeledger_fills_recorded_total", ())] == 5
    assert samples[("tradeledger_broker_errors_total", (("kind", "timeout"),))] == 2
    assert samples[("tradeledger_broker_errors_total", (("kind", "read"),))] == 1
    assert 42 <= samples[("tradeledger_last_sync_age_seconds", ())] < 60


def test_a_failing_order_count_leaves_the_other_metrics(status: ServiceStatus) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("the store is down")

    running = serve_health(status, "127.0.0.1", 0, broken)
    try:
        code, _, text = _get(_url(running, "/metrics"))
    finally:
        running.close()
    assert code == 200 and "tradeledger_stream_connected 0.0" in text


def test_unknown_paths_are_404(server: HealthServer) -> None:
    assert _get(_url(server, "/"))[0] == 404


def test_a_port_in_use_is_one_clear_error(status: ServiceStatus) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(HealthPortInUse) as caught:
            serve_health(status, "127.0.0.1", port, dict)
    error = caught.value
    assert isinstance(error, CommandError) and error.exit_code == EXIT_USAGE
    message = str(error)
    assert "\n" not in message and f"127.0.0.1:{port}" in message
    assert "address already in use" in message and "LEDGER_HEALTH_PORT" in message


def test_close_frees_the_port(status: ServiceStatus) -> None:
    running = serve_health(status, "127.0.0.1", 0, dict)
    port = running.address[1]
    running.close()
    again = serve_health(status, "127.0.0.1", port, dict)
    again.close()


def test_orders_by_status_counts_the_orders_view(ledger: Ledger) -> None:
    for n in range(3):
        ledger.trade(side="buy", symbol="AAPL", qty=str(n + 1), price="100", reason=f"t {n}")
    ledger.record_decision(source="test", rationale="held back",
                           intents=[OrderIntent(symbol="NVDA", side="buy", qty=2)])
    counts = OrderCounts(Views(ledger, timezone="America/New_York"))
    assert counts() == {"filled": 3, "requested": 1}
    # The scrape catches the views up: a new order is counted at once.
    ledger.trade(side="sell", symbol="AAPL", qty="1", price="101", reason="later")
    assert counts() == {"filled": 4, "requested": 1}
    assert orders_by_status(counts.views) == {"filled": 4, "requested": 1}
