"""Database faults: the PostgreSQL server restarted under `commands run`, and a SQLite file
on a full disk or a read-only file system.

The restart is done to a throwaway cluster of this test's own (`throwaway_pg`: initdb into
a temporary folder, its own port), never to the shared server the other tests use: that
one may carry a developer's other databases or a second test run, which a restart would
cut off ("the database system is shutting down").
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from ledger.domain.order import external_order_id
from sandbox import AlpacaSandbox
from tests.faults.harness import (
    Launcher,
    alpaca_env,
    assert_one_clear_line,
    event_names,
    integrity_check,
    open_store,
    paper_env,
)
from tests.pg_cluster import ThrowawayCluster

pytestmark = pytest.mark.faults


# -- PostgreSQL restarted in the middle of `commands run` -----------------------------------


def restart_postgres(cluster: ThrowawayCluster, pause: float = 0.0) -> float:
    """Restart the throwaway cluster with a fast shutdown (stopped for `pause` seconds, if
    any); return the seconds until it accepts connections again."""
    # A checkpoint first, while the server is up: otherwise the shutdown finishes whatever
    # spread-out checkpoint is under way, and the server is gone for many seconds.
    with cluster.connect() as conn:
        conn.execute("CHECKPOINT")
    started = time.monotonic()
    if pause:
        cluster.stop()
        time.sleep(pause)
        cluster.start()  # on the same port: the service's URL still points there
    else:
        cluster.restart()
    cluster.wait_until_accepting()
    return time.monotonic() - started


class Service:
    """`python -m commands run`, its stdout read line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "commands", "run"], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.out, True),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.err, False),
                         daemon=True).start()

    def _pump(self, stream: object, into: list[str], queued: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))
            if queued:
                self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.lines.get(timeout=0.1):
                    return
            except queue.Empty:
                if self.process.poll() is not None:
                    break
        raise AssertionError(f"no {text!r}: stdout {self.out}, stderr {self.err}")


@pytest.fixture
def service_env(sandbox: AlpacaSandbox, throwaway_pg: ThrowawayCluster) -> dict[str, str]:
    # A schema, as users configure it: the store must find it again after each restart.
    url = f"{throwaway_pg.url()}?schema=ledger"
    return alpaca_env(sandbox, url, LEDGER_POLL_INTERVAL_SECONDS="0.2",
                      ALPACA_RETRY_ATTEMPTS="0")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)


def test_run_survives_a_postgres_restart(
    sandbox: AlpacaSandbox, service_env: dict[str, str], services: list[Service],
    throwaway_pg: ThrowawayCluster, tmp_path: Path,
) -> None:
    service = Service(service_env, tmp_path)
    services.append(service)
    service.wait_for("synced:")
    before = sandbox.create_external_order("MSFT", "buy", "2")
    service.wait_for("recorded")

    # A plain restart: eventsourcing's own retries (10 x 0.2 s) may ride it out.
    downtime = restart_postgres(throwaway_pg)
    after = sandbox.create_external_order("NVDA", "buy", "3")
    service.wait_for("1 external orders", timeout=30)
    # Down for longer than those retries: the pool waits for the server (its timeout is
    # POSTGRES_CONNECT_TIMEOUT, 5 s, per attempt), so polls stall, then carry on.
    outage = restart_postgres(throwaway_pg, pause=3.0)
    later = sandbox.create_external_order("TSLA", "buy", "1")
    service.wait_for("1 external orders", timeout=30)
    assert service.process.poll() is None, service.err
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=20) == 0, service.err
    assert not any("Traceback" in line for line in service.err), service.err
    warnings = [line for line in service.err if "Warning: the event store failed" in line]
    print(f"\nPostgreSQL restart: back after {downtime:.2f} s; stopped and started: back "
          f"after {outage:.2f} s; {len(warnings)} failed polls reported; recorded again after "
          "each")

    ledger = open_store(service_env["LEDGER_DATABASE_URL"])
    try:
        for placed in (before, after, later):
            order = ledger.load_order(external_order_id("alpaca", placed["id"]))
            assert order is not None and order.status == "filled", placed
    finally:
        ledger.close()


def test_the_service_loop_reports_a_failed_store_and_polls_again(
    sandbox: AlpacaSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage longer than the pool's patience surfaces as OperationalError in a poll:
    `keep_current` reports it and polls again (before, it ended the service)."""
    ledger = open_store(f"sqlite:///{tmp_path / 'ledger.db'}", **{
        k: v for k, v in alpaca_env(sandbox, "").items()
        if k.startswith(("ALPACA_", "BROKER_"))})
    real_poll, calls = ledger.poll, []

    def flaky_poll(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_poll(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "poll", flaky_poll)
    stop, errors, reports = threading.Event(), [], []

    def on_report(report: object) -> None:
        reports.append(report)
        if len(calls) >= 3:
            stop.set()

    try:
        ledger.keep_current(stop, interval=0.05, on_report=on_report, on_error=errors.append)
    finally:
        ledger.close()
    assert [type(e).__name__ for e in errors] == ["OperationalError"]
    assert len(reports) >= 3  # the start-up sync, then polls after the failure


# -- SQLite on a full disk, or a read-only file system ---------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, so the disk can really fill up and really turn read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path, leave: int, name: str = "filler") -> Path:
    """Fill the disk up to `leave` bytes free."""
    filler = disk / name
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_is_one_clear_error_and_nothing_half_written(
    tiny_disk: Path, launcher: Launcher, tmp_path: Path
) -> None:
    url = f"sqlite:///{tiny_disk / 'ledger.db'}"
    env = paper_env(url)
    first, _ = launcher.run(["trade", "buy", "AAPL", "1", "--price", "190"], env, cwd=tmp_path)
    assert first.returncode == 0, first.why()
    fill(tiny_disk, leave=160 * 1024)
    stored = event_names(url)
    refused = None
    for n in range(12):  # decisions with long rationales until the disk refuses one
        run, _ = launcher.run(["trade", "buy", "AAPL", "1", "--price", "190", "--reason",
                               f"{n} " + "why " * 25_000], env, cwd=tmp_path)
        if run.returncode != 0:
            refused = run
            break
        stored = event_names(url)
    assert refused is not None, "the disk never filled up"
    assert_one_clear_line(refused, exit_code=2, contains="disk")
    assert "free some space" in refused.stderr, refused.why()

    # Completely full: a command either still works (SQLite reuses its WAL file's space)
    # or says why in one line; it never half-writes.
    fill(tiny_disk, leave=0, name="filler-2")
    blocked, _ = launcher.run(["trade", "buy", "AAPL", "1", "--price", "190"], env, cwd=tmp_path)
    if blocked.returncode != 0:
        assert_one_clear_line(blocked, exit_code=2, contains="disk")
    else:
        stored = event_names(url)

    for filler in tiny_disk.glob("filler*"):
        filler.unlink()
    assert integrity_check(url) == "ok"
    # Nothing half-written: what was stored before the refusal, whole decisions only.
    assert event_names(url) == stored
    assert stored.count("DecisionRecorded") == stored.count("OrderRequested")
    verify, _ = launcher.run(["rebuild", "--verify"], env, cwd=tmp_path)
    assert verify.returncode == 0, verify.why()
    again, _ = launcher.run(["trade", "buy", "AAPL", "1", "--price", "190"], env, cwd=tmp_path)
    assert again.returncode == 0, again.why()


def test_a_read_only_store_is_one_clear_error_and_nothing_written(
    tiny_disk: Path, launcher: Launcher, tmp_path: Path
) -> None:
    url = f"sqlite:///{tiny_disk / 'ledger.db'}"
    env = paper_env(url)
    first, _ = launcher.run(["trade", "buy", "AAPL", "1", "--price", "190"], env, cwd=tmp_path)
    assert first.returncode == 0, first.why()
    stored = event_names(url)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    try:
        for args in (["trade", "buy", "AAPL", "1", "--price", "190"], ["events"],
                     ["rebuild"]):
            run, _ = launcher.run(args, env, cwd=tmp_path)
            assert_one_clear_line(run, exit_code=2, contains="read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_disk)], check=True)
    assert event_names(url) == stored
    assert integrity_check(url) == "ok"
