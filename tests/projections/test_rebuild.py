"""Rebuilding beside the live views: a fixed bug shows up in --verify, readers never see a
half-built view, events that arrive meanwhile are not lost, catch-ups may race."""

from __future__ import annotations

import json
import threading
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from commands.cli import cli
from ledger.application import Ledger
from ledger.domain import Order
from projections import UnknownProjection, rebuild
from projections.engine import rebuilder
from projections.model import fold as fold_module
from projections.model.positions import signed
from tests.projections.compare import memory_digests
from tests.projections.script import Script


def some_history(script: Script) -> None:
    script.order("AAPL", "buy", "10", [(D(4), D(100)), (D(6), D(102))])
    script.order("AAPL", "sell", "3", [(D(3), D(110))])
    script.order("MSFT", "buy", "2", [(D(1), D(400)), (D(1), D(401))], broker="alpaca")


def broken_partial_fills(state, seq, e):
    """A projection bug: a partial fill reaches the orders view but never the local book."""
    record = state._order(seq, e)
    if record is None:
        return
    record.filled_qty += e.qty
    record.filled_value += e.qty * e.price
    record.status = "partially_filled"
    if record.broker not in (None, "paper"):
        ref = f"{record.key}:{e.execution_id}"
        state.broker.trade(seq, record.symbol, signed(record.side, e.qty), e.price, ref)


def test_verify_lists_what_a_fixed_projection_changes(
    ledger: Ledger, script, make_views, monkeypatch, cli_env
):
    some_history(script)
    with monkeypatch.context() as patch:
        patch.setitem(fold_module.HANDLERS, Order.PartiallyFilled, broken_partial_fills)
        make_views().catch_up()
    assert {r.symbol: r.qty for r in make_views().local_book()} == {"AAPL": D(3), "MSFT": D(1)}

    result = CliRunner().invoke(cli, ["rebuild", "--verify", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    views = {view["name"]: view for view in report["views"]}
    assert report["differed"] and report["events"] == ledger.last_notification_id()
    assert views["orders"]["identical"] and views["broker_book"]["identical"]
    local = views["local_book"]
    assert not local["identical"] and local["replaced_digest"] != local["digest"]
    changed = {(d["table"], tuple(d["key"].values())): d for d in local["differences"]}
    aapl = changed[("view_local_positions", ("AAPL",))]
    assert (aapl["change"], aapl["before"]["qty"], aapl["after"]["qty"]) == ("changed", "3", "7")
    added = [d for d in local["differences"] if d["change"] == "added"]
    assert {d["table"] for d in added} == {"view_local_lines"} and len(added) == 2
    assert make_views().digests() == memory_digests(ledger)

    # Once fixed and rebuilt, another verify finds nothing: exit 0.
    again = CliRunner().invoke(cli, ["rebuild", "--verify"], catch_exceptions=False)
    assert again.exit_code == 0 and "identical" in again.stdout
    assert "row(s) differ" not in again.stdout


def test_text_report_lists_rows_and_exit_1(
    ledger: Ledger, script, make_views, monkeypatch, cli_env
):
    some_history(script)
    with monkeypatch.context() as patch:
        patch.setitem(fold_module.HANDLERS, Order.PartiallyFilled, broken_partial_fills)
        make_views().catch_up()
    result = CliRunner().invoke(
        cli, ["rebuild", "--verify", "--projection", "local_book"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "local_book: 4 row(s) differ" in result.stdout
    assert "view_local_positions symbol=AAPL changed: qty 3 -> 7," in result.stdout
    assert "view_local_lines symbol=AAPL seq=5 n=0 added: kind=trade qty=4 price=100" in (
        result.stdout
    )
    # Every view is folded again (the audit index is folded with all of them); only the
    # local book's rows changed.
    assert "events/s" in result.stdout and result.stdout.count("identical") == 2


def test_readers_see_the_old_view_until_the_swap(ledger: Ledger, script, make_views):
    some_history(script)
    live = make_views()
    live.catch_up()
    before = live.local_book()
    seen = []

    def read_meanwhile(done: int, total: int) -> None:
        seen.append(make_views().local_book())
        if len(seen) == 1:
            # Events recorded during the rebuild are in the swapped-in views too.
            script.order("NVDA", "buy", "1", [(D(1), D(50))])

    report = rebuild(make_views(page_size=2), progress=read_meanwhile)
    assert seen and all(rows == before for rows in seen)
    assert report.position == ledger.last_notification_id()
    assert "NVDA" in {r.symbol for r in live.local_book()}
    assert live.digests() == memory_digests(ledger)


def test_rebuilding_one_view_brings_the_views_computed_from_it(ledger: Ledger, script, make_views):
    some_history(script)
    views = make_views()
    views.catch_up()
    # The audit index is computed from the books, and folded with every view: asking for
    # any one view rebuilds them all.
    everything = ["orders", "local_book", "broker_book", "audit_index"]
    for name in everything:
        assert [v.name for v in rebuild(views, [name]).views] == everything
    with pytest.raises(UnknownProjection, match="choose from orders"):
        rebuild(views, ["positions"])


def test_racing_catch_ups_apply_every_event_once(ledger: Ledger, open_store, make_views):
    writer = Script(open_store())
    readers = [make_views(page_size=3, target=open_store()) for _ in range(3)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_catching_up(views) -> None:
        try:
            while not stop.is_set():
                views.catch_up()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=keep_catching_up, args=(v,)) for v in readers]
    for thread in threads:
        thread.start()
    try:
        for n in range(15):
            writer.order("AAPL", "buy" if n % 4 else "sell", "1", [(D(1), D(100 + n))])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    final = make_views()
    final.catch_up()
    assert final.digests() == memory_digests(ledger)


@pytest.mark.parametrize(("pages_per_commit", "seconds"), [(1, 1.0), (3, 1.0), (5, 0.0)])
def test_pages_per_transaction_change_nothing_in_the_views(
    ledger: Ledger, script, make_views, monkeypatch, pages_per_commit, seconds
):
    # Orders that later pages change, in the same transaction and in later ones, and a
    # reversal that replays lines some of which are not yet written.
    some_history(script)
    late = script.order("AAPL", "buy", "5", [(D(2), D(99))], broker="alpaca")
    script.order("MSFT", "sell", "1", [(D(1), D(405))])
    script.fill(late.id, D(3), D(98))
    script.reverse(late.id)
    script.order("NVDA", "buy", "4", [(D(4), D(50))], broker="alpaca")
    monkeypatch.setattr(rebuilder, "PAGES_PER_COMMIT", pages_per_commit)
    monkeypatch.setattr(rebuilder, "COMMIT_SECONDS", seconds)
    done: list[int] = []
    report = rebuild(make_views(page_size=2), verify=True, progress=lambda n, _: done.append(n))
    assert {v.name: v.digest for v in report.views} == memory_digests(ledger)
    assert done == sorted(done) and done[-1] == ledger.last_notification_id()


def test_rebuilding_the_audit_index_folds_what_its_closes_are_made_of(
    ledger: Ledger, script: Script, clock, make_views
) -> None:
    """A day's close holds both books and the open orders: folding them from event 1 needs
    the books' lines and the orders as they were, so those views are rebuilt beside it (a
    fill busted pages after it was made once replayed an empty history here)."""
    from datetime import UTC, datetime

    clock.set(datetime(2026, 1, 5, 15, tzinfo=UTC))
    filled = script.order("AAPL", "buy", "10", [(D(4), D(100)), (D(6), D(102))], broker="alpaca")
    script.order("AAPL", "sell", "3", [(D(3), D(110))], broker="alpaca")
    left_open = script.order("MSFT", "buy", "5", [(D(2), D(400))], broker="alpaca")
    clock.set(datetime(2026, 1, 6, 15, tzinfo=UTC))
    script.reverse(filled.id)
    script.fill(left_open.id, "3", "401")
    views = make_views(page_size=2)
    views.catch_up()
    closes = [d.closing for d in views.audit_days()]

    report = rebuild(views, ["audit_index"], verify=True)
    assert {v.name for v in report.views} == {"orders", "local_book", "broker_book", "audit_index"}
    assert not report.differed
    assert [d.closing for d in views.audit_days()] == closes
    assert views.digests() == memory_digests(ledger)
