"""What every request of the page shares: the ledger, its views kept current, and a cache.

Each request first brings the views up to the newest event (`fresh`), then reads them.
What is costly to compute from the views (the explained differences, the chart's history,
the reconciliation runs) depends only on the events read so far, so it is cached under
the views' position (and the tables' generation): a new event moves the position and the
next request computes afresh.

What may take seconds on a long history (the first explanation of every differing symbol)
is computed in the background (`soon`): a request waits for it a moment, and otherwise
shows a quick reading meanwhile, so the server answers at once from the start.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from commands.web.service import ServiceProbe, ServiceView
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
    def __init__(self, ledger: Ledger, *, timezone: str,
                 health: tuple[str, int] | None = None) -> None:
        self.ledger = ledger
        # Where `commands run` serves /healthz (LEDGER_HEALTH_HOST, LEDGER_HEALTH_PORT).
        self._service = None if health is None else ServiceProbe(*health)
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.views = Views(ledger, timezone=timezone)
        self._catch_up_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._rationales: OrderedDict[UUID, str] = OrderedDict()
        self._pending: dict[Hashable, Future[Any]] = {}
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

    def soon(self, key: Hashable, fresh: Fresh, compute: Callable[[], T],
             wait: float) -> T | None:
        """`cached`, computed in a background thread: the value if it is ready within `wait`
        seconds, else None (the computation goes on and fills the cache). One computation
        per key and position at a time: requests meanwhile wait on the same one."""
        full_key = (key, fresh.key)
        with self._cache_lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return self._cache[full_key]  # type: ignore[no-any-return]
            future = self._pending.get(full_key)
            started = future is None
            if future is None:
                future = self._pending[full_key] = Future()
        if started:
            threading.Thread(target=self._compute_into, args=(full_key, future, compute),
                             name="tradeledger-page-soon", daemon=True).start()
        try:
            return future.result(timeout=wait)  # type: ignore[no-any-return]
        except FutureTimeout:
            return None

    def _compute_into(self, full_key: Hashable, future: Future[Any],
                      compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except BaseException as error:
            # The requests waiting see the failure (their error page and the log); the
            # next request at this position tries again.
            with self._cache_lock:
                self._pending.pop(full_key, None)
            future.set_exception(error)
            return
        with self._cache_lock:
            self._cache[full_key] = value
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
            self._pending.pop(full_key, None)
        future.set_result(value)

    def service_status(self) -> ServiceView | None:
        """What `commands run` says of itself; None when the page was not told where."""
        return None if self._service is None else self._service()

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
