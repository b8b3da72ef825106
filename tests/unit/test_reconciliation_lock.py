"""The reconciliation lock's rules, as plain values: taking, renewing, losing, releasing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ledger.domain.reconciliation_lock import LOCK_ID, LockHeld, LockLost, ReconciliationLock

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
HERE = {"host": "h", "pid": 1}


def test_a_renewed_lease_keeps_a_long_run_the_holder() -> None:
    lock, first, second = ReconciliationLock(id=LOCK_ID), uuid4(), uuid4()
    lock.acquire(first, NOW, LEASE, HERE)
    for minute in range(1, 20):  # far longer than one lease
        lock.renew(first, NOW + timedelta(seconds=20 * minute), LEASE)
        with pytest.raises(LockHeld):
            lock.acquire(second, NOW + timedelta(seconds=20 * minute + 1), LEASE, HERE)
    assert lock.holder == first


def test_a_run_whose_lease_ran_out_and_was_taken_over_cannot_renew() -> None:
    lock, first, second = ReconciliationLock(id=LOCK_ID), uuid4(), uuid4()
    lock.acquire(first, NOW, LEASE, HERE)
    lock.acquire(second, NOW + LEASE + timedelta(seconds=1), LEASE, HERE)
    with pytest.raises(LockLost, match=f"run {second} took it over"):
        lock.renew(first, NOW + LEASE + timedelta(seconds=2), LEASE)
    lock.release(first)  # a loser's release leaves the new holder alone
    assert lock.holder == second


def test_a_run_whose_lock_was_released_meanwhile_cannot_renew() -> None:
    lock, first, second = ReconciliationLock(id=LOCK_ID), uuid4(), uuid4()
    lock.acquire(first, NOW, LEASE, HERE)
    lock.acquire(second, NOW + LEASE * 2, LEASE, HERE)
    lock.release(second)
    with pytest.raises(LockLost, match="a release took it over"):
        lock.renew(first, NOW + LEASE * 3, LEASE)
