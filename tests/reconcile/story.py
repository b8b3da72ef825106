"""The story of docs/design.md ("The story"), set up through the real CLI against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke

PRICE = "187.20"


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
