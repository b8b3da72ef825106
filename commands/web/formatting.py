"""How values read on the page: quantities and money exact, prices to their tick, times in
the ledger's zone. The JSON documents keep every value exact."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from commands.output import shown_price

_CENT = Decimal("0.01")


def number(value: Decimal | None) -> str:
    """Exact, with thousands separators: 1,234.5 (never 1234.4999...)."""
    if value is None:
        return ""
    text = format(value, ",f")
    return "0" if text == "-0" else text


def money(value: Decimal | None) -> str:
    """Exact, and at least to the cent: 187.2 -> 187.20 (adding zeros loses nothing)."""
    if value is None:
        return ""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        # More digits than the context holds: shown as it is.
        with suppress(InvalidOperation):
            value = value.quantize(_CENT)
    return number(value)


def price(value: Decimal | None) -> str:
    """A price as the market quotes it (`commands.output.shown_price`): 187.96, 0.1235."""
    if value is None:
        return ""
    if not value:
        return "0.00"  # a flat book's average price: never -0.00 or 0E-8 as 0.00000000
    return number(shown_price(value))


def signed(value: Decimal | None) -> str:
    if value is None:
        return ""
    return ("+" if value > 0 else "") + number(value)


def moment(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def clock(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%H:%M:%S")


def short(value: Any, length: int = 12) -> str:
    """Enough of an id to tell rows apart; the full id is in the element's title."""
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[: length - 1] + "…"
