"""Chart geometry for an inline SVG: two step lines (local, broker) on shared axes.

Values stay Decimal until they become coordinates: a coordinate is geometry, not money,
so it may be a float. Axis labels are "nice" round values (1, 2 or 5 times a power of
ten), exact decimals, so no label is a rounded number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from projections.queries.history import Point

WIDTH, HEIGHT = 860, 280
LEFT, RIGHT, TOP, BOTTOM = 96, 16, 16, 40
TICKS = 4


@dataclass(frozen=True)
class Tick:
    at: float  # the coordinate along its axis
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot: tuple[int, int, int, int]  # left, top, right, bottom of the plotting area
    local_path: str
    broker_path: str
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    last: Point | None

    @property
    def empty(self) -> bool:
        return self.last is None


def _nice_step(span: Decimal) -> Decimal:
    """The round step that cuts `span` into about TICKS parts."""
    raw = span / TICKS
    exponent = raw.adjusted()
    unit = Decimal(1).scaleb(exponent)
    for factor in (1, 2, 5, 10):
        step = unit * factor
        if step >= raw:
            return step
    return unit * 10


def _y_range(points: list[Point]) -> tuple[Decimal, Decimal, Decimal]:
    values = [v for p in points for v in (p.local, p.broker)]
    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) / 10 if low else Decimal(1)
        low, high = low - pad, high + pad
    step = _nice_step(high - low)
    low = (low / step).to_integral_value(rounding=ROUND_FLOOR) * step
    high = (high / step).to_integral_value(rounding=ROUND_CEILING) * step
    return low, high, step


def _label(value: Decimal) -> str:
    text = format(value.normalize(), ",f")
    return "0" if text in ("-0", "0") else text


def chart(points: list[Point], zone: ZoneInfo) -> Chart:
    left, top, right, bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    if not points:
        return Chart(WIDTH, HEIGHT, (left, top, right, bottom), "", "", [], [], None)
    low, high, step = _y_range(points)
    start, end = points[0].at, points[-1].at
    seconds = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return left + (right - left) * (at - start).total_seconds() / seconds

    def y(value: Decimal) -> float:
        return bottom - (bottom - top) * float((value - low) / (high - low))

    def path(values: list[Decimal]) -> str:
        # A step line: a book holds its value until the next event changes it.
        parts = [f"M{x(points[0].at):.1f},{y(values[0]):.1f}"]
        for point, value in zip(points[1:], values[1:], strict=True):
            parts.append(f"H{x(point.at):.1f}V{y(value):.1f}")
        return "".join(parts)

    y_ticks = []
    tick = low
    while tick <= high:
        y_ticks.append(Tick(y(tick), _label(tick)))
        tick += step
    x_ticks = [
        Tick(x(at), at.astimezone(zone).strftime("%Y-%m-%d %H:%M"))
        for at in ((start, end) if end > start else (start,))
    ]
    return Chart(
        WIDTH, HEIGHT, (left, top, right, bottom),
        path([p.local for p in points]), path([p.broker for p in points]),
        y_ticks, x_ticks, points[-1],
    )
