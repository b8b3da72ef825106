"""Histories of trading written through the ledger's own write path (`Ledger.save`), shared
by the benchmarks (scripts/bench*.py) and the tests that check them.

The same seed writes the same events: ids come from the seeded generator and times from a
controlled clock, so a history is byte-identical on either store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.application import Ledger
from ledger.domain import BrokerSnapshot, CorporateAction, Decision, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from testing.clock import stamped_by

SYMBOLS = [f"S{i:03d}" for i in range(60)] + ["AAPL", "MSFT", "NVDA", "BRK.B"]
# Clock readings per trading day: about as many events (a decision takes one more reading).
PER_DAY = 4_000


class SessionClock:
    """Event time, from a fixed start so that the same seed writes byte-identical events on
    either store (and so identical digests). A second per reading through a trading day's
    session, then the next weekday: a history spans many days, as the audit index sees real
    ones do."""

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


def generate(ledger: Ledger, target: int, seed: int = 7, per_day: int = PER_DAY) -> int:
    """Append about `target` events, about `per_day` a trading day; returns how many.

    Decisions with their orders and broker answers (a quarter filled in two parts, some
    fills reversed), now and then a broker sync or a split."""
    rng = random.Random(seed)
    clock = SessionClock(per_day)
    with stamped_by(clock, ids=lambda: uuid.UUID(int=rng.getrandbits(128))):
        return _generate(ledger, target, rng, clock)


def _generate(ledger: Ledger, target: int, rng: random.Random, clock: SessionClock) -> int:
    written = 0
    batch: list[Aggregate] = []
    held: dict[str, Decimal] = {}
    split_count = 0
    while written < target:
        roll = rng.random()
        if roll < 0.002:
            batch.append(broker_snapshot(
                held, clock() - timedelta(seconds=1), {"bench": True},
                keep=lambda: rng.random() < 0.5,
            ))
            written += 1
        elif roll < 0.0025:
            split_count += 1
            batch.append(split(rng, split_count, clock.now.date()))
            written += 1
        else:
            aggregates, count = decision(rng, held, clock())
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


def decision(
    rng: random.Random,
    held: dict[str, Decimal],
    when: datetime,
    symbols: Sequence[str] = SYMBOLS,
) -> tuple[list[Aggregate], int]:
    """A decision of one trade in one of `symbols`, its order answered and filled at `when`
    (a quarter in two fills, one in a hundred reversed); `held` follows. Returns the two
    aggregates and how many events they hold."""
    symbol = rng.choice(symbols)
    side = rng.choice(["buy", "buy", "sell"])
    qty = (
        Decimal(rng.randint(1, 200)) if rng.random() < 0.8 else Decimal(rng.randint(1, 9999)) / 100
    )
    intent = OrderIntent(symbol=symbol, side=side, qty=qty)
    made = Decision(source="bench", rationale="benchmark", trades=[intent.as_event_fields()])
    order = Order.request(
        intent,
        order_id=decision_order_id(made.id, 0),
        purpose=Purpose.DECISION,
        decision_id=made.id,
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
    return [made, order], 1 + len(order.pending_events)


def two_fills(qty: Decimal) -> tuple[Decimal, Decimal] | None:
    """A third of `qty` (to the cent) and the rest; None when a part would be 0.00, as a
    third of 0.01 would (an order refuses a fill of nothing)."""
    first = (qty / 3).quantize(Decimal("0.01"))
    if first <= 0 or first >= qty:
        return None
    return first, qty - first


def split(
    rng: random.Random,
    count: int,
    effective: date = date(2026, 1, 6),
    symbols: Sequence[str] = SYMBOLS,
) -> CorporateAction:
    """The `count`-th split of the history, of one of `symbols`."""
    activity = f"bench-split-{count}"
    return CorporateAction(
        id=corporate_action_id("alpaca", activity),
        broker="alpaca",
        activity_id=activity,
        kind="split",
        symbol=rng.choice(symbols),
        new_symbol=None,
        ratio=Decimal(rng.choice(["2", "4", "0.5"])),
        effective_date=effective,
        description="benchmark split",
    )


def broker_snapshot(
    held: dict[str, Decimal],
    broker_time: datetime,
    request: dict[str, Any],
    keep: Callable[[], bool] | None = None,
) -> BrokerSnapshot:
    """A `BrokerSynced` of the benchmarks' paper account at Alpaca, holding what `held` says
    (only the positions `keep` keeps, when given: it is asked once a position, in symbol
    order)."""
    positions = [
        {
            "symbol": s,
            "qty": q,
            "avg_entry_price": Decimal(100),
            "side": "long" if q > 0 else "short",
        }
        for s, q in sorted(held.items())
        if q and (keep is None or keep())
    ]
    return BrokerSnapshot(
        broker="alpaca",
        paper=True,
        account_id="bench",
        cash=Decimal(100000),
        equity=Decimal("150000.25"),
        buying_power=Decimal(200000),
        positions=positions,
        open_orders=[],
        broker_time=broker_time,
        request=request,
    )
