"""Reading the event log from its end: the one newest-first reader.

Whoever asks "what happened last" (the newest sync, the newest runs, the recent fills, the
newest orders on a page) reads back from the end of the log in windows, only as far as it
needs. Notification ids may have gaps (a rolled-back insert), so a window is a range of
ids, not a count of events; windows grow so a search that reaches far back costs a few
queries, not thousands.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification


@dataclass(frozen=True)
class StoredEvent:
    """One event as read back from the store, with its place in the global sequence."""

    notification_id: int
    event: Any


@dataclass(frozen=True)
class Window:
    """The notifications with ids in [start, stop] (of the topics asked for), oldest first."""

    start: int
    stop: int
    notifications: list[Notification]


def newest_windows(
    recorder: Any,
    *,
    topics: Sequence[str] = (),
    low: int = 1,
    high: int | None = None,
    first: int = 256,
    largest: int | None = 32_768,
) -> Iterator[Window]:
    """Windows of ids from `high` (default: the newest) down to `low`, newest window first;
    each is twice the size of the one before, up to `largest` (None: no cap)."""
    stop = (recorder.max_notification_id() or 0) if high is None else high
    size = first
    while stop >= low:
        start = max(low, stop - size + 1)
        found = recorder.select_notifications(
            start=start, limit=stop - start + 1, stop=stop, topics=list(topics)
        )
        yield Window(start, stop, found)
        stop = start - 1
        size = size * 2 if largest is None else min(size * 2, largest)


def newest_first(recorder: Any, **window_options: Any) -> Iterator[Notification]:
    """The notifications themselves, newest first (see `newest_windows` for the options)."""
    for window in newest_windows(recorder, **window_options):
        yield from reversed(window.notifications)
