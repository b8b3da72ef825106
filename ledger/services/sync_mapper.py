"""Mapping one sync's reads onto the ledger's aggregates.

`SyncMapper` is pure apart from loading aggregates: it turns the reads into order events
(fills, state changes, reversals), external orders and corporate actions. Idempotency
comes from the aggregates themselves: an order ignores an execution id it has seen, and
external orders and corporate actions have ids derived from the broker's own ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ledger.brokers.answers import apply_answer
from ledger.brokers.port import BrokerAnswer, BrokerFill, BrokerOrder, Execution
from ledger.domain import CorporateAction, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.order import external_order_id, order_id_from_client_order_id
from ledger.domain.values import InvalidInput, OrderIntent, order_terms, validate
from ledger.services.corporate_actions import activity_time, corporate_actions
from ledger.services.sync_cursor import (
    ACTIVITY_OVERLAP,
    QUICK_OVERLAP,
    needs_watching,
    next_cursor,
)
from ledger.services.sync_reads import BUSTED, CORRECTED, BrokerReads, is_recorded

CORRECTION_SUFFIX = "#corrected"


class AggregateSource(Protocol):
    """What the mapper may ask of the store: read-only loads."""

    def load_order(self, order_id: UUID) -> Order | None: ...

    def has_aggregate(self, aggregate_id: UUID) -> bool: ...


@dataclass(frozen=True)
class ExternalTerms:
    """The terms of an order found at the broker, kept as the broker states them.

    An `OrderIntent` would refuse some of them (a stop order, an option symbol), but a
    ledger must record what happened, not what it would have allowed.
    """

    order: BrokerOrder

    def as_event_fields(self) -> dict[str, Any]:
        return order_terms(self.order)


def external_terms(order: BrokerOrder) -> OrderIntent | ExternalTerms:
    terms = order_terms(order)
    try:
        intent: OrderIntent = validate(OrderIntent, **terms)
    except InvalidInput:
        return ExternalTerms(order)
    return intent


def executions_of(fills: Iterable[BrokerFill]) -> tuple[list[Execution], list[BrokerFill]]:
    """Plain executions, and the fills that take an execution back or correct it."""
    plain: list[Execution] = []
    changes: list[BrokerFill] = []
    for fill in fills:
        if fill.status in BUSTED or fill.status in CORRECTED:
            changes.append(fill)
            continue
        plain.append(
            Execution(
                execution_id=fill.activity_id,
                qty=fill.qty,
                price=fill.price,
                filled_at=fill.transaction_time,
                cum_qty=fill.cum_qty,
            )
        )
    return plain, changes


@dataclass
class SyncOutcome:
    orders: list[Order] = field(default_factory=list)
    actions: list[CorporateAction] = field(default_factory=list)
    new_fills: int = 0
    new_orders: int = 0
    updated_orders: int = 0
    reversals: int = 0
    warnings: list[str] = field(default_factory=list)
    unresolved: list[UUID] = field(default_factory=list)
    fills_after: datetime | None = None
    activities_after: datetime | None = None
    # The plain executions read that the store holds once this outcome is saved: the
    # next cursor's `recorded`.
    recorded: set[str] = field(default_factory=set)
    # Where a quick read continues: past the newest fill read, less QUICK_OVERLAP.
    fresh_after: datetime | None = None
    # The ledger's order behind each broker order the reads concern, by broker order id.
    ledger_orders: dict[str, Order] = field(default_factory=dict)

    @property
    def aggregates(self) -> list[Order | CorporateAction]:
        return [*self.orders, *self.actions]


class SyncMapper:
    """Maps one set of reads onto aggregates. Use once per attempt: it caches loads."""

    def __init__(self, source: AggregateSource, *, broker: str, watched: Iterable[Order]) -> None:
        self.source = source
        self.broker = broker
        self._orders: dict[UUID, Order] = {o.id: o for o in watched}
        self._watched = list(self._orders)

    def map(self, reads: BrokerReads) -> SyncOutcome:
        outcome = SyncOutcome(warnings=list(reads.warnings))
        fills_by_order: dict[str, list[BrokerFill]] = defaultdict(list)
        for fill in reads.fills:
            fills_by_order[fill.broker_order_id].append(fill)
        failed_fill_times: list[datetime] = []
        touched: dict[UUID, Order] = {}
        for broker_order in sorted(
            reads.orders.values(), key=lambda o: (o.created_at, o.broker_order_id)
        ):
            fills = fills_by_order.get(broker_order.broker_order_id, [])
            order = self._order_for(broker_order, outcome)
            outcome.ledger_orders[broker_order.broker_order_id] = order
            try:
                self._apply(order, broker_order, fills, outcome)
            except InvalidInput as error:
                # The broker's account contradicts the ledger's order: record nothing for
                # it, say so, and read its fills again next time.
                outcome.warnings.append(
                    f"order {order.client_order_id} ({broker_order.symbol}) was not updated: "
                    f"{error}"
                )
                failed_fill_times.extend(f.transaction_time for f in fills)
                touched.pop(order.id, None)
                self._orders.pop(order.id, None)
                continue
            touched[order.id] = order
            # Applied: each plain execution read is now the order's (stored before, or
            # pending in this save). An order that failed above adds none: its aggregate
            # is dropped, so its executions are looked up again next time.
            outcome.recorded.update(
                f.activity_id for f in fills if is_recorded(f, order.executions)
            )
        outcome.orders = [o for o in touched.values() if o.pending_events]
        outcome.updated_orders = sum(
            1 for o in outcome.orders if o.version - len(o.pending_events) > 0
        )

        actions, waiting = corporate_actions(reads.activities)
        for facts in actions:
            action_id = corporate_action_id(self.broker, facts.key)
            if self.source.has_aggregate(action_id):
                continue
            outcome.actions.append(
                CorporateAction(
                    id=action_id,
                    broker=self.broker,
                    activity_id=facts.key,
                    kind=facts.kind,
                    symbol=facts.symbol,
                    new_symbol=facts.new_symbol,
                    ratio=facts.ratio,
                    effective_date=facts.effective_date,
                    description=facts.description,
                )
            )
        if waiting:
            outcome.warnings.append(
                "corporate action waiting for its other leg at the broker: "
                + ", ".join(sorted({a.activity_id for a in waiting}))
            )

        # Those skipped by the reads are stored already and still in the window.
        outcome.recorded.update(reads.recorded)
        outcome.unresolved = sorted(
            (o.id for o in {**self._orders, **touched}.values() if needs_watching(o, self.broker)),
            key=str,
        )
        outcome.fills_after = next_cursor(
            reads.fills_after, [f.transaction_time for f in reads.fills], failed_fill_times
        )
        outcome.fresh_after = next_cursor(
            reads.fills_after,
            [f.transaction_time for f in reads.fills],
            failed_fill_times,
            QUICK_OVERLAP,
        )
        outcome.activities_after = next_cursor(
            reads.activities_after,
            [activity_time(a) for a in reads.activities],
            [activity_time(a) for a in waiting],
            ACTIVITY_OVERLAP,
        )
        return outcome

    def _order_for(self, broker_order: BrokerOrder, outcome: SyncOutcome) -> Order:
        own_id = order_id_from_client_order_id(broker_order.client_order_id)
        if own_id is not None:
            own = self._load(own_id)
            if own is not None:
                return own
        external_id = external_order_id(self.broker, broker_order.broker_order_id)
        existing = self._load(external_id)
        if existing is not None:
            return existing
        adopted = Order.adopt_external(
            broker=self.broker,
            broker_order_id=broker_order.broker_order_id,
            client_order_id=broker_order.client_order_id,
            intent=external_terms(broker_order),
        )
        self._orders[adopted.id] = adopted
        outcome.new_orders += 1
        return adopted

    def _load(self, order_id: UUID) -> Order | None:
        if order_id not in self._orders:
            found = self.source.load_order(order_id)
            if found is None:
                return None
            self._orders[order_id] = found
        return self._orders[order_id]

    def _apply(
        self,
        order: Order,
        broker_order: BrokerOrder,
        fills: list[BrokerFill],
        outcome: SyncOutcome,
    ) -> None:
        plain, changes = executions_of(fills)
        before = len(order.executions)
        rejected = broker_order.status == "rejected"
        answer = BrokerAnswer(
            broker=self.broker,
            broker_order_id=broker_order.broker_order_id,
            status=broker_order.status,
            executions=tuple(plain),
            rejection_reason="rejected by the broker" if rejected else None,
            filled_qty=broker_order.filled_qty,
            filled_avg_price=broker_order.filled_avg_price,
        )
        apply_answer(order, answer)
        for change in sorted(changes, key=lambda f: (f.transaction_time, f.activity_id)):
            outcome.reversals += self._apply_change(order, change)
        outcome.new_fills += len(order.executions) - before

    @staticmethod
    def _apply_change(order: Order, change: BrokerFill) -> int:
        """A busted execution is taken back; a corrected one is taken back and booked anew."""
        reversed_count = 0
        execution_id = change.activity_id
        if execution_id in order.executions and execution_id not in order.reversed_executions:
            reason = "busted" if change.status in BUSTED else "corrected"
            order.reverse_fill(execution_id=execution_id, reason=f"{reason} by the broker")
            reversed_count = 1
        if change.status in CORRECTED:
            order.record_fill(
                execution_id=execution_id + CORRECTION_SUFFIX,
                qty=change.qty,
                price=change.price,
                filled_at=change.transaction_time,
            )
        return reversed_count


