"""The story of DESIGN.md section 1, set up through the real CLI against the sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from commands.cli import cli
from scripts.alpaca_sandbox import AlpacaSandbox
from tests.broker.fixtures_ledger import alpaca_env

PRICE = "187.20"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def use_alpaca(monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox, **extra: str) -> None:
    env = {"RECONCILE_RECENT_FILL_SECONDS": "0", **alpaca_env(sandbox), **extra}
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def use_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_PROVIDER", "paper")


def tell_story(monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox) -> None:
    """4 AAPL really reached Alpaca; then a bug sent 6 more to the paper broker."""
    sandbox.set_symbol("AAPL", price=PRICE)
    use_alpaca(monkeypatch, sandbox)
    code, _, err = invoke("trade", "buy", "AAPL", "4", "--reason", "momentum")
    assert code == 0, err
    use_paper(monkeypatch)
    code, _, err = invoke("trade", "buy", "AAPL", "6", "--price", PRICE, "--reason", "more")
    assert code == 0, err
    use_alpaca(monkeypatch, sandbox)


def reconcile(*args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = invoke("reconcile", "--json", *args)
    return code, (json.loads(out) if out.strip() else {}), err


def order_posts(sandbox: AlpacaSandbox) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v2/orders")


def broker_qty(sandbox: AlpacaSandbox, symbol: str) -> Decimal:
    for position in sandbox.state()["positions"]:
        if position["symbol"] == symbol:
            return Decimal(str(position["qty"]))
    return Decimal(0)
