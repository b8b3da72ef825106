"""Drift windows: when the watchdog of `commands run` found the books apart, for how long,
which symbols and why; and the drift open now (the web page's banner).

Read from the events (`Drift.Began`, `Drift.Ended`) with the newest-first reader of the
log: drifts are rare, so no view keeps them. One drift is open at a time: the watchdog
ends one before it can begin the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Drift
from ledger.infrastructure.event_log import newest_first, newest_windows

_BEGAN = get_topic(Drift.Began)
_ENDED = get_topic(Drift.Ended)


@dataclass(frozen=True)
class DriftWindow:
    drift_id: UUID
    began_at: datetime
    ended_at: datetime | None  # None: still open
    # One dict per symbol, all text: symbol, local_qty, broker_qty, open_qty, delta, cause,
    # since (as the watchdog stored them).
    symbols: tuple[dict[str, str], ...]

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def document(self) -> dict[str, Any]:
        """Plain values (datetime, UUID) as the audit document holds them."""
        return {
            "drift_id": self.drift_id,
            "began_at": self.began_at,
            "ended_at": self.ended_at,
            "open": self.is_open,
            "symbols": [dict(item) for item in self.symbols],
        }


def _window(drift: Drift) -> DriftWindow:
    return DriftWindow(drift.id, drift.began_at, drift.ended_at,
                       tuple(dict(item) for item in drift.symbols))


def open_drift(ledger: Ledger) -> DriftWindow | None:
    """The drift open now, or None. Reads back from the end of the log to the newest drift
    (through all of it when there never was one: windows that double, a dozen queries for a
    million events)."""
    for notification in newest_first(ledger.recorder, topics=[_BEGAN], largest=None):
        drift: Drift = ledger.repository.get(notification.originator_id)
        return _window(drift) if drift.is_open else None
    return None


def recent_windows(ledger: Ledger, limit: int = 20) -> list[DriftWindow]:
    """The newest `limit` drifts, newest first."""
    found: list[DriftWindow] = []
    for notification in newest_first(ledger.recorder, topics=[_BEGAN], largest=None):
        if len(found) >= limit:
            break
        found.append(_window(ledger.repository.get(notification.originator_id)))
    return found


def windows_between(ledger: Ledger, first_seq: int, last_seq: int) -> list[DriftWindow]:
    """Drifts that began or ended among the events `first_seq`..`last_seq` (a day's, in the
    audit), oldest first, each whole: its start, its end if it has one, its symbols.

    Only the day's events are read, so the audit's cost stays the day's: a drift that
    began before the day and ended after it is shown on the days it began and ended."""
    if last_seq < first_seq:
        return []
    ids: list[UUID] = []
    for window in newest_windows(ledger.recorder, topics=[_BEGAN, _ENDED], low=first_seq,
                                 high=last_seq, first=last_seq - first_seq + 1, largest=None):
        for notification in window.notifications:
            if notification.originator_id not in ids:
                ids.append(notification.originator_id)
    windows = [_window(ledger.repository.get(drift_id)) for drift_id in ids]
    return sorted(windows, key=lambda w: w.began_at)
