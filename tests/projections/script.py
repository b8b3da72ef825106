"""Writing histories for the view tests through the ledger's own aggregates and `Ledger.save`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledger.application import Ledger
from ledger.domain import Adjustment, BrokerSnapshot, CorporateAction, Decision, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose

Fill = tuple[Decimal, Decimal]  # qty, price


class Script:
    """Each method appends the events one real step would, and returns what it made."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def order(
        self,
        symbol: str,
        side: str,
        qty: Decimal | str,
        fills: Sequence[Fill] = (),
        *,
        purpose: str = "decision",
        broker: str = "paper",
        filled_at: datetime | None = None,
        cancel: bool = False,
        submit: bool = True,
    ) -> Order:
        intent = OrderIntent(symbol=symbol, side=side, qty=Decimal(qty))
        saved: list[Any] = []
        if purpose == "decision":
            decision = Decision(
                source="test", rationale="because", trades=[intent.as_event_fields()]
            )
            order = Order.request(
                intent,
                order_id=decision_order_id(decision.id, 0),
                purpose=Purpose.DECISION,
                decision_id=decision.id,
            )
            saved.append(decision)
        elif purpose == "compensation":
            order = Order.request(
                intent,
                order_id=uuid.uuid4(),
                purpose=Purpose.COMPENSATION,
                reconciliation_id=uuid.uuid4(),
            )
        else:
            order = Order.adopt_external(
                broker=broker,
                broker_order_id=f"ext-{uuid.uuid4().hex[:8]}",
                client_order_id=f"theirs-{uuid.uuid4().hex[:8]}",
                intent=intent,
            )
        if submit and purpose != "external":
            order.mark_submitted(broker=broker, broker_order_id=str(uuid.uuid4()))
        if submit:
            order.mark_accepted(broker_status="new")
        for fill_qty, price in fills:
            order.record_fill(
                execution_id=str(uuid.uuid4()),
                qty=Decimal(fill_qty),
                price=Decimal(price),
                filled_at=filled_at or datetime.now(UTC),
            )
        if cancel:
            order.mark_canceled(reason="test")
        self.ledger.save(*saved, order)
        return order

    def fill(
        self,
        order_id: uuid.UUID,
        qty: Decimal | str,
        price: Decimal | str,
        filled_at: datetime | None = None,
    ) -> str:
        order: Order = self.ledger.repository.get(order_id)
        execution_id = str(uuid.uuid4())
        order.record_fill(
            execution_id=execution_id,
            qty=Decimal(qty),
            price=Decimal(price),
            filled_at=filled_at or datetime.now(UTC),
        )
        self.ledger.save(order)
        return execution_id

    def reverse(self, order_id: uuid.UUID, execution_id: str | None = None) -> None:
        order: Order = self.ledger.repository.get(order_id)
        execution_id = execution_id or next(iter(order.executions))
        order.reverse_fill(execution_id=execution_id, reason="busted")
        self.ledger.save(order)

    def snapshot(
        self,
        positions: dict[str, tuple[Decimal | str, Decimal | str]],
        *,
        broker_time: datetime | None = None,
        open_orders: Sequence[dict[str, Any]] = (),
        cash: str = "1000",
    ) -> BrokerSnapshot:
        snapshot = BrokerSnapshot(
            broker="alpaca",
            paper=True,
            account_id="acc-1",
            cash=Decimal(cash),
            equity=Decimal("2000.5"),
            buying_power=Decimal("3000"),
            positions=[
                {"symbol": s, "qty": Decimal(q), "avg_entry_price": Decimal(p)}
                for s, (q, p) in sorted(positions.items())
            ],
            open_orders=list(open_orders),
            broker_time=broker_time or datetime.now(UTC),
            request={"test": True},
        )
        self.ledger.save(snapshot)
        return snapshot

    def corporate_action(
        self,
        symbol: str,
        *,
        ratio: Decimal | str = "1",
        new_symbol: str | None = None,
        effective: date | None = None,
    ) -> CorporateAction:
        activity = uuid.uuid4().hex
        action = CorporateAction(
            id=corporate_action_id("alpaca", activity),
            broker="alpaca",
            activity_id=activity,
            kind="split" if new_symbol is None else "symbol_change",
            symbol=symbol,
            new_symbol=new_symbol,
            ratio=Decimal(ratio),
            effective_date=effective,
            description="test",
        )
        self.ledger.save(action)
        return action

    def adjust(
        self, symbol: str, qty: Decimal | str, price: Decimal | str, book: str = "local"
    ) -> Adjustment:
        adjustment = Adjustment(
            book=book, symbol=symbol, qty=Decimal(qty), price=Decimal(price), who="ops", why="adopt"
        )
        self.ledger.save(adjustment)
        return adjustment
