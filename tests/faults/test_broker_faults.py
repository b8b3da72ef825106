"""Broker faults met by whole commands (`trade`, `sync`, `reconcile`) in real processes.

The adapter's mapping of each fault is tested in tests/broker; here the question is what
a user and the event store see: what is retried (only what is safe: bounded, backing off,
honouring Retry-After), that no client order id is ever POSTed twice, that every failed
order is an event saying why, and the exit code with its one clear line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.brokers.alpaca.client import retry_delay
from sandbox import AlpacaSandbox
from testing.doubles import broker_qty, order_posts, posts_per_client_order_id
from tests.faults.harness import (
    Launcher,
    Run,
    alpaca_env,
    assert_one_clear_line,
    event_names,
    open_store,
    stored_events,
)

pytestmark = pytest.mark.faults

TIMEOUT = "1"  # BROKER_TIMEOUT_SECONDS: "slow" faults sleep past it


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def cli(
    launcher: Launcher, sandbox: AlpacaSandbox, url: str, tmp_path: Path
) -> Callable[..., Run]:
    def run(*args: str, **env: str) -> Run:
        done, _ = launcher.run(
            list(args),
            alpaca_env(sandbox, url, BROKER_TIMEOUT_SECONDS=TIMEOUT, **env),
            cwd=tmp_path,
        )
        return done

    return run


def failures(url: str) -> list[Any]:
    return [e for name, e in stored_events(url) if name == "OrderSubmissionFailed"]


def wait_for_broker_order(sandbox: AlpacaSandbox, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(sandbox.state()["orders"]) < count:
        assert time.monotonic() < deadline, "the slow POST never completed at the sandbox"
        time.sleep(0.05)


# -- commands trade ------------------------------------------------------------------------

# fault, its options, exit code, POSTs, broker orders, failure recorded, words in the output
TRADE_FAULTS = [
    ("429", {}, 0, 2, 1, None, "filled"),
    ("429", {"retry_after": "1"}, 0, 2, 1, None, "filled"),
    ("429", {"count": 10}, 1, 3, 0, "42910000", "rate limit"),
    ("500", {}, 1, 1, 0, "50010000", "Alpaca failed on its side"),
    ("503", {"retry_after": "1"}, 1, 1, 0, "50310000", "retry after 1 s"),
    ("502_html", {}, 1, 1, 0, "http_502", "not Alpaca's JSON"),
    ("drop", {}, 1, 1, 0, "connection_lost", "connection to Alpaca"),
    ("drop_after_create", {}, 0, 1, 1, None, "filled"),
    ("malformed_json", {}, 0, 1, 1, None, "filled"),
    ("slow", {"delay": 2.5}, 1, 1, 1, "timeout", f"within {TIMEOUT} s"),
    # An order status alpaca-py does not know is recorded; the fill is fetched at once.
    ("unknown_enum", {}, 0, 1, 1, None, "filled"),
]


@pytest.mark.parametrize(
    ("fault", "options", "code", "posts", "orders", "failure", "words"),
    TRADE_FAULTS,
    ids=[f"{f[0]}{'-' + '-'.join(map(str, f[1].values())) if f[1] else ''}" for f in TRADE_FAULTS],
)
def test_trade_meets_a_broker_fault(
    cli: Callable[..., Run], sandbox: AlpacaSandbox, url: str, fault: str,
    options: dict[str, Any], code: int, posts: int, orders: int, failure: str | None, words: str,
) -> None:
    sandbox.add_fault(fault, method="POST", path="/v2/orders", **options)
    started = time.monotonic()
    run = cli("trade", "buy", "AAPL", "1", "--reason", f"fault {fault}")
    took = time.monotonic() - started
    assert run.returncode == code, run.why()
    assert "Traceback" not in run.output, run.why()
    assert words in run.stdout, run.why()
    # Never the same client order id twice, unless Alpaca refused the first unseen (429).
    per_coid = posts_per_client_order_id(sandbox)
    assert len(per_coid) == 1 and sum(per_coid.values()) == posts, per_coid
    if fault == "slow":
        wait_for_broker_order(sandbox, 1)  # the sandbox finishes after the client gave up
    assert len(sandbox.state()["orders"]) == orders
    if options.get("retry_after"):
        assert took >= float(options["retry_after"]) or code != 0, took
    recorded = failures(url)
    if failure is None:
        assert recorded == []
    else:
        assert [f.code for f in recorded] == [failure]
        assert recorded[0].retryable
    names = event_names(url)
    assert names[:2] == ["DecisionRecorded", "OrderRequested"]
    if code == 1 and orders:
        # A slow broker created the order after the answer was given up on: the next sync
        # asks by client order id and records it, and still nothing is sent again.
        synced = cli("sync")
        assert synced.returncode == 0, synced.why()
        stored = open_store(url)
        try:
            (order_id,) = [e.originator_id for n, e in stored_events(url)
                           if n == "OrderRequested"]
            assert stored.get_order(order_id).status == "filled"
        finally:
            stored.close()
        assert len(order_posts(sandbox)) == posts


# -- commands sync -------------------------------------------------------------------------

SYNC_FAULTS = [
    # fault, path, options, exit code, words on stderr (a failing broker is exit 1, never
    # 2: nothing about the command or the settings is wrong)
    ("429", "/v2/account", {"count": 2}, 0, ""),
    ("500", "/v2/positions", {}, 0, ""),
    ("503", "/v2/orders", {"retry_after": "0"}, 0, ""),
    ("drop", "/v2/clock", {}, 0, ""),
    ("503", "/v2/account", {"count": 10}, 1, "Failed to sync Alpaca account: GET /v2/account"),
    ("slow", "/v2/positions", {"delay": 2.5}, 1, f"within {TIMEOUT} s"),
    ("malformed_json", "/v2/account/activities/FILL", {}, 1, "not valid JSON"),
    ("429", "/v2/account", {"count": 10, "retry_after": "120"}, 1, "retry after 120 s"),
]


@pytest.mark.parametrize(
    ("fault", "path", "options", "code", "words"),
    SYNC_FAULTS,
    ids=[f"{f[0]}-{f[1].rsplit('/', 1)[-1]}-{f[3]}" for f in SYNC_FAULTS],
)
def test_sync_retries_reads_or_stores_nothing(
    cli: Callable[..., Run], sandbox: AlpacaSandbox, url: str, fault: str, path: str,
    options: dict[str, Any], code: int, words: str,
) -> None:
    sandbox.add_fault(fault, method="GET", path=path, **options)
    if code == 0:
        run = cli("-v", "sync")
        assert run.returncode == 0 and "Traceback" not in run.output, run.why()
        assert event_names(url).count("BrokerSynced") == 1
        # Each retry is logged (INFO: shown with -v), with how long it waits.
        assert "trying again in" in run.stderr, run.why()
    else:
        run = cli("sync")
        assert_one_clear_line(run, exit_code=code, contains=words)
        # No snapshot from a failed read (docs/design.md, "A failed read is never flat").
        assert event_names(url) == []
    assert order_posts(sandbox) == []


# -- commands reconcile --------------------------------------------------------------------


def drift(url: str, qty: str = "6") -> None:
    """A decision filled by the paper broker only: the broker is `qty` AAPL short of it."""
    paper = open_store(url)
    try:
        paper.trade(side="buy", symbol="AAPL", qty=qty, price="190", reason="paper bug")
    finally:
        paper.close()


@pytest.mark.parametrize(
    ("fault", "options"),
    # 429 three times: the first POST and both retries (ALPACA_RETRY_ATTEMPTS=2) refused.
    [("500", {}), ("503", {}), ("drop", {}), ("slow", {"delay": 2.5}), ("429", {"count": 3})],
)
def test_a_failed_compensation_is_recorded_and_the_next_run_never_doubles_it(
    cli: Callable[..., Run], sandbox: AlpacaSandbox, url: str, fault: str,
    options: dict[str, Any],
) -> None:
    drift(url)
    sandbox.add_fault(fault, method="POST", path="/v2/orders", **options)
    first = cli("reconcile")
    assert first.returncode == 1 and "Traceback" not in first.output, first.why()
    assert "FAILED AAPL:" in first.stdout and "What to do:" in first.stdout, first.why()
    assert "see the broker's message" not in first.stdout, first.why()  # a specific hint
    (recorded,) = failures(url)
    assert recorded.retryable
    if fault == "slow":
        wait_for_broker_order(sandbox, 1)  # it landed after all, once the client gave up
    second = cli("reconcile", "--json")
    assert second.returncode == 0, second.why()
    third = cli("reconcile", "--json")
    assert third.returncode == 0 and third.json()["summary"]["planned"] == 0, third.why()
    assert broker_qty(sandbox, "AAPL") == 6
    per_coid = posts_per_client_order_id(sandbox)
    first_coid, *later = per_coid.values()
    if fault == "429":
        # Retried, and refused unseen each time: Alpaca acted on none, so the next run
        # plans the difference afresh under a new id.
        assert first_coid == 3 and later == [1], per_coid
    elif fault == "slow":
        # It landed after all: the next run's sync finds it; nothing is sent again.
        assert list(per_coid.values()) == [1], per_coid
    else:
        # A 5xx or a dropped connection after the POST proves nothing: the order keeps its
        # client order id, and the next run sends it again under that id (the broker takes
        # an id once), never under a new one.
        assert list(per_coid.values()) == [2], per_coid


@pytest.mark.parametrize(
    ("fault", "options"),
    [("429", {}), ("429", {"retry_after": "1"}), ("drop_after_create", {}),
     ("malformed_json", {})],
)
def test_a_compensation_whose_answer_was_lost_or_refused_unseen_is_sent_once(
    cli: Callable[..., Run], sandbox: AlpacaSandbox, url: str, fault: str,
    options: dict[str, Any],
) -> None:
    drift(url)
    sandbox.add_fault(fault, method="POST", path="/v2/orders", **options)
    run = cli("reconcile", "--json")
    assert run.returncode == 0, run.why()
    assert [o["status"] for o in run.json()["orders"]] == ["submitted"]
    assert broker_qty(sandbox, "AAPL") == 6 and failures(url) == []
    assert list(posts_per_client_order_id(sandbox).values()) == [2 if fault == "429" else 1]


@pytest.mark.parametrize(
    ("fault", "path", "options"),
    [
        ("503", "/v2/account", {"count": 10}),
        ("500", "/v2/positions", {"count": 10}),
        ("slow", "/v2/orders", {"delay": 2.5}),
        ("malformed_json", "/v2/clock", {"count": 2}),
        ("drop", "/v2/account/activities", {"count": 10}),
    ],
)
def test_reconcile_stops_with_one_line_when_a_read_fails(
    cli: Callable[..., Run], sandbox: AlpacaSandbox, url: str, fault: str, path: str,
    options: dict[str, Any],
) -> None:
    drift(url)
    before = event_names(url)
    sandbox.add_fault(fault, method="GET", path=path, **options)
    run = cli("reconcile")
    assert_one_clear_line(run, exit_code=1, contains="Reconciliation stopped")
    assert "nothing was planned or sent" in run.stderr
    assert order_posts(sandbox) == []
    after = event_names(url)[len(before):]
    # No snapshot, no plan: only the lock taken and given back.
    assert not {"BrokerSynced", "ReconciliationStarted", "ReconciliationPlanned"} & set(after)


# -- the rule behind every retry above -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "retry_after", "attempt", "wait"),
    [
        ("POST", 429, None, 0, 0.5),  # refused unseen: safe to send again
        ("POST", 429, None, 2, 2.0),  # the wait doubles
        ("POST", 429, "7", 0, 7.0),  # and is at least what Retry-After asks
        ("POST", 429, "120", 0, None),  # longer than a command should sit: report it
        ("POST", 500, None, 0, None),  # may have created the order: look it up instead
        ("POST", 503, "1", 0, None),
        ("POST", 504, None, 0, None),  # alpaca-py itself would have sent it again
        ("POST", None, None, 0, None),  # a dropped connection after the order was sent
        ("DELETE", 502, None, 0, None),
        ("GET", 503, "2", 0, 2.0),  # a read may always be asked again
        ("GET", 500, None, 1, 1.0),
        ("GET", None, None, 0, 0.5),
        ("GET", 404, None, 0, None),  # an answer, not a failure
        ("GET", 401, None, 0, None),
    ],
)
def test_the_retry_rule(
    method: str, status: int | None, retry_after: str | None, attempt: int, wait: float | None
) -> None:
    assert retry_delay(method, status, retry_after, attempt, base=0.5) == wait
