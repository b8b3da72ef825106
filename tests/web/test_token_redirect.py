"""A ?token= visit trades the token for a cookie and is redirected to the same URL without
it, so the token leaves the address bar and the history (issue #16, item 1)."""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.test import Client

from commands.web.guard import COOKIE, Guard
from tests.web.conftest import Story, start_server, stop

TOKEN = "web-token-0123456789abcdef"


@dataclass(frozen=True)
class Raw:
    """One answer, redirects not followed: the redirect itself is what is tested."""

    status: int
    headers: Message
    body: str


def get(base: str, target: str, method: str = "GET", headers: dict[str, str] | None = None
        ) -> Raw:
    where = urlsplit(base)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return Raw(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def cookie_pair(reply: Raw) -> str:
    """The `name=value` a browser sends back for the reply's Set-Cookie."""
    return reply.headers["Set-Cookie"].split(";", 1)[0]


def attributes(reply: Raw) -> set[str]:
    return {part.strip().lower() for part in reply.headers["Set-Cookie"].split(";")[1:]}


@pytest.fixture(scope="module")
def guarded(story: Story, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page bound to every address, with a token; requested through 127.0.0.1."""
    process, url, printed = start_server(
        story.database_url, tmp_path_factory.mktemp("redirect"), "--host", "0.0.0.0",
        LEDGER_WEB_TOKEN=TOKEN,
    )
    try:
        assert url is not None, printed
        yield url.replace("0.0.0.0", "127.0.0.1", 1)
    finally:
        stop(process)


def test_a_token_in_the_query_is_traded_for_a_cookie_and_a_clean_url(guarded: str) -> None:
    first = get(guarded, f"/transactions?symbol=AAPL&token={TOKEN}&page=1")
    assert first.status == 303
    # The other parameters stay, in their order; the token goes.
    assert first.headers["Location"] == "/transactions?symbol=AAPL&page=1"
    assert TOKEN not in first.headers["Location"] and TOKEN not in first.body
    assert cookie_pair(first) == f"{COOKIE}={TOKEN}"
    assert {"httponly", "samesite=strict", "path=/"} <= attributes(first)
    assert "secure" not in attributes(first)  # plain HTTP: a Secure cookie would be dropped
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["Referrer-Policy"] == "no-referrer"

    then = get(guarded, first.headers["Location"], headers={"Cookie": cookie_pair(first)})
    assert then.status == 200 and "Transactions" in then.body
    assert "Set-Cookie" not in then.headers
    assert get(guarded, "/", headers={"Cookie": cookie_pair(first)}).status == 200
    assert get(guarded, "/transactions").status == 401  # the cookie is what opened it


def test_only_the_token_leaves_the_url(guarded: str) -> None:
    assert get(guarded, f"/?token={TOKEN}").headers["Location"] == "/"
    assert get(guarded, f"/api/audit/2026-01-05?token={TOKEN}&symbol=MSFT").headers[
        "Location"] == "/api/audit/2026-01-05?symbol=MSFT"
    head = get(guarded, f"/?token={TOKEN}", "HEAD")
    assert (head.status, head.headers["Location"], head.body) == (303, "/", "")


def test_a_wrong_token_in_the_query_gets_no_cookie(guarded: str) -> None:
    wrong = get(guarded, "/?token=" + TOKEN[:-1] + "X")
    assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
    assert "Location" not in wrong.headers
    # A wrong token beside a good header is no token: served as it is, nothing remembered.
    served = get(guarded, "/?token=nope", headers={"Authorization": "Bearer " + TOKEN})
    assert served.status == 200 and "Set-Cookie" not in served.headers


@pytest.mark.browser
def test_the_browser_ends_on_the_url_without_the_token(guarded: str, page: Any) -> None:
    page.goto(guarded + f"/transactions?token={TOKEN}&symbol=MSFT")
    assert page.url == guarded + "/transactions?symbol=MSFT"
    assert page.title() == "Transactions · tradeledger"
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (COOKIE, True, "Strict")
    # The page's own links work with the cookie alone.
    page.click("nav >> text=Audit")
    assert page.title() == "Audit · tradeledger" and TOKEN not in page.url


# -- the guard alone, for what a real server here cannot send: HTTPS, odd paths ------------


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the page"]


def _client(**kwargs: Any) -> Client:
    return Client(Guard(_app, token=TOKEN, loopback_only=False), **kwargs)


def test_over_https_the_cookie_is_secure() -> None:
    reply = _client().get(f"/books?token={TOKEN}", base_url="https://ledger.example")
    assert reply.status_code == 303 and reply.headers["Location"] == "/books"
    assert "Secure" in reply.headers["Set-Cookie"]


def test_a_forwarded_proto_header_is_not_trusted() -> None:
    reply = _client().get(f"/?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
    assert reply.status_code == 303 and "Secure" not in reply.headers["Set-Cookie"]


def _answer(path_info: str, query_string: str) -> tuple[str, dict[str, str]]:
    """The guard's answer to a request as the WSGI server hands it over: PATH_INFO decoded."""
    answered: list[Any] = []
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path_info,
               "QUERY_STRING": query_string, "wsgi.url_scheme": "http"}
    guard = Guard(_app, token=TOKEN, loopback_only=False)
    guard(environ, lambda status, headers, *rest: answered.append((status, dict(headers))))
    ((status, headers),) = answered
    return status, headers


@pytest.mark.parametrize(
    ("path_info", "query_string", "location"),
    [
        # A path that would read as another host stays a path on this one.
        ("//evil.example/", f"token={TOKEN}", "/evil.example/"),
        # A browser reads "/\\host" as "//host": the backslash goes escaped.
        ("/\\evil.example", f"token={TOKEN}", "/%5Cevil.example"),
        # Escapes and encoded names survive; every `token` parameter goes.
        ("/audit/a b%", f"x=1%262&token={TOKEN}&token=other&tok%65n=3&y",
         "/audit/a%20b%25?x=1%262&y"),
        ("/caf\xc3\xa9", f"token={TOKEN}&&symbol=caf%C3%A9", "/caf%C3%A9?symbol=caf%C3%A9"),
    ],
)
def test_the_location_is_the_same_url_on_this_host(
    path_info: str, query_string: str, location: str
) -> None:
    status, headers = _answer(path_info, query_string)
    assert status == "303 See Other" and headers["Location"] == location
