"""The fold with its lines and audit days kept in memory: tests, `--as-of`, and the reference
the view tables must equal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from projections.engine.audit_index import AuditDay, AuditIndexer
from projections.engine.tracked_fold import TrackedFold
from projections.model.fold import FoldState
from projections.model.positions import Line


class MemoryLines:
    """Lines of one book kept in memory, for folds that never touch a database."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, list[Line]] = {}

    def __call__(self, symbol: str, start_seq: int) -> list[Line]:
        return [line for line in self.by_symbol.get(symbol, ()) if line.seq >= start_seq]

    def keep(self, lines: list[tuple[str, Line]]) -> None:
        for symbol, line in lines:
            self.by_symbol.setdefault(symbol, []).append(line)


class MemoryFold:
    """A `FoldState` whose lines live in memory: fold any events without a database."""

    def __init__(self, zone: ZoneInfo, *, audit: bool = True) -> None:
        self.local_lines = MemoryLines()
        self.broker_lines = MemoryLines()
        self.state = FoldState(zone, local_lines=self.local_lines, broker_lines=self.broker_lines)
        self.tracked = TrackedFold(self.state, audit=AuditIndexer(zone) if audit else None)
        self.days: dict[date, AuditDay] = {}

    def apply(self, seq: int, event: Any) -> None:
        self.tracked.apply(seq, event)

    def settle(self) -> FoldState:
        """Move pending lines into memory (as a page flush would) and return the state."""
        changes = self.tracked.take_changes()
        self.local_lines.keep(changes.local.lines)
        self.broker_lines.keep(changes.broker.lines)
        for day in changes.days:
            self.days[day.day] = day
        return self.state


def fold_events(events: Sequence[tuple[int, Any]], zone: ZoneInfo) -> MemoryFold:
    """Fold (notification id, domain event) pairs in order; the plain fold of the views."""
    fold = MemoryFold(zone)
    fold.tracked.fold(events)
    fold.settle()
    return fold
