"""Crash loop: `commands reconcile` SIGKILLed over and over, each time followed by a normal
run. Whatever the moment of death, the broker ends up with exactly the planned orders.

Each iteration makes the books drift by one known amount in one symbol (a paper decision,
or a trade placed at the broker behind the ledger's back), kills a reconcile at a random
moment (seeded) or at a named failpoint, checks the store opens cleanly, and runs
reconcile normally. At the end every planned delta was sent exactly once.

FAULTS_CRASH_RUNS and FAULTS_CRASH_RUNS_PG (both 50 by default) set the loop lengths,
FAULTS_SEED the random moments.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from projections import catch_up
from sandbox import AlpacaSandbox
from testing.doubles import order_posts
from tests.faults.harness import Launcher, alpaca_env, integrity_check, open_store

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("FAULTS_SEED", "20260105"))
RUNS = {
    "sqlite": int(os.environ.get("FAULTS_CRASH_RUNS", "50")),
    "postgres": int(os.environ.get("FAULTS_CRASH_RUNS_PG", "50")),
}
# The crash points of tests/reconcile/test_crash_safety.py, here every fifth iteration.
CRASH_POINTS = ("reconcile:planned", "reconcile:requested", "submit:marked",
                "submit:answered", "reconcile:submitted")
SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "META", "SPY")
DRIFTS = ("paper_buy", "paper_sell", "broker_buy", "broker_sell")


def delivered_posts(sandbox: AlpacaSandbox) -> list[dict[str, Any]]:
    """The order POSTs whose body arrived. A reconcile killed while it wrote its request
    leaves one logged with body None: the sandbox refused it (400) and created no order,
    so it is no order sent and no client order id used."""
    return [post for post in order_posts(sandbox) if post["body"] is not None]


def test_reconcile_killed_at_random_moments_sends_each_planned_delta_exactly_once(
    store_kind: str, database_url: str, sandbox: AlpacaSandbox, launcher: Launcher,
    tmp_path: Path,
) -> None:
    runs = RUNS[store_kind]
    rng = random.Random(SEED)
    sandbox.reset(cash="100000000")
    env = alpaca_env(sandbox, database_url)
    paper = open_store(database_url)
    held: dict[str, Decimal] = defaultdict(Decimal)  # what both books hold once reconciled
    planned: dict[str, Decimal] = defaultdict(Decimal)  # signed compensation per symbol
    outcomes: Counter[str] = Counter()
    try:
        # The drifts include trades at the broker behind the ledger's back: this loop trades
        # them away too (--include-external), so every drift is a planned delta.
        reconcile = ["reconcile", "--json", "--include-external"]
        warm, _ = launcher.run(reconcile, env, cwd=tmp_path)
        assert warm.returncode == 0, warm.why()
        # The random moment falls anywhere in a run that has work to do: the slowest
        # normal run so far sets the window.
        full_run = warm.seconds
        sandbox.clear_requests()
        for i in range(runs):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            qty = Decimal(rng.randint(1, 5))
            drift = rng.choice(DRIFTS)
            if drift.endswith("sell") and held[symbol] < qty:
                drift = drift.replace("sell", "buy")
            side = drift.split("_")[1]
            sign = 1 if side == "buy" else -1
            if drift.startswith("paper"):
                price = sandbox.state()["symbols"][symbol]["price"]
                paper.trade(side=side, symbol=symbol, qty=str(qty), price=str(price),
                            reason=f"crash loop {i}")
                held[symbol] += sign * qty
                planned[symbol] += sign * qty
            else:
                sandbox.create_external_order(symbol, side, qty)
                planned[symbol] -= sign * qty

            kill_env, kill_after = env, None
            if i % 5 == 4:
                point = CRASH_POINTS[(i // 5) % len(CRASH_POINTS)]
                kill_env = {**env, "LEDGER_FAILPOINT": point}
            else:
                point = "random"
                kill_after = rng.uniform(0.0, full_run)
            events_before = paper.last_notification_id()
            posts_before = len(delivered_posts(sandbox))
            crashed, _ = launcher.run(reconcile, kill_env, cwd=tmp_path,
                                      kill_after=kill_after)
            where = f"iteration {i} ({drift} {qty} {symbol}, kill {point} {kill_after})"
            assert crashed.returncode in (0, -signal.SIGKILL), f"{where}: {crashed.why()}"
            outcomes[f"{point}:{'killed' if crashed.returncode else 'finished first'}"] += 1
            if crashed.returncode:
                if len(delivered_posts(sandbox)) > posts_before:
                    stage = "after its order reached the broker"
                elif paper.last_notification_id() > events_before:
                    stage = "after writing, before any order was sent"
                else:
                    stage = "before writing anything"
                outcomes[f"killed {stage}"] += 1
            assert integrity_check(database_url) == "ok", where

            normal, _ = launcher.run(reconcile, env, cwd=tmp_path)
            assert normal.returncode == 0, f"{where}: {normal.why()}"
            assert all(o["status"] != "failed" for o in normal.json()["orders"]), normal.why()
            full_run = max(full_run, normal.seconds)

        posts = delivered_posts(sandbox)
        cut_short = len(order_posts(sandbox)) - len(posts)
        per_coid = Counter(str(post["body"].get("client_order_id")) for post in posts)
        sent: dict[str, Decimal] = defaultdict(Decimal)
        for post in posts:
            body = post["body"]
            sent[body["symbol"]] += Decimal(body["qty"]) * (1 if body["side"] == "buy" else -1)
        broker = {p["symbol"]: Decimal(p["qty"]) for p in sandbox.state()["positions"]}
        local = {row.symbol: row.qty for row in catch_up(paper).local_book()}
        print(
            f"\ncrash loop on {store_kind}: {runs} iterations, seed {SEED}, full run "
            f"{full_run:.2f} s; {dict(sorted(outcomes.items()))}; {len(posts)} order POSTs "
            f"({cut_short} more cut short), {len(per_coid)} client order ids"
        )
        assert max(per_coid.values(), default=1) == 1, per_coid.most_common(3)
        # One drift per iteration, so exactly one compensating order per iteration.
        assert len(posts) == runs
        assert {s: q for s, q in sent.items() if q} == {s: q for s, q in planned.items() if q}
        assert {s: q for s, q in broker.items() if q} == {s: q for s, q in held.items() if q}
        assert {s: q for s, q in local.items() if q} == {s: q for s, q in held.items() if q}

        verify, _ = launcher.run(["rebuild", "--verify"], env, cwd=tmp_path)
        assert verify.returncode == 0, verify.why()
        assert "differ" not in verify.stdout, verify.why()
        final, _ = launcher.run([*reconcile, "--dry-run"], env, cwd=tmp_path)
        assert final.returncode == 0 and final.json()["summary"]["planned"] == 0, final.why()
    finally:
        paper.close()
