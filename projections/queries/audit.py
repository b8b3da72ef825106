"""One trading day's audit, from the events alone: what happened, in order, and how it left
both books. The CLI (`commands audit`) and the web page serve the same document:

    document = audit_document(views, date(2026, 1, 5), symbol=None)  # Decimal, datetime, UUID
    commands.output.print_json(document)                             # decimal strings in JSON

    {"day", "timezone", "starts_at", "ends_at",      # local midnights (23 or 25 h apart at DST)
     "symbol", "events", "first_seq", "last_seq",    # events: the day's count, before --symbol
     "timeline": [{TIMELINE_FIELDS..., "details": {...}}],   # one entry per event, in order
     "opening": {"local": [position], "broker": [position]},  # position: symbol, qty,
     "closing": {"local": [position], "broker": [position]},  #   avg_price, realised_pnl
     "broker_account": {"opening": account | None, "closing": account | None},
     "pnl": [{"symbol", "local", "broker"}], "pnl_total": {"local", "broker"},
     "pnl_notes": [{"symbol", "book", "execution_id", "text"}],  # what a figure leaves out
     "unresolved": {"open_orders": [order], "differences": [{"symbol", "local_qty",
                    "broker_qty", "open_qty", "delta"}]}}

The day's events are read from the audit index (notification ids first_seq..last_seq) and
folded with the views' own `FoldState`, starting from the previous day's closing books that
the same fold stored in the index: the cost is the day's events, plus a few reads per order
the day touched and per order open at the day's start (the previous close lists their ids).

This is `projections.engine.audit_index.replay_day` with one difference: an order the day touches
but requested earlier is loaded as it stood when the day began (its own stream folded up to
the version before its first event that day), not as the orders view holds it today, so
each event's status and filled quantity are the day's.

Realised P&L per book is what the day's fills, reversals, adjustments and corporate actions
realised in that book. The broker book restarts from the broker's positions at each sync,
and a fill that sync already holds (recorded by it, after its positions) moves no broker
position: its P&L is what it realised against the broker book as it stood before that
sync, moved on by the sync's earlier such fills. Where that position is not in the day's
events, the fill's P&L is left out of the broker figure and `pnl_notes` says so; likewise
for a reversal of a broker fill from before the book's last restart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.domain import event_name
from ledger.domain.order import client_order_id_for, decision_order_id
from ledger.domain.values import InvalidInput, normalise_symbol
from projections.engine.audit_index import opening_state
from projections.engine.runner import read_page
from projections.engine.tables import (
    ORDERS,
    order_from_row,
)
from projections.model.fold import NOT_AT_A_BROKER, BrokerAccountState, FoldState, OrderRecord
from projections.model.numbers import ZERO, canonical
from projections.model.positions import (
    FLAT,
    OPEN_STATUSES,
    TRADE,
    Position,
    apply_trade,
    diff_rows,
    open_qty_by_symbol,
    signed,
)
from projections.queries.views import PositionRow, Views, position_rows

BOOKS = ("local", "broker")
_DAY_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
# Fold handlers name events by qualname; these change a book's realised P&L.
_BOOK_EVENTS = frozenset(
    {
        "Order.Filled",
        "Order.PartiallyFilled",
        "Order.FillReversed",
        "CorporateAction.Recorded",
        "Adjustment.Recorded",
    }
)
_FILLS = frozenset({"Order.Filled", "Order.PartiallyFilled"})

# Every timeline entry has these keys, in this order (the CSV columns); None when the
# event has nothing to say there. `details` holds what is particular to the event.
TIMELINE_FIELDS = (
    "seq",
    "ledger_time",
    "local_time",
    "event",
    "symbol",
    "side",
    "qty",
    "price",
    "execution_id",
    "broker_time",
    "client_order_id",
    "purpose",
    "status",
    "filled_qty",
    "text",
    "aggregate_id",
    "version",
    "order_id",
    "decision_id",
    "reconciliation_id",
)


# -- the day ---------------------------------------------------------------------------------


def parse_day(text: str, zone: ZoneInfo, now: datetime | None = None) -> date:
    """A trading day as a user types it: YYYY-MM-DD, not after today in the ledger's zone."""
    value = text.strip()
    try:
        if not _DAY_TEXT.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date: use YYYY-MM-DD, for example 2026-01-05"
        ) from None
    if day.year < 1970:
        raise InvalidInput(
            f"{day.isoformat()} is before 1970: the ledger records nothing that early"
        )
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    if day > today:
        raise InvalidInput(
            f"{day.isoformat()} is in the future (today is {today.isoformat()} in {zone.key}): "
            "nothing has happened on it yet"
        )
    return day


@dataclass(frozen=True)
class DaySpan:
    """A trading day and where its events are. No events: first_seq == last_seq + 1, and
    last_seq is the last notification before the day (0: none)."""

    day: date
    starts_at: datetime  # local midnight, in the ledger's zone
    ends_at: datetime  # the next local midnight: 23 or 25 hours later across a DST change
    first_seq: int
    last_seq: int
    events: int


def day_span(views: Views, day: date) -> DaySpan:
    starts_at = datetime.combine(day, time(0), tzinfo=views.zone)
    ends_at = datetime.combine(day + timedelta(days=1), time(0), tzinfo=views.zone)
    found = views.audit_day(day)
    if found is not None:
        return DaySpan(day, starts_at, ends_at, found.first_seq, found.last_seq, found.events)
    later = views.first_seq_on_or_after(day)
    # Everything at or below the cut happened before the day (ids may have gaps: fine).
    cut = later - 1 if later is not None else (views.store.read_position() or 0)
    return DaySpan(day, starts_at, ends_at, cut + 1, cut, 0)


# -- orders as they stood at a moment, folded from their own stream -----------------------


def _fold_order(
    views: Views, order_id: UUID, *, lte: int | None = None, before: datetime | None = None
) -> OrderRecord | None:
    """The order after its events up to version `lte`, or stamped before `before`.

    A throwaway fold: its books are discarded, only the order's record is kept.
    """
    state = FoldState(views.zone, audit=False)
    for event in views.ledger.events.get(order_id, lte=lte):
        if before is not None and event.timestamp >= before:
            break
        state.apply(0, event)
    return state.orders.get(order_id)


def _order_at_close(views: Views, record: OrderRecord, span: DaySpan) -> OrderRecord | None:
    """An order the day did not touch, as it stood at the day's close.

    The view's record is that state unless the order changed after the day; then its
    events from before the day are folded again. An untouched order has no event inside
    the day, so "stamped before the day began" is exactly "before the day's close".
    """
    if record.updated_seq <= span.last_seq:
        return record
    return _fold_order(views, record.order_id, before=span.starts_at)


# -- replaying the day ------------------------------------------------------------------------


@dataclass
class _Entry:
    symbols: frozenset[str] | None  # None: the whole account (syncs, reconciliation runs)
    fields: dict[str, Any]


@dataclass
class _Replay:
    views: Views
    span: DaySpan
    state: FoldState
    entries: list[_Entry] = field(default_factory=list)
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
    def start(cls, views: Views, span: DaySpan) -> _Replay:
        state = opening_state(views, span.day, span.first_seq)
        return cls(views, span, state)

    def run(self) -> None:
        after, last = self.span.first_seq - 1, self.span.last_seq
        while after < last:
            page = read_page(self.views.ledger, after, self.views.page_size, stop=last)
            if not page:
                break
            self._load_orders(page)
            for seq, event in page:
                self._apply(seq, event)
            after = page[-1][0]

    def _load_orders(self, page: list[tuple[int, Any]]) -> None:
        """Orders requested before the day, as they stood when it began."""
        wanted = self.state.order_ids_to_load(page)
        first_version: dict[UUID, int] = {}
        for _, event in page:
            if event.originator_id in wanted:
                first_version.setdefault(event.originator_id, event.originator_version)
        for order_id, version in first_version.items():
            if version > 1:  # else the request itself is in this page
                record = _fold_order(self.views, order_id, lte=version - 1)
                if record is not None:
                    self.state.orders[order_id] = record

    def _apply(self, seq: int, event: Any) -> None:
        kind = type(event).__qualname__
        if kind == "BrokerSnapshot.Synced":
            # Kept before the sync restarts the book: the fills it recorded come after it.
            self.held_base = dict(self.state.broker.positions)
            account = self.state.account
            self.held_after = None if account is None else account.broker_time
        # Decided before the event is applied: the book it is judged against is the one
        # it found.
        broker_ref = self._broker_ref(kind, event)
        held = outside = False
        if broker_ref is not None:
            record, ref = broker_ref
            held = kind in _FILLS and self._held(event)
            outside = kind == "Order.FillReversed" and not self._in_book(record.symbol, ref)
        # A sync restarts the broker book from the broker's word: not a gain or a loss, so
        # it names no symbol here.
        symbols = self._book_symbols(kind, event)
        if symbols:
            before = self._realised(symbols)
            self.state.apply(seq, event)
            for (book, symbol), value in self._realised(symbols).items():
                day = self.pnl.setdefault(symbol, {name: ZERO for name in BOOKS})
                day[book] += value - before[(book, symbol)]
                if book == "broker" and broker_ref is not None and kind in _FILLS and not held:
                    self.broker_gains[broker_ref[1]] = value - before[(book, symbol)]
        else:
            self.state.apply(seq, event)
        if broker_ref is not None and held:
            self._held_fill(*broker_ref, event)
        elif broker_ref is not None and outside:
            self._reversed_outside_book(*broker_ref, event)
        record_after = self.state.orders.get(event.originator_id)
        self.entries.append(describe(seq, event, record_after, self.views.zone))

    def _broker_ref(self, kind: str, event: Any) -> tuple[OrderRecord, str] | None:
        """A fill or reversal of an order at a broker: its order and the fold's line ref."""
        if kind not in _FILLS and kind != "Order.FillReversed":
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
                f"{record.side} {_text(fill.qty)} @ {_text(fill.price)} (execution "
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

    def _book_symbols(self, kind: str, event: Any) -> tuple[str, ...]:
        if kind not in _BOOK_EVENTS:
            return ()
        if kind == "CorporateAction.Recorded":
            return tuple({event.symbol.upper(), (event.new_symbol or event.symbol).upper()})
        if kind == "Adjustment.Recorded":
            return (event.symbol.upper(),)
        record = self.state.orders.get(event.originator_id)
        return () if record is None else (record.symbol,)

    def _realised(self, symbols: Iterable[str]) -> dict[tuple[str, str], Decimal]:
        books = {"local": self.state.local, "broker": self.state.broker}
        return {
            (name, symbol): book.positions.get(symbol, FLAT).realised_pnl
            for name, book in books.items()
            for symbol in symbols
        }


# -- one timeline entry per event ------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _blank(seq: int, event: Any, zone: ZoneInfo) -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys(TIMELINE_FIELDS)
    entry.update(
        seq=seq,
        ledger_time=event.timestamp,
        local_time=event.timestamp.astimezone(zone),
        event=event_name(event),
        aggregate_id=event.originator_id,
        version=event.originator_version,
        text="",
        details={},
    )
    return entry


def _order_fields(record: OrderRecord) -> dict[str, Any]:
    return {
        "symbol": record.symbol,
        "side": record.side,
        "order_id": record.order_id,
        "client_order_id": record.client_order_id,
        "purpose": record.purpose,
        "status": record.status,
        "filled_qty": record.filled_qty,
        "decision_id": record.decision_id,
        "reconciliation_id": record.reconciliation_id,
    }


Describer = Callable[[Any, OrderRecord | None, dict[str, Any]], frozenset[str] | None]


def _decision(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    trades = list(e.trades)
    symbols = sorted({str(t["symbol"]) for t in trades})
    # The decision's orders have ids derived from it: the same ones the ledger requested.
    caused = [
        client_order_id_for(decision_order_id(e.originator_id, index))
        for index in range(len(trades))
    ]
    entry.update(symbol=", ".join(symbols), decision_id=e.originator_id,
                 text=f"{e.source}: {e.rationale}")
    if len(trades) == 1:
        entry.update(side=trades[0]["side"], qty=trades[0].get("qty"))
    entry["details"] = {"source": e.source, "rationale": e.rationale, "trades": trades,
                        "orders": caused}
    return frozenset(symbols)


def _requested(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    amount = _text(e.qty) if e.qty is not None else f"${_text(e.notional)}"
    limit = f" limit {_text(e.limit_price)}" if e.limit_price is not None else ""
    what = f"{e.side} {amount} {e.symbol} {e.order_type}{limit} {e.time_in_force}"
    entry.update(qty=e.qty, price=e.limit_price, text=f"{what}: {e.reason}" if e.reason else what)
    entry["details"] = {
        "order_type": e.order_type,
        "time_in_force": e.time_in_force,
        "limit_price": e.limit_price,
        "notional": e.notional,
        "extended_hours": e.extended_hours,
        "reason": e.reason,
    }
    return frozenset({e.symbol})


def _submitted(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    found = " (found at the broker by its client order id)" if e.via_lookup else ""
    entry["text"] = f"at {e.broker} as {e.broker_order_id}{found}"
    entry["details"] = {"broker": e.broker, "broker_order_id": e.broker_order_id,
                        "via_lookup": e.via_lookup}
    return None


def _send_started(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    entry["text"] = (f"sending to {e.broker}: from here the order may exist at the broker "
                     "until its answer says")
    entry["details"] = {"broker": e.broker, "at": e.at}
    return None


def _submission_failed(
    e: Any, _: OrderRecord | None, entry: dict[str, Any]
) -> frozenset[str] | None:
    unknown = getattr(e, "outcome_unknown", False)
    retry = "retrying may help" if e.retryable else "retrying will not help"
    entry["text"] = (
        f"outcome unknown at {e.broker}: {e.code}: {e.message} (the next run settles it by "
        "its client order id)" if unknown
        else f"{e.broker} refused: {e.code}: {e.message} ({retry})"
    )
    entry["details"] = {"broker": e.broker, "code": e.code, "message": e.message,
                        "retryable": e.retryable, "http_status": e.http_status,
                        "outcome_unknown": unknown}
    return None


def _accepted(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    entry["text"] = f"broker status {e.broker_status}"
    entry["details"] = {"broker_status": e.broker_status}
    return None


def _with_reason(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    entry["text"] = e.reason
    entry["details"] = {"reason": e.reason}
    return None


def _fill(e: Any, record: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    entry.update(qty=e.qty, price=e.price, execution_id=e.execution_id, broker_time=e.filled_at)
    if record is not None:
        of = f" of {_text(record.qty)}" if record.qty is not None else ""
        entry["text"] = f"{_text(record.filled_qty)}{of} filled"
    return None


def _reversed(e: Any, record: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    entry.update(qty=e.qty, price=e.price, execution_id=e.execution_id,
                 text=f"execution {e.execution_id} taken back: {e.reason}")
    entry["details"] = {"reason": e.reason}
    return None


def _plain_order_event(
    e: Any, _: OrderRecord | None, entry: dict[str, Any]
) -> frozenset[str] | None:
    return None


def _synced(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    held = ", ".join(f"{p['symbol']} {_text(Decimal(str(p['qty'])))}" for p in e.positions)
    entry.update(broker_time=e.broker_time, text=(
        f"{e.broker} account ({'paper' if e.paper else 'LIVE'}): cash {_text(e.cash)}, equity "
        f"{_text(e.equity)}, buying power {_text(e.buying_power)}; positions: {held or 'none'}; "
        f"{len(e.open_orders)} open order(s)"
    ))
    entry["details"] = {
        "broker": e.broker,
        "paper": e.paper,
        "account_id": e.account_id,
        "cash": e.cash,
        "equity": e.equity,
        "buying_power": e.buying_power,
        "positions": list(e.positions),
        "open_orders": list(e.open_orders),
        "request": e.request,
    }
    return None


def _corporate_action(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str]:
    target = e.new_symbol or e.symbol
    entry.update(symbol=e.symbol, text=e.description or f"{e.kind} {e.symbol} -> {target}")
    entry["details"] = {"broker": e.broker, "activity_id": e.activity_id, "kind": e.kind,
                        "new_symbol": e.new_symbol, "ratio": e.ratio,
                        "effective_date": e.effective_date}
    return frozenset({e.symbol.upper(), target.upper()})


def _adjustment(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str]:
    entry.update(symbol=e.symbol, qty=e.qty, price=e.price,
                 text=f"{e.book} book adjusted by {e.who}: {e.why}")
    entry["details"] = {"book": e.book, "who": e.who, "why": e.why}
    return frozenset({e.symbol.upper()})


def _run_started(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    mode = "dry run" if e.dry_run else "run"
    filters = {k: v for k, v in e.filters.items() if v not in (None, [], False)}
    shown = f"; filters {filters}" if filters else ""
    entry.update(reconciliation_id=e.originator_id,
                 text=f"{mode} against {e.broker} ({'paper' if e.paper else 'LIVE'}){shown}")
    entry["details"] = {"dry_run": e.dry_run, "broker": e.broker, "paper": e.paper,
                        "sync_id": e.sync_id, "filters": e.filters}
    return None


def _run_planned(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str]:
    rows, orders = list(e.rows), list(e.orders)
    parts = [f"{o['side']} {_text(o['qty'])} {o['symbol']}" for o in orders]
    differing = [r for r in rows if r.get("delta")]
    settled = list(getattr(e, "settled", None) or [])
    shown = "".join(
        f"; settled {item['client_order_id']} of run {item.get('from_run') or '-'}: "
        f"{item.get('how')}" for item in settled
    )
    entry.update(reconciliation_id=e.originator_id, text=(
        f"{len(differing)} difference(s); "
        + (f"compensating: {', '.join(parts)}" if parts else "no compensating order")
        + shown
    ))
    entry["details"] = {"rows": rows, "orders": orders, "market": e.market, "settled": settled}
    return frozenset(str(item["symbol"]) for item in rows + orders + settled)


def _run_completed(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    counts = {"planned": e.planned, "submitted": e.submitted, "failed": e.failed,
              "skipped": e.skipped, "not_sent": getattr(e, "not_sent", 0),
              "unknown": getattr(e, "unknown", 0)}
    interrupted = getattr(e, "interrupted", None)
    text = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in counts.items())
    entry.update(reconciliation_id=e.originator_id,
                 text=f"INTERRUPTED ({interrupted}): {text}" if interrupted else text)
    entry["details"] = {**counts, "interrupted": interrupted}
    return None


def _lock(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    run_id = getattr(e, "run_id", None)
    until = getattr(e, "expires_at", None)
    verb = "renewed" if type(e).__qualname__.endswith("Renewed") else "taken"
    entry.update(reconciliation_id=run_id, text=(
        "the reconciliation lock"
        + (f" {verb} by run {run_id} until {until.isoformat()}" if until is not None
           else f" released by run {run_id}" if run_id is not None else " created")
    ))
    return None


def _other(e: Any, _: OrderRecord | None, entry: dict[str, Any]) -> frozenset[str] | None:
    envelope = {"originator_id", "originator_version", "originator_topic", "timestamp"}
    entry["details"] = {k: v for k, v in vars(e).items() if k not in envelope}
    return None


DESCRIBERS: dict[str, Describer] = {
    "Decision.Recorded": _decision,
    "Order.Requested": _requested,
    "Order.Submitted": _submitted,
    "Order.SendStarted": _send_started,
    "Order.SubmissionFailed": _submission_failed,
    "Order.Accepted": _accepted,
    "Order.Rejected": _with_reason,
    "Order.Filled": _fill,
    "Order.PartiallyFilled": _fill,
    "Order.Completed": _plain_order_event,
    "Order.FillReversed": _reversed,
    "Order.Canceled": _with_reason,
    "Order.Expired": _plain_order_event,
    "BrokerSnapshot.Synced": _synced,
    "CorporateAction.Recorded": _corporate_action,
    "Adjustment.Recorded": _adjustment,
    "Reconciliation.Started": _run_started,
    "Reconciliation.Planned": _run_planned,
    "Reconciliation.Completed": _run_completed,
    "ReconciliationLock.Created": _lock,
    "ReconciliationLock.Acquired": _lock,
    "ReconciliationLock.Renewed": _lock,
    "ReconciliationLock.Released": _lock,
}


def describe(seq: int, event: Any, record: OrderRecord | None, zone: ZoneInfo) -> _Entry:
    """The timeline entry of one event; `record` is its order after the event, if any."""
    entry = _blank(seq, event, zone)
    kind = type(event).__qualname__
    is_order_event = kind.startswith("Order.") and record is not None
    if is_order_event:
        assert record is not None
        entry.update(_order_fields(record))
    symbols = DESCRIBERS.get(kind, _other)(event, record, entry)
    if is_order_event:
        assert record is not None
        symbols = frozenset({record.symbol})
    return _Entry(symbols, entry)


# -- filtering by symbol ----------------------------------------------------------------------


def _only(items: Iterable[Any], symbol: str) -> list[Any]:
    return [
        item for item in items
        if not isinstance(item, dict) or str(item.get("symbol", "")).upper() == symbol
    ]


def _narrowed(entry: _Entry, symbol: str) -> dict[str, Any] | None:
    """The entry as it concerns one symbol, or None when it does not concern it. A sync or
    a plan is kept with only that symbol's positions, orders and rows."""
    if entry.symbols is not None and symbol not in entry.symbols:
        return None
    fields = dict(entry.fields)
    details = dict(fields["details"])
    for key in ("positions", "open_orders", "rows", "orders"):
        if isinstance(details.get(key), list):
            details[key] = _only(details[key], symbol)
    fields["details"] = details
    return fields


# -- the document -------------------------------------------------------------------------------


def _exact(value: Decimal) -> Decimal:
    """One written form per value (29, not 29.0): a book read from the index and the same
    book folded here must print alike."""
    return Decimal(canonical(value))


def _positions(rows: list[PositionRow], symbol: str | None) -> list[dict[str, Any]]:
    return [
        {"symbol": r.symbol, "qty": _exact(r.qty), "avg_price": _exact(r.avg_price),
         "realised_pnl": _exact(r.realised_pnl)}
        for r in rows
        if symbol is None or r.symbol == symbol
    ]


def _snapshot_open_orders(views: Views, account: BrokerAccountState, span: DaySpan) -> list[Any]:
    """The open orders of the day's last sync. A day's closing document keeps the account's
    numbers but not its open orders, so a sync from an earlier day is read again (one event)."""
    if account.snapshot_seq >= span.first_seq:
        return list(account.open_orders)
    fold = FoldState(views.zone, audit=False)
    for event in views.ledger.events.get(account.snapshot_id, lte=1):
        fold.apply(account.snapshot_seq, event)
    return [] if fold.account is None else list(fold.account.open_orders)


def _untouched_orders(views: Views, state: FoldState, opening: frozenset[UUID],
                      symbol: str | None) -> list[OrderRecord]:
    """Orders open at the day's start that the day did not touch: still open at its close.
    The previous close lists their ids, so each is a lookup by key."""
    wanted = [str(order_id) for order_id in opening - state.orders.keys()]
    with views.store.read() as tx:
        rows = views.store.select_in(tx, ORDERS, "", "order_id", wanted)
    records = [order_from_row(row) for row in rows]
    return [r for r in records if symbol is None or r.symbol == symbol]


def _orders_at_close(views: Views, span: DaySpan, state: FoldState,
                     opening: frozenset[UUID], symbol: str | None) -> dict[UUID, OrderRecord]:
    """Every order the close depends on: those the day touched, and those open at its end."""
    known = dict(state.orders)
    for record in _untouched_orders(views, state, opening, symbol):
        if record.order_id not in known:
            at_close = _order_at_close(views, record, span)
            if at_close is not None:
                known[record.order_id] = at_close
    return known


def _listed_at_broker(views: Views, span: DaySpan, listed: list[Any],
                      known: dict[UUID, OrderRecord]) -> list[OrderRecord]:
    """Orders the last sync listed that the ledger knows but the day did not touch: the
    netting must know whether the ledger had already seen them end."""
    have = {record.client_order_id for record in known.values()}
    found = []
    for item in listed:
        client_order_id = str(item.get("client_order_id") or "")
        if not client_order_id or client_order_id in have:
            continue
        record = views.order_by_client_order_id(client_order_id)
        if record is not None and record.requested_seq <= span.last_seq:
            at_close = _order_at_close(views, record, span)
            if at_close is not None:
                found.append(at_close)
    return found


def _order_document(record: OrderRecord) -> dict[str, Any]:
    return {
        "order_id": record.order_id,
        "client_order_id": record.client_order_id,
        "purpose": record.purpose,
        "symbol": record.symbol,
        "side": record.side,
        "qty": record.qty,
        "notional": record.notional,
        "order_type": record.order_type,
        "limit_price": record.limit_price,
        "status": record.status,
        "filled_qty": record.filled_qty,
        "avg_fill_price": record.avg_fill_price,
        "broker": record.broker,
        "broker_order_id": record.broker_order_id,
        "requested_at": record.requested_at,
        "decision_id": record.decision_id,
        "reconciliation_id": record.reconciliation_id,
    }


def _unresolved(views: Views, span: DaySpan, state: FoldState, opening: frozenset[UUID],
                symbol: str | None) -> dict[str, list[dict[str, Any]]]:
    known = _orders_at_close(views, span, state, opening, symbol)
    open_orders = sorted(
        (r for r in known.values() if r.status in OPEN_STATUSES),
        key=lambda r: (r.requested_at, r.client_order_id),
    )
    account = state.account
    listed = [] if account is None else _snapshot_open_orders(views, account, span)
    netted = [*known.values(), *_listed_at_broker(views, span, listed, known)]
    pending = open_qty_by_symbol(
        listed, None if account is None else account.broker_time,
        [record.for_netting() for record in netted],
    )
    rows = diff_rows(
        {s: p.qty for s, p in state.local.positions.items()},
        {s: p.qty for s, p in state.broker.positions.items()},
        pending,
    )
    return {
        "open_orders": [
            _order_document(r) for r in open_orders if symbol is None or r.symbol == symbol
        ],
        "differences": [
            {"symbol": r.symbol, "local_qty": r.local_qty, "broker_qty": r.broker_qty,
             "open_qty": r.open_qty, "delta": r.delta}
            for r in rows
            if r.delta and (symbol is None or r.symbol == symbol)
        ],
    }


def _pnl(replay: _Replay, symbol: str | None) -> list[dict[str, Any]]:
    return [
        {"symbol": name, **{book: _exact(amount) for book, amount in amounts.items()}}
        for name, amounts in sorted(replay.pnl.items())
        if symbol is None or name == symbol
    ]


def audit_document(views: Views, day: date, symbol: str | None = None) -> dict[str, Any]:
    """Everything that happened on `day` (a trading day in the views' time zone), in order,
    with both books at its open and close, its realised P&L and what it left unresolved.

    Values are plain Python (Decimal, datetime, UUID): `commands.output.jsonable` turns the
    document into JSON with decimal strings. `views` must have caught up with the events.
    """
    wanted = None if symbol is None else normalise_symbol(symbol)
    span = day_span(views, day)
    replay = _Replay.start(views, span)
    state = replay.state
    opening = {
        "local": _positions(position_rows(state.local.positions), wanted),
        "broker": _positions(position_rows(state.broker.positions), wanted),
    }
    opening_account = None if state.account is None else state.account.document()
    # The orders open at the day's start, as the previous close listed them.
    opening_open = frozenset(state.open_order_ids)
    replay.run()
    timeline = [
        fields
        for entry in replay.entries
        if (fields := entry.fields if wanted is None else _narrowed(entry, wanted)) is not None
    ]
    pnl = _pnl(replay, wanted)
    return {
        "day": span.day,
        "timezone": views.timezone,
        "starts_at": span.starts_at,
        "ends_at": span.ends_at,
        "symbol": wanted,
        "events": span.events,
        "first_seq": span.first_seq if span.events else None,
        "last_seq": span.last_seq if span.events else None,
        "timeline": timeline,
        "opening": opening,
        "closing": {
            "local": _positions(position_rows(state.local.positions), wanted),
            "broker": _positions(position_rows(state.broker.positions), wanted),
        },
        "broker_account": {
            "opening": opening_account,
            "closing": None if state.account is None else state.account.document(),
        },
        "pnl": pnl,
        "pnl_total": {book: _exact(sum((row[book] for row in pnl), ZERO)) for book in BOOKS},
        "pnl_notes": [note for note in replay.notes if wanted is None or note["symbol"] == wanted],
        "unresolved": _unresolved(views, span, state, opening_open, wanted),
    }
