"""The fold over the whole event stream: orders, both books, the broker account, the audit index.

`FoldState.apply(seq, event)` is the one place where an event changes a view. The live
views, a rebuild, `positions --as-of` and a day's audit all run this same code; they
differ only in where state comes from (memory, or rows loaded from the view tables)
and where changes go (`take_changes`).
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.domain import Decision, Order, Reconciliation
from projections.model.numbers import CONTEXT, ONE, ZERO, canonical, to_decimal
from projections.model.positions import (
    FLAT,
    MOVE_IN,
    MOVE_OUT,
    OPEN,
    OPEN_STATUSES,
    RATIO,
    REVERSE,
    TRADE,
    Line,
    LinesOf,
    OpenOrder,
    Position,
    apply_ratio,
    apply_trade,
    average,
    merge_moved,
    opened_at,
    replay,
    signed,
    status_after_fill,
    status_after_reversal,
    step,
)

log = logging.getLogger(__name__)

_add = CONTEXT.add
_sub = CONTEXT.subtract
_mul = CONTEXT.multiply

NOT_AT_A_BROKER = (None, "paper")


class Stamp(NamedTuple):
    """An event that changes no view row (a decision, a reconciliation step): only what it
    is, whose, and when, for the audit index.

    Reading these straight from the start of the stored state instead of decoding them
    whole saves a rebuild much of its time (decisions carry their trades, plans their rows).
    """

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    event_class: type


@dataclass(slots=True)
class OrderRecord:
    """One row of the orders view."""

    order_id: UUID
    client_order_id: str
    purpose: str
    decision_id: UUID | None
    reconciliation_id: UUID | None
    symbol: str
    side: str
    qty: Decimal | None
    notional: Decimal | None
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    status: str
    broker: str | None
    broker_order_id: str | None
    filled_qty: Decimal
    filled_value: Decimal
    error: str | None
    requested_seq: int
    requested_at: datetime
    updated_seq: int
    updated_at: datetime
    # The order id as stored (hyphenated), made once: rows and line refs both need it.
    key: str = ""
    # Set while the record waits in a page's changes: a flag costs less than hashing a UUID.
    changed: bool = False
    # Whether the view table has a row for it yet: new rows go in by the fastest path.
    stored: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            self.key = str(self.order_id)

    @property
    def avg_fill_price(self) -> Decimal | None:
        return average(self.filled_value, self.filled_qty)

    def for_netting(self) -> OpenOrder:
        return OpenOrder(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            purpose=self.purpose,
            status=self.status,
            broker=self.broker,
            qty=self.qty,
            filled_qty=self.filled_qty,
            requested_at=self.requested_at,
        )


@dataclass(slots=True)
class BrokerAccountState:
    """The broker's account as of the latest `BrokerSynced`."""

    snapshot_id: UUID
    snapshot_seq: int
    broker: str
    account_id: str
    paper: bool
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    broker_time: datetime
    synced_at: datetime
    open_orders: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        """The account as `positions --json` and the audit show it (plain Python values)."""
        return {
            "snapshot_id": self.snapshot_id,
            "broker": self.broker,
            "account_id": self.account_id,
            "paper": self.paper,
            "cash": self.cash,
            "equity": self.equity,
            "buying_power": self.buying_power,
            "broker_time": self.broker_time,
            "synced_at": self.synced_at,
        }


@dataclass(slots=True)
class AuditDay:
    """One trading day: its events are notifications first_seq..last_seq (a contiguous run)."""

    day: date
    first_seq: int
    last_seq: int
    events: int
    closing: str = ""  # canonical JSON of both books after the day's last event


@dataclass(slots=True)
class BookChanges:
    upserts: dict[str, Position]
    deletes: set[str]
    lines: list[tuple[str, Line]]


@dataclass(slots=True)
class Changes:
    """Everything a page of events changed, ready to be written in one transaction."""

    position: int
    orders: list[OrderRecord]
    local: BookChanges
    broker: BookChanges
    account: BrokerAccountState | None
    days: list[AuditDay]


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


class AuditIndexer:
    """Assigns each event to a trading day in the ledger's time zone.

    A day is a contiguous run of notification ids: an event whose clock reads earlier
    than the day already open (two writers' clocks a hair apart at midnight) joins the
    open day. So a day's opening state is exactly the previous day's closing state, and
    replaying a day never needs an event outside its run.
    """

    def __init__(self, zone: ZoneInfo, current: AuditDay | None = None) -> None:
        self.zone = zone
        self.finished: list[AuditDay] = []
        self.current: AuditDay | None = None
        self.ends: datetime | None = None
        if current is not None:
            self._open(current)

    def _open(self, day: AuditDay) -> None:
        self.current = day
        ends = datetime.combine(day.day + timedelta(days=1), time(0), tzinfo=self.zone)
        # Event timestamps are UTC: comparing datetimes that share a tzinfo is the fast path.
        self.ends = ends.astimezone(UTC)

    def index(self, seq: int, timestamp: datetime, closing: Callable[[], str]) -> None:
        current = self.current
        if current is not None and self.ends is not None and timestamp < self.ends:
            current.last_seq = seq
            current.events += 1
            return
        day = timestamp.astimezone(self.zone).date()
        if current is not None:
            if day <= current.day:
                current.last_seq = seq
                current.events += 1
                return
            current.closing = closing()
            self.finished.append(current)
        self._open(AuditDay(day, seq, seq, 1))

    def take_changes(self, closing: Callable[[], str]) -> list[AuditDay]:
        days = self.finished
        self.finished = []
        if self.current is not None:
            self.current.closing = closing()
            days.append(self.current)
        return days


Handler = Callable[["FoldState", int, Any], None]


def no_lines(symbol: str, start_seq: int) -> Sequence[Line]:
    return ()


class FoldState:
    """The state of every view after the events applied so far."""

    def __init__(
        self,
        zone: ZoneInfo,
        *,
        local_lines: LinesOf = no_lines,
        broker_lines: LinesOf = no_lines,
        audit: bool = True,
    ) -> None:
        self.zone = zone
        self.orders: dict[UUID, OrderRecord] = {}
        self.local = Book("local", local_lines)
        self.broker = Book("broker", broker_lines)
        self.account: BrokerAccountState | None = None
        self.audit: AuditIndexer | None = AuditIndexer(zone) if audit else None
        self.position = 0
        # Ids of the orders open after the events applied so far, as of the last
        # `_settle_open_orders`. A day's close keeps them, so an audit finds the orders
        # open at a close without searching the orders view.
        self.open_order_ids: set[UUID] = set()
        self._changed_orders: list[OrderRecord] = []
        # Orders an event touched since open_order_ids was last settled. Kept apart from
        # _changed_orders (once per flush): a close settles only what changed since the
        # previous close, not again every order of the flush so far.
        self._unsettled: list[OrderRecord] = []
        self._account_dirty = False
        self._dispatch: dict[type, Handler] = {}

    # -- applying events -------------------------------------------------------------

    def apply(self, seq: int, event: Any) -> None:
        cls = type(event)
        if cls is Stamp:
            cls = event.event_class
        handler = self._dispatch.get(cls)
        if handler is None:
            handler = self._dispatch[cls] = HANDLERS.get(cls.__qualname__, _ignore)
        audit = self.audit
        if audit is not None:
            # Inlined fast path of `audit.index`: most events fall in the open day.
            day = audit.current
            if day is not None and event.timestamp < audit.ends:
                day.last_seq = seq
                day.events += 1
            else:
                audit.index(seq, event.timestamp, self.closing_document)
        handler(self, seq, event)
        self.position = seq

    def order_ids_to_load(self, events: Sequence[tuple[int, Any]]) -> set[UUID]:
        """Orders these events change that are not in memory (so must come from the view).

        An order requested earlier in the same events is not in the view yet: asking for it
        would look up most of a page's orders, one index probe each, to find nothing.
        """
        wanted: set[UUID] = set()
        # By the UUID's integer, which hashes in C; a UUID hashes in Python.
        requested: set[int] = set()
        orders = self.orders
        for _, event in events:
            cls = type(event)
            if cls is Stamp:
                cls = event.event_class
            if cls is Order.Requested:
                requested.add(event.originator_id.int)
            elif (
                cls in _LATER_ORDER_EVENTS
                and event.originator_id.int not in requested
                and event.originator_id not in orders
            ):
                wanted.add(event.originator_id)
        return wanted

    def _changed(self, record: OrderRecord) -> None:
        self._unsettled.append(record)
        if not record.changed:
            record.changed = True
            self._changed_orders.append(record)

    def _order(self, seq: int, event: Any) -> OrderRecord | None:
        record = self.orders.get(event.originator_id)
        if record is None:
            log.warning("event for unknown order %s ignored", event.originator_id)
            return None
        record.updated_seq = seq
        record.updated_at = event.timestamp
        self._changed(record)
        return record

    def _broker_fill_counts(self, filled_at: datetime) -> bool:
        """A fill at a real broker counts unless the latest snapshot already includes it."""
        return self.account is None or filled_at > self.account.broker_time

    def _broker_action_counts(self, event: Any) -> bool:
        if self.account is None:
            return True
        if event.effective_date is not None:
            return event.effective_date > self.account.broker_time.astimezone(self.zone).date()
        return event.timestamp > self.account.broker_time

    # -- reading -----------------------------------------------------------------------

    def orders_for_netting(self) -> list[OpenOrder]:
        return [record.for_netting() for record in self.orders.values()]

    def _settle_open_orders(self) -> set[UUID]:
        """Bring `open_order_ids` up to date with the orders touched since it was last
        settled (every status change passes through `_changed`)."""
        ids = self.open_order_ids
        for record in self._unsettled:
            if record.status in OPEN_STATUSES:
                ids.add(record.order_id)
            else:
                ids.discard(record.order_id)
        self._unsettled = []
        return ids

    def closing_document(self) -> str:
        """Both books, the account and the ids of the open orders as canonical JSON: a
        day's close in the audit index."""
        account = self.account
        open_ids = self._settle_open_orders()
        document: dict[str, Any] = {
            "local": _positions_json(self.local.positions),
            "broker": _positions_json(self.broker.positions),
            "broker_start_seq": self.broker.start_seq,
            "account": None
            if account is None
            else {
                "snapshot_id": str(account.snapshot_id),
                "snapshot_seq": account.snapshot_seq,
                "broker": account.broker,
                "account_id": account.account_id,
                "paper": account.paper,
                "cash": canonical(account.cash),
                "equity": canonical(account.equity),
                "buying_power": canonical(account.buying_power),
                "broker_time": account.broker_time.isoformat(),
                "synced_at": account.synced_at.isoformat(),
            },
        }
        document["open_orders"] = sorted(order_id.hex for order_id in open_ids)
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def load_opening(self, document: str) -> None:
        """Start from a day's opening (the previous day's closing document)."""
        data = json.loads(document)
        self.local.positions = _positions_from_json(data["local"])
        self.broker.positions = _positions_from_json(data["broker"])
        self.broker.start_seq = data["broker_start_seq"]
        account = data["account"]
        if account is not None:
            self.account = BrokerAccountState(
                snapshot_id=UUID(account["snapshot_id"]),
                snapshot_seq=account["snapshot_seq"],
                broker=account["broker"],
                account_id=account["account_id"],
                paper=account["paper"],
                cash=Decimal(account["cash"]),
                equity=Decimal(account["equity"]),
                buying_power=Decimal(account["buying_power"]),
                broker_time=datetime.fromisoformat(account["broker_time"]),
                synced_at=datetime.fromisoformat(account["synced_at"]),
                open_orders=[],
            )
        self.open_order_ids = {UUID(hex=i) for i in data["open_orders"]}

    # -- handing changes to whoever stores them ------------------------------------------

    def take_changes(self) -> Changes:
        self._settle_open_orders()
        orders = self._changed_orders
        for record in orders:
            record.changed = False
        self._changed_orders = []
        account = self.account if self._account_dirty else None
        self._account_dirty = False
        days = self.audit.take_changes(self.closing_document) if self.audit is not None else []
        return Changes(
            position=self.position,
            orders=orders,
            local=self.local.take_changes(),
            broker=self.broker.take_changes(),
            account=account,
            days=days,
        )

    def forget_orders_except(self, keep: Sequence[OrderRecord]) -> None:
        """Bound memory over a long history: orders come back from the view when needed."""
        self.orders = {record.order_id: record for record in keep}


def _positions_json(positions: dict[str, Position]) -> dict[str, list[str]]:
    """symbol -> [qty, cost basis, realised P&L]."""
    return {
        symbol: [canonical(p.qty), canonical(p.cost), canonical(p.realised_pnl)]
        for symbol, p in sorted(positions.items())
    }


def _positions_from_json(data: dict[str, list[str]]) -> dict[str, Position]:
    return {s: Position(Decimal(q), Decimal(c), Decimal(r)) for s, (q, c, r) in data.items()}


# -- one handler per event type ------------------------------------------------------------


def _ignore(state: FoldState, seq: int, event: Any) -> None:
    """Decisions and reconciliations change no view but the audit index."""


def _requested(state: FoldState, seq: int, e: Any) -> None:
    record = OrderRecord(
        order_id=e.originator_id,
        client_order_id=e.client_order_id,
        purpose=e.purpose,
        decision_id=e.decision_id,
        reconciliation_id=e.reconciliation_id,
        symbol=e.symbol,
        side=e.side,
        qty=e.qty,
        notional=e.notional,
        order_type=e.order_type,
        time_in_force=e.time_in_force,
        limit_price=e.limit_price,
        status="requested",
        broker=None,
        broker_order_id=None,
        filled_qty=ZERO,
        filled_value=ZERO,
        error=None,
        requested_seq=seq,
        requested_at=e.timestamp,
        updated_seq=seq,
        updated_at=e.timestamp,
    )
    state.orders[record.order_id] = record
    state._changed(record)


def _submitted(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        record.broker_order_id = e.broker_order_id
        record.status = "submitted"


def _send_started(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        record.status = "outcome_unknown"


def _submission_failed(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.broker = e.broker
        # Events stored before `outcome_unknown` existed lack it: they were plain failures.
        unknown = getattr(e, "outcome_unknown", False)
        record.status = "outcome_unknown" if unknown else "submission_failed"
        record.error = f"{e.code}: {e.message}"


def _status(status: str) -> Handler:
    def handle(state: FoldState, seq: int, e: Any) -> None:
        record = state._order(seq, e)
        if record is not None:
            record.status = status

    return handle


def _rejected(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is not None:
        record.status = "rejected"
        record.error = e.reason


def _fill(complete: bool) -> Handler:
    def handle(state: FoldState, seq: int, e: Any) -> None:
        record = state._order(seq, e)
        if record is None:
            return
        record.filled_qty = _add(record.filled_qty, e.qty)
        record.filled_value = _add(record.filled_value, _mul(e.qty, e.price))
        record.status = status_after_fill(record.status, complete)
        qty = signed(record.side, e.qty)
        ref = f"{record.key}:{e.execution_id}"
        if record.purpose == "decision":
            state.local.trade(seq, record.symbol, qty, e.price, ref)
        if record.broker not in NOT_AT_A_BROKER and state._broker_fill_counts(e.filled_at):
            state.broker.trade(seq, record.symbol, qty, e.price, ref)

    return handle


def _fill_reversed(state: FoldState, seq: int, e: Any) -> None:
    record = state._order(seq, e)
    if record is None:
        return
    record.filled_qty = _sub(record.filled_qty, e.qty)
    record.filled_value = _sub(record.filled_value, _mul(e.qty, e.price))
    record.status = status_after_reversal(record.status, record.qty, record.filled_qty)
    ref = f"{record.key}:{e.execution_id}"
    if record.purpose == "decision":
        state.local.reverse(seq, record.symbol, ref)
    if record.broker not in NOT_AT_A_BROKER:
        state.broker.reverse(seq, record.symbol, ref)


def _synced(state: FoldState, seq: int, e: Any) -> None:
    state.account = BrokerAccountState(
        snapshot_id=e.originator_id,
        snapshot_seq=seq,
        broker=e.broker,
        account_id=e.account_id,
        paper=e.paper,
        cash=e.cash,
        equity=e.equity,
        buying_power=e.buying_power,
        broker_time=e.broker_time,
        synced_at=e.timestamp,
        open_orders=[_plain(order) for order in e.open_orders],
    )
    state._account_dirty = True
    state.broker.restart(seq, sorted(_snapshot_position(p) for p in e.positions))


def _snapshot_position(position: dict[str, Any]) -> tuple[str, Decimal, Decimal]:
    qty = to_decimal(position["qty"])
    # A broker that reports shorts as a positive qty with side "short" still means minus.
    if str(position.get("side", "")).lower() == "short" and qty > 0:
        qty = -qty
    avg = position.get("avg_entry_price", position.get("avg_price"))
    return str(position["symbol"]).upper(), qty, ZERO if avg is None else to_decimal(avg)


def _plain(value: Any) -> Any:
    """Snapshot content as JSON-ready values: decimals as canonical text."""
    if isinstance(value, Decimal):
        return canonical(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _corporate_action(state: FoldState, seq: int, e: Any) -> None:
    ratio = to_decimal(e.ratio)
    if ratio <= 0:
        log.warning("corporate action %s with ratio %s changes no book", e.activity_id, ratio)
        return
    symbol = e.symbol.upper()
    target = (e.new_symbol or e.symbol).upper()
    books = [state.local]
    if state._broker_action_counts(e):
        books.append(state.broker)
    for book in books:
        if target == symbol:
            if ratio != ONE:
                book.split(seq, symbol, ratio)
        else:
            book.move(seq, symbol, target, ratio)


def _adjustment(state: FoldState, seq: int, e: Any) -> None:
    book = {"local": state.local, "broker": state.broker}.get(e.book)
    if book is None:
        log.warning("adjustment %s names no known book (%r)", e.originator_id, e.book)
        return
    book.trade(seq, e.symbol.upper(), e.qty, e.price, f"adjustment:{e.originator_id.hex}")


# Every event of an order after its request: it changes an order the fold must already know.
_LATER_ORDER_EVENTS = frozenset(
    cls
    for cls in vars(Order).values()
    if isinstance(cls, type) and issubclass(cls, Order.Event) and cls is not Order.Requested
)


# Events no view reads a field of: they only place themselves in the audit index. (Order
# status events would do too, but callers take a Stamp to mean "changes no view row".)
STAMPED_EVENTS: tuple[type, ...] = tuple(
    cls
    for aggregate in (Decision, Reconciliation)
    for cls in vars(aggregate).values()
    if isinstance(cls, type) and issubclass(cls, aggregate.Event)
)


# Order events whose handler reads only the order's id and the event's time (`_status`):
# a fold may take them as a Stamp too. Kept apart from STAMPED_EVENTS, which callers
# read as "changes no view row"; these change the order's status.
STATUS_ONLY_EVENTS: tuple[type, ...] = (
    Order.Accepted,
    Order.Completed,
    Order.Canceled,
    Order.Expired,
)


HANDLERS: dict[str, Handler] = {
    "Order.Requested": _requested,
    "Order.Submitted": _submitted,
    "Order.SendStarted": _send_started,
    "Order.SubmissionFailed": _submission_failed,
    "Order.Accepted": _status("accepted"),
    "Order.Rejected": _rejected,
    "Order.Filled": _fill(complete=True),
    "Order.PartiallyFilled": _fill(complete=False),
    "Order.Completed": _status("filled"),
    "Order.FillReversed": _fill_reversed,
    "Order.Canceled": _status("canceled"),
    "Order.Expired": _status("expired"),
    "BrokerSnapshot.Synced": _synced,
    "CorporateAction.Recorded": _corporate_action,
    "Adjustment.Recorded": _adjustment,
}


# -- the plain in-memory fold: tests, --as-of, and the reference the views must equal -------


class MemoryLines:
    """Lines of one book kept in memory, for folds that never touch a database."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, list[Line]] = {}

    def __call__(self, symbol: str, start_seq: int) -> list[Line]:
        return [line for line in self.by_symbol.get(symbol, ()) if line.seq >= start_seq]

    def keep(self, lines: list[tuple[str, Line]]) -> None:
        for symbol, line in lines:
            self.by_symbol.setdefault(symbol, []).append(line)


class MemoryFold:
    """A `FoldState` whose lines live in memory: fold any events without a database."""

    def __init__(self, zone: ZoneInfo, *, audit: bool = True) -> None:
        self.local_lines = MemoryLines()
        self.broker_lines = MemoryLines()
        self.state = FoldState(
            zone, local_lines=self.local_lines, broker_lines=self.broker_lines, audit=audit
        )
        self.days: dict[date, AuditDay] = {}

    def apply(self, seq: int, event: Any) -> None:
        self.state.apply(seq, event)

    def settle(self) -> FoldState:
        """Move pending lines into memory (as a page flush would) and return the state."""
        changes = self.state.take_changes()
        self.local_lines.keep(changes.local.lines)
        self.broker_lines.keep(changes.broker.lines)
        for day in changes.days:
            self.days[day.day] = day
        return self.state


def fold_events(events: Sequence[tuple[int, Any]], zone: ZoneInfo) -> MemoryFold:
    """Fold (notification id, domain event) pairs in order; the plain fold of the views."""
    fold = MemoryFold(zone)
    for seq, event in events:
        fold.apply(seq, event)
    fold.settle()
    return fold
