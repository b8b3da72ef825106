"""A broker that cannot be read is exit 1 (needs attention, try again later); only refused
keys, which are configuration, are exit 2 (README: 2 is usage or configuration)."""

from __future__ import annotations

import socket

import click
import pytest
from click.testing import CliRunner

from commands.cli import LedgerGroup
from ledger.brokers.port import BrokerReadError, FailureKind
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, invoke

WRONG_SECRET = "not-the-secret-at-all-0123456789"


def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def alpaca_cli(
    cli_env: dict[str, str], sandbox: AlpacaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in alpaca_env(sandbox, RECONCILE_RECENT_FILL_SECONDS="0").items():
        monkeypatch.setenv(key, value)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.mark.parametrize("command", [["sync"], ["reconcile", "--dry-run"], ["reconcile"]])
def test_an_unreachable_broker_is_exit_1(
    alpaca_cli: None, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("ALPACA_BASE_URL", closed_url())
    code, _, err = invoke(*command)
    assert code == 1 and "cannot reach Alpaca" in one_line(err)


@pytest.mark.parametrize("command", [["sync"], ["reconcile", "--dry-run"]])
def test_a_failing_broker_is_exit_1(
    alpaca_cli: None, sandbox: AlpacaSandbox, command: list[str]
) -> None:
    sandbox.add_fault("503", method="GET", path="/v2/account", count=10)
    code, _, err = invoke(*command)
    assert code == 1 and "Alpaca failed on its side" in one_line(err)


@pytest.mark.parametrize(
    ("command", "advice"),
    [(["sync"], "Check your API keys"), (["reconcile", "--dry-run"], "Check your API keys")],
)
def test_refused_keys_stay_exit_2(
    alpaca_cli: None, monkeypatch: pytest.MonkeyPatch, command: list[str], advice: str
) -> None:
    monkeypatch.setenv("ALPACA_SECRET_KEY", WRONG_SECRET)
    code, _, err = invoke(*command)
    line = one_line(err)
    assert code == 2 and advice in line and WRONG_SECRET not in line


def test_run_exits_1_when_the_broker_is_unreachable_at_start(
    alpaca_cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_BASE_URL", closed_url())
    code, _, err = invoke("run")
    assert code == 1 and "Failed to sync Alpaca account: GET /v2/account" in err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BrokerReadError("GET /v2/clock: cannot reach Alpaca", kind=FailureKind.UNREACHABLE), 1),
        (BrokerReadError("GET /v2/clock: Alpaca failed on its side", http_status=503), 1),
        (BrokerReadError("GET /v2/clock: Alpaca refused the API keys", auth=True,
                         http_status=401, kind=FailureKind.UNAUTHORIZED), 2),
    ],
)
def test_any_other_command_maps_a_failed_read_the_same_way(
    error: BrokerReadError, code: int
) -> None:
    """What a command does not catch itself, the group turns into one line and the code."""

    @click.group(cls=LedgerGroup)
    def group() -> None:
        pass

    @group.command()
    def read() -> None:
        raise error

    result = CliRunner().invoke(group, ["read"], catch_exceptions=False)
    assert result.exit_code == code
    assert one_line(result.stderr) == f"Error: the broker could not be read: {error}"
