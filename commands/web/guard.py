"""The door of the page, in front of the whole app: read-only methods, the token, the Host.

It wraps the WSGI app, so no request it refuses reaches a route, a static file or an
error handler: the app cannot be made to act on a method other than GET or HEAD even by
a route added later.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

READ_METHODS = frozenset({"GET", "HEAD"})
COOKIE = "ledger_web_token"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}


def host_name(header: str) -> str:
    """The name part of a Host header: `[::1]:8000` -> `::1`, `127.0.0.1:8000` -> `127.0.0.1`."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(name: str) -> bool:
    """This machine's own address or name. Exact: 127.0.0.1.attacker.example is not."""
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve anywhere


class Guard:
    """`token`: every request must carry it (Authorization: Bearer, ?token= or the cookie
    a ?token= visit sets). `loopback_only`: refuse a Host header that names another
    machine, so a web page elsewhere cannot read this one through DNS rebinding."""

    def __init__(self, app: WsgiApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self._token = None if token is None else token.encode()
        self.loopback_only = loopback_only

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() not in READ_METHODS:
            return _refuse(environ, start_response, 405,
                           "This page is read-only: only GET and HEAD are answered.",
                           [("Allow", "GET, HEAD")])
        if self.loopback_only and not is_loopback(host_name(environ.get("HTTP_HOST", ""))):
            return _refuse(environ, start_response, 403,
                           "This page answers only requests addressed to this machine "
                           "(127.0.0.1 or localhost).")
        if self._token is None:
            return self.app(environ, start_response)
        header, query, cookie = _offered(environ)
        if not any(self._matches(value) for value in (header, query, cookie)):
            return _refuse(environ, start_response, 401,
                           "This page needs the token of LEDGER_WEB_TOKEN: send it as "
                           "'Authorization: Bearer TOKEN', or open the page once with "
                           "?token=TOKEN.",
                           [("WWW-Authenticate", 'Bearer realm="tradeledger"')])
        if query is not None and self._matches(query) and not self._matches(cookie):
            return self.app(environ, _with_cookie(start_response, query))
        return self.app(environ, start_response)

    def _matches(self, offered: str | None) -> bool:
        assert self._token is not None
        return offered is not None and hmac.compare_digest(offered.encode(), self._token)


def _offered(environ: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = authorization.partition(" ")
    header = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    query = values[0] if values else None
    try:
        jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        jar = SimpleCookie()
    cookie = jar[COOKIE].value if COOKIE in jar else None
    return header, query, cookie


def _with_cookie(start_response: StartResponse, token: str) -> StartResponse:
    """Remember a ?token= visit, so the page's own links work without the token in them."""

    def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
        jar = SimpleCookie()
        jar[COOKIE] = token
        jar[COOKIE]["httponly"] = True
        jar[COOKIE]["samesite"] = "Strict"
        jar[COOKIE]["path"] = "/"
        headers = [*headers, ("Set-Cookie", jar[COOKIE].OutputString())]
        return start_response(status, headers, *rest)

    return start


def _refuse(environ: dict[str, Any], start_response: StartResponse, status: int,
            message: str, extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith("/api/"):
        body = json.dumps({"error": message, "status": status}).encode()
        kind = "application/json"
    else:
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>{status} {_REASONS[status]}</title>"
            f"<h1>{status} {_REASONS[status]}</h1><p>{message}</p></html>"
        ).encode()
        kind = "text/html; charset=utf-8"
    headers = [
        ("Content-Type", kind),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        *(extra or []),
    ]
    start_response(f"{status} {_REASONS[status]}", headers)
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
