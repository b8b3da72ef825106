"""One paged replay: fold the events from one position to another into a state, a page at a
time, loading before each page the orders it changes that the state does not hold.

A day's replay, the day's audit and the web's chart all replay this way; they differ in
where an order comes from (the orders view as it is, or as it stood at some moment) and in
what they note about each event as it is applied (`step`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from projections.engine.runner import Page, read_page
from projections.model.fold import FoldState
from projections.model.records import OrderRecord

if TYPE_CHECKING:
    from projections.queries.views import Views

# The orders a page changes that the state lacks, as the replay should start them.
OrdersFor = Callable[[Page], Iterable[OrderRecord]]
# Applies one event (notification id, event) to the state, and notes what it needs.
Step = Callable[[int, Any], None]


def from_orders_view(views: Views, state: FoldState) -> OrdersFor:
    """Orders as the orders view holds them: their purpose, symbol and side are right for
    any moment, their status is today's."""

    def orders(page: Page) -> list[OrderRecord]:
        found = []
        for order_id in state.order_ids_to_load(page):
            record = views.order(order_id)
            if record is not None:
                found.append(record)
        return found

    return orders


def replay(
    views: Views,
    state: FoldState,
    first_seq: int,
    last_seq: int,
    *,
    orders: OrdersFor | None = None,
    step: Step | None = None,
) -> None:
    """Fold notifications first_seq..last_seq into `state`, a page of `views.page_size` at a
    time. `orders`: where missing orders come from (the orders view by default); `step`:
    applies each event (by default `state.apply`)."""
    load = orders or from_orders_view(views, state)
    apply = step or state.apply
    after = first_seq - 1
    while after < last_seq:
        page = read_page(views.ledger, after, views.page_size, stop=last_seq)
        if not page:
            break
        for record in load(page):
            state.orders[record.order_id] = record
        for seq, event in page:
            apply(seq, event)
        after = page[-1][0]
