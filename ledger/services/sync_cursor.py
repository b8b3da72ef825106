"""Where a sync continues from: the cursor stored in each snapshot, and the rules that
move it forward."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.domain import Order

# Activities can become visible a little after the time they carry: each sync reads
# this far back past the newest one it saw. Seen executions are ignored, so the overlap
# costs a re-read, never a double count.
OVERLAP = timedelta(minutes=2)

# Non-trade activities are dated by day at Alpaca: re-read a few days; their ids dedupe.
ACTIVITY_OVERLAP = timedelta(days=3)


@dataclass(frozen=True)
class SyncCursor:
    """Where the next sync continues: stored in `BrokerSynced.request`, kept in memory by
    `commands run` between polls."""

    fills_after: datetime
    activities_after: datetime
    # Ledger orders whose fate at the broker is not settled yet (open, or maybe sent).
    unresolved: tuple[UUID, ...]
    # Orders requested after this notification id were not known to the sync.
    through: int

    def as_request(self) -> dict[str, Any]:
        return {
            "next_fills_after": self.fills_after,
            "next_activities_after": self.activities_after,
            "unresolved_order_ids": list(self.unresolved),
            "through_notification_id": self.through,
        }

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> SyncCursor | None:
        try:
            return cls(
                fills_after=_as_datetime(request["next_fills_after"]),
                activities_after=_as_datetime(request["next_activities_after"]),
                unresolved=tuple(_as_uuid(v) for v in request["unresolved_order_ids"]),
                through=int(request["through_notification_id"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def needs_watching(order: Order, broker: str) -> bool:
    """An order whose state at the broker the next sync must ask about."""
    if order.broker not in (None, broker):
        return False
    if order.status == "submission_failed":
        # A retryable failure may hide an order the broker did create (a lost reply).
        return bool(order.failures) and bool(order.failures[-1].get("retryable"))
    return order.is_open


def next_cursor(
    after: datetime,
    seen: Iterable[datetime],
    unfinished: Iterable[datetime],
    overlap: timedelta = OVERLAP,
) -> datetime:
    """Continue past the newest activity seen (less the overlap), but stay before any that
    has to be read again, and never move backwards."""
    pending = list(unfinished)
    times = pending or list(seen)
    if not times:
        return after
    mark = min(times) if pending else max(times)
    return max(after, mark - overlap)

