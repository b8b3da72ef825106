"""What every request of the page shares: the ledger, its views kept current, and a cache.

Each request first brings the views up to the newest event (`fresh`), then reads them.
What is costly to compute from the views (the explained differences, the chart's history,
the reconciliation runs) depends only on the events read so far, so it is cached under
the views' position (and the tables' generation): a new event moves the position and the
next request computes afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from projections.queries.explained import ExplainMemo
from projections.queries.transactions import decision_rationale
from projections.queries.views import Views

T = TypeVar("T")

# Entries of the position cache: a few pages' worth of queries at one position.
_CACHE_ENTRIES = 64
# Decisions never change once recorded: their rationales are cached for good, this many.
_RATIONALES = 10_000


@dataclass(frozen=True)
class Fresh:
    """The views at one position: every read of one request sees the same events."""

    views: Views
    position: int
    # Which tables hold the views: a rebuild swaps new tables in, perhaps at the same
    # position, and what was cached from the old ones must not be served from the new.
    generation: str

    @property
    def key(self) -> tuple[str, int]:
        return self.generation, self.position


class WebContext:
    def __init__(self, ledger: Ledger, *, timezone: str) -> None:
        self.ledger = ledger
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.views = Views(ledger, timezone=timezone)
        self._catch_up_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._rationales: OrderedDict[UUID, str] = OrderedDict()
        self.explained = ExplainMemo()

    def fresh(self) -> Fresh:
        """Apply the events the views have not seen, then read at that position.

        One catch-up at a time in this process: concurrent requests would only queue on
        the views' lock in the database instead.
        """
        with self._catch_up_lock:
            position = self.views.catch_up()
            fresh = Fresh(self.views, position, self.views.generation())
            self.explained.advance(self.views, fresh.generation, position)
        return fresh

    def cached(self, key: Hashable, fresh: Fresh, compute: Callable[[], T]) -> T:
        """`compute()` once per position of the views; two requests at once may both
        compute (harmless: the same events give the same result)."""
        full_key = (key, fresh.key)
        with self._cache_lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return self._cache[full_key]  # type: ignore[no-any-return]
        value = compute()
        with self._cache_lock:
            self._cache[full_key] = value
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def rationale(self, decision_id: UUID) -> str:
        with self._cache_lock:
            if decision_id in self._rationales:
                return self._rationales[decision_id]
        text = decision_rationale(self.ledger, decision_id)
        with self._cache_lock:
            self._rationales[decision_id] = text
            while len(self._rationales) > _RATIONALES:
                self._rationales.popitem(last=False)
        return text

    def close(self) -> None:
        self.ledger.close()
