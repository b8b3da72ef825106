"""Fixtures for the view tests: a clock the events read, and views over the store under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from ledger.application import Ledger
from projections import Views
from testing.clock import Clock, stamped_by
from tests.projections.script import Script


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Now for every event, from 2026-01-05 14:30 UTC on, a millisecond apart."""
    clock = Clock(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))
    with stamped_by(clock):
        yield clock


@pytest.fixture
def script(ledger: Ledger) -> Script:
    return Script(ledger)


@pytest.fixture
def make_views(ledger: Ledger) -> Callable[..., Views]:
    def make(page_size: int = 10_000, target: Ledger | None = None) -> Views:
        return Views(target or ledger, timezone="America/New_York", page_size=page_size)

    return make
