"""Bound to another address than this machine's own, the page needs LEDGER_WEB_TOKEN, and
every request must carry it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import Story, clean_env, start_server, stop
from tests.web.http import fetch

TOKEN = "web-token-0123456789abcdef"


def refused(story: Story, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commands", "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=workdir, env=clean_env(story.database_url, **env), text=True,
        capture_output=True, timeout=60, check=False,
    )


def test_another_address_without_a_token_is_refused(story: Story, tmp_path: Path) -> None:
    done = refused(story, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: --host 0.0.0.0 opens the page to other machines: set LEDGER_WEB_TOKEN (at "
        "least 16 characters), which every request must then carry"
    ]


def test_a_short_token_is_refused(story: Story, tmp_path: Path) -> None:
    done = refused(story, tmp_path, LEDGER_WEB_TOKEN="sh0rt-t0ken")
    assert done.returncode == 2 and "sh0rt-t0ken" not in done.stderr
    assert done.stderr.startswith("Error: LEDGER_WEB_TOKEN must be at least 16 printable")


@pytest.fixture(scope="module")
def guarded(story: Story, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page bound to every address, with a token; requested through 127.0.0.1."""
    process, url, printed = start_server(
        story.database_url, tmp_path_factory.mktemp("guarded"), "--host", "0.0.0.0",
        LEDGER_WEB_TOKEN=TOKEN,
    )
    try:
        assert url is not None and url.startswith("http://0.0.0.0:"), printed
        assert "token required" in printed and TOKEN not in printed
        yield url.replace("0.0.0.0", "127.0.0.1", 1)
    finally:
        stop(process)


@pytest.mark.parametrize("path", ["/", "/transactions", "/api/positions", "/static/style.css"])
def test_every_request_must_carry_the_token(guarded: str, path: str) -> None:
    missing = fetch(guarded + path)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in missing.body
    wrong = fetch(guarded + path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
    assert wrong.status == 401
    assert fetch(guarded + path + "?token=nope").status == 401
    assert fetch(guarded + path, headers={"Authorization": "Bearer " + TOKEN}).status == 200


def test_the_token_does_not_open_writes(guarded: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        reply = fetch(guarded + "/", method, headers={"Authorization": "Bearer " + TOKEN})
        assert reply.status == 405
