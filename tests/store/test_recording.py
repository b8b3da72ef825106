"""The bulk write path (ledger/infrastructure/recording.py) stores exactly what the library would.

The transcoder must write the library's bytes, the COPY recorder the library's rows (and
hand back the notification ids the rows were given), and a store written by either must
read with the other.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    IntegrityError,
    JSONTranscoder,
    StoredEvent,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.domain import BrokerSnapshot, Decision, Order
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from ledger.infrastructure.collector import CollectorPaused
from ledger.infrastructure.recording import CopyingPostgresRecorder, DateAsISO, LedgerTranscoder
from tests.conftest import PG_URL, with_query

WHEN = datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = _registered(JSONTranscoder())
OURS = _registered(LedgerTranscoder())

_zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))])
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),  # any code point, escapes and surrogates among them
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.one_of(st.none(), _zones)),
    st.dates(),
    st.uuids(),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _values, max_size=8))
def test_transcoder_writes_the_library_bytes(state: dict[str, Any]) -> None:
    written = _outcome(OURS.encode, state)
    assert written == _outcome(LIBRARY.encode, state)
    if isinstance(written, bytes):
        assert _outcome(OURS.decode, written) == _outcome(LIBRARY.decode, written)


def _outcome(function: Callable[[Any], Any], value: Any) -> Any:
    """What a call returns, or the type of what it raises (a lone surrogate cannot be
    UTF-8): the library and the ledger must fail alike too."""
    try:
        return function(value)
    except Exception as error:
        return type(error)


def test_transcoder_refuses_what_the_library_refuses() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        OURS.encode({"x": object()})
    with pytest.raises(TranscodingNotRegisteredError):
        OURS.encode({"x": 1.5j})


def _bulk(count: int) -> list[Any]:
    """A sync's save: its snapshot, and orders each with two fills."""
    aggregates: list[Any] = [
        BrokerSnapshot(
            broker="alpaca",
            paper=True,
            account_id="a",
            cash=Decimal("100.01"),
            equity=Decimal(5),
            buying_power=Decimal(7),
            positions=[
                {
                    "symbol": "AAPL",
                    "qty": Decimal("1.5"),
                    "avg_entry_price": Decimal(3),
                    "side": "long",
                }
            ],
            open_orders=[],
            broker_time=WHEN,
            request={"fills_after": WHEN},
        )
    ]
    for index in range(count):
        intent = OrderIntent(symbol="AAPL", side="buy", qty=Decimal(10 + index))
        decision = Decision(
            source="test", rationale='bulk ü\u2028"', trades=[intent.as_event_fields()]
        )
        order = Order.request(
            intent,
            order_id=decision_order_id(decision.id, 0),
            purpose=Purpose.DECISION,
            decision_id=decision.id,
        )
        order.mark_submitted(broker="alpaca", broker_order_id=f"b-{index}")
        order.record_fill(
            execution_id=f"x-{index}-1", qty=Decimal(4), price=Decimal("1.25"), filled_at=WHEN
        )
        order.record_fill(
            execution_id=f"x-{index}-2",
            qty=Decimal(6 + index),
            price=Decimal("1.5"),
            filled_at=WHEN,
        )
        aggregates.extend([decision, order])
    return aggregates


def _two_copies_of_an_open_order(ledger: Ledger) -> tuple[Order, Order]:
    """The same stored order loaded twice, each with a different fill to save."""
    intent = OrderIntent(symbol="MSFT", side="sell", qty=Decimal(10))
    order = Order.request(
        intent, order_id=uuid.uuid4(), purpose=Purpose.DECISION, decision_id=uuid.uuid4()
    )
    order.mark_submitted(broker="alpaca", broker_order_id="open")
    ledger.save(order)
    first: Order = ledger.repository.get(order.id)
    first.record_fill(execution_id="a", qty=Decimal(1), price=Decimal(1), filled_at=WHEN)
    second: Order = ledger.repository.get(order.id)
    second.record_fill(execution_id="b", qty=Decimal(1), price=Decimal(1), filled_at=WHEN)
    return first, second


def test_ledger_events_map_to_the_library_bytes(ledger: Ledger) -> None:
    assert isinstance(ledger.mapper.transcoder, LedgerTranscoder)
    library = type(ledger.mapper)(transcoder=LIBRARY)
    for aggregate in _bulk(3):
        for event in aggregate.collect_events():
            assert ledger.mapper.to_stored_event(event) == library.to_stored_event(event)


def test_bulk_save_returns_the_ids_its_rows_were_given(ledger: Ledger) -> None:
    ledger.save(*_bulk(2))  # something before, so the ids do not start at 1
    aggregates = _bulk(300)
    first = ledger.last_notification_id()
    recordings = ledger.save(*aggregates)
    assert len(recordings) == 1 + 300 * 5
    stored = ledger.recorder.select_notifications(start=first + 1, limit=10_000)
    assert [r.notification.id for r in recordings] == [n.id for n in stored]
    for recording, notification in zip(recordings, stored, strict=True):
        assert recording.notification.originator_id == notification.originator_id
        assert recording.notification.originator_version == notification.originator_version
        assert recording.notification.state == notification.state
    order: Order = ledger.repository.get(aggregates[-1].id)
    assert order.filled_qty == Decimal(10 + 299)


def test_a_save_that_meets_stored_events_stores_nothing(ledger: Ledger) -> None:
    ledger.save(*_bulk(50))
    first, second = _two_copies_of_an_open_order(ledger)
    before = ledger.last_notification_id()
    ledger.save(first)
    others = _bulk(120)  # enough events to be copied
    with pytest.raises(IntegrityError):
        ledger.save(*others, second)  # the same version as `first`: the whole save fails
    assert ledger.last_notification_id() == before + 1
    assert not any(ledger.has_aggregate(a.id) for a in others)
    assert ledger.repository.get(first.id).executions.keys() >= {"a"}


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    return with_query(PG_URL, schema=pg_schema)


def _open(url: str, recorder: str | None) -> Ledger:
    from ledger.infrastructure.store import parse_database_url, prepare_postgres

    config = parse_database_url(url)
    env = dict(config.env)
    if recorder is None:
        del env["APPLICATION_RECORDER_TOPIC"]
    with prepare_postgres(config):
        return Ledger(env=env)


def test_postgres_uses_the_copying_recorder(pg_url: str) -> None:
    ledger = _open(pg_url, "ours")
    try:
        assert type(ledger.recorder) is CopyingPostgresRecorder
    finally:
        ledger.close()


def test_stores_written_by_either_recorder_read_with_the_other(pg_url: str) -> None:
    library = _open(pg_url, None)
    ours = _open(pg_url, "ours")
    try:
        assert type(library.recorder) is PostgresApplicationRecorder
        old = _bulk(120)
        library.save(*old)
        new = _bulk(120)  # enough events to be copied
        ours.save(*new)
        for reader, written in ((ours, old), (library, new)):
            for aggregate in written:
                copy = reader.repository.get(aggregate.id)
                assert copy.version == aggregate.version
        rows = ours.recorder.select_notifications(start=1, limit=10_000)
        assert [n.id for n in rows] == sorted(n.id for n in rows)
        assert len(rows) == 2 * (1 + 120 * 5)
    finally:
        library.close()
        ours.close()


def test_copying_recorder_rows_are_the_library_rows(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CopyingPostgresRecorder, "COPY_FROM", 1)
    ledger = _open(pg_url, "ours")
    try:
        events = [
            StoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=v,
                topic="t",
                state=bytes([0, 1, 92, 255]) * v,
            )
            for v in range(1, 4)
        ]
        ids = ledger.recorder.insert_events(events)
        assert ids is not None and list(ids) == sorted(ids) and len(ids) == 3
        assert ledger.recorder.insert_events([]) is None
    finally:
        ledger.close()
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(
            f"SELECT originator_id, originator_version, topic, state, notification_id "
            f'FROM "{pg_schema}".tradeledger_events ORDER BY notification_id'
        ).fetchall()
    assert rows == [
        (e.originator_id, e.originator_version, e.topic, e.state, i)
        for e, i in zip(events, ids, strict=True)
    ]


def test_small_saves_keep_the_library_insert(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a small save was copied")

    monkeypatch.setattr(CopyingPostgresRecorder, "_copy_events", refuse)
    ledger = _open(pg_url, "ours")
    try:
        aggregates = _bulk((CopyingPostgresRecorder.COPY_FROM - 2) // 5)
        recordings = ledger.save(*aggregates)
        assert len(recordings) < CopyingPostgresRecorder.COPY_FROM
        assert [r.notification.id for r in recordings] == list(range(1, len(recordings) + 1))
    finally:
        ledger.close()


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_collector_paused_only_for_large_saves_and_always_resumed(collector_on: None) -> None:
    with CollectorPaused(when=False):
        assert gc.isenabled()
    with CollectorPaused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), CollectorPaused():
        raise RuntimeError("a failed save")
    assert gc.isenabled()


def test_collector_left_off_if_it_was_off(collector_on: None) -> None:
    gc.disable()
    with CollectorPaused():
        pass
    assert not gc.isenabled()


def test_failed_bulk_save_resumes_the_collector(ledger: Ledger, collector_on: None) -> None:
    stale, again = _two_copies_of_an_open_order(ledger)
    ledger.save(stale)
    with pytest.raises(IntegrityError):
        ledger.save(*_bulk(120), again)
    assert gc.isenabled()
