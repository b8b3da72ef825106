"""Randomized: reconciles interrupted at random instants against a slow broker, with more
runs started at random delays, sometimes two at once. Whatever happens, each planned
difference reaches the broker as exactly one order, and the books agree at the end.

Each trial has its own store and its own sandbox, and draws from its own seed (printed
when it fails; `FAULTS_INTERRUPT_SEED` replays one trial):
- one or two symbols bought on paper (the difference to compensate);
- every order POST held 0-6 s by the broker, the client's timeout 4 s (so some time out
  with the order still being created);
- run 1 gets SIGINT, SIGTERM (sometimes twice: a forced exit) or SIGKILL at a random
  instant; run 2 starts 0-8 s after run 1, and sometimes a run 3 as well;
- then the broker is left to finish what it started, and reconcile runs until it has
  nothing left to settle.

`FAULTS_INTERRUPT_TRIALS` (SQLite) and `FAULTS_INTERRUPT_TRIALS_PG` set the trial counts
(8 each by default, so CI stays short; the issue note reports 50 each),
`FAULTS_INTERRUPT_WORKERS` how many trials run at once (4), `FAULTS_SEED` the seeds.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from projections import catch_up
from sandbox import AlpacaSandbox
from tests.conftest import PG_URL, RUN_ID
from tests.faults.harness import alpaca_env, open_store, run_cli
from tests.faults.processes import Cli, broker_orders_per_symbol, broker_positions

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("FAULTS_SEED", "20260105"))
TRIALS = {
    "sqlite": int(os.environ.get("FAULTS_INTERRUPT_TRIALS", "8")),
    "postgres": int(os.environ.get("FAULTS_INTERRUPT_TRIALS_PG", "8")),
}
WORKERS = int(os.environ.get("FAULTS_INTERRUPT_WORKERS", "4"))
ONLY = os.environ.get("FAULTS_INTERRUPT_SEED")
SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA")
CLIENT_TIMEOUT = 4.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


@dataclass(frozen=True)
class Trial:
    seed: int
    buys: dict[str, int]
    post_seconds: float
    signal: signal.Signals
    signal_at: float
    forced_after: float | None  # a second SIGINT/SIGTERM this long after the first
    second_at: float
    third_at: float | None

    @classmethod
    def draw(cls, seed: int) -> Trial:
        rng = random.Random(seed)
        symbols = rng.sample(SYMBOLS, rng.randint(1, 2))
        post_seconds = round(rng.uniform(0, 6), 2)
        sig = rng.choice(SIGNALS)
        # Start-up (~1 s), the sync, then the POSTs: the instant falls anywhere in the run.
        span = 1.5 + len(symbols) * min(post_seconds, CLIENT_TIMEOUT)
        return cls(
            seed=seed,
            buys={s: rng.randint(1, 9) for s in symbols},
            post_seconds=post_seconds,
            signal=sig,
            signal_at=round(rng.uniform(0, span), 2),
            forced_after=(round(rng.uniform(0, 1.5), 2)
                          if sig != signal.SIGKILL and rng.random() < 0.3 else None),
            second_at=round(rng.uniform(0, 8), 2),
            third_at=round(rng.uniform(0, 8), 2) if rng.random() < 0.3 else None,
        )


@dataclass
class Outcome:
    trial: Trial
    problem: str | None = None
    orders: dict[str, int] = field(default_factory=dict)
    exits: list[int] = field(default_factory=list)


@contextmanager
def trial_store(store_kind: str, workdir: Path, seed: int) -> Iterator[str]:
    if store_kind == "sqlite":
        yield f"sqlite:///{workdir / 'ledger.db'}"
        return
    schema = f"t_{RUN_ID}_i{seed}"
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def run_trial(trial: Trial, store_kind: str, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True)
    outcome = Outcome(trial)
    try:
        with AlpacaSandbox(cash="100000000") as sandbox, \
                trial_store(store_kind, workdir, trial.seed) as database_url:
            outcome.problem = _play(trial, sandbox, database_url, workdir, outcome)
    except Exception:
        outcome.problem = traceback.format_exc()
    return outcome


def _play(trial: Trial, sandbox: AlpacaSandbox, database_url: str, workdir: Path,
          outcome: Outcome) -> str | None:
    paper = open_store(database_url)
    try:
        for symbol, qty in trial.buys.items():
            price = sandbox.state()["symbols"][symbol]["price"]
            paper.trade(side="buy", symbol=symbol, qty=str(qty), price=str(price))
    finally:
        paper.close()
    sandbox.set_delay(trial.post_seconds, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT))

    first = Cli(["reconcile", "--json"], env, workdir, "run1")
    schedule: list[tuple[float, str]] = [(trial.signal_at, "signal"),
                                         (trial.second_at, "run2")]
    if trial.forced_after is not None:
        schedule.append((trial.signal_at + trial.forced_after, "force"))
    if trial.third_at is not None:
        schedule.append((trial.third_at, "run3"))
    others: list[Cli] = []
    for at, action in sorted(schedule):
        time.sleep(max(0.0, first.started + at - time.monotonic()))
        if action in ("signal", "force"):
            first.send(trial.signal)
        else:
            others.append(Cli(["reconcile", "--json"], env, workdir, action))
    runs = [first.wait(), *(cli.wait() for cli in others)]
    outcome.exits = [run.returncode for run in runs]
    for run in runs[1:]:
        if run.returncode not in (0, 1) or "Traceback" in run.output:
            return f"a later run failed: {run.why()}"
    # A signal during start-up, before the command installed its handlers, ends Python
    # the default way (nothing was written yet); later, the first signal is a clean stop.
    started_up = "Traceback" not in runs[0].output or runs[0].returncode in (
        -signal.SIGINT, -signal.SIGTERM)
    if trial.forced_after is None and (
        runs[0].returncode not in (0, 1, -signal.SIGKILL, -signal.SIGINT, -signal.SIGTERM)
        or not started_up
    ):
        return f"run 1 did not stop cleanly: {runs[0].why()}"

    # The broker finishes what it started; then runs settle whatever was left unknown.
    sandbox.clear_delays()
    time.sleep(trial.post_seconds + 0.5)
    for _ in range(4):
        settle = run_cli(["reconcile", "--json"], env, workdir)
        if settle.returncode != 0:
            return f"a settling run failed: {settle.why()}"
        document = settle.json()
        if not document["settled"] and not document["summary"]["planned"]:
            break
    else:
        return f"still settling after 4 runs: {settle.why()}"

    outcome.orders = dict(broker_orders_per_symbol(sandbox))
    wanted = {s: Decimal(q) for s, q in trial.buys.items()}
    if outcome.orders != dict.fromkeys(trial.buys, 1):
        return f"broker orders per difference {outcome.orders}, wanted one each"
    if broker_positions(sandbox) != wanted:
        return f"broker holds {broker_positions(sandbox)}, the local book {wanted}"
    ledger = open_store(database_url)
    try:
        local = {row.symbol: row.qty for row in catch_up(ledger).local_book() if row.qty}
    finally:
        ledger.close()
    if local != wanted:
        return f"the local book is {local}, wanted {wanted}"
    final = run_cli(["reconcile", "--dry-run", "--json"], env, workdir)
    if final.returncode != 0 or final.json()["summary"]["planned"]:
        return f"the books still differ: {final.why()}"
    return None


def test_interrupted_and_concurrent_runs_send_each_difference_exactly_once(
    store_kind: str, tmp_path: Path
) -> None:
    seeds = ([int(ONLY)] if ONLY else
             [SEED * 1000 + i for i in range(TRIALS[store_kind])])
    trials = [Trial.draw(seed) for seed in seeds]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(
            lambda t: run_trial(t, store_kind, tmp_path / f"trial{t.seed}"), trials))
    failed = [o for o in outcomes if o.problem]
    duplicated = sum(max(0, n - 1) for o in outcomes for n in o.orders.values())
    by_signal: dict[str, int] = {}
    for o in outcomes:
        name = o.trial.signal.name + (" twice" if o.trial.forced_after is not None else "")
        by_signal[name] = by_signal.get(name, 0) + 1
    print(
        f"\ninterrupted runs on {store_kind}: {len(trials)} trials in "
        f"{time.monotonic() - started:.0f} s ({by_signal}; "
        f"{sum(o.trial.third_at is not None for o in outcomes)} with a third run), "
        f"orders duplicated: {duplicated}, failed seeds: {[o.trial.seed for o in failed]}"
    )
    assert not failed, "\n\n".join(
        f"seed {o.trial.seed} ({o.trial}): {o.problem}" for o in failed
    )
