"""One lock stream shared by every reconciler, so two runs at once submit one set of orders.

Taking the lock is an event on a single, well-known aggregate: two reconcilers that
read the same version both try to append, and optimistic concurrency lets exactly
one succeed, on SQLite and PostgreSQL alike. A lease bounds how long a crashed run
can hold it; a working run renews it, and one that finds it taken over stops sending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger.domain.order import LEDGER_NAMESPACE

LOCK_ID = uuid5(LEDGER_NAMESPACE, "reconciliation-lock")


class LockHeld(Exception):
    """Another reconciliation holds the lock."""


class LockLost(Exception):
    """This run's lease ended and another run took the lock: it must send nothing more."""


class ReconciliationLock(Aggregate):
    @event("Created")
    def __init__(self, *, id: UUID) -> None:  # one well-known stream: LOCK_ID
        self.holder: UUID | None = None
        self.expires_at: datetime | None = None
        self.process: dict[str, Any] = {}

    def is_free(self, now: datetime) -> bool:
        return self.holder is None or (self.expires_at is not None and self.expires_at <= now)

    def acquire(
        self,
        run_id: UUID,
        now: datetime,
        lease: timedelta,
        process: dict[str, Any],
        holder_is_dead: bool = False,
    ) -> None:
        """Take the lock; `holder_is_dead` (the caller checked the holder's process is gone)
        lets a run take over from a crashed one before its lease ends."""
        if not self.is_free(now) and not holder_is_dead:
            raise LockHeld(
                f"another reconciliation ({self.holder}) is running until "
                f"{self.expires_at:%H:%M:%S} UTC: nothing was sent; run again after it ends"
            )
        self._acquired(run_id=run_id, expires_at=now + lease, process=process)

    @event("Acquired")
    def _acquired(self, run_id: UUID, expires_at: datetime, process: dict[str, Any]) -> None:
        self.holder = run_id
        self.expires_at = expires_at
        self.process = process

    def renew(self, run_id: UUID, now: datetime, lease: timedelta) -> None:
        """Extend this run's lease; raises `LockLost` when another run holds the lock."""
        if self.holder != run_id:
            by = f"run {self.holder}" if self.holder is not None else "a release"
            raise LockLost(
                f"this run's reconciliation lock lease ran out and {by} took it over: "
                "nothing more was sent"
            )
        self._renewed(run_id=run_id, expires_at=now + lease)

    @event("Renewed")
    def _renewed(self, run_id: UUID, expires_at: datetime) -> None:
        self.expires_at = expires_at

    def release(self, run_id: UUID) -> None:
        if self.holder == run_id:
            self._released(run_id=run_id)

    @event("Released")
    def _released(self, run_id: UUID) -> None:
        self.holder = None
        self.expires_at = None
        self.process = {}
