"""A fork server: imports the CLI once, then runs each command in a forked child process.

A fresh `python -m commands` spends about a second importing (pydantic, eventsourcing,
psycopg, alpaca-py) before it does anything; the crash loop runs a hundred commands, so
it would spend most of its time, and most of its random kill moments, inside imports.
Each child here is a real process with its own pid, database connections and sockets,
running `commands` from its first line of work exactly as the installed program does; it
is SIGKILLed by this server (a random moment, `kill_after`) or by itself (a named
failpoint), and reaped before the answer is sent, so a dead lock holder is really gone.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
    {"args": [...], "env": {...}, "cwd": "...", "stdout": path, "stderr": path,
     "kill_after": seconds | null, "timeout": seconds}
 -> {"pid": n, "returncode": n, "killed": bool, "timed_out": bool, "seconds": s}
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from typing import Any, NoReturn


def _child(request: dict[str, Any]) -> NoReturn:
    code = 70
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        from commands.cli import cli

        try:
            cli.main(args=request["args"], prog_name="commands", standalone_mode=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _wait(pid: int, kill_after: float | None, timeout: float) -> tuple[int, bool, bool, float]:
    started = time.monotonic()
    killed = timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), killed, timed_out, time.monotonic() - started
        elapsed = time.monotonic() - started
        if not killed and kill_after is not None and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed = True
        elif not killed and elapsed >= timeout:
            os.kill(pid, signal.SIGKILL)
            killed = timed_out = True
        time.sleep(0.002)


def main() -> None:
    # Everything a command imports, imported once, before any fork.
    import commands.cli  # noqa: F401
    import ledger.brokers.alpaca.broker  # noqa: F401
    import projections.queries.reconcile_books  # noqa: F401

    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        returncode, killed, timed_out, seconds = _wait(
            pid, request.get("kill_after"), float(request.get("timeout", 120))
        )
        answer = {
            "pid": pid,
            "returncode": returncode,
            "killed": killed,
            "timed_out": timed_out,
            "seconds": seconds,
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
