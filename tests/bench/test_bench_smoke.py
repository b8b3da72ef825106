"""scripts/bench.py with a tiny history, so it cannot rot: every figure is there and positive.

No timing is asserted: a benchmark's numbers belong in its report, not in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]

FIGURES = (
    "history_events",
    "history_trading_days",
    "history_symbols",
    "history_events_per_trading_day",
    "generate_events_per_s",
    "catch_up_events_per_s",
    "append_single_commit_events_per_s",
    "append_single_commit_commits_per_s",
    "append_broker_answer_commits_per_s",
    "append_broker_answer_events_per_s",
    "append_bulk_events_per_s",
    "append_bulk_events_per_save",
    "raw_insert_bulk_events_per_s",
    "raw_insert_single_commit_events_per_s",
    "append_bulk_vs_raw_insert",
    "append_single_commit_vs_raw_insert",
    "rebuild_events",
    "rebuild_events_per_s",
    "raw_read_decode_events_per_s",
    "raw_read_decode_collector_paused_events_per_s",
    "rebuild_vs_raw_read",
    "reconcile_dry_run_ms",
    "reconcile_dry_run_ms_sandbox_in_process",
    "reconcile_symbols_held",
    "reconcile_planned_orders",
    "audit_small_history_events",
    "audit_day_events",
    "audit_one_day_ms_small_history",
    "audit_one_day_ms_full_history",
    "audit_full_vs_small_history",
)

TINY = (
    "--events", "2000", "--days", "10", "--symbols", "40", "--small-events", "600",
    "--commits", "20", "--bulk-events", "100", "--reconcile-symbols", "60",
    "--rounds", "1", "--audit-rounds", "1",
)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_bench_prints_every_figure(store: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--store", store, "--json",
         "--database-url", PG_URL, *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["events_requested"] == 2000
    assert document["machine"]["nproc"] >= 1
    figures = document["stores"][store]
    assert set(FIGURES) <= set(figures), set(FIGURES) - set(figures)
    for name, value in figures.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert value > 0, (name, value)
    assert figures["history_events"] >= 2000
    assert figures["reconcile_symbols_held"] == 60
