"""Where a sync continues from: the cursor stored in each snapshot, and the rules that
move it forward."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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

# The overlap makes a poll re-read every fill of the last two minutes: with fills streaming
# in, that is most of what a poll reads. So a poll reads the whole overlap (from
# `fills_after`: the reads that catch late arrivals, and the only ones that move
# `fills_after`) when the last such read is this old, as every poll did before; a poll
# sooner than that (the polls stream updates ask for) reads from the newest fill it saw,
# less QUICK_OVERLAP. Late arrivals are found as before, by the next full read; fresh
# fills are found at once. 5 s is the default poll interval: a service that only polls on
# its interval reads the whole overlap every time.
FULL_READ_SECONDS = 5.0
# An execution stamped a moment before another may become visible a moment after it.
QUICK_OVERLAP = timedelta(seconds=1)


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
    # Executions read at or after `fills_after` that the store holds (recorded by this
    # sync or before it). The overlap re-reads them every poll; knowing them, a poll skips
    # their order lookups and loads, so it costs what is new, not the whole overlap. Kept
    # in memory only (not in `as_request`: a snapshot would carry thousands of ids); a
    # cursor read back from the store has none, and its first poll does the full work.
    recorded: frozenset[str] = field(default=frozenset(), compare=False)
    # Where a quick read starts (the newest fill seen, less QUICK_OVERLAP), and when (time.
    # monotonic()) the last full read was: in memory only, like `recorded`; without them
    # the next poll reads the whole overlap.
    fresh_after: datetime | None = field(default=None, compare=False)
    full_read_at: float | None = field(default=None, compare=False)

    def quick_start(self, now: float) -> datetime | None:
        """Where a poll at `now` (time.monotonic()) reads fills from, if a quick read will
        do; None when the whole overlap is due (see FULL_READ_SECONDS)."""
        if self.fresh_after is None or self.full_read_at is None:
            return None
        if not 0 <= now - self.full_read_at < FULL_READ_SECONDS:
            return None
        return max(self.fresh_after, self.fills_after)

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

