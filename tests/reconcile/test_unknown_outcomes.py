"""Orders whose answer was lost: settled by their client order ids, never sent under new
ones; on both stores, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ledger.application import Ledger
from ledger.brokers.router import LANDING_WINDOW
from ledger.services.reconciling import Reconciler, ReconcileRequest
from ledger.settings import Settings
from projections import catch_up
from projections.queries.reconcile_books import ReconcileBooks
from sandbox import AlpacaSandbox
from testing.doubles import alpaca_env, order_posts
from tests.reconcile.story import reconcile, tell_story

pytestmark = pytest.mark.usefixtures("cli_env")


def test_a_lost_compensation_is_sent_again_under_its_own_id(
    monkeypatch: pytest.MonkeyPatch, sandbox: AlpacaSandbox
) -> None:
    """The connection drops before the broker acted: the order is of unknown outcome, its
    symbol waits, and the next run sends it again under the same client order id."""
    tell_story(monkeypatch, sandbox)
    before = len(order_posts(sandbox))
    sandbox.add_fault("drop", method="POST", path="/v2/orders")
    code, first, _ = reconcile()
    assert code == 1
    (lost,) = first["orders"]
    assert (lost["status"], lost["outcome_unknown"]) == ("failed", True)
    assert lost["error"].startswith("outcome unknown: ")
    assert first["summary"]["unknown"] == 1

    # It may land any moment: it counts as open, so nothing is planned for AAPL again.
    code, dry, _ = reconcile("--dry-run")
    assert code == 0 and dry["summary"]["planned"] == 0
    (aapl,) = [p for p in dry["positions"] if p["symbol"] == "AAPL"]
    assert (aapl["open_qty"], aapl["delta"]) == ("6", "0")

    code, second, err = reconcile()
    assert code == 0, err
    (settled,) = second["settled"]
    assert settled["client_order_id"] == lost["client_order_id"]
    assert settled["how"].startswith("at the broker as ")
    assert second["summary"]["planned"] == 0
    posts = order_posts(sandbox)[before:]
    assert [p["body"]["client_order_id"] for p in posts] == [lost["client_order_id"]] * 2
    assert len([o for o in sandbox.state()["orders"]
                if o["client_order_id"] == lost["client_order_id"]]) == 1


def test_a_decision_of_unknown_outcome_is_looked_up_and_never_sent_again(
    open_store: Callable[..., Ledger], make_settings: Callable[..., Settings],
    sandbox: AlpacaSandbox,
) -> None:
    """Repeating a decision is the decision engine's call: reconcile only looks it up, and
    once its send is long past landing, records that it never reached the broker."""
    env = alpaca_env(sandbox, RECONCILE_RECENT_FILL_SECONDS="0")
    ledger = open_store(**env)
    sandbox.add_fault("drop", method="POST", path="/v2/orders")
    order = ledger.trade(side="buy", symbol="MSFT", qty="2")
    assert order.status == "outcome_unknown"
    settings = make_settings(**env)

    def run(now: datetime) -> list[dict]:
        books = ReconcileBooks(catch_up(ledger), recent_fill_seconds=settings.recent_fill_seconds)
        result = Reconciler(ledger, books, settings, clock=lambda: now).run(ReconcileRequest())
        return result.settled

    assert run(datetime.now(UTC)) == [
        {**entry, "how": "still of unknown outcome: the next run asks again"}
        for entry in run(datetime.now(UTC))
    ]
    assert ledger.get_order(order.id).status == "outcome_unknown"
    (settled,) = run(datetime.now(UTC) + LANDING_WINDOW + timedelta(seconds=1))
    assert settled["how"].startswith("not at the broker: the broker has no order under this")
    after = ledger.get_order(order.id)
    assert (after.status, after.failures[-1]["code"]) == ("submission_failed", "never_landed")
    assert len(order_posts(sandbox)) == 1, "looked up, never sent again"
