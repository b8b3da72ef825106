"""The audit index: each trading day's run of notification ids, and both books at its close.

A day's close is a document (canonical JSON) of both books, the broker account and the
ids of the orders open at it: a day's replay starts from the previous day's close, so it
reads only that day's events (`projections.engine.day_replay`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from projections.model.fold import FoldState
from projections.model.numbers import canonical
from projections.model.positions import Position
from projections.model.records import BrokerAccountState


@dataclass(slots=True)
class AuditDay:
    """One trading day: its events are notifications first_seq..last_seq (a contiguous run)."""

    day: date
    first_seq: int
    last_seq: int
    events: int
    closing: str = ""  # canonical JSON of both books after the day's last event


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
        """Place event `seq` in its day; `closing()` is the close of a day this event ends,
        read before the event is applied."""
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


def closing_document(state: FoldState, open_order_ids: Set[UUID]) -> str:
    """Both books, the account and the ids of the open orders as canonical JSON: a day's
    close in the audit index."""
    account = state.account
    document: dict[str, Any] = {
        "local": _positions_json(state.local.positions),
        "broker": _positions_json(state.broker.positions),
        "broker_start_seq": state.broker.start_seq,
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
    document["open_orders"] = sorted(order_id.hex for order_id in open_order_ids)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def load_opening(state: FoldState, document: str) -> set[UUID]:
    """Start `state` from a day's opening (the previous day's closing document); returns
    the ids of the orders open at it."""
    data = json.loads(document)
    state.local.positions = _positions_from_json(data["local"])
    state.broker.positions = _positions_from_json(data["broker"])
    state.broker.start_seq = data["broker_start_seq"]
    account = data["account"]
    if account is not None:
        state.account = BrokerAccountState(
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
    return {UUID(hex=i) for i in data["open_orders"]}


def _positions_json(positions: dict[str, Position]) -> dict[str, list[str]]:
    """symbol -> [qty, cost basis, realised P&L]."""
    return {
        symbol: [canonical(p.qty), canonical(p.cost), canonical(p.realised_pnl)]
        for symbol, p in sorted(positions.items())
    }


def _positions_from_json(data: dict[str, list[str]]) -> dict[str, Position]:
    return {s: Position(Decimal(q), Decimal(c), Decimal(r)) for s, (q, c, r) in data.items()}
