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
from typing import Any

from projections.engine.runner import read_page
from projections.model.fold import AuditDay, FoldState
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


def opening_state(views: Views, day: date, first_seq: int) -> FoldState:
    """The fold as `day` began (its first event is `first_seq`): the previous close's books,
    account and open orders; when a fill reversed on the day replays a symbol, its lines
    from before the day come from the views."""

    def history(book: str) -> Callable[[str, int], list[Line]]:
        return lambda symbol, start_seq: views.lines(book, symbol, start_seq, first_seq)

    state = FoldState(
        views.zone, local_lines=history("local"), broker_lines=history("broker"), audit=False
    )
    opening = views.opening_document(day)
    if opening is not None:
        state.load_opening(opening)
    return state


def replay_day(views: Views, day: date, on_event: Step | None = None) -> DayReplay | None:
    """Fold the events of `day` from its opening books; None when nothing happened that day.

    `on_event(seq, event, state)` is called after each event is applied, for a
    step-by-step account. Orders in `state.orders` come from the orders view, so their
    purpose, symbol and side are right but their status is today's, not the day's.
    """
    found = views.audit_day(day)
    if found is None:
        return None
    state = opening_state(views, day, found.first_seq)
    opening_local = position_rows(state.local.positions)
    opening_broker = position_rows(state.broker.positions)
    after = found.first_seq - 1
    while after < found.last_seq:
        page = read_page(views.ledger, after, views.page_size, stop=found.last_seq)
        if not page:
            break
        for order_id in state.order_ids_to_load(page):
            record = views.order(order_id)
            if record is not None:
                state.orders[order_id] = record
        for seq, event in page:
            state.apply(seq, event)
            if on_event is not None:
                on_event(seq, event, state)
        after = page[-1][0]
    return DayReplay(
        day=found,
        opening_local=opening_local,
        opening_broker=opening_broker,
        closing_local=position_rows(state.local.positions),
        closing_broker=position_rows(state.broker.positions),
        state=state,
        closing_document=state.closing_document(),
    )
