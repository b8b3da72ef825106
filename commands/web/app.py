"""The Flask app behind `commands serve`, wrapped in its `Guard`."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from commands.web import formatting
from commands.web.context import WebContext
from commands.web.guard import Guard
from commands.web.pages import pages
from commands.web.params import BadQuery
from projections.queries.transactions import PageOutOfRange

log = logging.getLogger(__name__)

# No script, no frame, nothing from elsewhere: the page is markup, one stylesheet and SVG.
_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Positions and money: never kept in a shared or on-disk cache.
    "Cache-Control": "no-store",
}


def _error(status: int, title: str, message: str) -> tuple[Response | str, int]:
    if request.path.startswith("/api/"):
        from commands.web.documents import json_text

        body = json_text({"error": message, "status": status})
        return Response(body, mimetype="application/json"), status
    return render_template("error.html", status=status, title=title, message=message), status


def create_app(context: WebContext, *, token: str | None, loopback_only: bool) -> Guard:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.extensions["tradeledger"] = context
    app.register_blueprint(pages)
    zone = context.zone
    app.jinja_env.filters.update(
        number=formatting.number,
        money=formatting.money,
        price=formatting.price,
        signed=formatting.signed,
        short=formatting.short,
        moment=lambda value: formatting.moment(value, zone),
        clock=lambda value: formatting.clock(value, zone),
    )
    app.jinja_env.globals.update(timezone=context.timezone)

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(_HEADERS)
        return response

    @app.errorhandler(BadQuery)
    @app.errorhandler(PageOutOfRange)
    def bad_query(error: ValueError) -> tuple[Response | str, int]:
        return _error(400, "Bad request", str(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response | str, int]:
        status = error.code or 500
        return _error(status, error.name, error.description or error.name)

    @app.errorhandler(Exception)
    def failure(error: Exception) -> tuple[Response | str, int]:
        # The cause goes to the server's log; the page says only that it failed (a
        # message could carry a store URL or a broker's words).
        log.exception("page %s failed", request.path)
        return _error(500, "Server error", "The page could not be read: see the server log.")

    return Guard(app, token=token, loopback_only=loopback_only)
