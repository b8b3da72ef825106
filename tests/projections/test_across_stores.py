"""The same events give byte-identical views on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing import domain

from projections import Views, rebuild
from testing.clock import Clock
from tests.projections.script import Script
from tests.projections.test_random_histories import fresh_ledger
from tests.projections.test_views import story


def test_digests_are_the_same_on_both_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    digests = {}
    for store_kind in ("sqlite", "postgres"):
        # Same clock and same ids each time: the same events, byte for byte.
        clock = Clock(datetime(2026, 1, 5, 14, 30, tzinfo=UTC))
        ids = random.Random(7)

        def next_id(ids: random.Random = ids) -> uuid.UUID:
            return uuid.UUID(int=ids.getrandbits(128))

        monkeypatch.setattr(domain, "datetime_now_with_tzinfo", clock)
        monkeypatch.setattr(domain, "uuid4", next_id)
        monkeypatch.setattr(uuid, "uuid4", next_id)
        with fresh_ledger(store_kind, tmp_path) as ledger:
            story(Script(ledger), clock)
            views = Views(ledger, page_size=5)
            views.catch_up()
            digests[store_kind] = views.digests()
            rebuilt = rebuild(views, verify=True).views
            assert {v.name: v.digest for v in rebuilt} == digests[store_kind]
    assert digests["sqlite"] == digests["postgres"]
