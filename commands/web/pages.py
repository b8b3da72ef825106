"""The routes: each catches the views up, reads them, and renders a template or a document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from commands.web import documents, params
from commands.web.books import banners
from commands.web.context import Fresh, WebContext
from commands.web.svg import chart
from projections.queries.audit import listed_days
from projections.queries.books import Books, read_books
from projections.queries.history import MAX_DAYS, Series, book_history, until
from projections.queries.reconciliations import DEFAULT_LIMIT
from projections.queries.transactions import PURPOSES, STATUSES, OrderQuery, transactions

pages = Blueprint("pages", __name__)

# The audit page shows this many timeline rows; the JSON endpoint has them all.
AUDIT_ROWS = 2_000
DAYS_LISTED = 60


def context() -> WebContext:
    found: WebContext = current_app.extensions["tradeledger"]
    return found


def _json(document: Any) -> Response:
    return Response(documents.json_text(document), mimetype="application/json")


def _series(fresh: Fresh, symbol: str | None, now: datetime,
            web: WebContext | None = None) -> Series:
    web = web or context()
    series = web.cached(("history", symbol), fresh,
                        lambda: book_history(fresh.views, symbol, now))
    return until(series, now)


# -- pages ----------------------------------------------------------------------------------


def _books(web: WebContext, fresh: Fresh, now: datetime) -> Books:
    return web.cached("books", fresh,
                      lambda: read_books(fresh.views, fresh.position, now, web.explained))


def warm_up(web: WebContext) -> None:
    """Read what the books page reads, before the first visitor: on a long history the
    first explanation of every differing symbol takes seconds (see `explained`)."""
    fresh = web.fresh()
    now = datetime.now(UTC)
    _books(web, fresh, now)
    _series(fresh, None, now, web)


@pages.get("/")
def books() -> str:
    web = context()
    fresh = web.fresh()
    now = datetime.now(UTC)
    found = _books(web, fresh, now)
    series = _series(fresh, None, now)
    return render_template(
        "books.html", books=found, banners=banners(found, now), now=now,
        series=series, chart=chart(series.points, web.zone),
    )


@pages.get("/transactions")
def transactions_page() -> str:
    web = context()
    args = request.args
    query = OrderQuery(
        day=params.day(args, "day", web.zone),
        symbol=params.symbol(args),
        purpose=params.choice(args, "purpose", PURPOSES),
        status=params.choice(args, "status", STATUSES),
        ident=params.identifier(args, "id"),
    )
    page = params.whole(args, "page", 1)
    fresh = web.fresh()
    found = transactions(fresh.views, query, page, web.rationale)
    filters = {k: v for k, v in args.items() if k not in ("page", "token") and v.strip()}
    return render_template("transactions.html", result=found, query=query, filters=filters,
                           purposes=PURPOSES, statuses=STATUSES)


@pages.get("/audit")
def audit_page() -> str:
    return _audit(params.text(request.args, "day"))


@pages.get("/audit/<day>")
def audit_day_page(day: str) -> str:
    return _audit(day)


def _audit(day: str | None) -> str:
    web = context()
    wanted = None if day is None else params.day_value(day, "day", web.zone)
    symbol = params.symbol(request.args)
    fresh = web.fresh()
    document = None
    if wanted is not None:
        document = web.cached(("audit", wanted, symbol), fresh,
                              lambda: documents.audit(fresh.views, wanted, symbol))
    return render_template("audit.html", document=document, day=wanted, symbol=symbol,
                           days=listed_days(fresh.views, DAYS_LISTED), rows=AUDIT_ROWS,
                           holdings=[] if document is None else holdings(document))


def holdings(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any] | None]]]:
    """Per symbol: local open, local close, broker open, broker close (None: not held)."""
    cells = {
        (book, moment, row["symbol"]): row
        for moment in ("opening", "closing")
        for book in ("local", "broker")
        for row in document[moment][book]
    }
    symbols = sorted({symbol for _, _, symbol in cells})
    order = [(b, m) for b in ("local", "broker") for m in ("opening", "closing")]
    return [(s, [cells.get((b, m, s)) for b, m in order]) for s in symbols]


@pages.get("/reconciliations")
def reconciliations_page() -> str:
    web = context()
    limit = params.whole(request.args, "limit", DEFAULT_LIMIT, highest=10_000)
    fresh = web.fresh()
    document = web.cached(("runs", limit), fresh,
                          lambda: documents.reconciliations(fresh.views, limit))
    return render_template("reconciliations.html", document=document, limit=limit)


@pages.get("/chart")
def chart_page() -> str:
    web = context()
    symbol = params.symbol(request.args)
    fresh = web.fresh()
    now = datetime.now(UTC)
    series = _series(fresh, symbol, now)
    held = sorted(
        {row.symbol for row in fresh.views.local_book()}
        | {row.symbol for row in fresh.views.broker_book().positions}
    )
    return render_template("chart.html", series=series, chart=chart(series.points, web.zone),
                           symbol=symbol, symbols=held, max_days=MAX_DAYS)


# -- the CLI's JSON documents ---------------------------------------------------------------


@pages.get("/api/positions")
def positions_json() -> Response:
    web = context()
    book = params.choice(request.args, "book", documents.BOOKS) or "local"
    instant = documents.parse_instant(params.text(request.args, "as_of"), web)
    fresh = web.fresh()
    return _json(documents.positions_document(web, fresh.views, book, instant))


@pages.get("/api/audit/<day>")
def audit_json(day: str) -> Response:
    web = context()
    wanted = params.day_value(day, "day", web.zone)
    symbol = params.symbol(request.args)
    fresh = web.fresh()
    return _json(web.cached(("audit", wanted, symbol), fresh,
                            lambda: documents.audit(fresh.views, wanted, symbol)))


@pages.get("/api/reconciliations")
def reconciliations_json() -> Response:
    web = context()
    limit = params.whole(request.args, "limit", DEFAULT_LIMIT, highest=10_000)
    fresh = web.fresh()
    return _json(web.cached(("runs", limit), fresh,
                            lambda: documents.reconciliations(fresh.views, limit)))
