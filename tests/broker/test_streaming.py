"""`commands run` with Alpaca's trade_updates stream, against the sandbox's stream and its faults.

The poll interval is 30 s in these tests, so a fill recorded within seconds can only have
come by the stream (and the poll it triggers). Every fill must be recorded exactly once:
announced twice, announced and then polled, or announced on a connection that dropped.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.brokers.port import OrderUpdate
from ledger.domain.order import external_order_id
from ledger.services.live import LiveService
from ledger.services.service_status import ServiceStatus
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env
from tests.broker.fixtures_ledger import open_alpaca, recorded_executions
from tests.broker.test_run import ROOT, Service, wait_until

POLL_SECONDS = 30.0
# Well under the poll interval: only the stream explains a fill recorded this soon.
BY_STREAM = 8.0


@pytest.fixture
def stream_env(database_url: str, sandbox: AlpacaSandbox) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "PYTEST_"))
    }
    env.update(alpaca_env(sandbox))
    env.update({
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
        "LEDGER_HEALTH_PORT": "0",  # any free port: tests may run side by side
        "PYTHONPATH": str(ROOT),
    })
    return env


@pytest.fixture
def start(stream_env: dict[str, str], tmp_path: Path,
          sandbox: AlpacaSandbox) -> Iterator[Callable[..., Service]]:
    sandbox.set_stream_faults()
    started: list[Service] = []

    def start_(**env: str) -> Service:
        service = Service({**stream_env, **env}, tmp_path)
        started.append(service)
        return service

    yield start_
    for service in started:
        service.kill()
    sandbox.set_stream_faults()


@pytest.fixture
def alpaca(open_store: Callable[..., Ledger], sandbox: AlpacaSandbox) -> Iterator[Ledger]:
    ledger = open_alpaca(open_store, sandbox)
    yield ledger


def held_order(ledger: Ledger, sandbox: AlpacaSandbox, symbol: str = "MSFT",
               qty: str = "5") -> Any:
    """An order the sandbox holds open until the test fills it."""
    sandbox.set_symbol(symbol, behavior="hold")
    order = ledger.trade(side="buy", symbol=symbol, qty=qty, order_type="limit",
                         limit_price="1")
    assert order.status == "accepted" and order.broker_order_id is not None
    return order


def filled_qty(ledger: Ledger, order_id: Any) -> Decimal:
    return ledger.get_order(order_id).filled_qty


def emitted_fills(sandbox: AlpacaSandbox) -> set[str]:
    return {e["execution_id"] for e in sandbox.stream_emitted()
            if e["event"] in ("fill", "partial_fill") and e["execution_id"]}


def assert_each_fill_once(ledger: Ledger, sandbox: AlpacaSandbox) -> None:
    """Every fill the sandbox made is recorded, none twice (the stored execution id is the
    FILL activity's id, which ends in the stream's execution_id)."""
    recorded = recorded_executions(ledger)
    assert len(recorded) == len(set(recorded)), recorded
    emitted = emitted_fills(sandbox)
    assert {e for e in emitted if any(r.endswith(e) for r in recorded)} == emitted
    assert len(recorded) == len(emitted), (recorded, emitted)


def healthz(line: str) -> dict[str, Any]:
    """/healthz of the service whose start-up printed `line` ("health: http://...")."""
    url = line.split("health: ", 1)[1].split()[0]
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.load(answer))


def every_line(service: Service) -> list[str]:
    """All a stopped service printed on stdout: what `wait_for` read, then the rest."""
    service.wait_for("service stopped")  # its last line: everything before it is read
    while not service.lines.empty():
        service.seen.append(service.lines.get())
    return service.seen


def by_stream(check: Callable[[], bool], since: float) -> float:
    """Wait for `check`; how long it took, asserted well under the poll interval."""
    wait_until(check, timeout=BY_STREAM)
    took = time.monotonic() - since
    assert took < BY_STREAM
    return took


def test_fills_cancels_and_unknown_orders_arrive_by_the_stream(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    held = held_order(alpaca, sandbox)
    other = held_order(alpaca, sandbox, "AAPL", "3")
    began = time.monotonic()
    service = start()
    health = service.wait_for("health: http://127.0.0.1:")
    service.wait_for("synced:")
    service.wait_for("stream connected")

    at = time.monotonic()
    sandbox.fill_order(held.broker_order_id, qty="2", price="0.95")
    by_stream(lambda: filled_qty(alpaca, held.id) == 2, at)
    at = time.monotonic()
    sandbox.fill_order(held.broker_order_id, price="0.96")
    by_stream(lambda: alpaca.get_order(held.id).status == "filled", at)
    at = time.monotonic()
    sandbox.cancel_order(other.broker_order_id)
    by_stream(lambda: alpaca.get_order(other.id).status == "canceled", at)
    # An order placed at the broker directly: the ledger never saw it before its update.
    at = time.monotonic()
    placed = sandbox.create_external_order("NVDA", "sell", "1")
    external = external_order_id("alpaca", placed["id"])
    by_stream(lambda: alpaca.load_order(external) is not None, at)
    wait_until(lambda: alpaca.load_order(external).status == "filled", BY_STREAM)
    assert time.monotonic() - began < POLL_SECONDS  # no interval poll has happened yet
    # What the service knows of itself, as /healthz tells an operator.
    state = healthz(health)
    assert (state["healthy"], state["stream_connected"], state["stream_reason"]) == (
        True, True, "")
    assert state["fills_recorded"] == 3 and state["last_sync_age_seconds"] < BY_STREAM

    assert service.stop(signal.SIGTERM) == 0
    service.wait_for("service stopped")
    order = alpaca.get_order(held.id)
    assert (order.filled_qty, len(order.executions)) == (Decimal(5), 2)
    # A later poll of the same fills (here a full sync by another process) adds none.
    before = recorded_executions(alpaca)
    alpaca.sync()
    assert recorded_executions(alpaca) == before
    assert_each_fill_once(alpaca, sandbox)


def test_a_duplicated_update_records_its_fill_once(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    held = held_order(alpaca, sandbox, qty="4")
    service = start()
    service.wait_for("stream connected")
    sandbox.set_stream_faults(duplicate_next=10)
    for _ in range(4):
        at = time.monotonic()
        before = filled_qty(alpaca, held.id)
        sandbox.fill_order(held.broker_order_id, qty="1", price="0.9")
        by_stream(lambda: filled_qty(alpaca, held.id) == before + 1, at)  # noqa: B023
    time.sleep(0.5)  # the second copies have arrived and been polled for by now
    assert service.stop(signal.SIGINT) == 0
    order = alpaca.get_order(held.id)
    assert (order.status, order.filled_qty, len(order.executions)) == ("filled", 4, 4)
    assert_each_fill_once(alpaca, sandbox)


def test_a_connection_dropped_mid_fill_loses_nothing(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    held = held_order(alpaca, sandbox, qty="3")
    service = start()
    service.wait_for("stream connected")
    at = time.monotonic()
    sandbox.fill_order(held.broker_order_id, qty="1", price="0.9")
    by_stream(lambda: filled_qty(alpaca, held.id) == 1, at)

    # The next fill's update is still held back by the sandbox when the connection drops:
    # it is lost with the socket, and the poll after the reconnect records the fill.
    sandbox.set_stream_faults(delay_ms=1000)
    at = time.monotonic()
    sandbox.fill_order(held.broker_order_id, qty="1", price="0.91")
    assert sandbox.drop_stream_connections() == 1
    sandbox.set_stream_faults()
    service.wait_for("stream down (connection lost): polling every 30 s")
    service.wait_for("stream back")
    by_stream(lambda: filled_qty(alpaca, held.id) == 2, at)
    # And the stream works again after the reconnect.
    at = time.monotonic()
    sandbox.fill_order(held.broker_order_id, price="0.92")
    by_stream(lambda: alpaca.get_order(held.id).status == "filled", at)
    assert service.stop(signal.SIGTERM) == 0
    assert_each_fill_once(alpaca, sandbox)
    assert sum("stream down" in line for line in every_line(service)) == 1


def test_fills_made_while_the_stream_is_down_are_recorded_after_the_reconnect(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    held = held_order(alpaca, sandbox, qty="2")
    service = start()
    service.wait_for("stream connected")
    time.sleep(1.5)  # the poll the connect asked for is over: the next one is the reconnect's
    # Down, and kept down: every reconnect is refused (with alpaca-py's backoff).
    sandbox.set_stream_faults(refuse_auth=True)
    sandbox.drop_stream_connections()
    service.wait_for("stream down (")
    sandbox.fill_order(held.broker_order_id, price="0.95")
    placed = sandbox.create_external_order("TSLA", "buy", "2")
    external = external_order_id("alpaca", placed["id"])
    time.sleep(1.5)  # a reconnect or two refused meanwhile
    assert alpaca.get_order(held.id).status != "filled"  # nobody polled: 30 s interval

    at = time.monotonic()
    sandbox.set_stream_faults()
    service.wait_for("stream back", timeout=BY_STREAM)
    by_stream(lambda: alpaca.get_order(held.id).status == "filled", at)
    wait_until(lambda: alpaca.load_order(external) is not None, BY_STREAM)
    assert service.stop(signal.SIGTERM) == 0
    assert_each_fill_once(alpaca, sandbox)
    # Said once however many reconnects were refused; the reason names the fix.
    downs = [line for line in every_line(service) if "stream down" in line]
    assert len(downs) == 1, downs


def test_a_refused_stream_at_start_leaves_polling_in_charge(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    sandbox.set_stream_faults(refuse_auth=True)
    held = held_order(alpaca, sandbox, qty="1")
    service = start(LEDGER_POLL_INTERVAL_SECONDS="0.3")
    line = service.wait_for("stream down (")
    assert "authentication refused: check ALPACA_API_KEY and ALPACA_SECRET_KEY" in line
    assert line.endswith("polling every 0.3 s")
    assert sandbox.secret not in line and sandbox.key not in line
    sandbox.fill_order(held.broker_order_id, price="0.95")
    wait_until(lambda: alpaca.get_order(held.id).status == "filled", BY_STREAM)
    assert service.stop(signal.SIGTERM) == 0
    assert not any(sandbox.secret in line for line in every_line(service) + service.errors)


def test_with_LEDGER_STREAM_false_the_service_only_polls(
    alpaca: Ledger, sandbox: AlpacaSandbox, start: Callable[..., Service]
) -> None:
    service = start(LEDGER_STREAM="false", LEDGER_POLL_INTERVAL_SECONDS="0.2")
    service.wait_for("synced:")
    held = held_order(alpaca, sandbox, qty="1")
    sandbox.fill_order(held.broker_order_id, price="0.95")
    wait_until(lambda: alpaca.get_order(held.id).status == "filled")
    assert sandbox.stream_connections() == []
    assert service.stop(signal.SIGTERM) == 0
    assert not any("stream" in line for line in every_line(service))


# -- the service without a broker: coalescing, hooks, stopping --------------------------------


class _Report:
    def __init__(self) -> None:
        self.cursor = None
        self.new_fills = 0


class _SlowLedger:
    """A ledger whose polls take a while, counted."""

    def __init__(self) -> None:
        self.polls = 0
        self.syncs = 0

    def sync(self, **_: object) -> _Report:
        self.syncs += 1
        return _Report()

    def poll(self, cursor: object, **_: object) -> _Report:
        self.polls += 1
        time.sleep(0.1)
        return _Report()


class _FakeStream:
    def __init__(self) -> None:
        self.listener: Any = None
        self.stopped = False

    def start(self, listener: Any) -> None:
        self.listener = listener

    def stop(self) -> None:
        self.stopped = True


def test_a_burst_of_updates_makes_one_or_two_polls_and_every_poll_calls_the_hooks() -> None:
    ledger, stream = _SlowLedger(), _FakeStream()
    status = ServiceStatus(poll_interval=60, stream_enabled=True)
    lines: list[str] = []
    service = LiveService(ledger, interval=60, lookback=timedelta(days=1),  # type: ignore[arg-type]
                          stream=stream, status=status, say=lines.append)
    checks: list[object] = []
    service.after_change(checks.append)
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,))
    runner.start()
    wait_until(lambda: stream.listener is not None)
    stream.listener.on_connected()
    wait_until(lambda: ledger.polls == 1)
    time.sleep(0.2)
    for _ in range(50):
        stream.listener.on_update(OrderUpdate("fill", "o-1", "e-1"))
    time.sleep(0.5)
    assert 2 <= ledger.polls <= 3  # the connect's poll, then one or two for the burst
    assert len(checks) == 1 + ledger.polls  # the start-up sync, then every poll
    stream.listener.on_disconnected("connection lost")
    stream.listener.on_disconnected("cannot connect: Connection refused")
    stream.listener.on_connected()
    assert lines == ["stream connected: order updates arrive as Alpaca sends them",
                     "stream down (connection lost): polling every 60 s",
                     "stream back: order updates arrive as Alpaca sends them"]
    stop.set()
    runner.join(5)
    assert not runner.is_alive() and stream.stopped
    assert status.snapshot()["stream_connected"] is True
