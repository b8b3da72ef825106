"""The one broker router: the only code that hands an order to a broker.

Every order reaches it already stored as `OrderRequested` (intent before effect), and
before the first request to a remote broker leaves, the router has `SendStarted` stored:
from then on the order may exist at the broker, and only the broker's word settles it.
It leaves with the broker's answer, good or bad. An answer that may hide an order already
at the broker (a duplicate client order id, a lost reply) is settled by looking the order
up; a later send of the same order goes out under the same client order id, which the
broker refuses to take twice (docs/design.md, "Exactly once").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ledger.brokers.port import (
    BrokerAdapter,
    BrokerAnswer,
    BrokerError,
    BrokerReader,
    BrokerReadError,
    FailureKind,
    OrderTicket,
)
from ledger.domain.order import ANSWERABLE_STATUSES, OUTCOME_UNKNOWN, Order
from ledger.domain.values import order_terms

log = logging.getLogger(__name__)

# How long after a send began its request may still be landing at the broker. An HTTP
# request is acted on within seconds (BROKER_TIMEOUT_SECONDS, Alpaca's gateway timeouts)
# or not at all; minutes later a lookup that finds nothing does prove it never landed.
LANDING_WINDOW = timedelta(minutes=5)


def ticket_for(order: Order, reference_price: Decimal | None = None) -> OrderTicket:
    return OrderTicket(
        client_order_id=order.client_order_id,
        reference_price=reference_price,
        **order_terms(order),
    )


class BrokerRouter:
    def __init__(self, adapter: BrokerAdapter) -> None:
        self.adapter = adapter

    @property
    def broker(self) -> str:
        return self.adapter.name

    @property
    def paper(self) -> bool:
        """False only for a live account: real money (docs/design.md, "Paper stays paper")."""
        return bool(getattr(self.adapter, "paper", True))

    @property
    def reader(self) -> BrokerReader | None:
        """The broker's account reads, for sync; None for a broker without an account."""
        return self.adapter if isinstance(self.adapter, BrokerReader) else None

    @property
    def marks_sends(self) -> bool:
        """A broker across a network, where a request's outcome can be lost: every first
        send is stored as started before it leaves. The paper broker answers in-process."""
        return not getattr(self.adapter, "local", False)

    def route(
        self,
        order: Order,
        reference_price: Decimal | None = None,
        *,
        store_send_start: Callable[[Order], None] | None = None,
    ) -> BrokerAnswer:
        """Send a stored order that the broker has not confirmed, and return its answer.

        A first send to a remote broker needs `store_send_start`: it must store the
        order's `SendStarted` (optimistic concurrency: it raises if another process changed
        the order first, and then nothing is sent).
        """
        if order.version < 1 or order.status not in ANSWERABLE_STATUSES:
            raise ValueError(f"order {order.client_order_id} is {order.status}: not routable")
        earlier_send = order.status != "requested"
        if earlier_send:
            # An earlier attempt may have reached the broker although its answer did not
            # reach us: ask first, so a retry can never create a second order.
            try:
                found = self.adapter.find_order(order.client_order_id)
            except BrokerReadError as error:
                return self._unconfirmed(error, order)
            if found is not None:
                return found
        elif self.marks_sends:
            if store_send_start is None:
                raise ValueError(
                    f"order {order.client_order_id}: a send to {self.broker} must be stored "
                    "as started before it leaves"
                )
            order.mark_send_started(broker=self.broker)
            store_send_start(order)
        answer = self.adapter.place_order(ticket_for(order, reference_price))
        # The adapter decides what a refusal is: a "duplicate" is its kind, never a code.
        duplicate = answer.error is not None and answer.error.kind is FailureKind.DUPLICATE_ID
        if answer.error is not None and (answer.error.outcome_unknown or duplicate):
            try:
                found = self.adapter.find_order(order.client_order_id)
            except BrokerReadError as error:
                log.warning("looking up %s failed: %s", order.client_order_id, error)
                # Keep the first answer, marked unknown: the next sync or retry asks again.
                return replace(answer, error=replace(answer.error, outcome_unknown=True))
            if found is not None:
                return found
            if duplicate:
                # The broker holds an order under this id but did not show it yet.
                return replace(answer, error=replace(answer.error, outcome_unknown=True))
        if answer.error is not None and earlier_send and not answer.error.outcome_unknown:
            answer = self._earlier_send_may_land(order, answer)
        return answer

    @staticmethod
    def _earlier_send_may_land(order: Order, answer: BrokerAnswer) -> BrokerAnswer:
        """A refusal of this send says nothing of an earlier one still in flight."""
        assert answer.error is not None
        started = order.send_started_at
        if order.status != OUTCOME_UNKNOWN or started is None:
            return answer
        if datetime.now(UTC) - started >= LANDING_WINDOW:
            return answer  # the lookup above found nothing, long after it could land
        return replace(answer, error=replace(
            answer.error,
            outcome_unknown=True,
            message=(
                f"{answer.error.message}; the send begun at {started:%H:%M:%S} UTC may still "
                "land at the broker, so the order stays of unknown outcome"
            ),
        ))

    def settle(self, order: Order) -> BrokerAnswer | None:
        """Where an order left unresolved by a crash stands at the broker, without submitting."""
        return self.adapter.find_order(order.client_order_id)

    def _unconfirmed(self, error: BrokerReadError, order: Order) -> BrokerAnswer:
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
                # Nothing was sent now: the order is as unknown as the earlier send left it.
                outcome_unknown=order.status == OUTCOME_UNKNOWN,
                # Why the lookup failed (keys, rate limit, network); a read that names no
                # kind failed at the broker as far as anyone can tell.
                kind=(error.kind if error.kind is not FailureKind.UNKNOWN
                      else FailureKind.BROKER_FAILED),
            ),
        )
