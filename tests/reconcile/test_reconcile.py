"""`commands reconcile` end to end: alpaca-py against the sandbox over HTTP, on both stores."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import AlpacaSandbox
from testing.doubles import broker_qty, invoke, order_posts
from tests.reconcile.story import PRICE, reconcile, tell_story, use_alpaca, use_paper

pytestmark = pytest.mark.usefixtures("cli_env")


def test_the_story(monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    assert broker_qty(sandbox, "AAPL") == 4
    posts_before = len(order_posts(sandbox))

    code, plan, err = reconcile("--dry-run")
    assert code == 0, err
    assert plan["dry_run"] is True and plan["broker"] == "alpaca" and plan["paper"] is True
    row = plan["positions"][0]
    assert {k: row[k] for k in ("symbol", "local_qty", "broker_qty", "open_qty", "delta")} == {
        "symbol": "AAPL", "local_qty": "10", "broker_qty": "4", "open_qty": "0", "delta": "6"}
    assert row["reason"].startswith("a local decision the broker never executed")
    (order,) = plan["orders"]
    assert (order["side"], order["qty"], order["type"], order["status"]) == (
        "buy", "6", "market", "planned")
    assert order["client_order_id"].startswith("tl-") and order["error"] is None
    assert plan["summary"] == {"planned": 1, "submitted": 0, "failed": 0, "skipped": 0,
        "not_sent": 0, "unknown": 0}
    assert len(order_posts(sandbox)) == posts_before, "a dry run sends no order"

    code, done, err = reconcile()
    assert code == 0, err
    assert done["summary"] == {"planned": 1, "submitted": 1, "failed": 0, "skipped": 0,
        "not_sent": 0, "unknown": 0}
    (sent,) = order_posts(sandbox)[posts_before:]
    assert sent["body"]["client_order_id"] == done["orders"][0]["client_order_id"]
    assert sent["body"]["qty"] == "6" and sent["body"]["time_in_force"] == "day"
    assert broker_qty(sandbox, "AAPL") == 10

    code, again, err = reconcile()
    assert code == 0, err
    assert again["orders"] == [] and again["summary"]["planned"] == 0
    assert len(order_posts(sandbox)) == posts_before + 1, "nothing new on a second run"

    code, out, _ = invoke("reconcile")
    assert code == 0 and "The books agree" in out


def test_table_output_shows_cause_and_summary(monkeypatch: pytest.MonkeyPatch,
                                              sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = invoke("reconcile", "--dry-run")
    assert code == 0
    assert "DRY RUN: nothing is sent to the broker" in out
    assert "a local decision the broker never executed" in out
    assert "buy 6 market: planned" in out
    assert "planned 1, submitted 0, failed 0, skipped 0" in out


def test_paper_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    use_paper(monkeypatch)
    code, out, err = invoke("reconcile", "--dry-run")
    assert code == 2 and out == ""
    assert "BROKER_PROVIDER is set to 'paper', not 'alpaca'" in err


def test_unset_provider_says_paper_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKER_PROVIDER", raising=False)
    code, out, err = invoke("reconcile", "--dry-run")
    assert code == 2 and out == ""
    assert ("BROKER_PROVIDER is not set, so the paper broker (the default) is in use, "
            "not 'alpaca'") in err
    assert "set BROKER_PROVIDER=alpaca" in err


def test_open_orders_are_never_doubled(monkeypatch: pytest.MonkeyPatch,
                                       sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    sandbox.set_symbol("AAPL", behavior="hold")
    code, first, _ = reconcile()
    assert code == 0 and first["summary"]["submitted"] == 1
    posts = len(order_posts(sandbox))
    code, second, _ = reconcile()
    assert code == 0 and len(order_posts(sandbox)) == posts
    (row,) = second["positions"]
    assert (row["open_qty"], row["delta"], row["status"]) == ("6", "0", "in_sync")


def test_partial_fill_orders_only_the_remainder_once_finished(
    monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox
) -> None:
    tell_story(monkeypatch, sandbox)
    sandbox.set_symbol("AAPL", behavior="partial", partial_fraction="0.5")
    code, first, _ = reconcile()
    assert code == 0 and first["summary"]["submitted"] == 1
    assert broker_qty(sandbox, "AAPL") == 7
    posts = len(order_posts(sandbox))

    code, second, _ = reconcile()
    assert len(order_posts(sandbox)) == posts, "the open remainder is netted, not re-ordered"
    assert second["positions"][0]["open_qty"] == "3"

    open_order = next(o for o in sandbox.state()["orders"] if o["status"] == "partially_filled")
    sandbox.cancel_order(open_order["id"])
    sandbox.set_symbol("AAPL", behavior="fill")
    code, third, _ = reconcile()
    assert code == 0
    (order,) = third["orders"]
    assert (order["side"], order["qty"], order["status"]) == ("buy", "3", "submitted")
    assert broker_qty(sandbox, "AAPL") == 10


def test_live_account_needs_yes(monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    monkeypatch.setenv("ALPACA_PAPER_MODE", "false")
    posts = len(order_posts(sandbox))
    code, out, err = invoke("reconcile")
    assert code == 2 and out == ""
    assert "ALPACA_PAPER_MODE=false sends orders to the live account: pass --yes" in err
    code, plan, _ = reconcile("--dry-run")
    assert code == 0 and plan["paper"] is False and plan["summary"]["planned"] == 1
    assert len(order_posts(sandbox)) == posts
    code, done, _ = reconcile("--yes")
    assert code == 0 and done["summary"]["submitted"] == 1


def test_notional_caps_skip_with_reason(monkeypatch: pytest.MonkeyPatch,
                                        sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    monkeypatch.setenv("RECONCILE_MAX_ORDER_NOTIONAL", "1000")
    code, plan, _ = reconcile()
    assert code == 0
    (order,) = plan["orders"]
    assert order["status"] == "skipped"
    assert order["error"] == (
        "order notional 1123.20 at the broker's price 187.2 is above the per-order cap 1000")
    assert plan["summary"] == {"planned": 0, "submitted": 0, "failed": 0, "skipped": 1,
        "not_sent": 0, "unknown": 0}
    monkeypatch.delenv("RECONCILE_MAX_ORDER_NOTIONAL")
    monkeypatch.setenv("RECONCILE_MAX_RUN_NOTIONAL", "500")
    code, plan, _ = reconcile("--dry-run")
    assert "above the per-run cap 500" in plan["orders"][0]["error"]


def test_short_sale_only_when_local_book_is_short(monkeypatch: pytest.MonkeyPatch,
                                                  sandbox: AlpacaSandbox) -> None:
    sandbox.set_symbol("TSLA", price="250")
    use_paper(monkeypatch)
    assert invoke("trade", "sell", "TSLA", "3", "--price", "250")[0] == 0
    use_alpaca(monkeypatch, sandbox)
    code, done, _ = reconcile()
    assert code == 0
    (order,) = done["orders"]
    assert (order["side"], order["qty"], order["status"]) == ("sell", "3", "submitted")
    assert broker_qty(sandbox, "TSLA") == -3


def test_symbols_and_since_filters(monkeypatch: pytest.MonkeyPatch,
                                   sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    sandbox.set_symbol("MSFT", price="400")
    sandbox.set_position("MSFT", "2", "390")   # a broker position the ledger never traded
    code, plan, _ = reconcile("--dry-run", "--symbols", "aapl")
    assert [r["symbol"] for r in plan["positions"]] == ["AAPL"]

    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    code, plan, _ = reconcile("--dry-run", "--since", today)
    assert code == 0
    by_symbol = {o["symbol"]: o for o in plan["orders"]}
    assert by_symbol["AAPL"]["status"] == "planned"
    assert by_symbol["MSFT"]["status"] == "skipped"
    assert "not traded by the local book since" in by_symbol["MSFT"]["error"]
    msft = next(r for r in plan["positions"] if r["symbol"] == "MSFT")
    assert msft["reason"] == "unknown" and msft["delta"] == "-2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a date: use YYYY-MM-DD"),
        (["--since", "2999-01-01"], "--since 2999-01-01 is in the future"),
        (["--symbols", "AAPL,B@D"], "--symbols: symbol 'B@D' is malformed"),
    ],
)
def test_bad_arguments(monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox,
                       args: list[str], message: str) -> None:
    use_alpaca(monkeypatch, sandbox)
    code, out, err = invoke("reconcile", *args)
    assert code == 2 and message in err and out == ""


def test_failed_order_shows_reason_and_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                  sandbox: AlpacaSandbox) -> None:
    tell_story(monkeypatch, sandbox)
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    code, done, _ = reconcile()
    assert code == 1
    (order,) = done["orders"]
    assert order["status"] == "failed"
    assert order["error"] == "insufficient buying power (HTTP 403, code 40310000)"
    assert "buying power" in order["hint"]
    assert done["summary"] == {"planned": 1, "submitted": 0, "failed": 1, "skipped": 0,
        "not_sent": 0, "unknown": 0}
    monkeypatch.setenv("COLUMNS", "200")
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    code, out, _ = invoke("reconcile")
    assert code == 1
    assert "FAILED AAPL: insufficient buying power (HTTP 403, code 40310000). What to do:" in out


def test_old_script_name_runs_the_same_reconciliation(monkeypatch: pytest.MonkeyPatch,
                                                      sandbox: AlpacaSandbox) -> None:
    import os
    import subprocess
    import sys

    tell_story(monkeypatch, sandbox)
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                          "sync_alpaca_trades.py")
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))}
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert helped.returncode == 0 and "--dry-run" in helped.stdout and "--since" in helped.stdout
    dry = subprocess.run([sys.executable, script, "--dry-run"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "buy 6 market: planned" in dry.stdout.replace("\n", " ") or "planned 1" in dry.stdout
    assert broker_qty(sandbox, "AAPL") == Decimal(4)
    assert PRICE


def test_failed_orders_are_not_oscillation_and_are_reported_as_failures(
    monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox
) -> None:
    """Three runs whose orders the broker refused moved nothing: the fourth says they all
    failed and why (it used to call that "oscillating"), and sends nothing."""
    tell_story(monkeypatch, sandbox)
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    for _ in range(3):
        code, done, _ = reconcile()
        assert code == 1 and done["summary"]["failed"] == 1
    posts = len(order_posts(sandbox))
    code, done, _ = reconcile()
    assert code == 0
    (skipped,) = done["orders"]
    assert skipped["status"] == "skipped"
    assert skipped["error"].startswith(
        "the last 3 runs' orders for AAPL all failed: 40310000: insufficient buying power"
    )
    assert "oscillating" not in skipped["error"]
    assert len(order_posts(sandbox)) == posts
