"""Exactly once, even when interrupted: the two ways the old code sent an order twice,
each run as a user would (real processes, real signals, a slow broker), on both stores.

1. Ctrl-C while the order's POST is in flight, then an immediate rerun.
2. A run that outlives the reconciliation lock's lease while another run starts.

In each: exactly one order reaches the broker for the difference, the books agree after
the next run, and the day's audit tells what happened.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sandbox import AlpacaSandbox
from testing.doubles import order_posts, posts_per_client_order_id
from tests.faults.harness import alpaca_env, open_store, run_cli
from tests.faults.processes import Cli, broker_orders_per_symbol, broker_positions, wait_until

pytestmark = pytest.mark.faults

POST_SECONDS = 5.0  # the slow broker: every order POST is held this long


def paper_trades(database_url: str, sandbox: AlpacaSandbox, trades: dict[str, str]) -> None:
    """Local decisions the broker never saw: the drift a reconcile must compensate."""
    ledger = open_store(database_url)
    try:
        for symbol, qty in trades.items():
            price = sandbox.state()["symbols"][symbol]["price"]
            ledger.trade(side="buy", symbol=symbol, qty=qty, price=str(price), reason="paper")
    finally:
        ledger.close()


def today_audit(env: dict[str, str], workdir: Path) -> dict:
    day = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    audit = run_cli(["audit", day, "--json"], env, workdir)
    assert audit.returncode == 0, audit.why()
    return audit.json()


def assert_books_agree(env: dict[str, str], workdir: Path) -> None:
    final = run_cli(["reconcile", "--dry-run", "--json"], env, workdir)
    assert final.returncode == 0, final.why()
    assert final.json()["summary"]["planned"] == 0, final.why()
    assert all(not p["delta"] or p["delta"] == "0" for p in final.json()["positions"]), final.why()


def test_ctrl_c_with_the_post_in_flight_then_an_immediate_rerun_sends_one_order(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    paper_trades(database_url, sandbox, {"AAPL": "5"})
    sandbox.set_delay(POST_SECONDS, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10")

    first = Cli(["reconcile"], env, tmp_path, "first")
    assert wait_until(lambda: len(order_posts(sandbox)) == 1, 30), first.wait().why()
    time.sleep(0.5)  # the POST is on the wire and the broker is working on it
    interrupted_at = first.send(signal.SIGINT)
    run = first.wait()
    seconds_to_exit = time.monotonic() - interrupted_at
    print(f"\nSIGINT to exit with a POST in flight: {seconds_to_exit:.2f} s")
    assert run.returncode == 1, run.why()
    assert "Traceback" not in run.output and "Aborted" not in run.output, run.why()
    assert ("interrupted by SIGINT (Ctrl-C): 1 order(s) sent, 0 not sent, 0 of unknown "
            "outcome: the next run settles them") in run.stderr, run.why()
    assert seconds_to_exit < POST_SECONDS + 5, "it waits for the call in flight, no longer"

    second = run_cli(["reconcile", "--json"], env, tmp_path)  # at once, as the user did
    assert second.returncode == 0, second.why()
    assert second.json()["summary"]["planned"] == 0, second.why()
    assert len(order_posts(sandbox)) == 1
    assert broker_orders_per_symbol(sandbox) == {"AAPL": 1}
    assert broker_positions(sandbox) == {"AAPL": Decimal(5)}
    assert_books_agree(env, tmp_path)

    audit = today_audit(env, tmp_path)
    compensation = [e["event"] for e in audit["timeline"] if e.get("purpose") == "compensation"]
    assert compensation[:3] == ["OrderRequested", "OrderSendStarted", "OrderSubmitted"]
    assert compensation.count("OrderSubmitted") == 1
    completed = [e for e in audit["timeline"] if e["event"] == "ReconciliationCompleted"]
    assert "INTERRUPTED (interrupted by SIGINT (Ctrl-C))" in completed[0]["text"]
    assert completed[0]["details"]["submitted"] == 1


def test_a_forced_exit_leaves_the_order_unknown_and_the_next_run_settles_it_by_its_id(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    """Ctrl-C twice: the POST is abandoned in flight. The next run, started at once while
    the broker is still creating that order, must not plan the difference again."""
    paper_trades(database_url, sandbox, {"AAPL": "5"})
    sandbox.set_delay(POST_SECONDS, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10")

    first = Cli(["reconcile"], env, tmp_path, "first")
    assert wait_until(lambda: len(order_posts(sandbox)) == 1, 30), first.wait().why()
    first.send(signal.SIGINT)
    time.sleep(0.3)
    first.send(signal.SIGINT)
    forced = first.wait()
    assert forced.returncode != 0, forced.why()
    assert not broker_orders_per_symbol(sandbox), "the broker is still working on it"

    second = run_cli(["reconcile", "--json"], env, tmp_path)
    assert second.returncode == 0, second.why()
    document = second.json()
    (settled,) = document["settled"]
    assert settled["symbol"] == "AAPL" and settled["was"] == "outcome_unknown"
    assert settled["how"].startswith("at the broker as ")
    assert document["summary"]["planned"] == 0, second.why()
    # The resend went out under the same client order id and was refused as a duplicate.
    assert set(posts_per_client_order_id(sandbox)) == {settled["client_order_id"]}
    assert broker_orders_per_symbol(sandbox) == {"AAPL": 1}
    assert broker_positions(sandbox) == {"AAPL": Decimal(5)}
    assert_books_agree(env, tmp_path)

    audit = today_audit(env, tmp_path)
    (planned,) = [e for e in audit["timeline"] if e["event"] == "ReconciliationPlanned"
                  and e["reconciliation_id"] == document["run_id"]]
    assert f"settled {settled['client_order_id']}" in planned["text"]
    listing = run_cli(["reconciliations", "--json"], env, tmp_path).json()
    (interrupted,) = [r for r in listing["runs"] if r["run_id"] not in (
        document["run_id"], listing["runs"][0]["run_id"])]
    assert interrupted["outcome"] == "incomplete"  # killed before it could record its end
    (order,) = interrupted["orders"]
    assert order["client_order_id"] == settled["client_order_id"]
    assert order["settled_by"]["run_id"] == document["run_id"]


def test_a_run_longer_than_the_lease_keeps_the_lock_and_a_second_run_sends_nothing(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    symbols = {"AAPL": "1", "MSFT": "2", "NVDA": "3", "TSLA": "4"}
    paper_trades(database_url, sandbox, symbols)
    sandbox.set_delay(2.5, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10",
                     RECONCILE_LOCK_LEASE_SECONDS="5")

    first = Cli(["reconcile", "--json"], env, tmp_path, "first")
    assert wait_until(lambda: len(order_posts(sandbox)) >= 3, 60), first.wait().why()
    # Past the lease: the first run has renewed it while it worked.
    second = run_cli(["reconcile", "--json"], env, tmp_path)
    assert second.returncode == 1, second.why()
    assert "another reconciliation" in second.stderr and "nothing was sent" in second.stderr
    done = first.wait()
    assert done.returncode == 0, done.why()
    assert done.seconds > 8, "the run outlived its 5 s lease"
    assert done.json()["summary"]["submitted"] == 4
    assert broker_orders_per_symbol(sandbox) == dict.fromkeys(symbols, 1)
    assert_books_agree(env, tmp_path)


def test_a_run_frozen_past_its_lease_loses_the_lock_and_sends_nothing_more(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    """SIGSTOP holds the first run past its lease with its first POST in flight; a second
    run takes over, settles that order by its id, withdraws the one never sent and sends
    it afresh. Woken, the first run finds the lock gone and stops before its next POST."""
    paper_trades(database_url, sandbox, {"AAPL": "5", "MSFT": "7"})
    sandbox.set_delay(3, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10",
                     RECONCILE_LOCK_LEASE_SECONDS="5")

    first = Cli(["reconcile", "--json"], env, tmp_path, "first")
    assert wait_until(lambda: len(order_posts(sandbox)) == 1, 30), first.wait().why()
    first.send(signal.SIGSTOP)
    try:
        time.sleep(6)  # the lease (5 s) runs out
        second = run_cli(["reconcile", "--json"], env, tmp_path)
    finally:
        first.send(signal.SIGCONT)
    assert second.returncode == 0, second.why()
    resumed = first.wait()
    assert resumed.returncode == 1, resumed.why()
    assert "took it over" in resumed.stderr, resumed.why()
    assert resumed.json()["summary"]["not_sent"] == 1

    taken_over = second.json()
    assert [o["symbol"] for o in taken_over["orders"] if o["status"] == "submitted"] == ["MSFT"]
    found, withdrawn = taken_over["settled"]
    # The first run's POST landed while it was frozen: the sync found it by its id.
    assert (found["symbol"], found["was"]) == ("AAPL", "outcome_unknown")
    assert found["how"].startswith("found by the sync: at the broker as ")
    assert (withdrawn["symbol"], withdrawn["was"], withdrawn["status"]) == (
        "MSFT", "requested", "canceled")
    assert broker_orders_per_symbol(sandbox) == {"AAPL": 1, "MSFT": 1}
    assert max(posts_per_client_order_id(sandbox).values()) == 1
    assert broker_positions(sandbox) == {"AAPL": Decimal(5), "MSFT": Decimal(7)}
    assert_books_agree(env, tmp_path)


def test_ctrl_c_during_a_trade_finishes_its_post_and_records_the_answer(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    sandbox.set_delay(2, method="POST", path="/v2/orders")
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10")
    trade = Cli(["trade", "buy", "AAPL", "3", "--json"], env, tmp_path, "trade")
    assert wait_until(lambda: len(order_posts(sandbox)) == 1, 30), trade.wait().why()
    trade.send(signal.SIGTERM)
    run = trade.wait()
    assert run.returncode == 1, run.why()
    assert "interrupted by SIGTERM: the order in flight was finished and recorded" in run.stderr
    assert run.json()["status"] in ("accepted", "filled"), run.why()
    assert broker_orders_per_symbol(sandbox) == {"AAPL": 1}


def test_a_stop_before_the_orders_are_stored_sends_nothing_and_says_so(
    database_url: str, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    """SIGTERM while the run still reads the broker: the plan is kept, nothing is sent."""
    paper_trades(database_url, sandbox, {"TSLA": "5"})
    sandbox.set_delay(2, method="GET", path="/v2/account")
    # The slow read must answer, not time out (the suite's timeout is 2 s).
    env = alpaca_env(sandbox, database_url, BROKER_TIMEOUT_SECONDS="10")
    first = Cli(["reconcile", "--json"], env, tmp_path, "first")
    assert wait_until(lambda: bool(sandbox.requests(path="/v2/account")), 30), first.wait().why()
    first.send(signal.SIGTERM)
    run = first.wait()
    assert run.returncode == 1, run.why()
    (order,) = run.json()["orders"]
    assert (order["status"], order["error"]) == ("skipped", "not sent: interrupted by SIGTERM")
    assert "0 order(s) sent, 1 not sent, 0 of unknown outcome" in run.stderr
    assert order_posts(sandbox) == []
    listing = run_cli(["reconciliations", "--json"], env, tmp_path).json()
    (interrupted,) = listing["runs"]
    assert interrupted["outcome"] == "interrupted"
    assert [o["status"] for o in interrupted["orders"]] == ["not_sent"]
