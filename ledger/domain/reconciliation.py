"""One reconciliation run: what it started from, what it planned, how it ended."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class Reconciliation(Aggregate):
    @event("Started")
    def __init__(
        self,
        *,
        dry_run: bool,
        broker: str,
        paper: bool,
        sync_id: UUID | None,
        filters: dict[str, Any],
    ) -> None:
        self.dry_run = dry_run
        self.broker = broker
        self.paper = paper
        self.sync_id = sync_id
        self.filters = filters
        self.rows: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.completed = False

    @event("Planned")
    def plan(self, *, rows: list[dict[str, Any]], orders: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.orders = orders

    @event("Completed")
    def complete(self, *, planned: int, submitted: int, failed: int, skipped: int) -> None:
        self.completed = True
