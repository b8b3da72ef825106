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
        self.settled: list[dict[str, Any]] = []
        self.completed = False
        self.counts: dict[str, int] = {}
        self.interrupted: str | None = None

    @event("Planned")
    def plan(
        self,
        # Not keyword-only: eventsourcing 9.5 ignores the defaults of keyword-only
        # parameters when a command is called, and `settled` is optional.
        rows: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        market: dict[str, Any] | None,
        # Orders earlier runs left unsettled and what this run made of them (absent from
        # runs stored before it existed).
        settled: list[dict[str, Any]] | None = None,
    ) -> None:
        self.rows = rows
        self.orders = orders
        self.market = market
        self.settled = settled or []

    @event("Completed")
    def complete(
        self,
        # Not keyword-only, as `plan`: the counts added later need their defaults.
        planned: int,
        submitted: int,
        failed: int,
        skipped: int,
        not_sent: int = 0,
        unknown: int = 0,
        interrupted: str | None = None,
    ) -> None:
        """`interrupted`: why the run stopped sending before its plan was done."""
        self.completed = True
        self.counts = {
            "planned": planned, "submitted": submitted, "failed": failed, "skipped": skipped,
            "not_sent": not_sent, "unknown": unknown,
        }
        self.interrupted = interrupted
