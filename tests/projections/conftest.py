"""Fixtures for the view tests: a clock the events read, and views over the store under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing import domain

from ledger.application import Ledger
from projections import Views
from tests.projections.script import Script


class Clock:
    """What `datetime.now` is for events: each reading moves on a millisecond, so events
    recorded one after another keep their order."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        reading = self.now
        self.now += timedelta(milliseconds=1)
        return reading

    def set(self, when: datetime) -> None:
        self.now = when


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))
    # Every event takes its timestamp from this function of eventsourcing's domain module.
    monkeypatch.setattr(domain, "datetime_now_with_tzinfo", clock)
    yield clock


@pytest.fixture
def script(ledger: Ledger) -> Script:
    return Script(ledger)


@pytest.fixture
def make_views(ledger: Ledger) -> Callable[..., Views]:
    def make(page_size: int = 10_000, target: Ledger | None = None) -> Views:
        return Views(target or ledger, timezone="America/New_York", page_size=page_size)

    return make
