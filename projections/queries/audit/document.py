"""The audit document of one trading day: its timeline, both books at its open and close,
what each book realised, and what the day left unresolved."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ledger.domain.values import normalise_symbol
from projections.model.fold import FoldState
from projections.model.numbers import ZERO, canonical
from projections.queries.audit.day import day_span
from projections.queries.audit.orders import unresolved
from projections.queries.audit.pnl import BOOKS, DayAudit
from projections.queries.audit.timeline import narrowed
from projections.queries.drift import windows_between
from projections.queries.views import Views, position_rows


def _exact(value: Decimal) -> Decimal:
    """One written form per value (29, not 29.0): a book read from the index and the same
    book folded here must print alike."""
    return Decimal(canonical(value))


def _books(state: FoldState, symbol: str | None) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [
            {"symbol": r.symbol, "qty": _exact(r.qty), "avg_price": _exact(r.avg_price),
             "realised_pnl": _exact(r.realised_pnl)}
            for r in position_rows(book.positions)
            if symbol is None or r.symbol == symbol
        ]
        for name, book in (("local", state.local), ("broker", state.broker))
    }


def _pnl(audit: DayAudit, symbol: str | None) -> list[dict[str, Any]]:
    return [
        {"symbol": name, **{book: _exact(amount) for book, amount in amounts.items()}}
        for name, amounts in sorted(audit.pnl.items())
        if symbol is None or name == symbol
    ]


def audit_document(views: Views, day: date, symbol: str | None = None) -> dict[str, Any]:
    """Everything that happened on `day` (a trading day in the views' time zone), in order,
    with both books at its open and close, its realised P&L and what it left unresolved.

    Values are plain Python (Decimal, datetime, UUID): `commands.output.jsonable` turns the
    document into JSON with decimal strings. `views` must have caught up with the events.
    """
    wanted = None if symbol is None else normalise_symbol(symbol)
    span = day_span(views, day)
    audit = DayAudit.start(views, span)
    state = audit.state
    opening = _books(state, wanted)
    opening_account = None if state.account is None else state.account.document()
    audit.run()
    timeline = [
        fields
        for entry in audit.entries
        if (fields := entry.fields if wanted is None else narrowed(entry, wanted)) is not None
    ]
    pnl = _pnl(audit, wanted)
    return {
        "day": span.day,
        "timezone": views.timezone,
        "starts_at": span.starts_at,
        "ends_at": span.ends_at,
        "symbol": wanted,
        "events": span.events,
        "first_seq": span.first_seq if span.events else None,
        "last_seq": span.last_seq if span.events else None,
        "timeline": timeline,
        "opening": opening,
        "closing": _books(state, wanted),
        "broker_account": {
            "opening": opening_account,
            "closing": None if state.account is None else state.account.document(),
        },
        "pnl": pnl,
        "pnl_total": {book: _exact(sum((row[book] for row in pnl), ZERO)) for book in BOOKS},
        "pnl_notes": [note for note in audit.notes if wanted is None or note["symbol"] == wanted],
        # The orders open at the day's start are those the previous close listed.
        "unresolved": unresolved(views, span, state, audit.opening_order_ids, wanted),
        # When the watchdog of `commands run` found the books apart (began or ended this day).
        "drift_windows": [
            window.document()
            for window in windows_between(views.ledger, span.first_seq, span.last_seq)
            if wanted is None or any(item["symbol"] == wanted for item in window.symbols)
        ],
    }
