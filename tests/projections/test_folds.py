"""The pure folds: positions, lines, netting. Plain values in, plain values out, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from projections.model.numbers import canonical
from projections.model.positions import (
    FLAT,
    MOVE_IN,
    MOVE_OUT,
    OPEN,
    RATIO,
    REVERSE,
    TRADE,
    Line,
    OpenOrder,
    Position,
    apply_ratio,
    apply_trade,
    diff_rows,
    fold_trades,
    open_qty_by_symbol,
    replay,
)

WHEN = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_buys_average_their_cost():
    position = fold_trades([(D(10), D(100)), (D(5), D(110))])
    assert position.qty == 15
    assert position.cost == 1550
    assert position.avg_price == D(1550) / D(15)
    assert position.realised_pnl == 0


def test_a_sell_realises_against_the_average_and_keeps_it():
    position = fold_trades([(D(10), D(100)), (D(10), D(120)), (D(-5), D(130))])
    assert (position.qty, position.avg_price, position.realised_pnl) == (15, 110, 100)


def test_selling_out_a_position_with_an_inexact_average_realises_exactly():
    position = fold_trades([(D(10), D(100)), (D(5), D(110)), (D(-15), D(120))])
    assert position == Position(D(0), D(0), D(250))


def test_crossing_zero_to_short_and_back():
    long_ = fold_trades([(D(10), D(100))])
    short = apply_trade(long_, D(-25), D(110))
    assert (short.qty, short.avg_price, short.realised_pnl) == (-15, 110, 100)
    deeper = apply_trade(short, D(-5), D(90))
    assert (deeper.qty, deeper.avg_price) == (-20, 105)
    covered = apply_trade(deeper, D(30), D(100))
    # Closing the short at 100 against 105 earns 5 a share; the rest opens long at 100.
    assert (covered.qty, covered.avg_price, covered.realised_pnl) == (10, 100, 200)


def test_fractional_quantities_stay_exact():
    position = fold_trades(
        [(D("0.1"), D("187.20")), (D("0.2"), D("187.20")), (D("-0.3"), D("190"))]
    )
    assert position.qty == 0
    assert position.realised_pnl == D("0.84")


def test_splits_scale_quantity_and_divide_the_average():
    held = fold_trades([(D(10), D(400))])
    split = apply_ratio(held, D(4))
    assert (split.qty, split.avg_price, split.cost) == (40, 100, 4000)
    reverse_split = apply_ratio(split, D("0.25"))
    assert reverse_split == held


def test_canonical_text_is_one_spelling_per_value():
    assert [canonical(D(x)) for x in ("2.50", "2.5", "1E+2", "-0.0", "0E-9", "-3.2500")] == [
        "2.5",
        "2.5",
        "100",
        "0",
        "0",
        "-3.25",
    ]


trades = st.lists(
    st.tuples(
        st.decimals(min_value=-500, max_value=500, places=3, allow_nan=False).filter(bool),
        st.decimals(min_value="0.01", max_value=1000, places=2, allow_nan=False),
    ),
    max_size=30,
)


@given(trades)
def test_quantity_is_the_sum_and_cost_never_negative(history):
    position = fold_trades(history)
    assert position.qty == sum((q for q, _ in history), D(0))
    assert position.cost >= 0
    if not position.qty:
        assert position.cost == 0


@given(trades)
def test_a_round_trip_at_one_price_realises_nothing(history):
    """Everything bought and sold at one price: no profit, whatever the order."""
    price = D("12.34")
    position = fold_trades([(q, price) for q, _ in history])
    if position.qty:
        position = apply_trade(position, -position.qty, price)
    assert position.realised_pnl == 0


def _lines(*lines: Line) -> dict[str, list[Line]]:
    return {"AAPL": list(lines)}


def lines_of(book: dict[str, list[Line]]):
    def lines(symbol: str, start_seq: int) -> list[Line]:
        return [line for line in book.get(symbol, []) if line.seq >= start_seq]

    return lines


def test_replay_leaves_out_a_reversed_fill_as_if_it_never_happened():
    book = _lines(
        Line(1, 0, TRADE, D(10), D(100), ref="a"),
        Line(2, 0, TRADE, D(10), D(200), ref="b"),
        Line(3, 0, TRADE, D(-10), D(180), ref="c"),
        Line(4, 0, REVERSE, ref="b"),
    )
    assert replay(lines_of(book), "AAPL") == fold_trades([(D(10), D(100)), (D(-10), D(180))])


def test_replay_through_a_split_a_symbol_change_and_a_snapshot():
    book = {
        "FB": [
            Line(1, 0, TRADE, D(10), D(300), ref="a"),
            Line(2, 0, RATIO, ratio=D(2)),
            Line(3, 0, MOVE_OUT, ref="META"),
        ],
        "META": [
            Line(3, 1, MOVE_IN, ratio=D(1), ref="FB"),
            Line(4, 0, TRADE, D(5), D(100), ref="b"),
        ],
    }
    assert replay(lines_of(book), "META") == Position(D(25), D(3500), D(0))
    assert replay(lines_of(book), "FB") == FLAT
    book["META"].append(Line(5, 0, OPEN, D(7), D(90)))
    assert replay(lines_of(book), "META", start_seq=5) == Position(D(7), D(630), D(0))


def order(
    symbol="AAPL",
    side="buy",
    qty="10",
    filled="0",
    status="accepted",
    broker="alpaca",
    # Compensating orders are what the netting is for: a decision order moves both books.
    purpose="compensation",
    cid="tl-1",
    at=WHEN,
):
    return OpenOrder(
        cid, symbol, side, purpose, status, broker, D(qty) if qty else None, D(filled), at
    )


def test_open_qty_nets_what_neither_the_snapshot_nor_the_ledger_counted():
    listed = [
        {
            "client_order_id": "tl-1",
            "symbol": "AAPL",
            "side": "buy",
            "qty": D(10),
            "filled_qty": D(3),
        }
    ]
    # The snapshot saw 3 filled; the ledger saw 5 (2 after the snapshot, in the broker book).
    assert open_qty_by_symbol(listed, WHEN, [order(filled="5", status="partially_filled")]) == {
        "AAPL": D(5)
    }
    # The ledger has not heard of the 3: the snapshot's positions include them.
    assert open_qty_by_symbol(listed, WHEN, [order()]) == {"AAPL": D(7)}


def test_open_qty_ignores_paper_closed_and_vanished_orders():
    later = WHEN + timedelta(minutes=1)
    earlier = WHEN - timedelta(minutes=1)
    orders = [
        order(broker="paper", cid="tl-p"),
        order(status="filled", cid="tl-f"),
        order(at=earlier, cid="tl-gone"),  # the complete snapshot no longer lists it
        order(at=later, side="sell", qty="4", cid="tl-new"),  # sent after the snapshot
        order(broker=None, status="requested", purpose="compensation", qty="2", cid="tl-c"),
        order(broker=None, status="requested", purpose="decision", qty="9", cid="tl-d"),
    ]
    external = [
        {
            "client_order_id": "theirs",
            "symbol": "msft",
            "side": "sell",
            "qty": "6",
            "filled_qty": "1",
        }
    ]
    assert open_qty_by_symbol(external, WHEN, orders) == {"AAPL": D(-2), "MSFT": D(-5)}


def test_diff_is_local_minus_broker_minus_open():
    rows = diff_rows({"AAPL": D(10), "ZERO": D(0)}, {"AAPL": D(4), "MSFT": D(1)}, {"AAPL": D(2)})
    assert [(r.symbol, r.delta) for r in rows] == [("AAPL", D(4)), ("MSFT", D(-1))]
