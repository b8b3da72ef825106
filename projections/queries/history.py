"""Both books over time, for the chart: each book's value, or one symbol's quantity.

Read at a cost bounded whatever the history's length. The audit index holds both books at
the close of every trading day, so the last `MAX_DAYS` days cost one row each. When those
days hold few events (`FINE_EVENTS`), they are folded again with the views' own
`FoldState` from the first day's opening, for a point after every event that moves a book.

A value is the broker account's cash plus each position at the prices of the latest broker
sync at that moment (a symbol that sync did not price keeps the last price seen for it, else
its average cost): the same definition as the books page, at each moment of the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.engine.audit_index import AuditDay, load_opening
from projections.engine.day_replay import opening_state
from projections.engine.replay import replay
from projections.engine.tables import AUDIT_DAYS, day_from_row
from projections.model.catalogue import BookEffect, kind_of
from projections.model.fold import FoldState
from projections.model.positions import Position
from projections.queries.reconcile_books import last_prices
from projections.queries.views import Views

ZERO = Decimal(0)
MAX_DAYS = 120
FINE_EVENTS = 5_000


@dataclass(frozen=True)
class Point:
    at: datetime
    local: Decimal
    broker: Decimal


@dataclass(frozen=True)
class Series:
    what: str  # "value", or a symbol: its quantity
    resolution: str  # "event" or "day"
    points: list[Point]


class _Prices:
    """The latest broker price per symbol as the history goes; loaded snapshots are kept."""

    def __init__(self, views: Views) -> None:
        self.views = views
        self.by_symbol: dict[str, Decimal] = {}
        self._loaded: dict[UUID, dict[str, Decimal]] = {}

    def from_snapshot(self, snapshot_id: UUID) -> None:
        if snapshot_id not in self._loaded:
            snapshot = self.views.ledger.repository.get(snapshot_id)
            self._loaded[snapshot_id] = last_prices(list(snapshot.positions))
        self.by_symbol.update(self._loaded[snapshot_id])

    def from_positions(self, positions: list[dict[str, Any]]) -> None:
        self.by_symbol.update(last_prices(positions))

    def value(self, positions: dict[str, Position], cash: Decimal) -> Decimal:
        total = cash
        for symbol, position in positions.items():
            total += position.qty * self.by_symbol.get(symbol, position.avg_price)
        return total


def _point(at: datetime, state: FoldState, prices: _Prices, symbol: str | None
           ) -> Point | None:
    """None: no value yet. Before the first sync there is no cash to count, and a line
    that leaps at the first sync would only draw the missing cash."""
    if symbol is not None:
        local = state.local.positions.get(symbol)
        broker = state.broker.positions.get(symbol)
        return Point(at, local.qty if local else ZERO, broker.qty if broker else ZERO)
    if state.account is None:
        return None
    cash = state.account.cash
    return Point(at, prices.value(state.local.positions, cash),
                 prices.value(state.broker.positions, cash))


def _recent_days(views: Views) -> list[AuditDay]:
    with views.store.read() as tx:
        rows = views.store.select(tx, AUDIT_DAYS, order=f'"first_seq" DESC LIMIT {MAX_DAYS}')
    return [day_from_row(row) for row in reversed(rows)]


def _by_event(views: Views, days: list[AuditDay], symbol: str | None) -> list[Point]:
    first = days[0].first_seq
    state = opening_state(views, days[0].day, first).state
    prices = _Prices(views)
    if state.account is not None:
        prices.from_snapshot(state.account.snapshot_id)
    points: list[Point] = []

    def step(seq: int, event: Any) -> None:
        if seq == first:
            _add(points, _point(event.timestamp, state, prices, symbol))
        state.apply(seq, event)
        book = kind_of(type(event)).book
        if book is not BookEffect.NONE:
            if book is BookEffect.RESTARTS:
                prices.from_positions(list(event.positions))
            _add(points, _point(event.timestamp, state, prices, symbol))

    replay(views, state, first, days[-1].last_seq, step=step)
    return points


def _add(points: list[Point], point: Point | None) -> None:
    if point is not None:
        points.append(point)


def _by_day(views: Views, days: list[AuditDay], symbol: str | None, now: datetime
            ) -> list[Point]:
    prices = _Prices(views)
    points = []
    for day in days:
        state = FoldState(views.zone)
        load_opening(state, day.closing)
        if state.account is not None:
            prices.from_snapshot(state.account.snapshot_id)
        ends = datetime.combine(day.day + timedelta(days=1), time(0), tzinfo=views.zone)
        _add(points, _point(min(ends, now), state, prices, symbol))
    return points


def book_history(views: Views, symbol: str | None, now: datetime) -> Series:
    """Points oldest first; `views` must have caught up with the events."""
    days = [day for day in _recent_days(views) if day.closing]
    what = symbol or "value"
    if not days:
        return Series(what, "event", [])
    if sum(day.events for day in days) <= FINE_EVENTS:
        points = _by_event(views, days, symbol)
        resolution = "event"
    else:
        points = _by_day(views, days, symbol, now)
        resolution = "day"
    return Series(what, resolution, points)


def until(series: Series, now: datetime) -> Series:
    """The books hold since their last change: carry both lines on to `now`. Kept apart
    from `book_history` so that the history can be cached while the clock moves on."""
    points = series.points
    if not points or points[-1].at >= now:
        return series
    return Series(series.what, series.resolution,
                  [*points, Point(now, points[-1].local, points[-1].broker)])
