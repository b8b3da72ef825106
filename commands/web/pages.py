"""The routes: each catches the views up, reads them, and renders a template or a document."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from commands.web import documents, params
from commands.web.books import banners
from commands.web.context import Fresh, WebContext
from commands.web.svg import chart
from projections.queries.audit import listed_days
from projections.queries.books import Books, read_books
from projections.queries.drift import DriftWindow
from projections.queries.drift import open_drift as find_open_drift
from projections.queries.history import MAX_DAYS, Series, book_history, until
from projections.queries.reconciliations import DEFAULT_LIMIT
from projections.queries.transactions import PURPOSES, STATUSES, OrderQuery, transactions

pages = Blueprint("pages", __name__)

# The audit page shows this many timeline rows; the JSON endpoint has them all.
AUDIT_ROWS = 2_000
DAYS_LISTED = 60
# What the books page reads that takes seconds on a long history (the first explanation
# of every differing symbol, the value-over-time chart) is computed in the background
# (`WebContext.soon`). `commands serve` starts it and waits WARM_UP_SECONDS before it
# listens: a short history is read whole by then, as before. Past that, a request waits
# for it at most until REQUEST_WAIT_SECONDS after it began, then shows the rest (the
# books, every difference, the banners) with the causes or the chart marked as still
# being worked out, and reloads itself every RELOAD_SECONDS (a meta refresh: the page
# runs no script) until they are in. So the first answer on a 1,000,000-event store
# comes within 2 s of the start.
WARM_UP_SECONDS = 0.2
REQUEST_WAIT_SECONDS = 0.1
# The open drift must be on every answer whatever it costs (one read back through the
# log when there never was one): `commands serve` waits for it before listening, up to
# WARM_UP_DRIFT_SECONDS, and a request waits for it up to DRIFT_WAIT_SECONDS.
WARM_UP_DRIFT_SECONDS = 1.0
DRIFT_WAIT_SECONDS = 60.0
RELOAD_SECONDS = 2

def context() -> WebContext:
    found: WebContext = current_app.extensions["tradeledger"]
    return found


def _json(document: Any) -> Response:
    return Response(documents.json_text(document), mimetype="application/json")


def _history(web: WebContext, fresh: Fresh, symbol: str | None, now: datetime,
             wait: float | None) -> Series | None:
    """The chart's history, carried on to `now`; with `wait`, computed in the background
    and None if not ready within it."""
    def compute() -> Series:
        return book_history(fresh.views, symbol, now)

    if wait is None:
        return until(web.cached(("history", symbol), fresh, compute), now)
    found = web.soon(("history", symbol), fresh, compute, wait)
    return None if found is None else until(found, now)


def _series(fresh: Fresh, symbol: str | None, now: datetime) -> Series:
    found = _history(context(), fresh, symbol, now, None)
    assert found is not None
    return found


# -- pages ----------------------------------------------------------------------------------


def open_drift(web: WebContext, fresh: Fresh) -> DriftWindow | None:
    """The drift the watchdog of `commands run` has open (from its events), or None."""
    return web.soon("open_drift", fresh, lambda: find_open_drift(web.ledger),
                    DRIFT_WAIT_SECONDS)


def _books(web: WebContext, fresh: Fresh, now: datetime, wait: float) -> Books | None:
    return web.soon("books", fresh,
                    lambda: read_books(fresh.views, fresh.position, now, web.explained), wait)


def warm_up(web: WebContext) -> None:
    """Start reading what the books page reads, in the background, and give it
    WARM_UP_SECONDS: on a long history the first explanation of every differing symbol
    takes seconds (see `explained`), and the server must answer meanwhile."""
    fresh = web.fresh()
    now = datetime.now(UTC)
    # The open drift first and alone: every answer needs it (a read back through the log,
    # a third of a second on a million events), and two readers beside it would slow it.
    web.soon("open_drift", fresh, lambda: find_open_drift(web.ledger), WARM_UP_DRIFT_SECONDS)
    deadline = time.monotonic() + WARM_UP_SECONDS
    _books(web, fresh, now, 0)
    _history(web, fresh, None, now, 0)
    # Both run at once; they get WARM_UP_SECONDS between them.
    _books(web, fresh, now, max(0.0, deadline - time.monotonic()))
    _history(web, fresh, None, now, max(0.0, deadline - time.monotonic()))


@pages.get("/")
def books() -> str:
    web = context()
    fresh = web.fresh()
    # From here: catching the views up is not what the wait is for.
    deadline = time.monotonic() + REQUEST_WAIT_SECONDS
    now = datetime.now(UTC)
    drift = open_drift(web, fresh)
    found = _books(web, fresh, now, max(0.0, deadline - time.monotonic()))
    if found is None:
        # Still explaining: the same books from the explanations at hand, the other
        # causes marked as being worked out.
        found = read_books(fresh.views, fresh.position, now, web.explained, kept_only=True)
    series = _history(web, fresh, None, now, max(0.0, deadline - time.monotonic()))
    pending = bool(found.explaining) or series is None
    return render_template(
        "books.html", books=found, banners=banners(found, now, drift), now=now,
        series=series, chart=None if series is None else chart(series.points, web.zone),
        service=web.service_status(), reload_seconds=RELOAD_SECONDS if pending else None,
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
