"""The fold over whole events, in memory: which fills reach which book, and reversals that
undo a fill exactly, even after splits and symbol changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import Adjustment, BrokerSnapshot, CorporateAction, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.values import OrderIntent, Purpose
from projections.engine.memory_fold import MemoryFold, fold_events
from projections.model.book import Book
from projections.model.positions import Position, fold_trades
from tests.projections.compare import ZONE

WHEN = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


class Events:
    """Aggregates' events in the order they happen, numbered like notifications."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []

    def add(self, *aggregates: Any) -> None:
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                self.items.append((len(self.items) + 1, event))

    def fold(self) -> MemoryFold:
        return fold_events(self.items, ZONE)


def order(
    side: str, qty: str, symbol: str = "AAPL", purpose: str = "decision", broker: str = "paper"
) -> Order:
    intent = OrderIntent(symbol=symbol, side=side, qty=D(qty))
    made = Order.request(
        intent,
        order_id=uuid.uuid4(),
        purpose=Purpose(purpose),
        decision_id=uuid.uuid4() if purpose == "decision" else None,
        reconciliation_id=uuid.uuid4() if purpose == "compensation" else None,
    )
    made.mark_submitted(broker=broker, broker_order_id=uuid.uuid4().hex)
    return made


def fill(o: Order, qty: str, price: str, at: datetime = WHEN) -> str:
    execution = uuid.uuid4().hex
    o.record_fill(execution_id=execution, qty=D(qty), price=D(price), filled_at=at)
    return execution


def action(
    symbol: str, ratio: str = "1", new_symbol: str | None = None, effective: date | None = None
) -> CorporateAction:
    activity = uuid.uuid4().hex
    return CorporateAction(
        id=corporate_action_id("alpaca", activity),
        broker="alpaca",
        activity_id=activity,
        kind="x",
        symbol=symbol,
        new_symbol=new_symbol,
        ratio=D(ratio),
        effective_date=effective,
        description="",
    )


def snapshot(positions: dict[str, tuple[str, str]], at: datetime) -> BrokerSnapshot:
    return BrokerSnapshot(
        broker="alpaca",
        paper=True,
        account_id="a",
        cash=D(1),
        equity=D(2),
        buying_power=D(3),
        positions=[
            {"symbol": s, "qty": D(q), "avg_entry_price": D(p)} for s, (q, p) in positions.items()
        ],
        open_orders=[],
        broker_time=at,
        request={},
    )


def test_only_decision_fills_and_local_adjustments_reach_the_local_book():
    events = Events()
    mine, theirs, fix = (
        order("buy", "10"),
        order("buy", "5", purpose="compensation", broker="alpaca"),
        order("sell", "3"),
    )
    fill(mine, "10", "100")
    fill(theirs, "5", "101")
    fill(fix, "3", "110")
    external = Order.adopt_external(
        broker="alpaca",
        broker_order_id="b",
        client_order_id="c",
        intent=OrderIntent(symbol="AAPL", side="buy", qty=D(7)),
    )
    fill(external, "7", "99")
    events.add(
        mine,
        theirs,
        fix,
        external,
        Adjustment(book="local", symbol="AAPL", qty=D(1), price=D(90), who="", why=""),
    )
    state = events.fold().state
    assert state.local.positions["AAPL"] == fold_trades(
        [(D(10), D(100)), (D(-3), D(110)), (D(1), D(90))]
    )
    # At the broker: the compensating and the external order, never paper fills.
    assert state.broker.positions["AAPL"] == fold_trades([(D(5), D(101)), (D(7), D(99))])


def test_broker_book_is_the_sync_plus_fills_and_actions_after_it():
    events = Events()
    before, after = order("buy", "4", broker="alpaca"), order("buy", "6", broker="alpaca")
    fill(before, "4", "50", at=WHEN - timedelta(minutes=1))  # the sync below counts it
    events.add(snapshot({"NVDA": ("4", "50")}, WHEN), before)
    fill(after, "6", "55", at=WHEN + timedelta(minutes=1))
    events.add(after)
    events.add(action("NVDA", "4", effective=date(2026, 1, 5)))  # the sync's day: included
    events.add(action("NVDA", "2", effective=date(2026, 1, 6)))  # after it: applied
    state = events.fold().state
    assert state.broker.positions == {
        "NVDA": Position(D(8), D(200), D(0)),
        "AAPL": Position(D(6), D(330), D(0)),
    }
    assert state.local.positions == {"AAPL": Position(D(10), D(530), D(0))}


def test_a_sync_replaces_the_broker_book_and_a_rename_moves_positions():
    events = Events()
    o = order("buy", "10", symbol="FB", broker="alpaca")
    fill(o, "10", "300", at=WHEN + timedelta(minutes=1))
    events.add(snapshot({"FB": ("2", "280"), "X": ("1", "5")}, WHEN), o)
    events.add(action("FB", new_symbol="META", ratio="2"))
    state = events.fold().state
    assert state.broker.positions == {
        "FB": Position(D(0), D(0), D(0)),
        "META": Position(D(24), D(3560), D(0)),
        "X": Position(D(1), D(5), D(0)),
    }
    assert state.local.positions == {
        "FB": Position(D(0), D(0), D(0)),
        "META": Position(D(20), D(3000), D(0)),
    }
    events.add(snapshot({"META": ("24", "150")}, WHEN + timedelta(minutes=2)))
    assert events.fold().state.broker.positions == {"META": Position(D(24), D(3600), D(0))}


def without_busted(events: Events) -> list[tuple[int, Any]]:
    """The same history had the reversed fills never happened."""
    busted = {
        (e.originator_id, e.execution_id)
        for _, e in events.items
        if type(e).__qualname__ == "Order.FillReversed"
    }
    kept = [
        e
        for _, e in events.items
        if type(e).__qualname__ != "Order.FillReversed"
        and (e.originator_id, getattr(e, "execution_id", None)) not in busted
    ]
    return list(enumerate(kept, 1))


def books(items: list[tuple[int, Any]]) -> dict[str, Position]:
    return fold_events(items, ZONE).state.local.positions


def test_reversal_after_a_split_and_a_rename_is_as_if_the_fill_never_happened():
    events = Events()
    first, busted, later = order("buy", "10"), order("buy", "5"), order("sell", "4")
    fill(first, "10", "100")
    execution = fill(busted, "5", "130")
    fill(later, "4", "120")
    events.add(first, busted, later, action("AAPL", "3"), action("AAPL", new_symbol="APPL2"))
    busted.reverse_fill(execution_id=execution, reason="busted")
    events.add(busted)
    got, want = books(events.items), books(without_busted(events))
    # 10 @ 100, 4 sold at 120 (+80, which stays with the old symbol), x3, renamed.
    assert got["APPL2"] == want["APPL2"] == Position(D(18), D(600), D(0))
    assert got["AAPL"] == want["AAPL"] == Position(D(0), D(0), D(80))


trades_strategy = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.decimals(min_value="0.01", max_value=100, places=2),
        st.decimals(min_value=1, max_value=200, places=1),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(trades_strategy, st.integers(1, 50), st.sampled_from([None, "2", "0.5"]), st.booleans())
def test_many_reversals_replay_exactly(trades, limit, ratio, rename):
    """Busted fills (marked True) come out exactly, early or late, through a split and a
    rename; the in-memory histories are kept, dropped when too big, and reloaded."""
    saved = Book.MAX_HISTORY_LINES
    Book.MAX_HISTORY_LINES = limit
    try:
        events = Events()
        made = []
        for index, (side, qty, price, bust) in enumerate(trades):
            o = order(side, str(qty), symbol="AAPL" if not rename or index < 20 else "NEW")
            made.append((o, fill(o, str(qty), str(price)), bust))
            events.add(o)
            if index == len(trades) // 2:
                if ratio:
                    events.add(action("AAPL", ratio))
                if rename:
                    events.add(action("AAPL", new_symbol="NEW"))
            if bust and index % 3 == 0:  # some busts right away, the rest at the end
                o.reverse_fill(execution_id=made[-1][1], reason="busted")
                events.add(o)
        for o, execution, bust in made:
            if bust and execution not in o.reversed_executions:
                o.reverse_fill(execution_id=execution, reason="busted")
                events.add(o)
        got, want = books(events.items), books(without_busted(events))
        flat = Position()
        for symbol in ("AAPL", "NEW"):
            assert got.get(symbol, flat)[:3] == want.get(symbol, flat)[:3]
    finally:
        Book.MAX_HISTORY_LINES = saved


def test_orders_to_load_are_those_requested_before_the_events():
    earlier, now = order("buy", "5"), order("sell", "2", symbol="MSFT")
    fill(earlier, "5", "100")
    events = Events()
    events.add(now)  # requested, submitted and filled in the same events: nothing to load
    events.add(earlier)
    fill(now, "1", "200")
    events.add(now)
    state = MemoryFold(ZONE).state
    later = [(seq, e) for seq, e in events.items if type(e) is not Order.Requested]
    assert state.order_ids_to_load(events.items) == set()
    assert state.order_ids_to_load(later) == {earlier.id, now.id}


def test_a_snapshot_writes_only_the_positions_that_differ_from_the_stored_ones():
    book = Book("broker", lambda symbol, start_seq: ())
    book.restart(1, [("AAPL", D(4), D(50)), ("MSFT", D(2), D(300)), ("NVDA", D(1), D(90))])
    first = book.take_changes()
    assert sorted(first.upserts) == ["AAPL", "MSFT", "NVDA"]

    book.trade(2, "MSFT", D(1), D(310), "o1:e1")  # written below: the stored row is now 3 MSFT
    assert sorted(book.take_changes().upserts) == ["MSFT"]
    book.trade(3, "NVDA", D(1), D(95), "o2:e2")  # not yet written when the next snapshot comes
    book.restart(4, [("AAPL", D("4.00"), D("50.0")), ("MSFT", D(2), D(300)),
                     ("NVDA", D(1), D(90)), ("TSLA", D(5), D(200))])
    changes = book.take_changes()
    # AAPL is as stored (equal values, other exponents); MSFT goes back to what the
    # snapshot says; NVDA's unwritten trade must be overwritten; TSLA is new.
    assert sorted(changes.upserts) == ["MSFT", "NVDA", "TSLA"]
    assert changes.upserts["NVDA"] == Position(D(1), D(90), D(0))
    assert changes.deletes == set()
    # Every symbol still gets its opening line: the book starts again at the snapshot.
    assert sorted((symbol, line.seq) for symbol, line in changes.lines) == [
        ("AAPL", 4), ("MSFT", 4), ("NVDA", 3), ("NVDA", 4), ("TSLA", 4)]
    assert book.positions["AAPL"] == Position(D(4), D(200), D(0))

    book.restart(5, [("TSLA", D(5), D(200))])
    changes = book.take_changes()
    assert changes.upserts == {}
    assert changes.deletes == {"AAPL", "MSFT", "NVDA"}
