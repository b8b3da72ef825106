"""The paper broker: fills locally, at once, at the price the caller gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid5

from ledger.brokers.port import BrokerAnswer, BrokerError, Execution, FailureKind, OrderTicket
from ledger.domain.order import LEDGER_NAMESPACE


def limit_crossed(side: str, limit_price: Decimal, price: Decimal) -> bool:
    """A buy fills at or below its limit, a sell at or above it."""
    return price <= limit_price if side == "buy" else price >= limit_price


class PaperBroker:
    name = "paper"
    # Answers in-process: no request can be lost, so no send needs storing as started.
    local = True

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def place_order(self, ticket: OrderTicket) -> BrokerAnswer:
        price = ticket.reference_price
        if price is None:
            return BrokerAnswer(
                broker=self.name,
                error=BrokerError(
                    code="price_required",
                    message="the paper broker fills at the given price: pass --price",
                    retryable=False,
                    # The order as given cannot be filled: the caller must change it.
                    kind=FailureKind.REJECTED,
                ),
            )
        broker_order_id = str(uuid5(LEDGER_NAMESPACE, f"paper-order:{ticket.client_order_id}"))
        if ticket.order_type == "limit":
            assert ticket.limit_price is not None
            if not limit_crossed(ticket.side, ticket.limit_price, price):
                return BrokerAnswer(broker=self.name, broker_order_id=broker_order_id, status="new")
        qty = ticket.qty if ticket.qty is not None else _qty_for_notional(ticket, price)
        execution = Execution(
            execution_id=str(uuid5(LEDGER_NAMESPACE, f"paper-fill:{ticket.client_order_id}")),
            qty=qty,
            price=price,
            filled_at=self._clock(),
        )
        return BrokerAnswer(
            broker=self.name,
            broker_order_id=broker_order_id,
            status="filled",
            executions=(execution,),
        )

    def find_order(self, client_order_id: str) -> BrokerAnswer | None:
        # The paper broker keeps no state of its own: the ledger's events are its book.
        return None


def _qty_for_notional(ticket: OrderTicket, price: Decimal) -> Decimal:
    assert ticket.notional is not None
    # Alpaca fills notional orders to 9 decimal places of a share.
    return (ticket.notional / price).quantize(Decimal("0.000000001"))
