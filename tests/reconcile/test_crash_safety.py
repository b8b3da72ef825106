"""Kill a real reconcile process at each step; the next run never duplicates an order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from sandbox import AlpacaSandbox
from testing.doubles import broker_qty, order_posts
from tests.reconcile.story import reconcile, tell_story

pytestmark = pytest.mark.usefixtures("cli_env")

CRASH_POINTS = [
    "reconcile:planned",     # after the plan, before anything is stored
    "reconcile:requested",   # plan and order intents stored, nothing sent
    "submit:marked",         # the send's mark stored, the POST not sent
    "submit:answered",       # the broker took the order; its answer is not stored
    "reconcile:submitted",   # every answer stored, the run not marked completed
]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commands", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_run_then_rerun_sends_the_delta_exactly_once(
    monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox, point: str
) -> None:
    tell_story(monkeypatch, sandbox)
    before = len(order_posts(sandbox))
    crashed = run_cli("reconcile", LEDGER_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    code, _, err = reconcile()
    assert code == 0, err
    code, third, err = reconcile()
    assert code == 0, err
    posts = order_posts(sandbox)[before:]
    assert len(posts) == 1, f"broker orders after a crash at {point}: {len(posts)}"
    assert posts[0]["body"]["qty"] == "6"
    assert broker_qty(sandbox, "AAPL") == 10
    assert third["summary"]["planned"] == 0


def test_two_reconcilers_at_once_submit_one_set_of_orders(
    monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox
) -> None:
    tell_story(monkeypatch, sandbox)
    before = len(order_posts(sandbox))
    # Slow order submission keeps the first run inside its critical section.
    sandbox.add_fault("slow", method="POST", path="/v2/orders", delay=1.5, count=2)
    env = {**os.environ}
    procs = [
        subprocess.Popen([sys.executable, "-m", "commands", "reconcile"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert len(order_posts(sandbox)[before:]) == 1
    assert broker_qty(sandbox, "AAPL") == 10
    # One sent the order; the other either found the books agreeing or met the lock.
    assert codes[0] == 0, results
    if codes[1] != 0:
        assert codes[1] == 1
        assert any("another reconciliation" in err for _, err in results), results
