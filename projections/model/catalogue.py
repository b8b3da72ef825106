"""The catalogue of event types: for every event class of every aggregate, what it does to
each view, which symbols it concerns, and how the audit and the web show it.

Keyed by class. The fold dispatches through it, the day's audit describes and prices
events by it, the web's chart, transactions and explanations read it: one table, so an
event type is described once. An event class missing from it is an error
(`UnknownEvent`), never silently ignored: events that change no view say so here
(`effects.nothing`), and tests/projections/test_catalogue.py fails when an aggregate of
`ledger.domain` has an event class this table lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple
from uuid import UUID

from ledger.domain import (
    Adjustment,
    BrokerSnapshot,
    CorporateAction,
    Decision,
    Drift,
    Order,
    Reconciliation,
)
from ledger.domain.order_status import ACCEPTED, CANCELED, EXPIRED, FILLED
from ledger.domain.reconciliation_lock import ReconciliationLock
from projections.model import effects, timeline
from projections.model.effects import Handler, corporate_action_move
from projections.model.records import OrderRecord
from projections.model.timeline import Describer


class BookEffect(Enum):
    NONE = "none"  # neither book changes
    MOVES = "moves"  # a position is traded, taken back, split or moved: realised P&L may change
    RESTARTS = "restarts"  # the broker book starts again from the broker's positions


class Execution(Enum):
    FILL = "fill"  # an execution of an order
    REVERSAL = "reversal"  # an execution taken back


# (the event, its order after it when it is an order's event) -> the symbols it concerns;
# None: the whole account (a sync, a run starting).
Symbols = Callable[[Any, OrderRecord | None], frozenset[str] | None]


def account_wide(e: Any, order: OrderRecord | None) -> frozenset[str] | None:
    return None


def order_symbol(e: Any, order: OrderRecord | None) -> frozenset[str] | None:
    return None if order is None else frozenset({order.symbol})


def corporate_action_symbols(e: Any, order: OrderRecord | None) -> frozenset[str]:
    return frozenset(corporate_action_move(e))


def adjustment_symbols(e: Any, order: OrderRecord | None) -> frozenset[str]:
    return frozenset({e.symbol.upper()})


def decision_symbols(e: Any, order: OrderRecord | None) -> frozenset[str]:
    return frozenset(str(trade["symbol"]) for trade in e.trades)


def plan_symbols(e: Any, order: OrderRecord | None) -> frozenset[str]:
    settled = list(getattr(e, "settled", None) or [])
    return frozenset(str(item["symbol"]) for item in [*e.rows, *e.orders, *settled])


def drift_symbols(e: Any, order: OrderRecord | None) -> frozenset[str]:
    return frozenset(str(item["symbol"]) for item in e.symbols)


@dataclass(frozen=True, slots=True)
class EventKind:
    """What the code knows of one event class."""

    fold: Handler  # what it does to the views
    describe: Describer  # how a day's audit describes it
    symbols: Symbols = account_wide  # the symbols it concerns, for the audit and the web
    book: BookEffect = BookEffect.NONE
    # An order's event: it changes the order's row of the orders view (after its request,
    # of an order the fold must know already).
    of_order: bool = False
    # Its handler reads nothing but the envelope: a rebuild may fold it from a `Stamp`.
    status_only: bool = False
    execution: Execution | None = None
    shown_as: str | None = None  # how the transactions page lists it among an order's fills

    @property
    def changes_no_view(self) -> bool:
        """Only its place in the audit index: a light page carries it as a `Stamp`."""
        return self.fold is effects.nothing


class Stamp(NamedTuple):
    """An event taken by its class and envelope alone, for a handler that reads no field.

    Reading these straight from the start of the stored state instead of decoding them
    whole saves a rebuild much of its time (decisions carry their trades, plans their rows).
    """

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    event_class: type


class UnknownEvent(LookupError):
    """An event class the catalogue has no entry for: what it does to the views is unknown."""


def _order_event(fold: Handler, describe: Describer, **more: Any) -> EventKind:
    return EventKind(fold, describe, order_symbol, of_order=True, **more)


def _status_only(fold: Handler, describe: Describer) -> EventKind:
    return _order_event(fold, describe, status_only=True)


def _execution(fold: Handler, describe: Describer, execution: Execution, shown_as: str
               ) -> EventKind:
    return _order_event(fold, describe, book=BookEffect.MOVES, execution=execution,
                        shown_as=shown_as)


def _run_step(describe: Describer, symbols: Symbols = account_wide) -> EventKind:
    return EventKind(effects.nothing, describe, symbols)


CATALOGUE: dict[type, EventKind] = {
    Decision.Recorded: EventKind(effects.nothing, timeline.decision, decision_symbols),
    Order.Requested: _order_event(effects.requested, timeline.requested),
    Order.SendStarted: _order_event(effects.send_started, timeline.send_started),
    Order.Submitted: _order_event(effects.submitted, timeline.submitted),
    Order.SubmissionFailed: _order_event(effects.submission_failed, timeline.submission_failed),
    Order.Accepted: _status_only(effects.status(ACCEPTED), timeline.accepted),
    Order.Rejected: _order_event(effects.rejected, timeline.with_reason),
    Order.Filled: _execution(effects.fill(complete=True), timeline.fill, Execution.FILL, "fill"),
    Order.PartiallyFilled: _execution(
        effects.fill(complete=False), timeline.fill, Execution.FILL, "partial fill"
    ),
    Order.Completed: _status_only(effects.status(FILLED), timeline.nothing_more),
    Order.FillReversed: _execution(
        effects.fill_reversed, timeline.fill_reversed, Execution.REVERSAL, "reversed"
    ),
    Order.Canceled: _status_only(effects.status(CANCELED), timeline.with_reason),
    Order.Expired: _status_only(effects.status(EXPIRED), timeline.nothing_more),
    BrokerSnapshot.Synced: EventKind(effects.synced, timeline.synced, book=BookEffect.RESTARTS),
    CorporateAction.Recorded: EventKind(
        effects.corporate_action, timeline.corporate_action, corporate_action_symbols,
        BookEffect.MOVES,
    ),
    Adjustment.Recorded: EventKind(
        effects.adjustment, timeline.adjustment, adjustment_symbols, BookEffect.MOVES
    ),
    Reconciliation.Started: _run_step(timeline.run_started),
    Reconciliation.Planned: _run_step(timeline.run_planned, plan_symbols),
    Reconciliation.Completed: _run_step(timeline.run_completed),
    ReconciliationLock.Created: _run_step(timeline.lock("created")),
    ReconciliationLock.Acquired: _run_step(timeline.lock("taken")),
    ReconciliationLock.Renewed: _run_step(timeline.lock("renewed")),
    ReconciliationLock.Released: _run_step(timeline.lock("released")),
    # The watchdog's record of when the books were apart: shown, never folded into a book.
    Drift.Began: EventKind(effects.nothing, timeline.drift_began, drift_symbols),
    Drift.Ended: EventKind(effects.nothing, timeline.drift_ended),
}


def kind_of(event_class: type) -> EventKind:
    kind = CATALOGUE.get(event_class)
    if kind is None:
        raise UnknownEvent(
            f"{event_class.__module__}.{event_class.__qualname__} is not in the event "
            "catalogue (projections/model/catalogue.py): say what it does to each view there"
        )
    return kind


def kind_of_event(event: Any) -> EventKind:
    cls = type(event)
    return kind_of(event.event_class if cls is Stamp else cls)


# Events a light page carries as a `Stamp`: they change no view row.
STAMPED_EVENTS: tuple[type, ...] = tuple(
    cls for cls, kind in CATALOGUE.items() if kind.changes_no_view
)
# Order events a fold may take as a `Stamp` too. Kept apart from STAMPED_EVENTS, which
# callers read as "changes no view row": these change the order's status.
STATUS_ONLY_EVENTS: tuple[type, ...] = tuple(
    cls for cls, kind in CATALOGUE.items() if kind.status_only
)
# Every event of an order after its request: it changes an order the fold must already know.
LATER_ORDER_EVENTS = frozenset(
    cls for cls, kind in CATALOGUE.items() if kind.of_order and cls is not Order.Requested
)
