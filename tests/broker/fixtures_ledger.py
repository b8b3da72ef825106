"""Helpers for ledger tests against the sandbox: brokers, ledgers, the events they stored.

Plain functions, not fixtures: each test module declares the two-line fixtures it needs,
so the names stay visible where they are used. What other test folders share too is in
testing/doubles.py.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ledger.application import Ledger
from ledger.brokers.alpaca.broker import AlpacaBroker
from ledger.domain import event_name
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env


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
