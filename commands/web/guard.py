"""The door of the page, in front of the whole app: read-only methods, the token, the Host.

It wraps the WSGI app, so no request it refuses reaches a route, a static file or an
error handler: the app cannot be made to act on a method other than GET or HEAD even by
a route added later.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus

READ_METHODS = frozenset({"GET", "HEAD"})
COOKIE = "ledger_web_token"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}
# What a path may hold unescaped in the Location header (RFC 3986 pchar and "/"). Not "%":
# PATH_INFO arrives decoded, so a "%" in it was "%25" in the URL and must be again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


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
    a ?token= visit sets; that visit is redirected to its URL without the token).
    `loopback_only`: refuse a Host header that names another machine, so a web page
    elsewhere cannot read this one through DNS rebinding."""

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
        if query is not None and self._matches(query):
            # The token in a URL stays in the address bar, the history and any copied
            # link: trade it for the cookie and send the browser to the URL without it.
            return _redirect_without_token(environ, start_response, query)
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


def _cookie(environ: dict[str, Any], token: str) -> str:
    """The Set-Cookie value that remembers a ?token= visit: never readable by a script,
    never sent by another site's request, and over HTTPS never sent over plain HTTP."""
    jar = SimpleCookie()
    jar[COOKIE] = token
    jar[COOKIE]["httponly"] = True
    jar[COOKIE]["samesite"] = "Strict"
    jar[COOKIE]["path"] = "/"
    # The server trusts no proxy (waitress runs without trusted_proxy), so only the
    # scheme the request itself arrived over says HTTPS, never X-Forwarded-Proto.
    if environ.get("wsgi.url_scheme") == "https":
        jar[COOKIE]["secure"] = True
    return jar[COOKIE].OutputString()


def _without_token(query_string: str) -> str:
    """The query string without its `token` parameters; the others as they came, in order."""
    kept = [
        part for part in query_string.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) != "token"
    ]
    return "&".join(kept)


def _location(environ: dict[str, Any]) -> str:
    """The requested URL without the token, as a path on this host."""
    # PATH_INFO is the decoded path as latin-1 text (PEP 3333): its bytes, escaped again.
    raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    # "//evil.example" would be a URL on another host: one leading slash keeps it on ours.
    path = "/" + quote(raw, safe=_PATH_SAFE).lstrip("/")
    query = _without_token(environ.get("QUERY_STRING", ""))
    return f"{path}?{query}" if query else path


def _redirect_without_token(environ: dict[str, Any], start_response: StartResponse,
                            token: str) -> Iterable[bytes]:
    location = _location(environ)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>303 See Other</title>"
        f'<p>Signed in: continue to <a href="{html.escape(location)}">the page</a>.</p></html>'
    ).encode()
    headers = [
        ("Location", location),
        ("Set-Cookie", _cookie(environ, token)),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        # The URL of this request holds the token: never pass it on as a referrer.
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    # 303: the next request is a GET (or HEAD) of the clean URL, whatever came first.
    start_response("303 See Other", headers)
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


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
