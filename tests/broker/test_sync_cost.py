"""A poll costs what is new, not the overlap it re-reads (issue #18's fill latency): fills
the store holds are not looked up again, a poll between full reads reads only the newest
fills, and neither weakens the overlap's guarantee (docs/design.md, "Sync")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.brokers.port import BrokerFill, BrokerOrder
from ledger.services.sync_cursor import FULL_READ_SECONDS, SyncCursor
from ledger.services.sync_reads import read_broker
from sandbox import AlpacaSandbox
from tests.broker.fixtures_ledger import open_alpaca, recorded_executions

ORDER_LOOKUPS = "/v2/orders/*"


@pytest.fixture
def alpaca(open_store: Callable[..., Ledger], sandbox: AlpacaSandbox) -> Ledger:
    return open_alpaca(open_store, sandbox)


def order_lookups(sandbox: AlpacaSandbox) -> int:
    return len(sandbox.requests("GET", ORDER_LOOKUPS))


def full_read_due(cursor: SyncCursor) -> SyncCursor:
    """The cursor as it will be once FULL_READ_SECONDS have passed since its full read."""
    assert cursor.full_read_at is not None
    return replace(cursor, full_read_at=cursor.full_read_at - FULL_READ_SECONDS)


def test_a_poll_does_not_look_up_fills_already_recorded(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    for _ in range(5):
        sandbox.create_external_order("AAPL", "buy", "1")
    report = alpaca.sync()
    assert report.new_fills == 5
    before = order_lookups(sandbox)
    # The overlap reads all five again, in a quick read and in a full one: no lookups.
    quick = alpaca.poll(report.cursor)
    full = alpaca.poll(full_read_due(quick.cursor))
    assert (quick.new_fills, full.new_fills, quick.lookups, full.lookups) == (0, 0, 0, 0)
    assert order_lookups(sandbox) == before
    assert full.cursor.recorded == report.cursor.recorded and len(full.cursor.recorded) == 5

    sandbox.create_external_order("MSFT", "buy", "1")
    new = alpaca.poll(full.cursor)
    assert (new.new_fills, new.new_orders, new.lookups) == (1, 1, 1)
    assert len(recorded_executions(alpaca)) == len(set(recorded_executions(alpaca))) == 6


def test_a_cursor_read_back_from_the_store_does_the_full_work_once(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    sandbox.create_external_order("AAPL", "buy", "1")
    alpaca.sync()
    stored = SyncCursor.from_request(alpaca.latest_sync().request)  # type: ignore[union-attr]
    assert stored is not None and stored.recorded == frozenset()
    again = alpaca.poll(stored)
    assert (again.new_fills, again.lookups) == (0, 1)  # looked up, recorded nothing twice
    assert alpaca.poll(again.cursor).lookups == 0


def test_a_quick_read_leaves_the_overlap_to_the_next_full_read(
    alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    """A late arrival (an execution that becomes visible after newer ones were read) is
    not in a quick read's window; the next full read finds it, once."""
    sandbox.create_external_order("AAPL", "buy", "1")
    report = alpaca.sync()
    assert report.cursor.fresh_after is not None
    assert report.cursor.fresh_after > report.cursor.fills_after
    late_at = report.cursor.fresh_after - timedelta(seconds=30)
    late = sandbox.add_orphan_fill("NVDA", "buy", "2", at=late_at.isoformat())

    quick = alpaca.poll(report.cursor)
    assert quick.new_fills == 0
    # A quick read never moves where the next full read starts.
    assert quick.cursor.fills_after == report.cursor.fills_after
    full = alpaca.poll(full_read_due(quick.cursor))
    assert full.new_fills == 1 and late["id"] in recorded_executions(alpaca)
    assert alpaca.poll(full_read_due(full.cursor)).new_fills == 0
    assert recorded_executions(alpaca).count(late["id"]) == 1


def test_a_fresh_fill_is_read_by_a_quick_read(alpaca: Ledger, sandbox: AlpacaSandbox) -> None:
    report = alpaca.sync()
    sandbox.create_external_order("TSLA", "sell", "2")
    quick = alpaca.poll(report.cursor)
    assert quick.cursor.full_read_at == report.cursor.full_read_at  # it was a quick read
    assert (quick.new_orders, quick.new_fills) == (1, 1)


# -- reads, with a reader that counts ----------------------------------------------------------

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class CountingReader:
    """The reads `read_broker` makes, with a fill list and an order for every id."""

    name = "alpaca"
    paper = True

    def __init__(self, fills: list[BrokerFill]) -> None:
        self.fills = fills
        self.looked_up: list[str] = []

    def get_clock(self) -> datetime:
        return T0

    def list_open_orders(self) -> list[BrokerOrder]:
        return []

    def list_fills(self, after: datetime) -> list[BrokerFill]:
        return [f for f in self.fills if f.transaction_time > after]

    def list_position_activities(self, after: datetime) -> list[object]:
        return []

    def get_order(self, broker_order_id: str) -> BrokerOrder:
        self.looked_up.append(broker_order_id)
        return BrokerOrder(
            broker_order_id=broker_order_id, client_order_id="", symbol="AAPL", side="buy",
            order_type="market", time_in_force="day", status="filled", qty=Decimal(1),
            notional=None, limit_price=None, extended_hours=False, filled_qty=Decimal(1),
            filled_avg_price=Decimal(1), created_at=T0,
        )


def broker_fill(activity_id: str, order_id: str, status: str = "fill") -> BrokerFill:
    return BrokerFill(
        activity_id=activity_id, broker_order_id=order_id, symbol="AAPL", side="buy",
        qty=Decimal(1), price=Decimal(1), cum_qty=Decimal(1), leaves_qty=None,
        transaction_time=T0, order_status="filled", status=status,
    )


def test_a_bust_of_a_recorded_execution_still_reaches_its_order() -> None:
    reader = CountingReader([
        broker_fill("e-1", "o-1"), broker_fill("e-2", "o-2"),
        broker_fill("e-2", "o-2", status="canceled"), broker_fill("e-3", "o-3", status="correct"),
        broker_fill("e-4", "o-4"),
    ])
    reads = read_broker(
        reader,  # type: ignore[arg-type]
        watched=[], fills_after=T0 - timedelta(minutes=1), activities_after=T0,
        with_account=False, recorded={"e-1", "e-2", "e-3"},
    )
    # e-1 is stored and plain: skipped. The bust of e-2 (read beside e-2 itself) and the
    # correction of e-3 change stored executions: their orders are looked up. e-4 is new.
    assert reader.looked_up == ["o-2", "o-3", "o-4"]
    assert reads.recorded == {"e-1", "e-2"} and len(reads.fills) == 5

