"""`commands run` as a real process: syncs, ingests fills while running, stops on signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.domain.order import external_order_id
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke
from tests.broker.fixtures_ledger import open_alpaca

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """`python -m commands run` with its output collected line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "commands", "run"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, False), daemon=True).start()

    def _pump(self, stream: object, out: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            if out:
                self.lines.put(line.rstrip("\n"))
            else:
                self.errors.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in {self.seen}; stderr {self.errors}")

    def stop(self, how: signal.Signals) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout=15)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def service_env(database_url: str, sandbox: AlpacaSandbox, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "PYTEST_"))
    }
    env.update(alpaca_env(sandbox))
    env.update(
        {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_POLL_INTERVAL_SECONDS": "0.2",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Service]]:
    started: list[Service] = []

    def start() -> Service:
        service = Service(service_env, tmp_path)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_ingests_fills_while_it_runs_and_stops_cleanly(
    open_store: Callable[..., Ledger],
    sandbox: AlpacaSandbox,
    start_service: Callable[[], object],
    how: signal.Signals,
) -> None:
    ledger = open_alpaca(open_store, sandbox)
    sandbox.set_symbol("MSFT", behavior="hold")
    held = ledger.trade(side="buy", symbol="MSFT", qty="5", order_type="limit", limit_price="1")
    assert held.status == "accepted" and held.broker_order_id is not None

    service = start_service()
    assert isinstance(service, Service)
    service.wait_for("synced:")
    sandbox.fill_order(held.broker_order_id, qty="2", price="0.95")
    service.wait_for("recorded 1 fills")
    # A broker hiccup does not stop the service: it reports and polls again.
    sandbox.add_fault("500", method="GET", path="/v2/orders", count=1)
    placed = sandbox.create_external_order("NVDA", "sell", "1")
    sandbox.fill_order(held.broker_order_id, price="0.96")
    wait_until(lambda: ledger.get_order(held.id).status == "filled")
    external = external_order_id("alpaca", placed["id"])
    wait_until(lambda: ledger.load_order(external) is not None)

    assert service.stop(how) == 0
    service.wait_for("service stopped")
    order = ledger.get_order(held.id)
    assert (order.filled_qty, len(order.executions)) == (Decimal(5), 2)
    assert any("broker poll failed" in line for line in service.errors)


def test_run_refuses_to_start_without_a_broker_account(cli_env: dict[str, str]) -> None:
    code, _, err = invoke("run")
    assert code == 2 and "set BROKER_PROVIDER=alpaca" in err


def test_run_exits_2_when_the_start_up_sync_fails(
    cli_env: dict[str, str], sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in alpaca_env(sandbox, ALPACA_API_KEY="wrong-key-id").items():
        monkeypatch.setenv(key, value)
    code, _, err = invoke("run")
    assert code == 2 and "Failed to sync Alpaca account. Check your API keys" in err
