"""One book (local or broker): its positions, and the lines that made them.

A book keeps, per symbol, the lines that changed it so that a reversed fill can be taken
out exactly: the book becomes what it would be had the fill never happened. Lines not yet
handed over (`take_changes`) wait here; older ones come back through `stored_lines`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from projections.model.numbers import ONE, ZERO
from projections.model.positions import (
    FLAT,
    MOVE_IN,
    MOVE_OUT,
    OPEN,
    RATIO,
    REVERSE,
    TRADE,
    Line,
    LinesOf,
    Position,
    apply_ratio,
    apply_trade,
    merge_moved,
    opened_at,
    replay,
    step,
)


@dataclass(slots=True)
class BookChanges:
    upserts: dict[str, Position]
    deletes: set[str]
    lines: list[tuple[str, Line]]


@dataclass(slots=True)
class History:
    """One symbol's lines in memory with the position after each line.

    Kept only for symbols a reversal has touched, so that the next reversal replays
    just the lines after the reversed fill instead of the symbol's whole past.
    """

    lines: list[Line] = field(default_factory=list)
    after: list[Position] = field(default_factory=list)
    reversed_refs: set[str] = field(default_factory=set)
    trades: dict[str, int] = field(default_factory=dict)  # trade ref -> index in lines

    def append(self, line: Line, position: Position) -> None:
        if line.kind == TRADE:
            self.trades[line.ref] = len(self.lines)
        elif line.kind == REVERSE:
            self.reversed_refs.add(line.ref)
        self.lines.append(line)
        self.after.append(position)

    def before(self, seq: int) -> Position:
        """The position just before the first line at `seq` or later."""
        index = bisect_left(self.lines, seq, key=_line_seq)
        return self.after[index - 1] if index else FLAT


def _line_seq(line: Line) -> int:
    return line.seq


class Book:
    """Positions of one book (local or broker) and the lines that made them."""

    # Histories are derived and reloadable: past this many lines in memory, drop them.
    MAX_HISTORY_LINES = 500_000

    def __init__(self, name: str, stored_lines: LinesOf) -> None:
        self.name = name
        self.positions: dict[str, Position] = {}
        # Lines before this seq no longer count: the broker book starts again at each snapshot.
        self.start_seq = 0
        self._stored_lines = stored_lines
        self._pending: dict[str, list[Line]] = {}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._histories: dict[str, History] = {}
        self._loading: set[str] = set()
        self._history_lines = 0

    def lines(self, symbol: str, start_seq: int) -> list[Line]:
        """Stored lines and those not yet written, in (seq, n) order."""
        stored = list(self._stored_lines(symbol, start_seq))
        stored.extend(line for line in self._pending.get(symbol, ()) if line.seq >= start_seq)
        return stored

    def _record(self, symbol: str, line: Line, position: Position) -> None:
        pending = self._pending.get(symbol)
        if pending is None:
            self._pending[symbol] = [line]
        else:
            pending.append(line)
        history = self._histories.get(symbol)
        if history is not None:
            history.append(line, position)
            self._history_lines += 1
        self._set(symbol, position)

    def _set(self, symbol: str, position: Position) -> None:
        self.positions[symbol] = position
        self._dirty.add(symbol)
        self._removed.discard(symbol)

    # -- what events do to a book ---------------------------------------------------------

    def trade(self, seq: int, symbol: str, qty: Decimal, price: Decimal, ref: str) -> None:
        position = apply_trade(self.positions.get(symbol, FLAT), qty, price)
        self._record(symbol, Line(seq, 0, TRADE, qty, price, ONE, ref), position)

    def reverse(self, seq: int, symbol: str, ref: str) -> None:
        if symbol not in self.positions:
            return  # nothing of this symbol in the book since it (re)started: nothing to undo
        history = self._history(symbol)
        self._record(symbol, Line(seq, 0, REVERSE, ref=ref), self.positions[symbol])
        index = history.trades.get(ref)
        if index is not None:  # else the fill is not in this book (say, before the snapshot)
            self._replay_from(symbol, index)

    def split(self, seq: int, symbol: str, ratio: Decimal) -> None:
        if symbol not in self.positions:
            return  # never held: a later reversal cannot make it held before this split
        position = apply_ratio(self.positions[symbol], ratio)
        self._record(symbol, Line(seq, 0, RATIO, ratio=ratio), position)

    def move(self, seq: int, symbol: str, target: str, ratio: Decimal) -> None:
        if symbol not in self.positions:
            return
        moving = self.positions[symbol]
        left = Position(ZERO, ZERO, moving.realised_pnl)
        self._record(symbol, Line(seq, 0, MOVE_OUT, ref=target), left)
        arrived = merge_moved(self.positions.get(target, FLAT), moving, ratio)
        self._record(target, Line(seq, 1, MOVE_IN, ratio=ratio, ref=symbol), arrived)

    def restart(self, seq: int, positions: Sequence[tuple[str, Decimal, Decimal]]) -> None:
        """The broker said what it holds: that is the book now; everything else is gone."""
        held = {symbol for symbol, _, _ in positions}
        for symbol in self.positions:
            if symbol not in held:
                self._removed.add(symbol)
                self._dirty.discard(symbol)
        # A snapshot mostly repeats the last one: a position equal to the one stored (not
        # changed since it was written) need not be written again. Equal values give the
        # same canonical text, so the view stays byte-identical to a rebuild's.
        stored = {s: p for s, p in self.positions.items()
                  if s not in self._dirty and s not in self._removed}
        self.positions = {}
        self.start_seq = seq
        self._forget_histories()
        for n, (symbol, qty, avg_price) in enumerate(positions):
            position = opened_at(qty, avg_price)
            self._record(symbol, Line(seq, n, OPEN, qty, avg_price), position)
            if stored.get(symbol) == position:
                self._dirty.discard(symbol)

    # -- replaying after a reversal -----------------------------------------------------------

    def _history(self, symbol: str) -> History:
        history = self._histories.get(symbol)
        if history is not None:
            return history
        if self._history_lines > self.MAX_HISTORY_LINES:
            self._forget_histories()
        self._loading.add(symbol)
        try:
            lines = self.lines(symbol, self.start_seq)
            history = History()
            history.reversed_refs = {line.ref for line in lines if line.kind == REVERSE}
            position = FLAT
            for line in lines:
                position = step(position, line, history.reversed_refs, self._held_before)
                history.append(line, position)
        finally:
            self._loading.discard(symbol)
        self._histories[symbol] = history
        self._history_lines += len(history.lines)
        return history

    def _held_before(self, symbol: str, seq: int) -> Position:
        if symbol in self._loading:  # a symbol change back and forth: fold it plainly
            return replay(self.lines, symbol, self.start_seq, seq)
        return self._history(symbol).before(seq)

    def _replay_from(self, symbol: str, index: int) -> None:
        """Recompute the positions after line `index` on; follow the position if it moved."""
        history = self._histories[symbol]
        position = history.after[index - 1] if index else FLAT
        for k in range(index, len(history.lines)):
            line = history.lines[k]
            position = step(position, line, history.reversed_refs, self._held_before)
            history.after[k] = position
            if line.kind == MOVE_OUT:
                target = self._history(line.ref)
                arrival = bisect_left(target.lines, line.seq, key=_line_seq)
                if arrival < len(target.lines):
                    self._replay_from(line.ref, arrival)
        self._set(symbol, position)

    def _forget_histories(self) -> None:
        self._histories = {}
        self._history_lines = 0

    def take_changes(self) -> BookChanges:
        changes = BookChanges(
            upserts={symbol: self.positions[symbol] for symbol in self._dirty},
            deletes=set(self._removed),
            lines=[(symbol, line) for symbol, lines in self._pending.items() for line in lines],
        )
        self._pending = {}
        self._dirty = set()
        self._removed = set()
        return changes
