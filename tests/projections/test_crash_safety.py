"""A catch-up that dies between writing a page's rows and recording its position never applies
an event twice or skips one: rows and position commit together or not at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal as D
from pathlib import Path

import pytest

from ledger.application import Ledger
from projections.engine.store import ViewStore
from tests.projections.compare import memory_digests
from tests.projections.script import Script

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]


class Boom(Exception):
    pass


def history(script: Script, orders: int = 12) -> None:
    for n in range(orders):
        side = "buy" if n % 3 else "sell"
        order = script.order(
            "AAPL",
            side,
            "2",
            [(D(1), D(100 + n)), (D(1), D(101 + n))],
            broker="alpaca" if n % 2 else "paper",
        )
        if n == 7:
            script.reverse(order.id)


def test_a_fault_before_the_position_is_written_rolls_the_page_back(
    ledger: Ledger, script, make_views, monkeypatch
):
    history(script)
    views = make_views(page_size=5)
    real = ViewStore.write_position
    calls = []

    def fail_on_third_page(self, tx, position):
        calls.append(position)
        if len(calls) == 3:
            raise Boom("killed between the rows and the position")
        real(self, tx, position)

    monkeypatch.setattr(ViewStore, "write_position", fail_on_third_page)
    with pytest.raises(Boom):
        views.catch_up()
    assert views.store.read_position() == calls[1]
    monkeypatch.setattr(ViewStore, "write_position", real)

    views.catch_up()
    assert views.store.read_position() == ledger.last_notification_id()
    assert views.digests() == memory_digests(ledger)


def test_a_failing_tracking_insert_leaves_nothing_applied(
    ledger: Ledger, script, make_views, monkeypatch
):
    history(script, orders=3)
    views = make_views()
    views.catch_up()
    before = views.digests()
    history(script, orders=4)

    def refuse(cursor, tracking):
        raise Boom("the tracking insert failed")

    monkeypatch.setattr(views.store.tracking, "_insert_tracking", refuse)
    with pytest.raises(Boom):
        views.catch_up()
    assert views.digests() == before
    monkeypatch.undo()

    views.catch_up()
    assert views.digests() == memory_digests(ledger)


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    from ledger.bootstrap import open_ledger
    from ledger.settings import load_settings
    from projections import Views
    from projections.engine.store import ViewStore

    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL={url!r}))
    real = ViewStore.write_position

    def die_on_second_page(self, tx, position):
        if position > 7:
            os._exit(9)  # the rows of this page are written, the transaction is open
        real(self, tx, position)

    ViewStore.write_position = die_on_second_page
    Views(ledger, page_size=7).catch_up()
    """
)


def test_a_killed_process_resumes_without_double_applying(
    ledger: Ledger, script, make_views, database_url
):
    history(script)
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), url=database_url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    views = make_views(page_size=7)
    assert views.store.read_position() == 7  # the first page, and only it
    views.catch_up()
    assert views.digests() == memory_digests(ledger)
