"""The clock events are stamped by, in tests and benchmarks.

eventsourcing stamps every event it creates with `eventsourcing.domain.datetime_now_with_tzinfo()`
(through `CanCreateTimestamp.create_timestamp`) and names new aggregates with
`eventsourcing.domain.uuid4()`; `stamped_by` replaces them for as long as a history is written,
so each event lands on the moment, and the day, its writer chose.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from eventsourcing import domain


@contextmanager
def stamped_by(
    clock: Callable[[], datetime], ids: Callable[[], uuid.UUID] | None = None
) -> Iterator[None]:
    """Every event created inside is stamped by `clock` (and every new aggregate named by
    `ids`, when given); eventsourcing's own again afterwards, so the caller may go on."""
    saved = domain.datetime_now_with_tzinfo, domain.uuid4
    domain.datetime_now_with_tzinfo = clock
    if ids is not None:
        domain.uuid4 = ids
    try:
        yield
    finally:
        domain.datetime_now_with_tzinfo, domain.uuid4 = saved


class Clock:
    """Now, as a test sets it: each reading returns it and moves it on by `step`, so events
    recorded one after another keep their order."""

    def __init__(self, start: datetime, step: timedelta = timedelta(milliseconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        reading = self.now
        self.now += self.step
        return reading

    def set(self, when: datetime) -> None:
        self.now = when
