"""The one broker router: the only code that hands an order to a broker.

Every order reaches it already stored as `OrderRequested` (intent before effect),
and leaves it with the broker's answer, good or bad. An answer that may hide an
order already at the broker (a duplicate client order id, a lost reply) is
settled by looking the order up, never by sending it again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

from ledger.brokers.port import (
    BrokerAdapter,
    BrokerAnswer,
    BrokerError,
    BrokerReader,
    BrokerReadError,
    OrderTicket,
)
from ledger.domain.order import Order

log = logging.getLogger(__name__)

DUPLICATE_CLIENT_ORDER_ID = "40010001"


def ticket_for(order: Order, reference_price: Decimal | None = None) -> OrderTicket:
    return OrderTicket(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        notional=order.notional,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        limit_price=order.limit_price,
        extended_hours=order.extended_hours,
        reference_price=reference_price,
    )


class BrokerRouter:
    def __init__(self, adapter: BrokerAdapter) -> None:
        self.adapter = adapter

    @property
    def broker(self) -> str:
        return self.adapter.name

    @property
    def paper(self) -> bool:
        """False only for a live account: real money (DESIGN.md invariant 6)."""
        return bool(getattr(self.adapter, "paper", True))

    @property
    def reader(self) -> BrokerReader | None:
        """The broker's account reads, for sync; None for a broker without an account."""
        return self.adapter if isinstance(self.adapter, BrokerReader) else None

    def route(self, order: Order, reference_price: Decimal | None = None) -> BrokerAnswer:
        """Send a stored, not yet submitted order to the broker and return its answer."""
        if order.version < 1 or order.status not in ("requested", "submission_failed"):
            raise ValueError(f"order {order.client_order_id} is {order.status}: not routable")
        if order.status == "submission_failed":
            # An earlier attempt may have reached the broker although its answer did not
            # reach us: ask first, so a retry can never create a second order.
            try:
                found = self.adapter.find_order(order.client_order_id)
            except BrokerReadError as error:
                return self._unconfirmed(error)
            if found is not None:
                return found
        answer = self.adapter.place_order(ticket_for(order, reference_price))
        if answer.error is not None and (
            answer.error.outcome_unknown or answer.error.code == DUPLICATE_CLIENT_ORDER_ID
        ):
            try:
                found = self.adapter.find_order(order.client_order_id)
            except BrokerReadError as error:
                log.warning("looking up %s failed: %s", order.client_order_id, error)
                # Keep the first answer, marked unknown: the next sync or retry asks again.
                return replace(answer, error=replace(answer.error, outcome_unknown=True))
            if found is not None:
                return found
        return answer

    def settle(self, order: Order) -> BrokerAnswer | None:
        """Where an order left unresolved by a crash stands at the broker, without submitting."""
        return self.adapter.find_order(order.client_order_id)

    def _unconfirmed(self, error: BrokerReadError) -> BrokerAnswer:
        return BrokerAnswer(
            broker=self.broker,
            error=BrokerError(
                code="lookup_failed",
                message=(
                    "could not ask the broker whether an earlier attempt went through, "
                    f"so nothing was sent: {error}"
                ),
                retryable=True,
                http_status=error.http_status,
                outcome_unknown=True,
            ),
        )
