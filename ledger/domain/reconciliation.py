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
        id: UUID,  # chosen by the run, so its compensating orders can derive their ids from it
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
        self.market: dict[str, Any] | None = None
        self.completed = False
        self.counts: dict[str, int] = {}

    @event("Planned")
    def plan(
        self,
        *,
        rows: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        market: dict[str, Any] | None,
    ) -> None:
        self.rows = rows
        self.orders = orders
        self.market = market

    @event("Completed")
    def complete(self, *, planned: int, submitted: int, failed: int, skipped: int) -> None:
        self.completed = True
        self.counts = {
            "planned": planned, "submitted": submitted, "failed": failed, "skipped": skipped
        }
