"""Fixtures for talking to the local Alpaca sandbox through the real alpaca-py client.

One sandbox server runs for the whole session (starting one costs a thread and a port);
every test gets it reset to a clean account.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from alpaca.trading.client import TradingClient

from sandbox import AlpacaSandbox
from testing.doubles import make_client


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[AlpacaSandbox]:
    with AlpacaSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: AlpacaSandbox) -> AlpacaSandbox:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def client(sandbox: AlpacaSandbox) -> TradingClient:
    """Parses replies with alpaca-py's models; errors surface at once (no retries)."""
    return make_client(sandbox)


@pytest.fixture
def raw_client(sandbox: AlpacaSandbox) -> TradingClient:
    """The same client with ``raw_data=True``: replies stay JSON dicts and lists."""
    return make_client(sandbox, raw_data=True)


@pytest.fixture
def retrying_client(sandbox: AlpacaSandbox) -> TradingClient:
    """alpaca-py's default retry count (3), without the 3 s waits."""
    return make_client(sandbox, retries=3)


@pytest.fixture
def control(sandbox: AlpacaSandbox) -> Any:
    """Calls the sandbox's HTTP control API: ``control("POST", "/faults", {...})``."""

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(
            method, f"{sandbox.base_url}/_sandbox{path}", json=body, timeout=5
        )
        assert response.status_code == 200, response.text
        return response.json()

    return call
