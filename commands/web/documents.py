"""The JSON documents of the CLI's `--json`, served as the CLI prints them.

`audit` and `reconciliations` call the very functions their commands call. `positions`
builds its document from `commands.positions`' own row and account builders; the few
lines that assemble them live inside that command's printing functions, so they are
repeated here, and tests/web prove both give the same document.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from commands.errors import CommandError
from commands.output import jsonable
from commands.positions import _position_document, parse_as_of
from commands.web.context import WebContext
from commands.web.params import BadQuery
from projections import books_at
from projections.queries.audit import audit_document
from projections.queries.reconciliations import reconciliations_document
from projections.queries.views import Views

BOOKS = ("local", "broker", "diff")


def json_text(document: Any) -> str:
    """Byte for byte what `commands.output.print_json` writes."""
    return json.dumps(jsonable(document), indent=2) + "\n"


def parse_instant(text: str | None, context: WebContext) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_as_of(text, context.zone)
    except CommandError as error:
        raise BadQuery(str(error).replace("--as-of", "as_of", 1)) from None


def positions_document(context: WebContext, views: Views, book: str,
                       instant: datetime | None) -> dict[str, Any]:
    """`commands positions --book BOOK [--as-of ISO] --json`."""
    moment = instant or datetime.now(UTC)
    past = None if instant is None else books_at(context.ledger, instant, context.zone)
    if book == "diff":
        rows = past.diff() if past is not None else views.diff()
        return {
            "book": "diff",
            "as_of": moment,
            "positions": [
                {"symbol": r.symbol, "local_qty": r.local_qty, "broker_qty": r.broker_qty,
                 "open_qty": r.open_qty, "delta": r.delta}
                for r in rows
            ],
        }
    if book == "broker":
        if past is not None:
            positions, account = past.broker_book(), past.broker_account
        else:
            broker = views.broker_book()
            positions, account = broker.positions, broker.account
    else:
        positions, account = (past.local_book() if past is not None
                              else views.local_book()), None
    document: dict[str, Any] = {
        "book": book,
        "as_of": moment,
        "positions": [_position_document(row) for row in positions],
    }
    if book == "broker":
        document["account"] = None if account is None else account.document()
    return document


def audit(views: Views, day: date, symbol: str | None) -> dict[str, Any]:
    """`commands audit DAY [--symbol S] --json`."""
    return audit_document(views, day, symbol)


def reconciliations(views: Views, limit: int) -> dict[str, Any]:
    """`commands reconciliations --limit N --json`."""
    return reconciliations_document(views, limit)
