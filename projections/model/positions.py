"""The pure folds every view, `--as-of` and the day audit share: plain values in, plain values out.

Nothing here reads a database or the clock. A position is folded trade by trade with
average cost; a book keeps, per symbol, the lines that changed it so that a reversed
fill can be taken out exactly (the book becomes what it would be had the fill never
happened, not "an opposite trade at the same price").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from ledger.domain.order_status import OPEN_STATUSES, OUTCOME_UNKNOWN
from projections.model.numbers import CONTEXT, ONE, ZERO, to_decimal

_add = CONTEXT.add
_sub = CONTEXT.subtract
_mul = CONTEXT.multiply
_div = CONTEXT.divide


# Positions and lines are made once per fill in a rebuild of millions of events: named
# tuples are immutable values like frozen dataclasses, and cheaper to construct.
class Position(NamedTuple):
    """Signed quantity (negative: short), cost of what is open, P&L realised so far.

    The cost basis is kept rather than the average price: it stays exact through buys,
    splits and a full close (a 10 @ 100 + 5 @ 110 position sold out realises exactly
    what it should), and the average is derived from it when shown.
    """

    qty: Decimal = ZERO
    cost: Decimal = ZERO  # |qty| x average price; >= 0 for longs and shorts alike
    realised_pnl: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return _div(self.cost, abs(self.qty)) if self.qty else ZERO


FLAT = Position()


def apply_trade(position: Position, qty: Decimal, price: Decimal) -> Position:
    """Book a trade of signed `qty` (buy > 0, sell < 0) at `price`, average-cost method.

    Adding to a position (or opening one) adds to its cost; reducing it takes out the
    closed share of the cost and realises the difference to the trade's value, signed by
    the side closed; going through zero closes the old side entirely and opens the rest
    at the trade price.
    """
    if not qty:
        return position
    held = position.qty
    if not held:
        return Position(qty, _mul(abs(qty), price), position.realised_pnl)
    if (held > 0) == (qty > 0):
        return Position(
            _add(held, qty), _add(position.cost, _mul(abs(qty), price)), position.realised_pnl
        )
    size = abs(held)
    closed = min(size, abs(qty))
    removed = position.cost if closed == size else _div(_mul(position.cost, closed), size)
    value = _mul(closed, price)
    gain = _sub(value, removed) if held > 0 else _sub(removed, value)
    realised = _add(position.realised_pnl, gain)
    remaining = _add(held, qty)
    if not remaining:
        return Position(ZERO, ZERO, realised)
    if (remaining > 0) == (held > 0):
        return Position(remaining, _sub(position.cost, removed), realised)
    return Position(remaining, _mul(abs(remaining), price), realised)


def apply_ratio(position: Position, ratio: Decimal) -> Position:
    """A split of `ratio` new shares per old share (0.25 for a 1-for-4 reverse split): the
    quantity scales, the cost does not, so the average divides by the ratio exactly."""
    if ratio == ONE or not position.qty:
        return position
    return Position(_mul(position.qty, ratio), position.cost, position.realised_pnl)


def opened_at(qty: Decimal, avg_price: Decimal) -> Position:
    """A position someone else reports (a broker snapshot): qty at an average price."""
    return Position(qty, _mul(abs(qty), avg_price), ZERO)


def fold_trades(trades: Iterable[tuple[Decimal, Decimal]], start: Position = FLAT) -> Position:
    """The position after signed (qty, price) trades, in order: the fold a test can call."""
    position = start
    for qty, price in trades:
        position = apply_trade(position, qty, price)
    return position


def signed(side: str, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


# -- lines: what changed one symbol of one book, kept so a reversal can be replayed out --

TRADE = "trade"  # qty (signed) at price; ref names the execution or adjustment
REVERSE = "reverse"  # the trade line with the same ref never happened
RATIO = "ratio"  # split: qty * ratio, average / ratio
OPEN = "open"  # the broker said: this is the position (a snapshot); start again from here
MOVE_OUT = "move_out"  # the position left for symbol `ref` (a symbol change); realised P&L stays
MOVE_IN = "move_in"  # the position of symbol `ref` arrived, times `ratio`


class Line(NamedTuple):
    seq: int  # notification id of the event that caused it
    n: int  # its place among the lines that event caused
    kind: str
    qty: Decimal = ZERO
    price: Decimal = ZERO
    ratio: Decimal = ONE
    ref: str = ""


LinesOf = Callable[[str, int], Sequence[Line]]
"""The lines of a symbol with seq >= the given start, in (seq, n) order."""


def step(
    position: Position,
    line: Line,
    reversed_refs: Set[str],
    moved: Callable[[str, int], Position],
) -> Position:
    """The position after one line. `moved(symbol, seq)` is what `symbol` held just before
    `seq` (for a symbol change into this one); a trade whose ref was reversed never happened."""
    kind = line.kind
    if kind == TRADE:
        if line.ref in reversed_refs:
            return position
        return apply_trade(position, line.qty, line.price)
    if kind == RATIO:
        return apply_ratio(position, line.ratio)
    if kind == OPEN:
        return opened_at(line.qty, line.price)
    if kind == MOVE_OUT:
        return Position(ZERO, ZERO, position.realised_pnl)
    if kind == MOVE_IN:
        return merge_moved(position, moved(line.ref, line.seq), line.ratio)
    return position  # REVERSE: its effect is the skipped trade


def replay(
    lines_of: LinesOf, symbol: str, start_seq: int = 0, before_seq: int | None = None
) -> Position:
    """The position of `symbol` folded from its lines, skipping reversed trades.

    `before_seq` stops at a symbol change, to learn what moved; reversals recorded after
    that point still count, since a reversed fill never happened at all.
    """
    lines = lines_of(symbol, start_seq)
    reversed_refs = {line.ref for line in lines if line.kind == REVERSE}

    def moved(source: str, seq: int) -> Position:
        return replay(lines_of, source, start_seq, seq)

    position = FLAT
    for line in lines:
        if before_seq is not None and line.seq >= before_seq:
            break
        position = step(position, line, reversed_refs, moved)
    return position


def merge_moved(position: Position, moved: Position, ratio: Decimal) -> Position:
    """A symbol change or merger: the moved shares (times `ratio`, at the same cost) join
    what is held; the realised P&L of the old symbol stays with it."""
    arriving = apply_ratio(Position(moved.qty, moved.cost), ratio)
    if not arriving.qty:
        return position
    if not position.qty or (position.qty > 0) == (arriving.qty > 0):
        return Position(
            _add(position.qty, arriving.qty),
            _add(position.cost, arriving.cost),
            position.realised_pnl,
        )
    return apply_trade(position, arriving.qty, arriving.avg_price)


def average(value: Decimal, qty: Decimal) -> Decimal | None:
    return _div(value, qty) if qty else None


# -- the difference between the books --------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """What the netting needs of an order the ledger knows."""

    client_order_id: str
    symbol: str
    side: str
    purpose: str
    status: str
    broker: str | None
    qty: Decimal | None
    filled_qty: Decimal
    requested_at: datetime


def open_qty_by_symbol(
    snapshot_open_orders: Sequence[Mapping[str, object]],
    broker_time: datetime | None,
    ledger_orders: Iterable[OpenOrder],
) -> dict[str, Decimal]:
    """Signed quantity still to fill at the broker, per symbol, consistent with the broker book.

    The broker book is the last snapshot plus fills after it, so an order's open
    quantity is what neither has counted yet: qty minus the larger of what the snapshot
    and the ledger saw filled. The ledger's word wins on whether an order is still open
    (its events may be newer than the snapshot); an order the snapshot no longer lists
    although it existed before the snapshot is not open at the broker. Paper orders never
    reach the broker; a compensating order requested but not yet sent counts, and so does
    one of unknown outcome (it may land any moment), so a second reconciliation does not
    correct the same difference again. Notional orders have no
    quantity to net and are left out. A decision order in flight is left out too: its
    fills will move both books alike, so it is no part of their difference.
    """
    at_broker = {str(o.get("client_order_id") or ""): o for o in snapshot_open_orders}
    known: set[str] = set()
    totals: dict[str, Decimal] = {}

    def add(symbol: str, side: str, remaining: Decimal) -> None:
        if remaining > 0:
            totals[symbol] = totals.get(symbol, ZERO) + signed(side, remaining)

    for order in ledger_orders:
        known.add(order.client_order_id)
        if (
            order.purpose == "decision"
            or order.broker == "paper"
            or order.qty is None
            or order.status not in OPEN_STATUSES
        ):
            continue
        listed = at_broker.get(order.client_order_id)
        if listed is None and order.status == OUTCOME_UNKNOWN:
            # It may land at the broker any moment: count it, so no run plans it twice.
            add(order.symbol, order.side, order.qty - order.filled_qty)
            continue
        if order.broker is None:
            if order.purpose == "compensation":
                add(order.symbol, order.side, order.qty - order.filled_qty)
            continue
        if listed is None:
            if broker_time is None or order.requested_at > broker_time:
                add(order.symbol, order.side, order.qty - order.filled_qty)
            continue
        seen = max(order.filled_qty, to_decimal(listed.get("filled_qty") or ZERO))
        add(order.symbol, order.side, order.qty - seen)
    for client_order_id, listed in at_broker.items():
        if client_order_id in known or listed.get("qty") is None:
            continue
        remaining = to_decimal(listed["qty"]) - to_decimal(listed.get("filled_qty") or ZERO)
        add(
            str(listed.get("symbol", "")).upper(), str(listed.get("side", "buy")).lower(), remaining
        )
    return {symbol: qty for symbol, qty in totals.items() if qty}


@dataclass(frozen=True, slots=True)
class DiffRow:
    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    open_qty: Decimal
    delta: Decimal  # what the broker still needs: local - broker - open


def diff_rows(
    local: Mapping[str, Decimal], broker: Mapping[str, Decimal], open_qty: Mapping[str, Decimal]
) -> list[DiffRow]:
    """Per symbol held or ordered anywhere: local, broker, open-order qty and the delta."""
    rows = []
    for symbol in sorted(set(local) | set(broker) | set(open_qty)):
        mine, theirs, pending = (
            local.get(symbol, ZERO),
            broker.get(symbol, ZERO),
            open_qty.get(symbol, ZERO),
        )
        if not (mine or theirs or pending):
            continue
        rows.append(DiffRow(symbol, mine, theirs, pending, _sub(_sub(mine, theirs), pending)))
    return rows
