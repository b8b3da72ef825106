"""The application service: the one object every caller uses.

The CLI, the service loop, a decision engine and the tests all record decisions
and orders through `Ledger`; none of them touches aggregates, the event store or a
broker directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Notification,
    Transcoding,
    UUIDAsHex,
)

from ledger.brokers.answers import apply_answer
from ledger.brokers.paper import PaperBroker
from ledger.brokers.router import BrokerRouter
from ledger.domain import Decision, Order
from ledger.domain.order import decision_order_id
from ledger.domain.values import InvalidInput, OrderIntent, Purpose, parse_price, validate


class DateAsISO(Transcoding):
    """Calendar dates (a split's effective date) as ISO strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True)
class StoredEvent:
    """One event as read back from the store, with its place in the global sequence."""

    notification_id: int
    event: Any


class Ledger(Application[UUID]):
    # The PostgreSQL tables are named after the application: tradeledger_events.
    name = "TradeLedger"

    def __init__(
        self, env: dict[str, str] | None = None, *, router: BrokerRouter | None = None
    ) -> None:
        super().__init__(env)
        self.router = router or BrokerRouter(PaperBroker())

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        # Decimal is stored as its exact string (DecimalAsStr), datetimes as ISO 8601
        # with their offset, UUIDs as hex: nothing passes through a float. These are
        # eventsourcing's own transcodings; `test_decimal_round_trip` holds them to it.
        transcoder.register(UUIDAsHex())
        transcoder.register(DecimalAsStr())
        transcoder.register(DatetimeAsISO())
        transcoder.register(DateAsISO())

    # -- writing ---------------------------------------------------------------------

    def record_decision(
        self, *, source: str, rationale: str, intents: Sequence[OrderIntent]
    ) -> tuple[Decision, list[Order]]:
        """Store a decision and the orders it requests, together, before any broker call."""
        if not intents:
            raise InvalidInput("a decision needs at least one trade")
        decision = Decision(
            source=source,
            rationale=rationale,
            trades=[intent.as_event_fields() for intent in intents],
        )
        orders = [
            Order.request(
                intent,
                order_id=decision_order_id(decision.id, index),
                purpose=Purpose.DECISION,
                decision_id=decision.id,
                reason=rationale,
            )
            for index, intent in enumerate(intents)
        ]
        self.save(decision, *orders)
        return decision, orders

    def trade(
        self,
        *,
        side: str,
        symbol: str,
        qty: Any,
        price: Any = None,
        reason: str = "",
        source: str = "cli",
        order_type: str = "market",
        limit_price: Any = None,
        time_in_force: str = "day",
        extended_hours: bool = False,
    ) -> Order:
        """Record one decision with its order, then execute it through the router."""
        intent = validate(
            OrderIntent,
            symbol=symbol,
            side=side,
            qty=qty,
            order_type=order_type,
            limit_price=limit_price,
            time_in_force=time_in_force,
            extended_hours=extended_hours,
        )
        reference_price = None if price is None else parse_price(price, "price")
        if self.router.broker == "paper" and reference_price is None:
            raise InvalidInput("the paper broker fills at the given price: pass --price")
        _, (order,) = self.record_decision(source=source, rationale=reason, intents=[intent])
        return self.execute(order.id, reference_price=reference_price)

    def execute(self, order_id: UUID, *, reference_price: Decimal | None = None) -> Order:
        """Route a stored order to the broker and store the answer."""
        order: Order = self.repository.get(order_id)
        answer = self.router.route(order, reference_price)
        apply_answer(order, answer)
        self.save(order)
        return order

    # -- reading ---------------------------------------------------------------------

    def get_order(self, order_id: UUID) -> Order:
        return self.repository.get(order_id)

    def newest_events(self, limit: int) -> list[StoredEvent]:
        """The last `limit` events of the store, oldest first."""
        if limit <= 0:
            return []
        last = self.recorder.max_notification_id()
        if not last:
            return []
        # Notification ids may have gaps (a rolled-back insert), so widen the window
        # until it holds enough events or reaches the first one.
        window = limit
        while True:
            start = max(1, last - window + 1)
            found = self.recorder.select_notifications(start=start, limit=window, stop=last)
            if len(found) >= limit or start == 1:
                break
            window *= 2
        return [self.stored_event(n) for n in found[-limit:]]

    def stored_event(self, notification: Notification) -> StoredEvent:
        return StoredEvent(notification.id, self.mapper.to_domain_event(notification))

    def events_after(self, notification_id: int, limit: int) -> Iterable[StoredEvent]:
        for notification in self.recorder.select_notifications(
            start=notification_id, limit=limit, inclusive_of_start=False
        ):
            yield self.stored_event(notification)

    def last_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0
