"""A rebuild that reads ahead in a second process folds exactly the events it would read itself."""

from __future__ import annotations

import types
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from eventsourcing.persistence import PersistenceError

from ledger.application import Ledger
from ledger.domain import Order
from projections import rebuild
from projections.engine import read_ahead, rebuilder
from projections.engine.read_ahead import PageDecoder, PageEncoder, ReaderFailed
from projections.engine.runner import read_page
from projections.model.catalogue import Stamp
from tests.projections.compare import memory_digests
from tests.projections.script import Script


def every_kind_of_event(ledger: Ledger, script: Script) -> None:
    """Decisions, orders through each answer, reversals, snapshots (nested positions),
    corporate actions (a date field) and adjustments."""
    script.order("AAPL", "buy", "10", [(D(4), D("100.25")), (D(6), D(102))])
    script.order("AAPL", "sell", "3", [(D(1), D(110))], cancel=True)
    busted = script.order("MSFT", "buy", "2", [(D(2), D(400))], broker="alpaca")
    script.reverse(busted.id)
    script.order("NVDA", "buy", "1.5", purpose="compensation", broker="alpaca")
    script.order("TSLA", "sell", "4", [(D(4), D(200))], purpose="external", broker="alpaca")
    script.snapshot(
        {"AAPL": ("7", "100.9"), "MSFT": ("-2", "400")},
        broker_time=datetime(2026, 1, 5, 15, tzinfo=UTC),
        open_orders=[{"client_order_id": "x", "symbol": "NVDA", "qty": D("1.5")}],
    )
    script.corporate_action("AAPL", ratio="4", effective=date(2026, 1, 6))
    script.corporate_action("MSFT", new_symbol="MSFX")
    script.adjust("AAPL", "1", "99.5")
    rejected = script.order("IBM", "buy", "1", submit=False, broker="alpaca")
    order: Order = ledger.repository.get(rejected.id)
    order.mark_submission_failed(
        broker="alpaca", code="503", message="unavailable", retryable=True, http_status=503
    )
    order.mark_rejected(reason="symbol not tradable")
    ledger.save(order)


def plain(page: list[tuple[int, Any]]) -> list[tuple[int, type, Any]]:
    """What the fold sees of each event: its class and every attribute."""
    return [
        (seq, event.event_class, tuple(event)) if type(event) is Stamp
        else (seq, type(event), vars(event))
        for seq, event in page
    ]


def test_pages_cross_as_the_events_read_page_gives(ledger: Ledger, script: Script) -> None:
    every_kind_of_event(ledger, script)
    expected = read_page(ledger, 0, 1_000, full=False, statuses=True)
    notifications = ledger.recorder.select_notifications(start=0, limit=1_000)
    encoder, decoder = PageEncoder(ledger.mapper), PageDecoder(ledger.mapper.transcoder)
    # In two pages, so that the second leans on shapes the first one sent.
    half = len(notifications) // 2
    received = [
        *decoder.decode(encoder.encode(notifications[:half])),
        *decoder.decode(encoder.encode(notifications[half:])),
    ]
    assert plain(received) == plain(expected)
    # Every way across is taken: stamps, plain states, and whole pickled events.
    kinds = {type(e).__qualname__ for _, e in received}
    assert {"Stamp", "Order.Filled", "BrokerSnapshot.Synced", "CorporateAction.Recorded"} <= kinds
    ids = [e.originator_id for _, e in received]
    assert all(type(i) is type(ids[0]) and i == type(i)(str(i)) for i in ids)
    assert {hash(i) for i in ids} == {hash(type(i)(str(i))) for i in ids}


def test_a_rebuild_reading_ahead_equals_the_plain_fold(
    ledger: Ledger, script: Script, make_views, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_kind_of_event(ledger, script)
    views = make_views(page_size=3)
    views.catch_up()
    monkeypatch.setattr(read_ahead, "READ_AHEAD_FROM", 0)
    monkeypatch.setattr(read_ahead, "cores", lambda: 2)  # on a one-core runner too
    started: list[int] = []
    real = read_ahead.read_ahead

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(read_ahead, "read_ahead", counted)
    monkeypatch.setattr(rebuilder, "PAGES_PER_COMMIT", 2)
    report = rebuild(views, verify=True)
    assert started == [1]
    assert not report.differed
    assert report.events == ledger.last_notification_id()
    assert {v.name: v.digest for v in report.views} == memory_digests(ledger)


def _reading(ledger: Ledger, **env: str) -> list[Any]:
    elsewhere = types.SimpleNamespace(env={**ledger.env, **env}, mapper=ledger.mapper)
    with read_ahead.read_ahead(elsewhere, 0, 100) as pages:  # type: ignore[arg-type]
        return list(pages)


def test_a_store_the_reader_cannot_open_fails_as_it_would_here(ledger: Ledger, tmp_path) -> None:
    # Raised as the error reading in-process would raise (the CLI says "the event store's
    # server went away" and the like for those), with the reader's traceback as its cause.
    if ledger.env.get("SQLITE_DBNAME"):
        elsewhere = {"SQLITE_DBNAME": str(tmp_path / "no" / "such" / "folder.db")}
    else:
        elsewhere = {"POSTGRES_DBNAME": "no_such_database_for_events"}
    with pytest.raises(PersistenceError) as raised:
        _reading(ledger, **elsewhere)
    assert isinstance(raised.value.__cause__, ReaderFailed)
    assert "Traceback" in str(raised.value.__cause__)


def test_a_reader_that_dies_says_how(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Python that cannot start: no report on the pipe, only its last word on stderr.
    monkeypatch.setenv("PYTHONHOME", "/no/such/python/home")
    with pytest.raises(ReaderFailed, match=r"ended \(exit 1\) mid-page: .*\S"):
        _reading(ledger)


def test_only_stores_another_process_can_open_are_read_ahead(open_store) -> None:
    from projections.engine.store import ViewStore

    assert ViewStore(open_store()).shared_between_processes()
    memory = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"})
    assert not ViewStore(memory).shared_between_processes()


def test_commands_rebuild_reads_ahead_and_finds_the_views_identical(
    ledger: Ledger, script: Script, make_views, monkeypatch: pytest.MonkeyPatch, cli_env
) -> None:
    import json

    from click.testing import CliRunner

    from commands.cli import cli

    every_kind_of_event(ledger, script)
    make_views().catch_up()
    monkeypatch.setattr(read_ahead, "READ_AHEAD_FROM", 0)
    monkeypatch.setattr(read_ahead, "cores", lambda: 2)
    started: list[int] = []
    real = read_ahead.read_ahead
    monkeypatch.setattr(
        read_ahead, "read_ahead", lambda *a, **k: started.append(1) or real(*a, **k)
    )
    result = CliRunner().invoke(cli, ["rebuild", "--verify", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert started == [1]
    report = json.loads(result.stdout)
    assert report["events"] == ledger.last_notification_id()
    assert all(not view["differences"] for view in report["views"])
    assert {v["name"]: v["digest"] for v in report["views"]} == memory_digests(ledger)
