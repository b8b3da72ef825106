"""Holding the reconciliation lock: take it, keep its lease renewed while the run works,
and let it go.

The lock itself is an aggregate (`ledger.domain.reconciliation_lock`); this is the part
that needs a clock, the store and a thread. A run renews its lease every third of it from
a heartbeat thread, and again before every order it sends when the last renewal is that
old, so no send leaves with less than two thirds of a lease ahead of it. A run that finds
the lock taken over stops before its next send (`LockLost`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.domain.reconciliation_lock import LOCK_ID, LockHeld, LockLost, ReconciliationLock

if TYPE_CHECKING:
    from ledger.infrastructure.event_store import EventStore

log = logging.getLogger(__name__)

_SAVE_ATTEMPTS = 3


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_is_gone(process: dict[str, Any]) -> bool:
    """True only when the lock's holder ran on this host and its process no longer exists:
    a crashed run must not block every later one until its lease ends."""
    if process.get("host") != socket.gethostname() or not process.get("pid"):
        return False
    try:
        os.kill(int(process["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class HeldLock:
    """The lock while one run holds it."""

    def __init__(
        self, ledger: EventStore, run_id: UUID, lease: timedelta, now: Callable[[], datetime]
    ) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.lease = lease
        self.now = now
        self.interval = lease.total_seconds() / 3
        self._mutex = threading.Lock()
        self._lost: str | None = None
        self._renewed = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls, ledger: EventStore, run_id: UUID, lease: timedelta, now: Callable[[], datetime]
    ) -> HeldLock:
        try:
            lock: ReconciliationLock = ledger.repository.get(LOCK_ID)
        except AggregateNotFoundError:
            lock = ReconciliationLock(id=LOCK_ID)
        moment = now()
        lock.acquire(
            run_id,
            moment,
            lease,
            this_process(),
            holder_is_dead=not lock.is_free(moment) and process_is_gone(lock.process),
        )
        try:
            ledger.save(lock)
        except IntegrityError:
            raise LockHeld(
                "another reconciliation started at the same moment: nothing was sent; "
                "run again after it ends"
            ) from None
        held = cls(ledger, run_id, lease, now)
        held._thread = threading.Thread(target=held._beat, name="reconcile-lease", daemon=True)
        held._thread.start()
        return held

    def check(self) -> None:
        """Before a send: raises `LockLost` if another run took the lock; renews the lease
        when the last renewal is a third of it old."""
        with self._mutex:
            if self._lost is not None:
                raise LockLost(self._lost)
            if time.monotonic() - self._renewed >= self.interval:
                self._renew()

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                with self._mutex:
                    if self._lost is not None:
                        return
                    self._renew()
            except LockLost:
                return
            except PersistenceError as error:
                # The store may be back by the next beat; `check` tries again before a send.
                log.warning("could not renew the reconciliation lock: %s", error)

    def _renew(self) -> None:
        for attempt in range(_SAVE_ATTEMPTS):
            lock: ReconciliationLock = self.ledger.repository.get(LOCK_ID)
            try:
                lock.renew(self.run_id, self.now(), self.lease)
            except LockLost as error:
                self._lost = str(error)
                raise
            try:
                self.ledger.save(lock)
            except IntegrityError:
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
                continue
            self._renewed = time.monotonic()
            return

    def release(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for _ in range(_SAVE_ATTEMPTS):
            lock: ReconciliationLock = self.ledger.repository.get(LOCK_ID)
            lock.release(self.run_id)
            try:
                self.ledger.save(lock)
                return
            except IntegrityError:
                continue
        log.warning("could not release the reconciliation lock; its lease ends it")
