"""Benchmarks at scale, each beside the database's own limit, on SQLite and PostgreSQL.

    python scripts/bench.py --events 1000000 --store both --json
    python scripts/bench.py --events 20000 --store postgres \
        --database-url postgresql://postgres@127.0.0.1:5432/test

For each store it writes a fresh history of N events through the ledger's own write path
(`Ledger.save` of aggregates, the way the ledger's commands do): a few hundred symbols over a
year of trading days (weekdays, before today), each day a morning broker sync (a
`BrokerSynced` whose request carries a real sync cursor), decisions with their orders,
broker answers and fills (a quarter partially filled, some reversed), a split now and then,
and a reconciliation every Friday with its compensating orders. Events are stamped in the
day's session, so the audit index sees about N / days events per trading day. The events
of a decision come from `testing/histories.py` (`decision`, `split`), on this clock.

Then, in the same run, it measures (rates in events/s, latencies in ms, medians of
`--rounds` unless said):
- append: single commits (`Ledger.record_decision`, one decision + its order per
  transaction, as live trading does) and bulk ingestion (one save of a sync bringing
  `--bulk-events` fills);
- the raw insert limit: the same rows (the stored bytes of those events) inserted with
  plain multi-row INSERTs into a scratch table shaped like the events table, through the
  ledger's own connection, as many rows per transaction as the append it is compared with;
- rebuild of every view (`projections.rebuild`, what `commands rebuild` runs; from
  100,000 events on a two-core machine it reads ahead in a second process), against the
  raw read-and-decode limit (`scripts/bench_rebuild.py`'s `raw_read`: the library's select + mapper
  decode of every event in this one process, nothing else), timed with Python's cycle
  collector paused as the rebuild runs;
- reconcile `--dry-run` (the `Reconciler`, in process, against the local Alpaca sandbox
  over HTTP) with `--reconcile-symbols` positions held in both books;
- audit of one trading day (`projections.queries.audit.audit_document`) in a history of
  `--small-events` events and in the full one: the same day, written by the same seed
  (the small history is the start of the large one), timed in turns.

`--json` prints one document: {"machine": {...}, "events_requested": N, "stores":
{"sqlite": {...}, "postgres": {...}}}; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.domain import Aggregate

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.domain import BrokerSnapshot, Decision, Order, Reconciliation
from ledger.domain.order import compensation_order_id, decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from ledger.services.reconciling import Reconciler, ReconcileRequest
from ledger.services.sync_cursor import SyncCursor
from ledger.settings import load_settings
from projections import Views, rebuild
from projections.queries.audit import audit_document
from projections.queries.reconcile_books import ReconcileBooks
from sandbox import AlpacaSandbox
from scripts.bench_rebuild import raw_read
from testing import histories
from testing.clock import stamped_by

ZONE = "America/New_York"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SAVE_BATCH = 400  # aggregates per save while generating, as bench_rebuild does
PAGE_SIZE = 10_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the clock and the symbols -------------------------------------------------------------


class TradingClock:
    """Event time: one trading day at a time, events spaced evenly through its session.

    Installed as eventsourcing's clock (aggregates stamp their events with it) and passed as
    the fill time. Each reading moves on by `step`; a day that overruns its session still
    ends before midnight in New York (23:00 UTC), so every event falls on its own day."""

    def __init__(self) -> None:
        self.now = datetime(2000, 1, 3, 14, 30, tzinfo=UTC)
        self.step = timedelta(seconds=1)
        self.limit = self.now

    def open(self, day: date, readings: int) -> None:
        self.now = datetime.combine(day, clock_time(14, 0), UTC)
        self.limit = datetime.combine(day, clock_time(23, 0), UTC)
        # A decision takes one more reading than it has events (its fill time).
        self.step = timedelta(hours=6.5) / max(1, int(readings * 1.25))

    def __call__(self) -> datetime:
        self.now = min(self.now + self.step, self.limit)
        return self.now


def symbol_universe(count: int) -> list[str]:
    base = list(histories.SYMBOLS)
    extra = [f"X{i:03d}" for i in range(max(0, count - len(base)))]
    return (base + extra)[:count]


def trading_days(count: int, before: date) -> list[date]:
    """The last `count` weekdays before `before`, oldest first (holidays are not skipped)."""
    days: list[date] = []
    day = before
    while len(days) < count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days[::-1]


# -- the history ---------------------------------------------------------------------------


class History:
    """A year of trading, written through `Ledger.save`; the same seed writes the same
    events in the same order, so a smaller target writes the start of a larger one."""

    def __init__(
        self, ledger: Ledger, days: list[date], per_day: int, symbols: list[str], seed: int
    ) -> None:
        self.ledger = ledger
        self.days = days
        self.per_day = per_day
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.clock = TradingClock()
        self.held: dict[str, Decimal] = {}
        self.batch: list[Aggregate] = []
        self.splits = 0
        self.sync_id: uuid.UUID | None = None
        self.days_written = 0
        # Orders left open at a day's end (a fill busted by the exchange reopens one): they
        # were day orders, so the next morning's sync finds them expired, as at Alpaca.
        self.left_open: list[Order] = []

    def _id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    def write(self, target: int) -> int:
        written = 0
        with stamped_by(self.clock):
            for day in self.days:
                if written >= target:
                    break
                self.days_written += 1
                self.clock.open(day, self.per_day)
                today = self._sync()
                if self.rng.random() < 0.02:
                    self.splits += 1
                    self.batch.append(histories.split(self.rng, self.splits, symbols=self.symbols))
                    today += 1
                reconcile_at = self.per_day - 20 if day.weekday() == 4 else None
                while today < self.per_day and written + today < target:
                    if reconcile_at is not None and today >= reconcile_at:
                        reconcile_at = None
                        today += self._reconciliation()
                        continue
                    aggregates, count = histories.decision(
                        self.rng, self.held, self.clock(), self.symbols)
                    self.batch.extend(aggregates)
                    self.left_open.extend(
                        a for a in aggregates if isinstance(a, Order) and a.is_open)
                    today += count
                    if len(self.batch) >= SAVE_BATCH:
                        self.flush()
                written += today
                if self.days_written % 50 == 0:
                    log(f"  {self.days_written} days, {written:,} events")
            self.flush()
        return written

    def flush(self) -> None:
        if self.batch:
            self.ledger.save(*self.batch)
            self.batch = []

    def _sync(self) -> int:
        """The morning sync: what `Ledger.sync` stores, with a cursor the next sync uses,
        and the expiry of yesterday's open day orders."""
        self.flush()
        snapshot = sync_snapshot(self.ledger, self.held, self.clock())
        for order in self.left_open:
            order.mark_expired()
        self.ledger.save(snapshot, *self.left_open)
        self.sync_id = snapshot.id
        expired, self.left_open = len(self.left_open), []
        return 1 + expired

    def _reconciliation(self) -> int:
        """A reconciliation run that sends a few compensating orders, all filled."""
        run_id = self._id()
        when = self.clock()
        run = Reconciliation(
            id=run_id,
            dry_run=False,
            broker="alpaca",
            paper=True,
            sync_id=self.sync_id,
            filters={"since": None, "symbols": [], "extended_hours": False},
        )
        rows, planned, orders = [], [], []
        for symbol in self.rng.sample(self.symbols, 3):
            qty = Decimal(self.rng.randint(1, 20))
            side = self.rng.choice(["buy", "sell"])
            local = self.held.get(symbol, Decimal(0))
            broker = local - qty if side == "buy" else local + qty
            order = Order.request(
                OrderIntent(symbol=symbol, side=side, qty=qty),
                order_id=compensation_order_id(run_id, symbol),
                purpose=Purpose.COMPENSATION,
                reconciliation_id=run_id,
                reason="reconciliation: a local decision the broker never executed",
            )
            order.mark_submitted(broker="alpaca", broker_order_id=str(self._id()))
            order.mark_accepted(broker_status="new")
            price = Decimal(self.rng.randint(1000, 50000)) / 100
            order.record_fill(execution_id=str(self._id()), qty=qty, price=price, filled_at=when)
            orders.append(order)
            delta = local - broker
            rows.append({
                "symbol": symbol, "local_qty": local, "broker_qty": broker,
                "open_qty": Decimal(0), "delta": delta, "reason": "local_decision_not_executed",
                "status": "planned", "skip_reason": None, "notional": abs(delta) * price,
                "last_price": price, "in_flight": False, "last_broker_fill_at": None,
            })
            planned.append({
                "symbol": symbol, "side": side, "qty": qty, "type": "market",
                "limit_price": None, "client_order_id": order.client_order_id,
                "order_id": order.id,
            })
        run.plan(rows=rows, orders=planned, market=None)
        run.complete(planned=len(orders), submitted=len(orders), failed=0, skipped=0)
        self.batch.extend([run, *orders])
        return len(run.pending_events) + sum(len(o.pending_events) for o in orders)


def sync_snapshot(ledger: Ledger, held: dict[str, Decimal], when: datetime) -> BrokerSnapshot:
    """A `BrokerSynced` as `Ledger.sync` writes it, the broker holding what the ledger holds."""
    cursor = SyncCursor(
        fills_after=when - timedelta(minutes=2),
        activities_after=when - timedelta(minutes=2),
        unresolved=(),
        through=ledger.last_notification_id(),
    )
    return histories.broker_snapshot(
        held, when,
        {"fills_after": cursor.fills_after, "activities_after": cursor.activities_after,
         "watched_orders": 0, **cursor.as_request()},
    )


# -- stores --------------------------------------------------------------------------------


@dataclass
class Store:
    kind: str
    url: str
    ledger: Ledger
    schema: str | None = None
    extra: list[Ledger] = field(default_factory=list)

    def close(self, admin_url: str) -> None:
        for ledger in [*self.extra, self.ledger]:
            ledger.close()
        if self.schema:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def open_store(kind: str, folder: Path, name: str, admin_url: str) -> Store:
    schema = None
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'{name}.db'}"
    else:
        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        joiner = "&" if "?" in admin_url else "?"
        url = f"{admin_url}{joiner}schema={schema}"
    settings = load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper",
                             LEDGER_TIMEZONE=ZONE)
    return Store(kind, url, open_ledger(settings), schema)


# -- measurements --------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def measure_reads(views: Views, rounds: int) -> dict[str, float]:
    """Rebuild of every view against reading and decoding every event with nothing else."""
    ledger = views.ledger
    raw, raw_paused, rebuilt = [], [], []
    events = 0
    for _ in range(rounds):
        count, seconds = raw_read(ledger, PAGE_SIZE)
        raw.append(count / seconds)
        with collector_paused():
            count, seconds = raw_read(ledger, PAGE_SIZE)
        raw_paused.append(count / seconds)
        report = rebuild(views)
        events = report.events
        rebuilt.append(report.events / report.seconds)
        log(f"  read+decode {raw[-1]:,.0f}/s (collector paused {raw_paused[-1]:,.0f}/s), "
            f"rebuild {rebuilt[-1]:,.0f}/s over {events:,} events")
    return {
        "rebuild_events": events,
        "rebuild_events_per_s": median(rebuilt),
        "raw_read_decode_events_per_s": median(raw),
        "raw_read_decode_collector_paused_events_per_s": median(raw_paused),
        # The rebuild runs with the cycle collector paused: compare with the read that does.
        "rebuild_vs_raw_read": median(rebuilt) / median(raw_paused),
    }


def measure_single_commits(ledger: Ledger, commits: int, symbols: list[str],
                           clock: TradingClock) -> tuple[dict[str, float], tuple[int, int]]:
    """`record_decision`: one decision and its order per transaction; then each order's
    answer from the paper broker, one transaction each, as `commands trade` does."""
    rng = random.Random(3)
    intents = [
        OrderIntent(symbol=rng.choice(symbols), side=rng.choice(["buy", "sell"]),
                    qty=Decimal(rng.randint(1, 100)))
        for _ in range(commits)
    ]
    first = ledger.last_notification_id()
    with stamped_by(clock):
        started = time.perf_counter()
        orders = [
            ledger.record_decision(source="bench", rationale="single commit", intents=[i])[1][0]
            for i in intents
        ]
        recorded = time.perf_counter() - started
        middle = ledger.last_notification_id()
        started = time.perf_counter()
        for order in orders:
            ledger.submit(order.id, reference_price=Decimal("100.25"))
        executed = time.perf_counter() - started
    last = ledger.last_notification_id()
    return {
        "append_single_commit_events_per_s": (middle - first) / recorded,
        "append_single_commit_commits_per_s": commits / recorded,
        "append_broker_answer_commits_per_s": commits / executed,
        "append_broker_answer_events_per_s": (last - middle) / executed,
    }, (first + 1, middle)


def measure_bulk(ledger: Ledger, events: int, rounds: int, symbols: list[str],
                 clock: TradingClock) -> tuple[dict[str, float], tuple[int, int]]:
    """A sync that brings `events` fills: orders at Alpaca (stored earlier, untimed) each
    get a partial fill and the rest, and one save stores them with the sync's snapshot."""
    rng = random.Random(5)
    rates, sizes = [], []
    span = (0, 0)
    with stamped_by(clock):
        for _ in range(rounds):
            orders = []
            for _ in range(max(1, events // 2)):
                intent = OrderIntent(symbol=rng.choice(symbols), side="buy",
                                     qty=Decimal(rng.randint(2, 200)))
                decision = Decision(source="bench", rationale="bulk",
                                    trades=[intent.as_event_fields()])
                order = Order.request(intent, order_id=decision_order_id(decision.id, 0),
                                      purpose=Purpose.DECISION, decision_id=decision.id)
                order.mark_submitted(broker="alpaca", broker_order_id=str(uuid.uuid4()))
                order.mark_accepted(broker_status="new")
                orders.append((decision, order))
            for start in range(0, len(orders), SAVE_BATCH // 2):
                ledger.save(*[a for pair in orders[start:start + SAVE_BATCH // 2] for a in pair])
            when = clock()
            for _, order in orders:
                assert order.qty is not None
                part = (order.qty / 2).quantize(Decimal(1))
                price = Decimal(rng.randint(1000, 50000)) / 100
                order.record_fill(execution_id=str(uuid.uuid4()), qty=part, price=price,
                                  filled_at=when)
                order.record_fill(execution_id=str(uuid.uuid4()), qty=order.qty - part,
                                  price=price, filled_at=when)
            snapshot = sync_snapshot(ledger, {}, when)
            aggregates: list[Aggregate] = [snapshot, *(order for _, order in orders)]
            size = 1 + 2 * len(orders)
            before = ledger.last_notification_id()
            started = time.perf_counter()
            ledger.save(*aggregates)
            seconds = time.perf_counter() - started
            span = (before + 1, ledger.last_notification_id())
            rates.append(size / seconds)
            sizes.append(size)
    return {"append_bulk_events_per_s": median(rates), "append_bulk_events_per_save": sizes[0]}, \
        span


def stored_rows(ledger: Ledger, span: tuple[int, int]) -> list[tuple[int, str, bytes]]:
    rows = []
    after = span[0] - 1
    while after < span[1]:
        page = ledger.recorder.select_notifications(
            start=after, limit=5000, stop=span[1], inclusive_of_start=False)
        if not page:
            break
        rows.extend((n.originator_version, n.topic, n.state) for n in page)
        after = page[-1].id
    return rows


class RawInsert:
    """Plain multi-row INSERTs into a scratch table shaped like the events table (same
    columns, primary key and notification id), on the ledger's own connection."""

    TABLE = "bench_raw_insert"

    def __init__(self, store: Store) -> None:
        self.kind = store.kind
        self.datastore = store.ledger.recorder.datastore
        if self.kind == "sqlite":
            self.table = self.TABLE
            ddl = [f"CREATE TABLE {self.table} (originator_id TEXT, originator_version INTEGER, "
                   "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"]
            self.rows_per_statement = 200  # 800 parameters: under any SQLite's limit
            self.mark = "?"
        else:
            self.table = f'"{store.schema}".{self.TABLE}'
            ddl = [f"CREATE TABLE {self.table} (originator_id uuid NOT NULL, "
                   "originator_version bigint NOT NULL, topic text, state bytea, "
                   "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))",
                   f"CREATE UNIQUE INDEX ON {self.table} (notification_id)"]
            self.rows_per_statement = 1000
            self.mark = "%s"
        with self.datastore.transaction(commit=True) as cursor:
            for statement in ddl:
                cursor.execute(statement)

    def _params(self, rows: list[tuple[int, str, bytes]]) -> list[Any]:
        params: list[Any] = []
        for version, topic, state in rows:
            oid = uuid.uuid4()
            params.extend((oid.hex if self.kind == "sqlite" else oid, version, topic, state))
        return params

    def rate(self, rows: list[tuple[int, str, bytes]], per_transaction: int) -> float:
        """Events per second, `per_transaction` rows committed at a time."""
        groups = [rows[i:i + per_transaction] for i in range(0, len(rows), per_transaction)]
        statements = []
        for group in groups:
            chunks = [group[i:i + self.rows_per_statement]
                      for i in range(0, len(group), self.rows_per_statement)]
            statements.append([
                (f"INSERT INTO {self.table} (originator_id, originator_version, topic, state) "
                 "VALUES " + ", ".join([f"({self.mark}, {self.mark}, {self.mark}, {self.mark})"]
                                       * len(chunk)), self._params(chunk))
                for chunk in chunks
            ])
        started = time.perf_counter()
        for transaction in statements:
            with self.datastore.transaction(commit=True) as cursor:
                for sql, params in transaction:
                    cursor.execute(sql, params)
        return len(rows) / (time.perf_counter() - started)


def measure_raw_insert(store: Store, bulk: list[tuple[int, str, bytes]], bulk_size: int,
                       single: list[tuple[int, str, bytes]], rounds: int) -> dict[str, float]:
    raw = RawInsert(store)
    bulk_rates = [raw.rate(bulk, bulk_size) for _ in range(rounds)]
    single_rates = [raw.rate(single, 2) for _ in range(rounds)]
    return {
        "raw_insert_bulk_events_per_s": median(bulk_rates),
        "raw_insert_single_commit_events_per_s": median(single_rates),
    }


def measure_audit(large: Views, small: Views, day: date, rounds: int) -> dict[str, float]:
    """The same day in both histories, timed in turns so a busy machine slows both alike."""
    times: dict[str, list[float]] = {"small": [], "large": []}
    events = 0
    for _ in range(rounds):
        for name, views in (("small", small), ("large", large)):
            started = time.perf_counter()
            document = audit_document(views, day)
            times[name].append(time.perf_counter() - started)
            events = document["events"]
    return {
        "audit_day_events": events,
        "audit_one_day_ms_small_history": median(times["small"]) * 1000,
        "audit_one_day_ms_full_history": median(times["large"]) * 1000,
        "audit_full_vs_small_history": median(times["large"]) / median(times["small"]),
    }


def hold_symbols(ledger: Ledger, views: Views, count: int, clock: TradingClock) -> None:
    """Decisions filled on paper until the local book holds `count` symbols (untimed)."""
    views.catch_up()
    held = {row.symbol for row in views.local_book()}
    rng = random.Random(9)
    batch: list[Aggregate] = []
    index = 0
    with stamped_by(clock):
        while len(held) < count:
            symbol = f"R{index:04d}"
            index += 1
            if symbol in held:
                continue
            held.add(symbol)
            qty = Decimal(rng.randint(1, 300))
            intent = OrderIntent(symbol=symbol, side="buy", qty=qty)
            decision = Decision(source="bench", rationale="hold",
                                trades=[intent.as_event_fields()])
            order = Order.request(intent, order_id=decision_order_id(decision.id, 0),
                                  purpose=Purpose.DECISION, decision_id=decision.id)
            order.mark_submitted(broker="paper", broker_order_id=str(uuid.uuid4()))
            order.mark_accepted(broker_status="new")
            order.record_fill(execution_id=str(uuid.uuid4()), qty=qty,
                              price=Decimal(rng.randint(1000, 50000)) / 100, filled_at=clock())
            batch.extend([decision, order])
            if len(batch) >= SAVE_BATCH:
                ledger.save(*batch)
                batch = []
        if batch:
            ledger.save(*batch)
    views.catch_up()


Position = tuple[str, str, str]  # symbol, qty, price


def _fill_sandbox(sandbox: AlpacaSandbox, positions: list[Position]) -> None:
    for symbol, qty, price in positions:
        sandbox.set_symbol(symbol, price=price)
        sandbox.set_position(symbol, qty, price)


def _serve_sandbox(positions: list[Position], conn: Any) -> None:
    """The sandbox in a process of its own: Alpaca's servers are not on our CPU."""
    sandbox = AlpacaSandbox(cash=Decimal(100_000_000))
    _fill_sandbox(sandbox, positions)
    sandbox.start()
    conn.send((sandbox.base_url, sandbox.key, sandbox.secret))
    conn.recv()
    conn.send(len(sandbox.requests(method="POST", path="/v2/orders")))
    sandbox.stop()


@contextlib.contextmanager
def sandbox_serving(positions: list[Position], *, own_process: bool
                    ) -> Iterator[tuple[tuple[str, str, str], Callable[[], int]]]:
    """(base_url, key, secret) of a sandbox holding `positions`, and a count of its order
    POSTs, served from this process (a thread) or from a process of its own."""
    if not own_process:
        sandbox = AlpacaSandbox(cash=Decimal(100_000_000))
        _fill_sandbox(sandbox, positions)
        sandbox.start()
        try:
            yield (sandbox.base_url, sandbox.key, sandbox.secret), lambda: len(
                sandbox.requests(method="POST", path="/v2/orders"))
        finally:
            sandbox.stop()
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve_sandbox, args=(positions, theirs), daemon=True)
    process.start()
    posts: list[int] = []

    def count_posts() -> int:
        if not posts:
            ours.send("stop")
            posts.append(ours.recv())
        return posts[0]

    try:
        yield ours.recv(), count_posts
    finally:
        count_posts()
        process.join(timeout=10)


def measure_reconcile(store: Store, views: Views, symbols: int, rounds: int,
                      clock: TradingClock) -> dict[str, float]:
    """Both books hold `symbols` symbols (a few differ). The `Reconciler`'s dry run (sync,
    catch up, plan, store the plan) is timed in this process, against the sandbox over
    HTTP, with the sandbox in a process of its own and then on a thread of this one (its
    JSON work then shares this process's interpreter lock)."""
    hold_symbols(store.ledger, views, symbols, clock)
    rng = random.Random(13)
    local = views.local_book()
    differ = set(rng.sample([row.symbol for row in local], min(10, len(local))))
    positions = []
    for row in local:
        price = max(abs(row.avg_price), Decimal(1)).quantize(Decimal("0.01"))
        qty = row.qty + (rng.randint(1, 5) if row.symbol in differ else 0)
        positions.append((row.symbol, str(qty), str(price)))
    figures: dict[str, float] = {}
    for own_process, key in ((True, "reconcile_dry_run_ms"),
                             (False, "reconcile_dry_run_ms_sandbox_in_process")):
        with sandbox_serving(positions, own_process=own_process) as (server, posts):
            base_url, api_key, secret = server
            settings = load_settings(
                None, LEDGER_DATABASE_URL=store.url, BROKER_PROVIDER="alpaca",
                ALPACA_API_KEY=api_key, ALPACA_SECRET_KEY=secret, ALPACA_BASE_URL=base_url,
                ALPACA_DATA_URL=base_url, ALPACA_RETRY_ATTEMPTS="0",
                BROKER_TIMEOUT_SECONDS="120", LEDGER_TIMEZONE=ZONE,
            )
            ledger = open_ledger(settings)
            store.extra.append(ledger)
            books = ReconcileBooks(Views(ledger, timezone=ZONE),
                                   recent_fill_seconds=settings.recent_fill_seconds)
            reconciler = Reconciler(ledger, books, settings)
            request = ReconcileRequest(dry_run=True)
            # The first sync after the history looks up every order requested since the
            # last sync (the appends measured above): untimed, as a sync after it is short.
            result = reconciler.run(request)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                result = reconciler.run(request)
                times.append(time.perf_counter() - started)
            assert posts() == 0, "a dry run sent an order"
        figures[key] = median(times) * 1000
        figures["reconcile_symbols_held"] = len(result.rows)
        figures["reconcile_planned_orders"] = result.counts["planned"]
    return figures


# -- one store -----------------------------------------------------------------------------


def run_store(kind: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    days = trading_days(args.days, date.today() - timedelta(days=7))
    per_day = max(4, -(-args.events // args.days))
    symbols = symbol_universe(args.symbols)
    figures: dict[str, float] = {}
    stores: list[Store] = []
    try:
        log(f"[{kind}] writing {args.events:,} events, {per_day} a day, "
            f"{len(symbols)} symbols")
        large = open_store(kind, folder, "full", args.database_url)
        stores.append(large)
        history = History(large.ledger, days, per_day, symbols, seed=args.seed)
        started = time.perf_counter()
        written = history.write(args.events)
        seconds = time.perf_counter() - started
        figures.update({
            "history_events": written,
            "history_trading_days": history.days_written,
            "history_symbols": len(symbols),
            "history_events_per_trading_day": per_day,
            "generate_events_per_s": written / seconds,
        })
        log(f"[{kind}] wrote {written:,} events in {seconds:.1f} s")
        views = Views(large.ledger, timezone=ZONE, page_size=PAGE_SIZE)
        started = time.perf_counter()
        views.catch_up()
        figures["catch_up_events_per_s"] = written / (time.perf_counter() - started)

        small_size = min(args.small_events, written)
        small = open_store(kind, folder, "small", args.database_url)
        stores.append(small)
        small_history = History(small.ledger, days, per_day, symbols, seed=args.seed)
        small_written = small_history.write(small_size)
        small_views = Views(small.ledger, timezone=ZONE, page_size=PAGE_SIZE)
        small_views.catch_up()
        indexed = [d.day for d in small_views.audit_days()]
        # A whole day of the small history: not its last, which may be cut short.
        day = indexed[1] if len(indexed) > 2 else indexed[0]
        log(f"[{kind}] auditing {day} in {small_written:,} and {written:,} events")
        figures["audit_small_history_events"] = small_written
        figures.update(measure_audit(views, small_views, day, args.audit_rounds))
        small.close(args.database_url)
        stores.remove(small)

        log(f"[{kind}] rebuild vs read+decode")
        figures.update(measure_reads(views, args.rebuild_rounds))

        clock = TradingClock()
        clock.open(date.today() - timedelta(days=2), 10 * (args.commits + args.bulk_events))
        log(f"[{kind}] appends")
        single, single_span = measure_single_commits(large.ledger, args.commits, symbols, clock)
        figures.update(single)
        bulk, bulk_span = measure_bulk(large.ledger, args.bulk_events, args.rounds, symbols,
                                       clock)
        figures.update(bulk)
        figures.update(measure_raw_insert(
            large,
            stored_rows(large.ledger, bulk_span),
            int(figures["append_bulk_events_per_save"]),
            stored_rows(large.ledger, single_span),
            args.rounds,
        ))
        figures["append_bulk_vs_raw_insert"] = (
            figures["append_bulk_events_per_s"] / figures["raw_insert_bulk_events_per_s"])
        figures["append_single_commit_vs_raw_insert"] = (
            figures["append_single_commit_events_per_s"]
            / figures["raw_insert_single_commit_events_per_s"])

        log(f"[{kind}] reconcile --dry-run with {args.reconcile_symbols:,} symbols")
        figures.update(measure_reconcile(large, views, args.reconcile_symbols, args.rounds, clock))
    finally:
        for store in stores:
            store.close(args.database_url)
    return figures


# -- the machine, the output ---------------------------------------------------------------


def machine(args: argparse.Namespace, kinds: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    if "postgres" in kinds:
        import psycopg

        with psycopg.connect(args.database_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgres"] = row[0] if row else None
    return info


def show(document: dict[str, Any]) -> None:
    print(f"machine: {document['machine']}")
    for kind, figures in document["stores"].items():
        print(f"{kind}:")
        for key, value in figures.items():
            text = f"{value:,.0f}" if isinstance(value, int) or value >= 100 else f"{value:.3g}"
            print(f"  {key:<48} {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--database-url", default=DEFAULT_PG,
                        help="PostgreSQL server (a fresh schema is created and dropped)")
    parser.add_argument("--days", type=int, default=252, help="trading days of history")
    parser.add_argument("--symbols", type=int, default=300, help="symbols traded")
    parser.add_argument("--small-events", type=int, default=10_000,
                        help="the small history the one-day audit is compared in")
    parser.add_argument("--commits", type=int, default=2000, help="single commits timed")
    parser.add_argument("--bulk-events", type=int, default=5000, help="fills in one sync")
    parser.add_argument("--reconcile-symbols", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the cheap timings")
    parser.add_argument("--rebuild-rounds", type=int, default=1)
    parser.add_argument("--audit-rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    document: dict[str, Any] = {
        "machine": machine(args, kinds),
        "events_requested": args.events,
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="tradeledger-bench-") as folder:
        for kind in kinds:
            document["stores"][kind] = run_store(kind, args, Path(folder))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        show(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
