"""Replaying the audited day: the timeline, and what each book realised.

Realised P&L per book is what the day's fills, reversals, adjustments and corporate actions
realised in that book. The broker book restarts from the broker's positions at each sync,
and a fill that sync already holds (recorded by it, after its positions) moves no broker
position: its P&L is what it realised against the broker book as it stood before that
sync, moved on by the sync's earlier such fills. Where that position is not in the day's
events, the fill's P&L is left out of the broker figure and `notes` say so; likewise for
a reversal of a broker fill from before the book's last restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.engine.day_replay import opening_state
from projections.engine.replay import replay
from projections.model.catalogue import BookEffect, EventKind, Execution, kind_of
from projections.model.effects import NOT_AT_A_BROKER
from projections.model.fold import FoldState
from projections.model.numbers import ZERO
from projections.model.positions import FLAT, TRADE, Position, apply_trade, signed
from projections.model.records import OrderRecord
from projections.model.timeline import plain_text
from projections.queries.audit.day import DaySpan
from projections.queries.audit.orders import as_the_day_began
from projections.queries.audit.timeline import Entry, describe
from projections.queries.views import Views

BOOKS = ("local", "broker")


@dataclass
class DayAudit:
    views: Views
    span: DaySpan
    state: FoldState
    opening_order_ids: frozenset[UUID]  # the orders open as the day began
    entries: list[Entry] = field(default_factory=list)
    pnl: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    # The broker book just before the day's latest sync, moved on by the fills that sync
    # recorded but already held: the positions those fills traded against. None: no sync
    # yet on this day.
    held_base: dict[str, Position] | None = None
    # The broker time of the sync before that one: a fill older than it was held by both.
    held_after: datetime | None = None
    # What each of the day's broker fills realised in the broker figure, by its line ref:
    # a reversal after the book restarted takes back this much.
    broker_gains: dict[str, Decimal] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, views: Views, span: DaySpan) -> DayAudit:
        state, open_order_ids = opening_state(views, span.day, span.first_seq)
        return cls(views, span, state, open_order_ids)

    def run(self) -> None:
        replay(self.views, self.state, self.span.first_seq, self.span.last_seq,
               orders=as_the_day_began(self.views, self.state), step=self._apply)

    def _apply(self, seq: int, event: Any) -> None:
        kind = kind_of(type(event))
        if kind.book is BookEffect.RESTARTS:
            # Kept before the sync restarts the book: the fills it recorded come after it.
            self.held_base = dict(self.state.broker.positions)
            account = self.state.account
            self.held_after = None if account is None else account.broker_time
        # Decided before the event is applied: the book it is judged against is the one
        # it found.
        broker_ref = self._broker_ref(kind, event)
        fill = kind.execution is Execution.FILL
        held = outside = False
        if broker_ref is not None:
            record, ref = broker_ref
            held = fill and self._held(event)
            outside = kind.execution is Execution.REVERSAL and not self._in_book(
                record.symbol, ref
            )
        # A sync restarts the broker book from the broker's word: not a gain or a loss, so
        # it names no symbol here.
        symbols = self._book_symbols(kind, event)
        if symbols:
            before = self._realised(symbols)
            self.state.apply(seq, event)
            for (book, symbol), value in self._realised(symbols).items():
                day = self.pnl.setdefault(symbol, {name: ZERO for name in BOOKS})
                day[book] += value - before[(book, symbol)]
                if book == "broker" and broker_ref is not None and fill and not held:
                    self.broker_gains[broker_ref[1]] = value - before[(book, symbol)]
        else:
            self.state.apply(seq, event)
        if broker_ref is not None and held:
            self._held_fill(*broker_ref, event)
        elif broker_ref is not None and outside:
            self._reversed_outside_book(*broker_ref, event)
        record_after = self.state.orders.get(event.originator_id)
        self.entries.append(describe(seq, event, kind, record_after, self.views.zone))

    def _broker_ref(self, kind: EventKind, event: Any) -> tuple[OrderRecord, str] | None:
        """A fill or reversal of an order at a broker: its order and the fold's line ref."""
        if kind.execution is None:
            return None
        record = self.state.orders.get(event.originator_id)
        if record is None or record.broker in NOT_AT_A_BROKER:
            return None
        return record, f"{record.key}:{event.execution_id}"

    def _held(self, fill: Any) -> bool:
        """The fold's rule: a broker fill the latest sync's positions already hold moves
        no broker position (`FoldState._broker_fill_counts`)."""
        account = self.state.account
        return account is not None and fill.filled_at <= account.broker_time

    def _in_book(self, symbol: str, ref: str) -> bool:
        """Whether the broker book holds the fill `ref` since it last restarted, so that
        reversing it replays the book (one read of the symbol's lines; reversals are rare)."""
        book = self.state.broker
        if symbol not in book.positions:
            return False
        return any(line.kind == TRADE and line.ref == ref
                   for line in book.lines(symbol, book.start_seq))

    def _held_fill(self, record: OrderRecord, ref: str, fill: Any) -> None:
        symbol = record.symbol
        after = self.held_after
        if self.held_base is None or (after is not None and fill.filled_at <= after):
            why = (
                "the sync whose positions hold it was before this day, so the position it "
                "traded against is not in this day's events"
                if self.held_base is None else
                "it is older than the sync before that one too, whose positions already "
                "held it, so the position it traded against is not known"
            )
            self._note(symbol, fill.execution_id, (
                f"{record.side} {plain_text(fill.qty)} @ {plain_text(fill.price)} (execution "
                f"{fill.execution_id}) was recorded by a sync after the broker's positions "
                f"already held it; {why}: what it realised is left out of the broker figure."
            ))
            return
        base = self.held_base.get(symbol, FLAT)
        moved = apply_trade(base, signed(record.side, fill.qty), fill.price)
        self.held_base[symbol] = moved
        gain = moved.realised_pnl - base.realised_pnl
        self.pnl[symbol]["broker"] += gain
        self.broker_gains[ref] = gain

    def _reversed_outside_book(self, record: OrderRecord, ref: str, reversal: Any) -> None:
        """A broker fill taken back after the book restarted from a sync: the book cannot
        replay it, so what the day booked for it (if the day booked it) is taken back."""
        gain = self.broker_gains.pop(ref, None)
        if gain is not None:
            self.pnl[record.symbol]["broker"] -= gain
            return
        self._note(record.symbol, reversal.execution_id, (
            f"execution {reversal.execution_id} was taken back, but the broker book has "
            "restarted from a sync since that fill (the broker's positions already show "
            "it): what the reversal takes back from the broker's realised P&L is not known "
            "and is left out of the broker figure."
        ))

    def _note(self, symbol: str, execution_id: str, text: str) -> None:
        self.notes.append({"symbol": symbol, "book": "broker", "execution_id": execution_id,
                           "text": text})

    def _book_symbols(self, kind: EventKind, event: Any) -> frozenset[str]:
        if kind.book is not BookEffect.MOVES:
            return frozenset()
        return kind.symbols(event, self.state.orders.get(event.originator_id)) or frozenset()

    def _realised(self, symbols: Iterable[str]) -> dict[tuple[str, str], Decimal]:
        books = {"local": self.state.local, "broker": self.state.broker}
        return {
            (name, symbol): book.positions.get(symbol, FLAT).realised_pnl
            for name, book in books.items()
            for symbol in symbols
        }
