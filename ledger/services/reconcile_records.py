"""What a reconciliation reports (its result, an outcome per order) and the records its
plan stores: enough to show, years later, why an order was or was not sent."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.brokers.port import MarketClock
from ledger.domain import Order
from ledger.domain.planning import PlanRow, SymbolFacts


@dataclass
class OrderOutcome:
    symbol: str
    side: str
    qty: Decimal
    order_type: str
    limit_price: Decimal | None
    client_order_id: str
    order_id: UUID
    status: str  # planned | submitted | failed | not_sent
    error: str | None = None
    hint: str | None = None
    broker_status: str | None = None
    # Sent, but no answer says whether the broker has it: the next run settles it.
    outcome_unknown: bool = False


@dataclass
class ReconcileResult:
    run_id: UUID
    dry_run: bool
    broker: str
    paper: bool
    sync_id: UUID | None
    clock: MarketClock | None
    rows: list[PlanRow]
    orders: list[OrderOutcome] = field(default_factory=list)
    # Orders earlier runs left unsettled, and what this run made of them.
    settled: list[dict[str, Any]] = field(default_factory=list)
    # Why the run stopped sending before its plan was done (a signal, a lost lock).
    interrupted: str | None = None
    # Why the account cannot take this plan (a dry run reports it; a real run refuses).
    account_problem: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {
            "planned": sum(1 for r in self.rows if r.order is not None),
            "submitted": sum(1 for o in self.orders if o.status == "submitted"),
            "failed": sum(1 for o in self.orders if o.status == "failed"),
            "skipped": sum(1 for r in self.rows if r.status == "skipped"),
            "not_sent": sum(1 for o in self.orders if o.status == "not_sent"),
            "unknown": sum(1 for o in self.orders if o.outcome_unknown),
        }

    @property
    def failed(self) -> bool:
        return (
            self.interrupted is not None
            or self.account_problem is not None
            or any(o.status == "failed" for o in self.orders)
        )


def planned_outcome(order: Order) -> OrderOutcome:
    """A compensating order as planned, before anything is sent."""
    assert order.qty is not None
    return OrderOutcome(
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        order_type=order.order_type,
        limit_price=order.limit_price,
        client_order_id=order.client_order_id,
        order_id=order.id,
        status="planned",
    )


def facts_by_symbol(facts: list[SymbolFacts]) -> dict[str, SymbolFacts]:
    return {f.symbol: f for f in facts}


def row_record(row: PlanRow, facts: dict[str, SymbolFacts]) -> dict[str, Any]:
    """One plan row as stored: enough to show, years later, why an order was (not) sent."""
    fact = facts.get(row.symbol)
    return {
        "symbol": row.symbol,
        "local_qty": row.local_qty,
        "broker_qty": row.broker_qty,
        "open_qty": row.open_qty,
        "delta": row.delta,
        "reason": row.reason,
        "status": row.status,
        "skip_reason": row.skip_reason,
        "notional": row.notional,
        "price": row.price,
        "remainder": row.remainder,
        "remainder_reason": row.remainder_reason,
        "last_price": None if fact is None else fact.last_price,
        "in_flight": None if fact is None else fact.in_flight,
        "last_broker_fill_at": None if fact is None else fact.last_broker_fill_at,
    }


def outcome_record(outcome: OrderOutcome) -> dict[str, Any]:
    return {
        "symbol": outcome.symbol,
        "side": outcome.side,
        "qty": outcome.qty,
        "type": outcome.order_type,
        "limit_price": outcome.limit_price,
        "client_order_id": outcome.client_order_id,
        "order_id": outcome.order_id,
    }


def clock_record(clock: MarketClock) -> dict[str, Any]:
    return asdict(clock)

