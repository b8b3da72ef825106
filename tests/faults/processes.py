"""`python -m commands` as real processes that a test starts, signals and waits for while
others run: the shape of an interrupted run and the run that follows it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox import AlpacaSandbox
from tests.faults.harness import Run


class Cli:
    """One `python -m commands ARGS` process, its output in files under `workdir`."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.args = args
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self.started = time.monotonic()
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "commands", *args],
                env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )

    def send(self, sig: signal.Signals) -> float:
        """Signal the process if it still runs; returns when (monotonic)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float = 120) -> Run:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(
                f"commands {' '.join(self.args)} still ran after {timeout} s"
            ) from None
        return Run(
            list(self.args),
            self.process.returncode,
            self.out.read_text(errors="replace"),
            self.err.read_text(errors="replace"),
            time.monotonic() - self.started,
        )


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def broker_orders_per_symbol(sandbox: AlpacaSandbox) -> Counter[str]:
    """Orders the broker actually created through the API (not the ones refused)."""
    return Counter(o["symbol"] for o in sandbox.state()["orders"]
                   if str(o.get("client_order_id", "")).startswith("tl-"))


def broker_positions(sandbox: AlpacaSandbox) -> dict[str, Decimal]:
    return {p["symbol"]: Decimal(p["qty"]) for p in sandbox.state()["positions"]
            if Decimal(p["qty"])}


def timeline_events(document: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in document["timeline"]]
