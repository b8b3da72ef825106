"""A rebuild writes its batches on a thread of its own while it folds the next pages: what
the fold reads back waits for them, a failed write surfaces in the rebuild and leaves the
live views alone, and no thread outlives the rebuild."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from ledger.application import Ledger
from projections import rebuild, rebuilder
from projections.overlap import BackgroundWriter
from projections.runner import ViewWriter
from tests.projections.compare import memory_digests
from tests.projections.script import Script


class Boom(Exception):
    pass


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rebuild-writer"]


def history(script: Script) -> None:
    """Orders filled pages after they were requested (so the fold lets them go and reads
    them back), and a reversal whose replay reads a symbol's written lines."""
    first = script.order("AAPL", "buy", "10", [(D(4), D(100)), (D(6), D(102))], broker="alpaca")
    late = script.order("MSFT", "buy", "5", [(D(2), D(400))], broker="alpaca")
    for n in range(6):
        script.order("NVDA", "buy" if n % 2 else "sell", "1", [(D(1), D(50 + n))])
    script.fill(late.id, D(3), D(401))
    script.reverse(first.id)
    script.order("AAPL", "sell", "3", [(D(3), D(110))], broker="alpaca")


def test_the_fold_reads_back_only_what_the_writer_has_committed(
    ledger: Ledger, script, make_views, monkeypatch
):
    # One event a batch: the fold lets the order go after a batch that does not touch it,
    # and reads it back in the next, while the batch that last changed it is still being
    # written (the writer is slow here). Without waiting it would read a stale fill.
    other = script.order("MSFT", "buy", "5", [(D(1), D(400))], broker="alpaca")
    order = script.order("AAPL", "buy", "5", [(D(2), D(100))], broker="alpaca")
    script.fill(order.id, D(1), D(101))
    script.fill(other.id, D(1), D(401))
    script.fill(order.id, D(1), D(102))
    script.reverse(order.id)
    real = ViewWriter.execute

    def slow(self, tx, statements):
        time.sleep(0.2)
        real(self, tx, statements)

    monkeypatch.setattr(ViewWriter, "execute", slow)
    monkeypatch.setattr(rebuilder, "PAGES_PER_COMMIT", 1)
    report = rebuild(make_views(page_size=1), verify=True)
    assert {v.name: v.digest for v in report.views} == memory_digests(ledger)
    assert not writer_threads()


def test_a_failed_write_fails_the_rebuild_and_keeps_the_live_views(
    ledger: Ledger, script, make_views, monkeypatch
):
    history(script)
    views = make_views(page_size=2)
    views.catch_up()
    before = views.digests()
    real = ViewWriter.execute
    calls: list[int] = []

    def fail_third(self, tx, statements):
        calls.append(1)
        if len(calls) == 3:
            raise Boom("the database refused a batch")
        real(self, tx, statements)

    monkeypatch.setattr(ViewWriter, "execute", fail_third)
    monkeypatch.setattr(rebuilder, "PAGES_PER_COMMIT", 1)
    with pytest.raises(Boom):
        rebuild(views)
    assert not writer_threads()
    assert views.digests() == before
    monkeypatch.undo()

    # What the failed rebuild left beside the views is dropped by the next one.
    report = rebuild(make_views(page_size=2), verify=True)
    assert not report.differed
    assert views.digests() == memory_digests(ledger)


def test_an_error_in_the_fold_stops_the_writer(ledger: Ledger, script, make_views, monkeypatch):
    history(script)
    views = make_views(page_size=2)
    views.catch_up()
    before = views.digests()
    real = ViewWriter.fold
    calls: list[int] = []

    def fail_fourth(self, tx, state, page):
        calls.append(1)
        if len(calls) == 4:
            raise Boom("a fold bug")
        real(self, tx, state, page)

    monkeypatch.setattr(ViewWriter, "fold", fail_fourth)
    monkeypatch.setattr(rebuilder, "PAGES_PER_COMMIT", 1)
    with pytest.raises(Boom):
        rebuild(views)
    assert not writer_threads()
    assert views.digests() == before


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[object]] = []
        self.fail_on = fail_on

    def __call__(self, tx, statements) -> None:
        time.sleep(0.01)
        if len(self.batches) + 1 == self.fail_on:
            raise Boom(f"batch {self.fail_on}")
        self.batches.append(list(statements))


def test_batches_are_written_in_order_and_wait_is_a_barrier(ledger: Ledger, make_views):
    views = make_views()
    views.set_up()
    recorder = Recorder()
    with BackgroundWriter(views.store, recorder, lambda tx: None) as background:
        for n in range(5):
            background.submit([n])  # type: ignore[list-item]
            if n == 2:
                background.wait()
                assert recorder.batches == [[0], [1], [2]]
        background.wait()
        assert recorder.batches == [[n] for n in range(5)]
    assert not writer_threads()


def test_a_writer_error_is_raised_in_the_callers_thread(ledger: Ledger, make_views):
    views = make_views()
    views.set_up()
    recorder = Recorder(fail_on=2)
    writer = BackgroundWriter(views.store, recorder, lambda tx: None)
    with pytest.raises(Boom, match="batch 2"), writer as background:
        for n in range(6):
            background.submit([n])  # type: ignore[list-item]
        background.wait()
    assert recorder.batches == [[0]]  # nothing written after the failed batch
    assert not writer_threads()
