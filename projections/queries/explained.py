"""Explanations of differing symbols, kept from one request to the next.

`ReconcileBooks` explains a symbol that differs from its whole history in the views (every
order of the symbol, every line of both books): right for a reconciliation, which runs
now and then, but a page is read far more often than events arrive. An explanation
depends only on the symbol's facts and on the views' orders and lines of that symbol,
and those change only when an event about that symbol is applied. So the page keeps each
explanation and, when the views move on, reads just the new events to learn which
symbols they touched and forgets those: the rest are served from memory.

Which symbols an event touches is the catalogue's (`projections.model.catalogue`): an
order's event touches its order's symbol, a corporate action or an adjustment its own. A
broker sync writes opening lines into the broker book, which no explanation reads (only
splits and symbol changes do), so a sync forgets nothing; its new quantities are part of
the facts, which are compared whole. An event the catalogue does not know, an order the
view lacks, a rebuild's new tables, or a long gap forgets everything: correctness first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from ledger.domain.planning import SymbolFacts
from projections.engine.runner import pages
from projections.model.catalogue import BookEffect, UnknownEvent, kind_of_event
from projections.queries.views import Views

# More new events than this: explaining afresh costs less than reading them all.
TAIL_LIMIT = 20_000
_ORDER_SYMBOLS = 100_000


class _Everything(Exception):
    """An event whose effect on the explanations is not known here."""


class ExplainMemo:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: tuple[str, int] | None = None  # (generation, position) it holds for
        self._explained: dict[str, tuple[SymbolFacts, SymbolFacts]] = {}
        self._order_symbols: dict[UUID, str] = {}

    def advance(self, views: Views, generation: str, position: int) -> None:
        """Forget the explanations that events up to `position` may have changed."""
        with self._lock:
            at = self._at
            self._at = (generation, position)
            if at is None or at[0] != generation or not 0 <= position - at[1] <= TAIL_LIMIT:
                self._explained = {}
                return
            try:
                touched = self._touched(views, at[1], position)
            except _Everything:
                self._explained = {}
                return
            for symbol in touched:
                self._explained.pop(symbol, None)

    def kept(self, fact: SymbolFacts) -> SymbolFacts | None:
        """The explanation held for `fact`, or None: nothing is computed."""
        with self._lock:
            kept = self._explained.get(fact.symbol)
        return kept[1] if kept is not None and kept[0] == fact else None

    def explain(self, fact: SymbolFacts, compute: Callable[[SymbolFacts], SymbolFacts]
                ) -> SymbolFacts:
        with self._lock:
            kept = self._explained.get(fact.symbol)
            at = self._at
        if kept is not None and kept[0] == fact:
            return kept[1]
        explained = compute(fact)
        with self._lock:
            # Kept only if no `advance` ran meanwhile: it may have forgotten this symbol
            # because of events this computation read too early to see.
            if self._at == at:
                self._explained[fact.symbol] = (fact, explained)
        return explained

    def _touched(self, views: Views, after: int, through: int) -> set[str]:
        touched: set[str] = set()
        for page in pages(views.ledger, after, 1_000, through, full=False):
            for _, event in page:
                touched |= self._symbols(views, event)
        return touched

    def _symbols(self, views: Views, event: Any) -> set[str]:
        try:
            kind = kind_of_event(event)
        except UnknownEvent as unknown:
            raise _Everything(str(unknown)) from None
        if kind.of_order:
            return {self._order_symbol(views, event.originator_id)}
        if kind.book is BookEffect.MOVES:
            return set(kind.symbols(event, None) or ())
        return set()

    def _order_symbol(self, views: Views, order_id: UUID) -> str:
        symbol = self._order_symbols.get(order_id)
        if symbol is None:
            record = views.order(order_id)
            if record is None:
                raise _Everything(f"order {order_id} is not in the orders view")
            symbol = record.symbol
            if len(self._order_symbols) >= _ORDER_SYMBOLS:
                self._order_symbols.clear()
            self._order_symbols[order_id] = symbol
        return symbol
