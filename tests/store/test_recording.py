"""The bulk write path (ledger/recording.py) stores exactly what eventsourcing's own would.

The transcoder must write the library's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import DateAsISO, Ledger
from ledger.domain import BrokerSnapshot, Decision, Order
from ledger.domain.order import decision_order_id
from ledger.domain.values import OrderIntent, Purpose
from ledger.recording import (
    LedgerTranscoder,
)

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


def test_ledger_events_map_to_the_library_bytes(ledger: Ledger) -> None:
    assert isinstance(ledger.mapper.transcoder, LedgerTranscoder)
    library = type(ledger.mapper)(transcoder=LIBRARY)
    for aggregate in _bulk(3):
        for event in aggregate.collect_events():
            assert ledger.mapper.to_stored_event(event) == library.to_stored_event(event)
