"""Helpers for ledger tests against the sandbox: settings, ledgers, the CLI, event counts.

Plain functions, not fixtures: each test module declares the two-line fixtures it needs,
so the names stay visible where they are used.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from click.testing import CliRunner

from commands.cli import cli
from ledger.application import Ledger
from ledger.brokers.alpaca import AlpacaBroker
from ledger.domain import event_name
from scripts.alpaca_sandbox import AlpacaSandbox

# alpaca-py would retry 429/504 three times with 3 s waits: tests that want retries ask.
FAST = {
    "ALPACA_RETRY_ATTEMPTS": "0",
    "ALPACA_RETRY_WAIT_SECONDS": "0.01",
    "BROKER_TIMEOUT_SECONDS": "3",
}


def alpaca_env(sandbox: AlpacaSandbox, **overrides: str) -> dict[str, str]:
    return {
        "BROKER_PROVIDER": "alpaca",
        "ALPACA_API_KEY": sandbox.key,
        "ALPACA_SECRET_KEY": sandbox.secret,
        "ALPACA_BASE_URL": sandbox.base_url,
        "ALPACA_DATA_URL": sandbox.base_url,  # the sandbox serves market data too
        **FAST,
        **overrides,
    }


def make_broker(
    sandbox: AlpacaSandbox,
    *,
    timeout: str = "3",
    retries: int = 0,
    key: str | None = None,
    secret: str | None = None,
    base_url: str | None = None,
) -> AlpacaBroker:
    return AlpacaBroker(
        api_key=key or sandbox.key,
        secret_key=secret or sandbox.secret,
        paper=True,
        base_url=base_url or sandbox.base_url,
        timeout_seconds=Decimal(timeout),
        retry_attempts=retries,
        retry_wait_seconds=Decimal("0.01"),
    )


def open_alpaca(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox, **overrides: str
) -> Ledger:
    """A ledger on the store under test whose router goes to the sandbox."""
    return open_store(**alpaca_env(sandbox, **overrides))


def all_events(ledger: Ledger) -> list[Any]:
    return [stored.event for stored in ledger.events_after(0, 100_000)]


def event_names(ledger: Ledger) -> list[str]:
    return [event_name(e) for e in all_events(ledger)]


def recorded_executions(ledger: Ledger) -> list[str]:
    """Execution ids of every fill event, in store order: duplicates would show here."""
    return [
        e.execution_id
        for e in all_events(ledger)
        if event_name(e) in ("OrderFilled", "OrderPartiallyFilled")
    ]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def order_posts(sandbox: AlpacaSandbox) -> list[dict[str, Any]]:
    return sandbox.requests("POST", "/v2/orders")
