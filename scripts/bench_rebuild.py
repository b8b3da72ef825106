"""How fast `commands rebuild` folds events, beside how fast the same process merely reads them.

    python scripts/bench_rebuild.py --events 200000 --store sqlite
    python scripts/bench_rebuild.py --events 200000 --store postgres \
        --database-url postgresql://postgres@127.0.0.1:5432/test

It writes N events through the ledger's own write path (`Ledger.save` of decisions and
orders with their broker answers, broker syncs, splits, reversed fills), then times
(1) reading and decoding every event (`select_notifications` + `mapper.to_domain_event`)
and (2) a full rebuild of every view, and prints both rates and their ratio. The issue
asks for a ratio of at least 0.5.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing import domain
from eventsourcing.domain import Aggregate

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.domain import BrokerSnapshot, CorporateAction, Decision, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from ledger.settings import load_settings
from projections import rebuild
from projections.engine.runner import DEFAULT_PAGE_SIZE
from projections.queries.views import Views

SYMBOLS = [f"S{i:03d}" for i in range(60)] + ["AAPL", "MSFT", "NVDA", "BRK.B"]
# Clock readings per trading day: about as many events (a decision takes one more reading).
PER_DAY = 4_000


class _Clock:
    """Event time for the benchmark, from a fixed start so that the same seed writes
    byte-identical events on either store (and so identical digests). A second per reading
    through a trading day's session, then the next weekday: a history spans many days, as
    the audit index sees real ones do."""

    def __init__(self, per_day: int = PER_DAY) -> None:
        self.now = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
        self.per_day = per_day
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        if self.readings % self.per_day == 0:
            day = self.now.date() + timedelta(days=1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            self.now = datetime.combine(day, clock_time(14, 30), UTC)
        else:
            self.now += timedelta(seconds=1)
        return self.now


@contextlib.contextmanager
def _seeded(clock: _Clock, rng: random.Random) -> Iterator[None]:
    """The aggregates' ids and timestamps come from eventsourcing's domain module: ours
    while generating, eventsourcing's own again afterwards (the caller may go on writing)."""
    saved = domain.datetime_now_with_tzinfo, domain.uuid4
    domain.datetime_now_with_tzinfo = clock
    domain.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128))
    try:
        yield
    finally:
        domain.datetime_now_with_tzinfo, domain.uuid4 = saved


def generate(ledger: Ledger, target: int, seed: int = 7, per_day: int = PER_DAY) -> int:
    """Append about `target` events, about `per_day` a trading day; returns how many."""
    rng = random.Random(seed)
    clock = _Clock(per_day)
    with _seeded(clock, rng):
        return _generate(ledger, target, rng, clock)


def _generate(ledger: Ledger, target: int, rng: random.Random, clock: _Clock) -> int:
    written = 0
    batch: list[Aggregate] = []
    held: dict[str, Decimal] = {}
    split_count = 0
    while written < target:
        roll = rng.random()
        if roll < 0.002:
            batch.append(_snapshot(rng, held, clock()))
            written += 1
        elif roll < 0.0025:
            split_count += 1
            batch.append(_split(rng, split_count, clock.now.date()))
            written += 1
        else:
            aggregates, count = _decision(rng, held, clock())
            batch.extend(aggregates)
            written += count
        if len(batch) >= 400:
            ledger.save(*batch)
            batch = []
    if batch:
        ledger.save(*batch)
    return written


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _decision(
    rng: random.Random, held: dict[str, Decimal], when: datetime
) -> tuple[list[Aggregate], int]:
    symbol = rng.choice(SYMBOLS)
    side = rng.choice(["buy", "buy", "sell"])
    qty = (
        Decimal(rng.randint(1, 200)) if rng.random() < 0.8 else Decimal(rng.randint(1, 9999)) / 100
    )
    intent = OrderIntent(symbol=symbol, side=side, qty=qty)
    decision = Decision(source="bench", rationale="benchmark", trades=[intent.as_event_fields()])
    order = Order.request(
        intent,
        order_id=decision_order_id(decision.id, 0),
        purpose=Purpose.DECISION,
        decision_id=decision.id,
    )
    broker = "alpaca" if rng.random() < 0.3 else "paper"
    order.mark_submitted(broker=broker, broker_order_id=_id(rng))
    order.mark_accepted(broker_status="new")
    price = Decimal(rng.randint(1000, 50000)) / 100
    parts = two_fills(qty) if rng.random() < 0.25 else None
    if parts is not None:
        first, rest = parts
        order.record_fill(execution_id=_id(rng), qty=first, price=price, filled_at=when)
        order.record_fill(
            execution_id=_id(rng),
            qty=rest,
            price=price + Decimal("0.05"),
            filled_at=when,
        )
    else:
        execution = _id(rng)
        order.record_fill(execution_id=execution, qty=qty, price=price, filled_at=when)
        if rng.random() < 0.01:
            order.reverse_fill(execution_id=execution, reason="busted by the exchange")
    held[symbol] = held.get(symbol, Decimal(0)) + (qty if side == "buy" else -qty)
    return [decision, order], 1 + len(order.pending_events)


def two_fills(qty: Decimal) -> tuple[Decimal, Decimal] | None:
    """A third of `qty` (to the cent) and the rest; None when a part would be 0.00, as a
    third of 0.01 would (an order refuses a fill of nothing)."""
    first = (qty / 3).quantize(Decimal("0.01"))
    if first <= 0 or first >= qty:
        return None
    return first, qty - first


def _snapshot(rng: random.Random, held: dict[str, Decimal], when: datetime) -> BrokerSnapshot:
    positions = [
        {
            "symbol": s,
            "qty": q,
            "avg_entry_price": Decimal("100"),
            "side": "long" if q > 0 else "short",
        }
        for s, q in sorted(held.items())
        if q and rng.random() < 0.5
    ]
    return BrokerSnapshot(
        broker="alpaca",
        paper=True,
        account_id="bench",
        cash=Decimal("100000"),
        equity=Decimal("150000.25"),
        buying_power=Decimal("200000"),
        positions=positions,
        open_orders=[],
        broker_time=when - timedelta(seconds=1),
        request={"bench": True},
    )


def _split(rng: random.Random, count: int, effective: date = date(2026, 1, 6)) -> CorporateAction:
    activity = f"bench-split-{count}"
    return CorporateAction(
        id=corporate_action_id("alpaca", activity),
        broker="alpaca",
        activity_id=activity,
        kind="split",
        symbol=rng.choice(SYMBOLS),
        new_symbol=None,
        ratio=Decimal(rng.choice(["2", "4", "0.5"])),
        effective_date=effective,
        description="benchmark split",
    )


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
