"""Settling what earlier reconciliation runs (or trades) left unsettled, before a run
plans: orders a crash or an interruption left requested but never sent, and orders whose
outcome at the broker is unknown."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.brokers.answers import apply_answer
from ledger.brokers.port import BrokerAnswer, BrokerError
from ledger.brokers.router import LANDING_WINDOW
from ledger.domain import Order
from ledger.domain.order import OUTCOME_UNKNOWN, OrderStateError
from ledger.domain.values import Purpose
from ledger.infrastructure.event_store import SAVE_ATTEMPTS
from ledger.infrastructure.reconcile_lock import HeldLock
from ledger.services.stopping import StopRequest
from ledger.services.trading import NotSent

if TYPE_CHECKING:
    from ledger.application import Ledger


class Settler:
    def __init__(self, ledger: Ledger, now: Callable[[], datetime]) -> None:
        self.ledger = ledger
        self.now = now

    def found_by_sync(self, unknown: Iterable[Order]) -> list[dict[str, Any]]:
        """The orders of unknown outcome before a sync that the sync settled: it looks every
        unsettled order up, so what it found is the run's settling too."""
        return [
            settled_entry(order, how=f"found by the sync: {how_settled(order)}")
            for order in map(self.ledger.get_order, (o.id for o in unknown))
            if not order.outcome_unknown
        ]

    def settle(
        self, order_ids: Iterable[UUID], run_id: UUID, stop: StopRequest, held: HeldLock
    ) -> list[dict[str, Any]]:
        """What earlier runs (or trades) left unsettled, settled before this run plans.

        A compensating order still 'requested' provably never left (every send is stored
        as started first, and that store loses to this withdrawal if it comes second):
        its plan is stale, so it is withdrawn and this run plans afresh. An order of
        unknown outcome keeps its client order id: the router looks it up and, for a
        compensation, sends it again under that id, which the broker takes only once. A
        decision order of unknown outcome is only looked up (a decision is the engine's
        to repeat), and settled as never landed once its send is long past landing.
        """
        settled: list[dict[str, Any]] = []
        broker = self.ledger.router.broker
        for order_id in order_ids:
            if stop.requested:
                break
            order = self.ledger.get_order(order_id)
            if order.status == "requested" and order.purpose == Purpose.COMPENSATION.value:
                reason = f"never sent; superseded by the plan of run {run_id}"
                if self.withdraw(order_id, reason):
                    settled.append(settled_entry(
                        order, how="withdrawn: no send of it ever began", status="canceled"))
            elif order.outcome_unknown and order.broker == broker:
                after = self._settle_unknown(order, held)
                settled.append(settled_entry(after, how=how_settled(after), was=order.status))
        return settled

    def _settle_unknown(self, order: Order, held: HeldLock) -> Order:
        ledger = self.ledger
        if order.purpose == Purpose.COMPENSATION.value:
            try:
                order, _ = ledger.submit(order.id, may_send=held.check)
            except NotSent as skipped:
                return skipped.order
            return order
        answer = ledger.router.settle(order)
        started = order.send_started_at
        if answer is None and (started is None or self.now() - started < LANDING_WINDOW):
            return order  # may still land: the symbol waits (in flight)
        if answer is None:
            answer = never_landed(order, ledger.router.broker)
        try:
            apply_answer(order, answer)
            ledger.save(order)
        except (IntegrityError, OrderStateError):
            return ledger.get_order(order.id)  # another process settled it first
        return order

    def withdraw(self, order_id: UUID, reason: str) -> bool:
        """Cancel an order no send of which began; False when it turns out one did."""
        for _ in range(SAVE_ATTEMPTS):
            order = self.ledger.get_order(order_id)
            if order.status != "requested":
                return False
            order.withdraw_unsent(reason=reason)
            try:
                self.ledger.save(order)
                return True
            except IntegrityError:
                continue  # a send began meanwhile, or a sync wrote: look again
        return False


def settled_entry(order: Order, *, how: str, status: str | None = None,
                  was: str = OUTCOME_UNKNOWN) -> dict[str, Any]:
    """One order an earlier run (or a trade) left unsettled, as the settling run stores it."""
    return {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "from_run": order.reconciliation_id,
        "was": "requested" if status == "canceled" else was,
        "status": status or order.status,
        "how": how,
    }


def how_settled(order: Order) -> str:
    if order.outcome_unknown:
        return "still of unknown outcome: the next run asks again"
    if order.status == "submission_failed":
        failure = order.failures[-1] if order.failures else {}
        return f"not at the broker: {failure.get('message', 'refused')}"
    return f"at the broker as {order.broker_order_id}"


def never_landed(order: Order, broker: str) -> BrokerAnswer:
    started = order.send_started_at
    when = "" if started is None else f" since {started:%Y-%m-%d %H:%M:%S} UTC"
    return BrokerAnswer(
        broker=broker,
        error=BrokerError(
            code="never_landed",
            message=(
                f"the broker has no order under this client order id{when}, long after a "
                "send could land: it never reached the broker"
            ),
            retryable=False,
        ),
    )


