"""Splits, symbol changes and mergers reported by the broker: applied to both books, never drift."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.order import LEDGER_NAMESPACE


def corporate_action_id(broker: str, activity_id: str) -> UUID:
    """One stream per broker activity, so recording it twice is a conflict, not a double split."""
    return uuid5(LEDGER_NAMESPACE, f"corporate-action:{broker}:{activity_id}")


class CorporateAction(Aggregate):
    @event("Recorded")
    def __init__(
        self,
        *,
        id: UUID,
        broker: str,
        activity_id: str,
        kind: str,
        symbol: str,
        new_symbol: str | None,
        ratio: Decimal,
        effective_date: date | None,
        description: str,
    ) -> None:
        self.broker = broker
        self.activity_id = activity_id
        self.kind = kind
        self.symbol = symbol
        self.new_symbol = new_symbol
        self.ratio = ratio
        self.effective_date = effective_date
        self.description = description
