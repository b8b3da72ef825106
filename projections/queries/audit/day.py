"""A trading day as the audit takes it: the day a user typed, and where its events are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ledger.domain.values import InvalidInput
from projections.engine.tables import AUDIT_DAYS
from projections.queries.views import Views

_DAY_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: str, zone: ZoneInfo, now: datetime | None = None) -> date:
    """A trading day as a user types it: YYYY-MM-DD, not after today in the ledger's zone."""
    value = text.strip()
    try:
        if not _DAY_TEXT.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date: use YYYY-MM-DD, for example 2026-01-05"
        ) from None
    if day.year < 1970:
        raise InvalidInput(
            f"{day.isoformat()} is before 1970: the ledger records nothing that early"
        )
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    if day > today:
        raise InvalidInput(
            f"{day.isoformat()} is in the future (today is {today.isoformat()} in {zone.key}): "
            "nothing has happened on it yet"
        )
    return day


@dataclass(frozen=True)
class DaySpan:
    """A trading day and where its events are. No events: first_seq == last_seq + 1, and
    last_seq is the last notification before the day (0: none)."""

    day: date
    starts_at: datetime  # local midnight, in the ledger's zone
    ends_at: datetime  # the next local midnight: 23 or 25 hours later across a DST change
    first_seq: int
    last_seq: int
    events: int


def day_span(views: Views, day: date) -> DaySpan:
    starts_at = datetime.combine(day, time(0), tzinfo=views.zone)
    ends_at = datetime.combine(day + timedelta(days=1), time(0), tzinfo=views.zone)
    found = views.audit_day(day)
    if found is not None:
        return DaySpan(day, starts_at, ends_at, found.first_seq, found.last_seq, found.events)
    later = views.first_seq_on_or_after(day)
    # Everything at or below the cut happened before the day (ids may have gaps: fine).
    cut = later - 1 if later is not None else (views.store.read_position() or 0)
    return DaySpan(day, starts_at, ends_at, cut + 1, cut, 0)


def listed_days(views: Views, limit: int) -> list[tuple[str, int]]:
    """The newest `limit` days of the audit index, newest first: (day, events)."""
    with views.store.read() as tx:
        rows = views.store.select(tx, AUDIT_DAYS, columns=("day", "events"),
                                  order=f'"day" DESC LIMIT {limit}')
    return [(row[0], row[1]) for row in rows]
