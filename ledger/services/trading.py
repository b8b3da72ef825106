"""Trading: a decision and the orders it requests, stored before any broker call, then
sent through the one router; and the operator's adoption of the broker's quantities.

Each use case is a function of the ledger (`ledger.application.Ledger` has them as its
methods: `ledger.trade(...)`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.brokers.answers import apply_answer
from ledger.brokers.port import BrokerAnswer, BrokerReadError
from ledger.domain import Adjustment, Decision, Order
from ledger.domain.order import ANSWERABLE_STATUSES, decision_order_id
from ledger.domain.values import InvalidInput, OrderIntent, Purpose, parse_price, validate
from ledger.infrastructure.event_store import SAVE_ATTEMPTS
from ledger.infrastructure.failpoints import failpoint
from ledger.services.stopping import Interrupted

if TYPE_CHECKING:
    from ledger.application import Ledger

log = logging.getLogger(__name__)


class NotSent(Exception):
    """The order was not sent: it was already settled, or another process changed it first."""

    def __init__(self, order: Order, why: str) -> None:
        super().__init__(f"order {order.client_order_id} was not sent: {why} ({order.status})")
        self.order = order


def record_decision(
    ledger: Ledger, *, source: str, rationale: str, intents: Sequence[OrderIntent]
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
    ledger.save(decision, *orders)
    return decision, orders


def trade(
    ledger: Ledger,
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
    notional: Any = None,
    confirm_live: bool = False,
    may_send: Callable[[], None] | None = None,
) -> Order:
    """Record one decision with its order, then send it through the router.

    Pass `qty` or `notional` (a dollar amount, market orders only). A live account
    (ALPACA_PAPER_MODE=false) takes real money: it needs `confirm_live=True`.
    `may_send` raises to send nothing (see `submit`); the order is then withdrawn.
    """
    intent = validate(
        OrderIntent,
        symbol=symbol,
        side=side,
        qty=qty,
        notional=notional,
        order_type=order_type,
        limit_price=limit_price,
        time_in_force=time_in_force,
        extended_hours=extended_hours,
    )
    reference_price = None if price is None else parse_price(price, "price")
    router = ledger.router
    # These two name the command's options: callers of this function (tests, scripts) see
    # the same words as the command line, which passes them on unchanged.
    if router.broker == "paper" and reference_price is None:
        raise InvalidInput("the paper broker fills at the given price: pass --price")
    if not router.paper and not confirm_live:
        raise InvalidInput(
            "ALPACA_PAPER_MODE=false trades a live account with real money: "
            "confirm with --confirm-live (confirm_live=True)"
        )
    _, (order,) = record_decision(ledger, source=source, rationale=reason, intents=[intent])
    try:
        order, answer = submit(ledger, order.id, reference_price=reference_price,
                               may_send=may_send)
    except Interrupted as stopped:
        order.withdraw_unsent(reason=f"not sent: {stopped}")
        ledger.save(order)
        raise
    if _fills_waiting(ledger, order, answer):
        # A broker reports executions apart from the order (account activities): fetch
        # them now so the caller sees the fill. If that fails, the next sync records them.
        try:
            ledger.poll()
        except (BrokerReadError, IntegrityError) as error:
            log.warning("fills of %s not recorded yet: %s", order.client_order_id, error)
        else:
            order = ledger.get_order(order.id)
    return order


def _fills_waiting(ledger: Ledger, order: Order, answer: BrokerAnswer) -> bool:
    reported = answer.filled_qty or Decimal(0)
    return ledger.router.reader is not None and reported > order.filled_qty


def adopt(
    ledger: Ledger, adjustments: Sequence[tuple[str, Decimal, Decimal]], *, who: str, why: str
) -> list[Adjustment]:
    """Take the broker's quantities into the local book: one `Adjustment` per
    (symbol, signed qty to add, price) in one save. An operator's decision, recorded
    with who and why; it is no trade, and nothing is sent to a broker."""
    if not why.strip():
        raise InvalidInput("an adoption needs a reason: say why the broker's word stands")
    recorded = [
        Adjustment(book="local", symbol=symbol, qty=qty, price=price, who=who, why=why)
        for symbol, qty, price in adjustments
        if qty
    ]
    if recorded:
        ledger.save(*recorded)
    return recorded


def submit(
    ledger: Ledger,
    order_id: UUID,
    *,
    reference_price: Decimal | None = None,
    may_send: Callable[[], None] | None = None,
) -> tuple[Order, BrokerAnswer]:
    """Route a stored order to the broker; store and return the broker's answer.

    `may_send` is asked first: it raises to send nothing (an interrupted run, a lost
    reconciliation lock). Raises `NotSent` when another process settled or withdrew the
    order first.
    """
    if may_send is not None:
        may_send()
    order: Order = ledger.repository.get(order_id)
    if order.status not in ANSWERABLE_STATUSES:
        raise NotSent(order, f"it is {order.status}")

    def store_send_start(marked: Order) -> None:
        try:
            ledger.save(marked)
        except IntegrityError:
            # Another process wrote to this order since it was read: a run that took
            # over withdrew it, or a sync found it. Its events decide; nothing is sent.
            raise NotSent(ledger.get_order(order_id), "another process changed it first") from None
        # Between the send's mark and the send: a crash here leaves an order of unknown
        # outcome that never left, which the next run sends under the same id.
        failpoint("submit:marked")

    answer = ledger.router.route(order, reference_price, store_send_start=store_send_start)
    # Between the broker's answer and its storage: the window a lost reply lives in.
    failpoint("submit:answered")
    for attempt in range(SAVE_ATTEMPTS):
        apply_answer(order, answer)
        try:
            ledger.save(order)
            return order, answer
        except IntegrityError:
            # A sync recorded the same answer first (it looks orders up by client order
            # id): apply ours to what is stored; what it already holds is ignored.
            if attempt == SAVE_ATTEMPTS - 1:
                raise
            order = ledger.repository.get(order_id)
    raise AssertionError("unreachable")
