"""The day's timeline: one entry per event, as the catalogue describes it, and the same
entries narrowed to one symbol."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from projections.model.catalogue import EventKind
from projections.model.records import OrderRecord
from projections.model.timeline import blank_entry, order_fields


@dataclass
class Entry:
    symbols: frozenset[str] | None  # None: the whole account (syncs, reconciliation runs)
    fields: dict[str, Any]


def describe(seq: int, event: Any, kind: EventKind, record: OrderRecord | None,
             zone: ZoneInfo) -> Entry:
    """The timeline entry of one event; `record` is its order after the event, if any."""
    entry = blank_entry(seq, event, zone)
    if kind.of_order and record is not None:
        entry.update(order_fields(record))
    kind.describe(event, record, entry)
    return Entry(kind.symbols(event, record), entry)


def _only(items: Iterable[Any], symbol: str) -> list[Any]:
    return [
        item for item in items
        if not isinstance(item, dict) or str(item.get("symbol", "")).upper() == symbol
    ]


def narrowed(entry: Entry, symbol: str) -> dict[str, Any] | None:
    """The entry as it concerns one symbol, or None when it does not concern it. A sync or
    a plan is kept with only that symbol's positions, orders and rows."""
    if entry.symbols is not None and symbol not in entry.symbols:
        return None
    fields = dict(entry.fields)
    details = dict(fields["details"])
    for key in ("positions", "open_orders", "rows", "orders"):
        if isinstance(details.get(key), list):
            details[key] = _only(details[key], symbol)
    fields["details"] = details
    return fields
