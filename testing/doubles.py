"""What tests in several folders use to put the ledger beside the Alpaca sandbox: the
settings and clients that point at it, the CLI run in process, and the sandbox's log of
order POSTs."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from alpaca.trading.client import TradingClient
from click.testing import CliRunner

from commands.cli import cli
from sandbox import AlpacaSandbox

# alpaca-py would retry 429/504 three times with 3 s waits: tests that want retries ask.
FAST = {
    "ALPACA_RETRY_ATTEMPTS": "0",
    "ALPACA_RETRY_WAIT_SECONDS": "0.01",
    "BROKER_TIMEOUT_SECONDS": "3",
}


def alpaca_env(sandbox: AlpacaSandbox, **overrides: str) -> dict[str, str]:
    """The ledger's settings for routing to the sandbox, quick to give up (`FAST`)."""
    return {
        "BROKER_PROVIDER": "alpaca",
        "ALPACA_API_KEY": sandbox.key,
        "ALPACA_SECRET_KEY": sandbox.secret,
        "ALPACA_BASE_URL": sandbox.base_url,
        "ALPACA_DATA_URL": sandbox.base_url,  # the sandbox serves market data too
        # `commands run` serves /healthz: any free port, so services may run side by side.
        "LEDGER_HEALTH_PORT": "0",
        **FAST,
        **overrides,
    }


def make_client(
    sandbox: AlpacaSandbox,
    *,
    retries: int = 0,
    raw_data: bool = False,
    key: str | None = None,
    secret: str | None = None,
) -> TradingClient:
    """A TradingClient aimed at the sandbox.

    alpaca-py retries 429 and 504 three times, sleeping 3 s in between, and its constructor
    cannot turn that off (``retry_attempts`` <= 0 falls back to the default), so the
    attributes are set directly; retries that do happen wait 0 s.
    """
    client = TradingClient(
        key or sandbox.key,
        secret or sandbox.secret,
        paper=True,
        raw_data=raw_data,
        url_override=sandbox.base_url,
    )
    client._retry = retries
    client._retry_wait = 0
    return client


def invoke(*args: str) -> tuple[int, str, str]:
    """`commands ARGS` in this process: exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def order_posts(sandbox: AlpacaSandbox) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v2/orders")


def posts_per_client_order_id(sandbox: AlpacaSandbox) -> Counter[str]:
    return Counter(
        str((p["body"] or {}).get("client_order_id")) for p in order_posts(sandbox)
    )


def broker_qty(sandbox: AlpacaSandbox, symbol: str) -> Decimal:
    """What the sandbox's account holds of `symbol` (0 when it holds none)."""
    for position in sandbox.state()["positions"]:
        if position["symbol"] == symbol:
            return Decimal(str(position["qty"]))
    return Decimal(0)
