"""What the fault tests share: clean environments, running commands as real processes,
reading the event store from outside (the sandbox's request log: testing/doubles.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.settings import load_settings
from sandbox import AlpacaSandbox
from testing import doubles

ROOT = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_", "PYTEST_")
# Retries stay on (the suite checks them) but wait 10 ms, not alpaca-py's 3 s.
FAST_BROKER = {
    "ALPACA_RETRY_ATTEMPTS": "2",
    "ALPACA_RETRY_WAIT_SECONDS": "0.01",
    "BROKER_TIMEOUT_SECONDS": "2",
    "RECONCILE_RECENT_FILL_SECONDS": "0",
}


def base_env(**extra: str) -> dict[str, str]:
    """The test's own environment without any ledger setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "200"  # rich wraps at 80 otherwise: one error stays one line
    env.update(extra)
    return env


def alpaca_env(sandbox: AlpacaSandbox, database_url: str, **extra: str) -> dict[str, str]:
    return base_env(
        LEDGER_DATABASE_URL=database_url,
        **doubles.alpaca_env(sandbox, **{**FAST_BROKER, **extra}),
    )


def paper_env(database_url: str, **extra: str) -> dict[str, str]:
    return base_env(BROKER_PROVIDER="paper", LEDGER_DATABASE_URL=database_url, **extra)


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def why(self) -> str:
        return f"commands {' '.join(self.args)} -> {self.returncode}\n{self.stdout}\n{self.stderr}"


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 120
) -> Run:
    """`python -m commands ARGS` as a fresh process: the program exactly as users run it."""
    done = subprocess.run(
        [sys.executable, "-m", "commands", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(list(args), done.returncode, done.stdout, done.stderr)


class Launcher:
    """Drives tests/faults/launcher.py: one forked process per command (see its docstring)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.launcher"],
            cwd=ROOT,
            env=base_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._count = 0
        self._lock = threading.Lock()
        ready = self._read()
        assert "ready" in ready, ready

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the launcher died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(
        self,
        args: list[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        kill_after: float | None = None,
        timeout: float = 120,
    ) -> tuple[Run, dict[str, Any]]:
        with self._lock:
            self._count += 1
            out = self.workdir / f"run{self._count}.out"
            err = self.workdir / f"run{self._count}.err"
            request = {
                "args": args,
                "env": env,
                "cwd": str(cwd or self.workdir),
                "stdout": str(out),
                "stderr": str(err),
                "kill_after": kill_after,
                "timeout": timeout,
            }
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = self._read()
        run = Run(
            list(args),
            int(answer["returncode"]),
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            float(answer["seconds"]),
        )
        return run, answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# -- looking from outside ---------------------------------------------------------------


def open_store(database_url: str, **overrides: str) -> Ledger:
    values = {"LEDGER_DATABASE_URL": database_url, "BROKER_PROVIDER": "paper", **overrides}
    return open_ledger(load_settings(None, **values))


def event_count(database_url: str) -> int:
    ledger = open_store(database_url)
    try:
        return sum(1 for _ in ledger.events_after(0, 10_000_000))
    finally:
        ledger.close()


def sqlite_path(database_url: str) -> Path | None:
    return Path(database_url[len("sqlite:///") :]) if database_url.startswith("sqlite") else None


def integrity_check(database_url: str) -> str:
    """SQLite's own verdict on the file ("ok"); for PostgreSQL, that the store opens."""
    path = sqlite_path(database_url)
    if path is None:
        event_count(database_url)
        return "ok"
    with sqlite3.connect(path, timeout=30) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)


def assert_one_clear_line(run: Run, *, exit_code: int, contains: str = "") -> None:
    """A refusal users can act on: one `Error:` line on stderr, no traceback, nothing else."""
    assert run.returncode == exit_code, run.why()
    assert "Traceback" not in run.output, run.why()
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.why()
    assert contains in lines[0], run.why()


def stored_events(database_url: str) -> list[Any]:
    from ledger.domain import event_name

    ledger = open_store(database_url)
    try:
        return [(event_name(s.event), s.event) for s in ledger.events_after(0, 10_000_000)]
    finally:
        ledger.close()


def event_names(database_url: str) -> list[str]:
    return [name for name, _ in stored_events(database_url)]
