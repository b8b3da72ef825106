"""A decision: what the decision engine intended, and why, before any order exists."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event


class Decision(Aggregate):
    @event("Recorded")
    def __init__(self, *, source: str, rationale: str, trades: list[dict[str, Any]]) -> None:
        self.source = source
        self.rationale = rationale
        self.trades = trades
