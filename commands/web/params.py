"""Query values as people type them into an address bar: checked at the door.

Every refusal is a `BadQuery` whose message names the parameter and what it accepts; the
app answers it with a 400 page (or a JSON error on /api), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from zoneinfo import ZoneInfo

from ledger.domain.values import InvalidInput, normalise_symbol
from projections.queries.audit import parse_day


class BadQuery(ValueError):
    """A query value the page cannot use; the message is shown to the user as is."""


def text(args: Mapping[str, str], name: str) -> str | None:
    """The parameter's value, or None when it is absent or blank (an empty form field)."""
    value = args.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def day(args: Mapping[str, str], name: str, zone: ZoneInfo) -> date | None:
    value = text(args, name)
    if value is None:
        return None
    return day_value(value, name, zone)


def day_value(value: str, name: str, zone: ZoneInfo) -> date:
    try:
        return parse_day(value, zone)
    except InvalidInput as error:
        raise BadQuery(f"{name}: {error}") from None


def symbol(args: Mapping[str, str], name: str = "symbol") -> str | None:
    value = text(args, name)
    if value is None:
        return None
    try:
        return normalise_symbol(value)
    except InvalidInput as error:
        raise BadQuery(f"{name}: {error}") from None


def choice(args: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    value = text(args, name)
    if value is None:
        return None
    value = value.lower()
    if value not in allowed:
        raise BadQuery(f"{name} {value!r} is not one of: {', '.join(allowed)}")
    return value


def whole(args: Mapping[str, str], name: str, default: int, *, lowest: int = 1,
          highest: int = 1_000_000) -> int:
    value = text(args, name)
    if value is None:
        return default
    # Length first: int() of thousands of digits is slow, and refused past 4300.
    plain = len(value) <= 12 and value.isascii() and value.isdigit()
    if not plain or not lowest <= int(value) <= highest:
        raise BadQuery(
            f"{name} {value!r} is not a whole number from {lowest} to {highest}"
        )
    return int(value)


def identifier(args: Mapping[str, str], name: str) -> str | None:
    """An order id, client order id or broker order id: printable, of a sane length."""
    value = text(args, name)
    if value is None:
        return None
    if len(value) > 128 or not value.isprintable():
        raise BadQuery(f"{name}: an order id is at most 128 printable characters")
    return value
