"""The served page over plain HTTP: read-only, clear 400s, clear empty results, no secrets."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.web.conftest import SECRETS, Server
from tests.web.http import fetch

PATHS = ["/", "/transactions", "/audit", "/reconciliations", "/chart", "/api/positions",
         "/api/reconciliations", "/static/style.css", "/no-such-page"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_answered(server: Server, method: str) -> None:
    for path in PATHS:
        reply = fetch(server.url + path, method)
        assert reply.status == 405, (method, path, reply.status)
        assert reply.headers["Allow"] == "GET, HEAD"


def test_head_answers_without_a_body(server: Server) -> None:
    reply = fetch(server.url + "/", "HEAD")
    assert reply.status == 200 and reply.body == ""


def test_every_page_answers_with_its_safety_headers(server: Server) -> None:
    day = server.story.day.isoformat()
    for path in ["/", "/transactions", f"/audit?day={day}", f"/audit/{day}",
                 "/reconciliations", "/chart", "/chart?symbol=AAPL"]:
        reply = fetch(server.url + path)
        assert reply.status == 200, (path, reply.body)
        assert "script-src" not in reply.headers["Content-Security-Policy"]
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert reply.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/transactions?day=2026-13-01", "is not a date"),
        ("/transactions?day=yesterday", "is not a date"),
        ("/transactions?day=2999-01-01", "is in the future"),
        ("/transactions?symbol=%24%24%24", "is malformed"),
        ("/transactions?page=0", "page '0' is not a whole number from 1"),
        ("/transactions?page=two", "page 'two' is not a whole number"),
        ("/transactions?page=99999999999999999999", "is not a whole number"),
        ("/transactions?page=9", "page 9 is past the last page (1)"),
        ("/transactions?purpose=gift", "purpose 'gift' is not one of"),
        ("/transactions?status=lost", "status 'lost' is not one of"),
        ("/audit?day=05/01/2026", "is not a date"),
        ("/audit/2026-02-30", "is not a date"),
        ("/audit?day=2026-01-05&symbol=a%20b", "is malformed"),
        ("/reconciliations?limit=0", "limit '0' is not a whole number"),
        ("/chart?symbol=%3Cscript%3E", "is malformed"),
    ],
)
def test_bad_query_values_get_a_clear_400_page(server: Server, path: str, says: str) -> None:
    reply = fetch(server.url + path)
    assert reply.status == 400, reply.body
    assert "400 Bad request" in reply.body and says in reply.body.replace("&#39;", "'")
    assert "<script>" not in reply.body


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/api/audit/2026-1-5", "is not a date"),
        ("/api/audit/2999-01-01", "is in the future"),
        ("/api/positions?book=cash", "book 'cash' is not one of: local, broker, diff"),
        ("/api/positions?as_of=noon", "as_of 'noon' is not an ISO-8601 date or time"),
        ("/api/reconciliations?limit=-1", "limit '-1' is not a whole number"),
    ],
)
def test_bad_query_values_on_json_endpoints_get_a_json_400(
    server: Server, path: str, says: str
) -> None:
    reply = fetch(server.url + path)
    assert reply.status == 400 and reply.headers["Content-Type"] == "application/json"
    document = reply.json()
    assert document["status"] == 400 and says in document["error"]


def test_unknown_values_give_a_clear_empty_result(server: Server) -> None:
    day = server.story.day.isoformat()
    reply = fetch(server.url + "/transactions?symbol=ZZZZ")
    assert reply.status == 200 and "No order matches symbol ZZZZ." in reply.body
    reply = fetch(server.url + f"/audit?day={day}&symbol=ZZZZ")
    assert reply.status == 200 and f"No events about ZZZZ on {day}" in reply.body
    reply = fetch(server.url + "/chart?symbol=ZZZZ")
    assert reply.status == 200 and "Neither book held ZZZZ in this period." in reply.body
    reply = fetch(server.url + "/transactions?id=" + quote("tl-no-such-order"))
    assert reply.status == 200 and "No order matches id tl-no-such-order." in reply.body
    reply = fetch(server.url + "/audit?day=2020-01-06")
    assert reply.status == 200 and "No events on 2020-01-06" in reply.body
    reply = fetch(server.url + "/no-such-page")
    assert reply.status == 404 and "404 Not Found" in reply.body


def test_a_host_header_naming_another_machine_is_refused(server: Server) -> None:
    """Bound to 127.0.0.1 without a token: a page elsewhere cannot read it by DNS rebinding."""
    reply = fetch(server.url + "/", headers={"Host": "attacker.example:80"})
    assert reply.status == 403
    assert fetch(server.url + "/", headers={"Host": "localhost"}).status == 200


def test_no_page_shows_a_secret(server: Server) -> None:
    day = server.story.day.isoformat()
    for path in ["/", "/transactions", f"/audit?day={day}", "/reconciliations", "/chart",
                 f"/api/audit/{day}", "/api/positions?book=broker", "/api/reconciliations"]:
        body = fetch(server.url + path).body
        for secret in SECRETS.values():
            assert secret not in body, path
        assert server.story.database_url not in body, path
