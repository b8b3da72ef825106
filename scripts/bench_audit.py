"""How long auditing one trading day takes, in a small history and in a large one.

    python scripts/bench_audit.py                                   # 10,000 and 1,000,000 events
    python scripts/bench_audit.py --events 10000 --events 200000 --store postgres

Each history is written through the ledger's own write path (decisions, orders, broker
answers, partial fills, reversed fills, orders left open overnight, a broker sync a day) on
a controlled clock, about `--per-day` events per trading day, from the same seed: the small
history is the first days of the large one, so "day N" holds the same events in both. After
the views catch up, `audit_document` of day N is timed (the median of `--rounds`, the stores
timed in turns), and a day near the end of the large history too. `--keep FOLDER` keeps the
SQLite stores and reuses them on the next run. The issue asks that a day of a 1,000,000-event
history cost about what the same day of a 10,000-event one does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.domain import Aggregate

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.domain import BrokerSnapshot, Decision, Order
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from ledger.settings import load_settings
from projections import Views, catch_up
from projections.queries.audit import audit_document, day_span
from projections.queries.audit.orders import untouched_orders
from projections.queries.audit.pnl import DayAudit
from testing.clock import stamped_by
from testing.histories import broker_snapshot

ZONE = "America/New_York"
START = datetime(2019, 1, 2, 5, 0, tzinfo=UTC)  # midnight in New York
SYMBOLS = [f"S{i:03d}" for i in range(40)] + ["AAPL", "MSFT", "NVDA", "BRK.B"]
AUDITED_DAY = 10  # counted from the first day: inside even the smallest history


class Clock:
    """Stamps events `step` apart, so each trading day holds about the same number."""

    def __init__(self, step: timedelta) -> None:
        self.now = START
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


class Writer:
    """A reproducible stream of trading: the same seed writes the same first events."""

    def __init__(self, ledger: Ledger, clock: Clock, seed: int = 11) -> None:
        self.ledger = ledger
        self.clock = clock
        self.rng = random.Random(seed)
        self.held: dict[str, Decimal] = {}
        self.resting: list[Order] = []
        self.day = START.date()

    def write(self, target: int) -> int:
        written = 0
        batch: list[Aggregate] = []
        while written < target:
            aggregates, count = self._next()
            batch.extend(aggregates)
            written += count
            if len(batch) >= 400:
                self.ledger.save(*batch)
                batch = []
        if batch:
            self.ledger.save(*batch)
        return written

    def _next(self) -> tuple[list[Aggregate], int]:
        today = self.clock.now.date()
        if today != self.day:
            self.day = today
            return self._new_day()
        return self._decision()

    def _new_day(self) -> tuple[list[Aggregate], int]:
        """A sync each morning; yesterday's resting orders expire, the day before's are
        canceled: a day closes with a few orders open, as trading days do."""
        aggregates: list[Aggregate] = [self._snapshot()]
        for order in self.resting:
            if self.rng.random() < 0.5:
                order.mark_expired()
            else:
                order.mark_canceled(reason="canceled the next day")
            aggregates.append(order)
        self.resting = []
        return aggregates, len(aggregates)

    def _decision(self) -> tuple[list[Aggregate], int]:
        rng = self.rng
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(["buy", "buy", "sell"])
        qty = Decimal(rng.randint(1, 200))
        intent = OrderIntent(symbol=symbol, side=side, qty=qty)
        decision = Decision(source="bench", rationale="benchmark",
                            trades=[intent.as_event_fields()])
        order = Order.request(intent, order_id=decision_order_id(decision.id, 0),
                              purpose=Purpose.DECISION, decision_id=decision.id, reason="bench")
        broker = "alpaca" if rng.random() < 0.3 else "paper"
        order.mark_submitted(broker=broker, broker_order_id=str(uuid.uuid4()))
        order.mark_accepted(broker_status="new")
        price = Decimal(rng.randint(1000, 50000)) / 100
        roll = rng.random()
        if roll < 0.02:
            self.resting.append(order)  # left open: the day's close must list it
            return [decision, order], 1 + len(order.pending_events)
        if roll < 0.27:
            first = (qty / 3).quantize(Decimal(1)) or Decimal(1)
            order.record_fill(execution_id=str(uuid.uuid4()), qty=first, price=price,
                              filled_at=self.clock.now)
            if first < qty:
                order.record_fill(execution_id=str(uuid.uuid4()), qty=qty - first,
                                  price=price + Decimal("0.05"), filled_at=self.clock.now)
        else:
            execution = str(uuid.uuid4())
            order.record_fill(execution_id=execution, qty=qty, price=price,
                              filled_at=self.clock.now)
            if rng.random() < 0.01:
                order.reverse_fill(execution_id=execution, reason="busted by the exchange")
                # A reversal leaves the order open (accepted) in the domain: end it, or the
                # history would gather open orders that a real account never has.
                order.mark_canceled(reason="busted")
        self.held[symbol] = self.held.get(symbol, Decimal(0)) + (qty if side == "buy" else -qty)
        return [decision, order], 1 + len(order.pending_events)

    def _snapshot(self) -> BrokerSnapshot:
        return broker_snapshot(self.held, self.clock.now, {"bench": True},
                               keep=lambda: self.rng.random() < 0.5)


@dataclass
class Store:
    """One history, written and caught up, kept open while the audits are timed."""

    size: int
    ledger: Ledger
    views: Views
    written: int
    write_s: float
    catch_up_s: float
    days: list[date]
    audits: dict[date, list[float]] = field(default_factory=dict)
    passes: dict[date, list[float]] = field(default_factory=dict)
    day_events: dict[date, int] = field(default_factory=dict)


def build(url: str, size: int, per_day: int) -> Store:
    """Write the history unless the store already holds one (--keep), then catch up."""
    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper",
                                       LEDGER_TIMEZONE=ZONE))
    written, wrote = ledger.last_notification_id(), 0.0
    if not written:
        clock = Clock(timedelta(days=1) / per_day)
        started = time.perf_counter()
        with stamped_by(clock):
            written = Writer(ledger, clock).write(size)
        wrote = time.perf_counter() - started
    started = time.perf_counter()
    views = catch_up(ledger, timezone=ZONE)
    caught_up = time.perf_counter() - started
    days = [found.day for found in views.audit_days()]
    return Store(size, ledger, views, written, wrote, caught_up, days)


def time_once(store: Store, day: date) -> None:
    """One audit of `day`, and apart from it the step that reads the orders open at the day's
    start which the day did not touch (see projections.queries.audit), to show what the rest
    costs."""
    started = time.perf_counter()
    document = audit_document(store.views, day)
    store.audits.setdefault(day, []).append(time.perf_counter() - started)
    store.day_events[day] = document["events"]
    audit = DayAudit.start(store.views, day_span(store.views, day))
    audit.run()
    started = time.perf_counter()
    untouched_orders(store.views, audit.state, audit.opening_order_ids, None)
    store.passes.setdefault(day, []).append(time.perf_counter() - started)


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (best {min(values) * 1000:.1f})"


def report(store: Store, store_kind: str) -> None:
    made = f"written in {store.write_s:.1f} s" if store.write_s else "kept from an earlier run"
    print(f"{store.written:>9,} events, {len(store.days)} days ({store_kind}): {made}, "
          f"views caught up in {store.catch_up_s:.1f} s")
    for day, times in store.audits.items():
        print(f"    audit of {day} ({store.day_events[day]} events): {ms(times)}; the pass "
              f"over the orders view alone: {ms(store.passes[day])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append",
                        help="history sizes (repeat); default 10000 and 1000000")
    parser.add_argument("--per-day", type=int, default=500, help="events per trading day")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server to use (a fresh schema is created and dropped)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", type=Path,
                        help="SQLite only: keep the stores in this folder and reuse them")
    args = parser.parse_args()
    sizes = args.events or [10_000, 1_000_000]
    schemas: list[str] = []
    stores: list[Store] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for size in sizes:
                if args.store == "sqlite":
                    url = f"sqlite:///{folder / f'audit-{size}-{args.per_day}.db'}"
                else:
                    schemas.append(f"bench_audit_{uuid.uuid4().hex[:8]}")
                    url = f"{args.database_url}?schema={schemas[-1]}"
                stores.append(build(url, size, args.per_day))
            # The same day in every store (the small history is the start of the large one),
            # and the large one's last whole day; timed in turns, so a busy machine slows
            # every store alike.
            same_day = stores[0].days[AUDITED_DAY]
            late_day = stores[-1].days[-2]
            for _ in range(args.rounds):
                for store in stores:
                    time_once(store, same_day)
                time_once(stores[-1], late_day)
            for store in stores:
                report(store, args.store)
        finally:
            for store in stores:
                store.ledger.close()
            if schemas:
                import psycopg

                with psycopg.connect(args.database_url, autocommit=True) as conn:
                    for schema in schemas:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    small, large = stores[0], stores[-1]
    ratio = statistics.median(large.audits[same_day]) / statistics.median(small.audits[same_day])
    print(f"audit of {same_day}: {large.written:,} vs {small.written:,} events: {ratio:.2f}x "
          "the time (1.00 = independent of the history)")

    def rest(store: Store) -> float:
        return statistics.median(store.audits[same_day]) - statistics.median(
            store.passes[same_day])

    print(f"without the pass over the orders view: {rest(large) / rest(small):.2f}x")


if __name__ == "__main__":
    main()
