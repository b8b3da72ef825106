"""How results reach people (rich tables) and programs (one JSON document on stdout)."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Any
from uuid import UUID

import click
from rich.console import Console, ConsoleDimensions
from rich.text import Text

# Every command that can print JSON takes the same flag, worded the same way.
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")

# A pipe or a file has no width: wrapping there only cuts a line that a program, or a
# person searching it, wants whole. Rich lays a table out to fit its content, so this only
# lifts the limit; it pads nothing.
UNWRAPPED_WIDTH = 1_000_000

# Characters that change how a terminal shows what comes after them. C0, DEL and C1 (the
# ESC of a colour code, a carriage return that overwrites the line, a bell) and the
# bidirectional controls that reorder text (the "Trojan Source" trick).
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_VISIBLE = {
    code: repr(chr(code))[1:-1] for code in [*range(0x20), *range(0x7F, 0xA0)]
} | {ord(char): f"\\u{ord(char):04x}" for char in _BIDI_CONTROLS}


def visible(text: str) -> str:
    """Text as a terminal can show it without being steered by it: control characters
    become their Python escapes (ESC shows as \\x1b). JSON stays exact; this is for eyes."""
    return text.translate(_VISIBLE)


def literal(text: str, style: str = "") -> Text:
    """Stored or broker text for a rich renderable: never read as markup or emoji codes."""
    return Text(visible(text), style=style)


class TerminalConsole(Console):
    """A rich console for a terminal or a pipe, that shows every string it is given as
    visible text (see `visible`) and, off a terminal, never wraps."""

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self.is_terminal:
            return dimensions
        return ConsoleDimensions(UNWRAPPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        # Overriding the getter drops the inherited setter; rich's own code may still set it.
        assert Console.size.fset is not None
        Console.size.fset(self, new_size)

    def render_str(self, text: str, **options: Any) -> Text:
        # Every string reaches the screen through here: table cells, titles, messages.
        return super().render_str(visible(text), **options)


# Stored and broker text (reasons, sources, client order ids, broker messages) is data:
# these two print a string as it is, never as Rich markup (a reason "[/bold] x" would
# crash it, "[momentum] breakout" would lose a word) nor as emoji codes. Style with
# `literal(text, style)` or a `Text`, never with markup in a string.
literal_console = TerminalConsole(highlight=False, soft_wrap=True, markup=False, emoji=False)
error_console = TerminalConsole(
    stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False
)
# Reads Rich markup: for fixed text only (rebuild's "[bold]" cell). Never give it stored or
# broker text: print that with `literal_console`.
console = TerminalConsole(highlight=False, soft_wrap=True)


def jsonable(value: Any) -> Any:
    """Decimals become exact strings: a JSON number would invite a float on the other side."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), indent=2) + "\n")


def decimal_text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


# Alpaca quotes and takes prices to the cent from $1 up and to 4 decimals below (as
# `ledger.domain.planning.limit_price_for` prices its orders).
_CENT = Decimal("0.01")
_SUB_DOLLAR = Decimal("0.0001")
_SIGNIFICANT = 4


def shown_price(value: Decimal) -> Decimal:
    """A price as the market quotes it, for eyes: 187.9636... -> 187.96, 0.123456 -> 0.1235.

    An average price is a division and may never end; shown whole it reads as noise. A
    price too small for 4 decimals to tell (a crypto pair's) keeps 4 significant digits
    instead of reading as 0.0000. Storage and JSON keep the exact value.
    """
    if not value.is_finite() or not value:
        return value
    places = 2 if abs(value) >= 1 else max(4, _SIGNIFICANT - 1 - value.adjusted())
    try:
        shown = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if abs(shown) >= 1:  # 0.99995 rounds up to a dollar price: shown to the cent
            shown = shown.quantize(_CENT, rounding=ROUND_HALF_UP)
        elif places > 4:  # the extra places are for digits, not zeros
            tick = shown.quantize(_SUB_DOLLAR)
            shown = tick if tick == shown else shown.normalize()
    except InvalidOperation:  # more digits than the context holds: shown as it is
        return value
    return shown


def price_text(value: Decimal | None) -> str:
    """A price for a terminal: rounded to its tick (`shown_price`)."""
    return "" if value is None else decimal_text(shown_price(value))
