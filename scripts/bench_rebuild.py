"""How fast `commands rebuild` folds events, beside how fast the same process merely reads them.

    python scripts/bench_rebuild.py --events 200000 --store sqlite
    python scripts/bench_rebuild.py --events 200000 --store postgres \
        --database-url postgresql://postgres@127.0.0.1:5432/test

It writes N events through the ledger's own write path (`Ledger.save` of decisions and
orders with their broker answers, broker syncs, splits, reversed fills: the history of
`testing/histories.py`), then times (1) reading and decoding every event
(`select_notifications` + `mapper.to_domain_event`) and (2) a full rebuild of every view,
and prints both rates and their ratio. The issue asks for a ratio of at least 0.5.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.settings import load_settings
from projections import rebuild
from projections.engine.runner import DEFAULT_PAGE_SIZE
from projections.queries.views import Views
from testing.histories import generate


def raw_read(ledger: Ledger, page_size: int) -> tuple[int, float]:
    """Read and decode every event, in pages, as the rebuild does: nothing else."""
    started = time.perf_counter()
    after, count = 0, 0
    decode = ledger.mapper.to_domain_event
    while True:
        notifications = ledger.recorder.select_notifications(
            start=after, limit=page_size, inclusive_of_start=False
        )
        if not notifications:
            break
        for notification in notifications:
            decode(notification)
        count += len(notifications)
        after = notifications[-1].id
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to use (a fresh schema is created and dropped)",
    )
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--rounds", type=int, default=2, help="best of this many timings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        if args.store == "sqlite":
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
        else:
            url = f"{args.database_url}?schema={schema}"
        ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper"))
        try:
            started = time.perf_counter()
            written = generate(ledger, args.events)
            print(f"wrote {written} events in {time.perf_counter() - started:.1f} s ({args.store})")
            views = Views(ledger, page_size=args.page_size)
            views.catch_up()
            raw_times, rebuild_times = [], []
            count = 0
            for _ in range(args.rounds):
                count, seconds = raw_read(ledger, args.page_size)
                raw_times.append(seconds)
                report = rebuild(views)
                rebuild_times.append(report.seconds)
            raw_rate = count / min(raw_times)
            rebuild_rate = report.events / min(rebuild_times)
            print(f"read+decode: {count} events, {min(raw_times):.2f} s, {raw_rate:,.0f} events/s")
            print(
                f"rebuild:     {report.events} events, {min(rebuild_times):.2f} s, "
                f"{rebuild_rate:,.0f} events/s"
            )
            print(f"ratio rebuild/raw: {rebuild_rate / raw_rate:.2f} (the issue asks >= 0.50)")
            # The rebuild pauses Python's cycle collector; the same for the raw read, to compare
            # like with like.
            gc.disable()
            try:
                paused = min(raw_read(ledger, args.page_size)[1] for _ in range(args.rounds))
            finally:
                gc.enable()
            print(
                f"read+decode with the cycle collector paused too: {count / paused:,.0f} "
                f"events/s, ratio {rebuild_rate / (count / paused):.2f}"
            )
            for view in report.views:
                print(f"  {view.name:<12} {view.rows:>8} rows  sha256 {view.digest}")
        finally:
            ledger.close()
            if args.store == "postgres":
                import psycopg

                with psycopg.connect(args.database_url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
