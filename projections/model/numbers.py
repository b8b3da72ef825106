"""Exact decimals for the views: one arithmetic context and one canonical text form.

The same events must give byte-identical views whether they were folded in one pass,
in pages of any size, or reloaded from either database between pages. Two things make
that hold: every rounding happens in one explicit context (never the caller's global
one), and every stored number is written in one canonical form, so `Decimal("2.50")`
and `Decimal("2.5")` (equal values, different exponents) are the same text.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

# Division (average prices) and long products are rounded to 28 significant digits,
# Python's default, but fixed here so a caller's `decimal.getcontext()` cannot change
# a book. Correctly rounded operations depend only on the operands' values, so equal
# values with different exponents give equal results.
CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
ONE = Decimal(1)


def canonical(value: Decimal) -> str:
    """Plain digits, no exponent, no trailing zeros, no negative zero: 10, 0.5, -3.25."""
    if not value:
        return "0"
    text = str(value)  # faster than format(); exact, but may use an exponent
    if "E" in text:
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse(text: str) -> Decimal:
    return Decimal(text)


def optional_parse(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def to_decimal(value: object) -> Decimal:
    """A decimal from an event field that may hold a Decimal, an int or a decimal string.

    Broker snapshots carry whatever the sync stored; a float is refused because its
    decimal expansion is not what the broker said.
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value.strip())
    raise TypeError(f"expected a decimal, got {type(value).__name__} {value!r}")
