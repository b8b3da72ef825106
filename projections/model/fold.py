"""The fold over the whole event stream: orders, both books and the broker account.

`FoldState.apply(seq, event)` is the one place where an event changes a view; what each
event class does is the catalogue's (`projections.model.catalogue`). The live views, a
rebuild, `positions --as-of` and a day's audit all run this same code; they differ only
in where state comes from (memory, or rows loaded from the view tables) and where its
changes go (`projections.engine`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.domain import Order
from projections.model.book import Book
from projections.model.catalogue import CATALOGUE, LATER_ORDER_EVENTS, Stamp, kind_of
from projections.model.effects import Handler
from projections.model.positions import Line, LinesOf, OpenOrder
from projections.model.records import BrokerAccountState, OrderRecord

log = logging.getLogger(__name__)

# The fold's dispatch, from the catalogue: what each event class does to the views.
HANDLERS: dict[type, Handler] = {cls: kind.fold for cls, kind in CATALOGUE.items()}


def handler_of(event_class: type) -> Handler:
    """What `event_class` does to the views; `UnknownEvent` when the catalogue lacks it."""
    handler = HANDLERS.get(event_class)
    return kind_of(event_class).fold if handler is None else handler


def no_lines(symbol: str, start_seq: int) -> Sequence[Line]:
    return ()


class FoldState:
    """The state of every view after the events applied so far."""

    def __init__(self, zone: ZoneInfo, *, local_lines: LinesOf = no_lines,
                 broker_lines: LinesOf = no_lines) -> None:
        self.zone = zone
        self.orders: dict[UUID, OrderRecord] = {}
        self.local = Book("local", local_lines)
        self.broker = Book("broker", broker_lines)
        self.account: BrokerAccountState | None = None
        self.position = 0
        # Every order an event changed, in event order, until whoever keeps the views
        # takes them (`projections.engine.tracked_fold`).
        self.touched: list[OrderRecord] = []
        self._dispatch: dict[type, Handler] = {}

    # -- applying events -------------------------------------------------------------

    def apply(self, seq: int, event: Any) -> None:
        cls = type(event)
        if cls is Stamp:
            cls = event.event_class
        handler = self._dispatch.get(cls)
        if handler is None:
            handler = self._dispatch[cls] = handler_of(cls)
        handler(self, seq, event)
        self.position = seq

    def order_ids_to_load(self, events: Sequence[tuple[int, Any]]) -> set[UUID]:
        """Orders these events change that are not in memory (so must come from the view).

        An order requested earlier in the same events is not in the view yet: asking for it
        would look up most of a page's orders, one index probe each, to find nothing.
        """
        wanted: set[UUID] = set()
        # By the UUID's integer, which hashes in C; a UUID hashes in Python.
        requested: set[int] = set()
        orders = self.orders
        for _, event in events:
            cls = type(event)
            if cls is Stamp:
                cls = event.event_class
            if cls is Order.Requested:
                requested.add(event.originator_id.int)
            elif (
                cls in LATER_ORDER_EVENTS
                and event.originator_id.int not in requested
                and event.originator_id not in orders
            ):
                wanted.add(event.originator_id)
        return wanted

    def _order(self, seq: int, event: Any) -> OrderRecord | None:
        record = self.orders.get(event.originator_id)
        if record is None:
            log.warning("event for unknown order %s ignored", event.originator_id)
            return None
        record.updated_seq = seq
        record.updated_at = event.timestamp
        self.touched.append(record)
        return record

    def _broker_fill_counts(self, filled_at: datetime) -> bool:
        """A fill at a real broker counts unless the latest snapshot already includes it."""
        return self.account is None or filled_at > self.account.broker_time

    def _broker_action_counts(self, event: Any) -> bool:
        if self.account is None:
            return True
        if event.effective_date is not None:
            return event.effective_date > self.account.broker_time.astimezone(self.zone).date()
        return event.timestamp > self.account.broker_time

    # -- reading -----------------------------------------------------------------------

    def orders_for_netting(self) -> list[OpenOrder]:
        return [record.for_netting() for record in self.orders.values()]
