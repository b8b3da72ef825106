"""Replaying one trading day through the views' own fold, at a cost in proportion to that day.

The audit index says which notification ids a day holds and how both books stood at
the close of every day. A day's replay starts from the previous day's close, reads
only that day's events, and folds them with the same `FoldState` the views use; the
history it needs besides (an order's purpose and symbol, a symbol's earlier lines when
a fill is reversed) comes from the views, never from re-reading older events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple
from uuid import UUID

from projections.engine.audit_index import AuditDay, load_opening
from projections.engine.replay import replay
from projections.engine.tracked_fold import TrackedFold
from projections.model.fold import FoldState
from projections.model.positions import Line
from projections.queries.views import PositionRow, Views, position_rows

Step = Callable[[int, Any, FoldState], None]


@dataclass(frozen=True)
class DayReplay:
    day: AuditDay
    opening_local: list[PositionRow]
    opening_broker: list[PositionRow]
    closing_local: list[PositionRow]
    closing_broker: list[PositionRow]
    state: FoldState  # after the day's last event
    closing_document: str  # equals day.closing when the views were built by this fold


class Opening(NamedTuple):
    state: FoldState
    open_order_ids: frozenset[UUID]  # the orders open as the day began


def opening_state(views: Views, day: date, first_seq: int) -> Opening:
    """The fold as `day` began (its first event is `first_seq`): the previous close's books,
    account and open orders; when a fill reversed on the day replays a symbol, its lines
    from before the day come from the views."""

    def history(book: str) -> Callable[[str, int], list[Line]]:
        return lambda symbol, start_seq: views.lines(book, symbol, start_seq, first_seq)

    state = FoldState(views.zone, local_lines=history("local"), broker_lines=history("broker"))
    opening = views.opening_document(day)
    open_order_ids = set() if opening is None else load_opening(state, opening)
    return Opening(state, frozenset(open_order_ids))


def replay_day(views: Views, day: date, on_event: Step | None = None) -> DayReplay | None:
    """Fold the events of `day` from its opening books; None when nothing happened that day.

    `on_event(seq, event, state)` is called after each event is applied, for a
    step-by-step account. Orders in `state.orders` come from the orders view, so their
    purpose, symbol and side are right but their status is today's, not the day's.
    """
    found = views.audit_day(day)
    if found is None:
        return None
    state, open_order_ids = opening_state(views, day, found.first_seq)
    tracked = TrackedFold(state, open_order_ids=set(open_order_ids))
    opening_local = position_rows(state.local.positions)
    opening_broker = position_rows(state.broker.positions)

    def step(seq: int, event: Any) -> None:
        state.apply(seq, event)
        if on_event is not None:
            on_event(seq, event, state)

    replay(views, state, found.first_seq, found.last_seq, step=step)
    return DayReplay(
        day=found,
        opening_local=opening_local,
        opening_broker=opening_broker,
        closing_local=position_rows(state.local.positions),
        closing_broker=position_rows(state.broker.positions),
        state=state,
        closing_document=tracked.closing_document(),
    )
