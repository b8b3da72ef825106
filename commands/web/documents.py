"""The JSON documents of the CLI's `--json`, served as the CLI prints them.

Each calls the very functions its command calls (`projections.queries`); tests/web prove
both give the same document.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from commands.errors import CommandError
from commands.output import jsonable
from commands.positions import parse_as_of
from commands.web.context import WebContext
from commands.web.params import BadQuery
from projections import books_at
from projections.queries.audit import audit_document
from projections.queries.positions import book_document, diff_document
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
        return diff_document(moment, past.diff() if past is not None else views.diff())
    if book == "local":
        return book_document(book, moment,
                             past.local_book() if past is not None else views.local_book())
    if past is not None:
        return book_document(book, moment, past.broker_book(), past.broker_account)
    broker = views.broker_book()
    return book_document(book, moment, broker.positions, broker.account)


def audit(views: Views, day: date, symbol: str | None) -> dict[str, Any]:
    """`commands audit DAY [--symbol S] --json`."""
    return audit_document(views, day, symbol)


def reconciliations(views: Views, limit: int) -> dict[str, Any]:
    """`commands reconciliations --limit N --json`."""
    return reconciliations_document(views, limit)
