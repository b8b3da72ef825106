"""An operator's deliberate change to a book, with who and why: an event like any other."""

from __future__ import annotations

from decimal import Decimal

from eventsourcing.domain import Aggregate, event


class Adjustment(Aggregate):
    @event("Recorded")
    def __init__(
        self, *, book: str, symbol: str, qty: Decimal, price: Decimal, who: str, why: str
    ) -> None:
        self.book = book
        self.symbol = symbol
        self.qty = qty
        self.price = price
        self.who = who
        self.why = why
