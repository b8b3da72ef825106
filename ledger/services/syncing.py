"""Broker sync: read everything first, then map what the broker said onto events.

`read_broker` makes every read through the broker port and fails as a whole
(`BrokerReadError`) if any read fails: nothing is mapped from a partial picture
(DESIGN.md invariant 9). `SyncMapper` is pure apart from loading aggregates: it
turns the reads into order events (fills, state changes), external orders and
corporate actions. Idempotency comes from the aggregates themselves: an order
ignores an execution id it has seen, and external orders and corporate actions
have ids derived from the broker's own ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from ledger.brokers.answers import apply_answer
from ledger.brokers.port import (
    BrokerAccount,
    BrokerActivity,
    BrokerAnswer,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerReader,
    Execution,
)
from ledger.domain import CorporateAction, Order
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.order import external_order_id, order_id_from_client_order_id
from ledger.domain.values import InvalidInput, OrderIntent, validate

# Activities can become visible a little after the time they carry: each sync reads
# this far back past the newest one it saw. Seen executions are ignored, so the overlap
# costs a re-read, never a double count.
OVERLAP = timedelta(minutes=2)

# Non-trade activities are dated by day at Alpaca: re-read a few days; their ids dedupe.
ACTIVITY_OVERLAP = timedelta(days=3)

BUSTED = frozenset({"canceled", "cancelled", "busted"})
CORRECTED = frozenset({"correct", "corrected"})
CORRECTION_SUFFIX = "#corrected"

CORPORATE_ACTION_KINDS = {
    "SPLIT": "split",
    "NC": "symbol_change",
    "MA": "merger",
    "SPIN": "spinoff",
    "REORG": "reorganization",
}
# Booked by Alpaca as two legs (shares out, shares in): one leg alone is not the whole story.
TWO_LEGGED = frozenset({"SPLIT", "NC"})


# -- what a sync continues from ----------------------------------------------------------


@dataclass(frozen=True)
class SyncCursor:
    """Where the next sync continues: stored in `BrokerSynced.request`, kept in memory by
    `commands run` between polls."""

    fills_after: datetime
    activities_after: datetime
    # Ledger orders whose fate at the broker is not settled yet (open, or maybe sent).
    unresolved: tuple[UUID, ...]
    # Orders requested after this notification id were not known to the sync.
    through: int

    def as_request(self) -> dict[str, Any]:
        return {
            "next_fills_after": self.fills_after,
            "next_activities_after": self.activities_after,
            "unresolved_order_ids": list(self.unresolved),
            "through_notification_id": self.through,
        }

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> SyncCursor | None:
        try:
            return cls(
                fills_after=_as_datetime(request["next_fills_after"]),
                activities_after=_as_datetime(request["next_activities_after"]),
                unresolved=tuple(_as_uuid(v) for v in request["unresolved_order_ids"]),
                through=int(request["through_notification_id"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def needs_watching(order: Order, broker: str) -> bool:
    """An order whose state at the broker the next sync must ask about."""
    if order.broker not in (None, broker):
        return False
    if order.status == "submission_failed":
        # A retryable failure may hide an order the broker did create (a lost reply).
        return bool(order.failures) and bool(order.failures[-1].get("retryable"))
    return order.is_open


# -- reads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchedOrder:
    order_id: UUID
    client_order_id: str
    broker_order_id: str | None


@dataclass(frozen=True)
class BrokerReads:
    """Everything one sync read from the broker, all of it from successful answers."""

    broker_time: datetime
    account: BrokerAccount | None
    positions: list[BrokerPosition] | None
    open_orders: list[BrokerOrder]
    fills: list[BrokerFill]
    activities: list[BrokerActivity]
    # Every broker order the reads concern (open, watched, or named by a fill), by id.
    orders: dict[str, BrokerOrder]
    fills_after: datetime
    activities_after: datetime
    lookups: int = 0
    # What the reads could not square (an execution of an order the broker cannot show).
    warnings: tuple[str, ...] = ()


def read_broker(
    reader: BrokerReader,
    *,
    watched: Iterable[WatchedOrder],
    fills_after: datetime,
    activities_after: datetime,
    with_account: bool = True,
) -> BrokerReads:
    """All reads, before anything is written. Raises BrokerReadError on any failure."""
    account = reader.get_account() if with_account else None
    broker_time = reader.get_clock()
    positions = reader.list_positions() if with_account else None
    open_orders = reader.list_open_orders()
    fills = reader.list_fills(fills_after)
    activities = reader.list_position_activities(activities_after)

    orders = {o.broker_order_id: o for o in open_orders}
    open_by_client = {o.client_order_id: o for o in open_orders}
    lookups = 0
    for order in watched:
        if order.client_order_id in open_by_client:
            continue
        lookups += 1
        if order.broker_order_id is not None:
            found = reader.get_order(order.broker_order_id)
        else:
            found = reader.get_order_by_client_id(order.client_order_id)
        if found is not None:
            orders[found.broker_order_id] = found
    unattributed: list[str] = []
    for fill in fills:
        if fill.broker_order_id in orders:
            continue
        lookups += 1
        found = reader.get_order(fill.broker_order_id)
        if found is None:
            # An order the broker no longer shows (placed long ago, purged): the execution
            # still moved the account, so it is recorded under an order of unknown terms.
            found = unknown_order(fill)
            unattributed.append(
                f"the broker reports execution {fill.activity_id} ({fill.side} {fill.qty} "
                f"{fill.symbol}) of order {fill.broker_order_id} but has no such order: "
                "recorded as an external fill, its order unknown"
            )
        orders[found.broker_order_id] = found
    return BrokerReads(
        broker_time=broker_time,
        account=account,
        positions=positions,
        open_orders=open_orders,
        fills=fills,
        activities=activities,
        orders=orders,
        fills_after=fills_after,
        activities_after=activities_after,
        lookups=lookups,
        warnings=tuple(unattributed),
    )


def unknown_order(fill: BrokerFill) -> BrokerOrder:
    """The order of an execution whose order the broker cannot show: known only by its id
    and what the execution says."""
    return BrokerOrder(
        broker_order_id=fill.broker_order_id,
        client_order_id="",
        symbol=fill.symbol,
        side=fill.side,
        order_type="unknown",
        time_in_force="unknown",
        status=fill.order_status or "filled",
        qty=None,
        notional=None,
        limit_price=None,
        extended_hours=False,
        filled_qty=fill.cum_qty,
        filled_avg_price=None,
        created_at=fill.transaction_time,
    )


# -- mapping -----------------------------------------------------------------------------


class AggregateSource(Protocol):
    """What the mapper may ask of the store: read-only loads."""

    def load_order(self, order_id: UUID) -> Order | None: ...

    def has_aggregate(self, aggregate_id: UUID) -> bool: ...


@dataclass(frozen=True)
class ExternalTerms:
    """The terms of an order found at the broker, kept as the broker states them.

    An `OrderIntent` would refuse some of them (a stop order, an option symbol), but a
    ledger must record what happened, not what it would have allowed.
    """

    symbol: str
    side: str
    qty: Decimal | None
    notional: Decimal | None
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    extended_hours: bool

    def as_event_fields(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "notional": self.notional,
            "order_type": self.order_type,
            "time_in_force": self.time_in_force,
            "limit_price": self.limit_price,
            "extended_hours": self.extended_hours,
        }


def external_terms(order: BrokerOrder) -> OrderIntent | ExternalTerms:
    try:
        intent: OrderIntent = validate(
            OrderIntent,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            notional=order.notional,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            extended_hours=order.extended_hours,
        )
        return intent
    except InvalidInput:
        return ExternalTerms(
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            notional=order.notional,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            extended_hours=order.extended_hours,
        )


@dataclass(frozen=True)
class CorporateActionFacts:
    key: str  # the broker activity id the action is recorded under
    kind: str
    symbol: str
    new_symbol: str | None
    ratio: Decimal
    effective_date: date | None
    description: str
    legs: tuple[str, ...]


def corporate_actions(
    activities: Iterable[BrokerActivity],
) -> tuple[list[CorporateActionFacts], list[BrokerActivity]]:
    """Pair the legs Alpaca books (shares out, shares in) into one action each.

    Returns the complete actions and the activities of incomplete ones, which wait for
    their other leg (the next sync reads them again).
    """
    groups: dict[str, list[BrokerActivity]] = defaultdict(list)
    for activity in activities:
        if activity.activity_type not in CORPORATE_ACTION_KINDS:
            continue
        if activity.status in BUSTED:
            continue
        groups[activity.group_id or activity.activity_id].append(activity)
    complete: list[CorporateActionFacts] = []
    waiting: list[BrokerActivity] = []
    for legs in groups.values():
        legs.sort(key=lambda a: a.activity_id)
        facts = _action_from_legs(legs)
        if facts is None:
            waiting.extend(legs)
        else:
            complete.append(facts)
    complete.sort(key=lambda f: f.key)
    return complete, waiting


def _action_from_legs(legs: list[BrokerActivity]) -> CorporateActionFacts | None:
    first = legs[0]
    kind = first.activity_type
    out = [a for a in legs if a.qty is not None and a.qty < 0 and a.symbol]
    into = [a for a in legs if a.qty is not None and a.qty > 0 and a.symbol]
    if kind in TWO_LEGGED and (len(out) != 1 or len(into) != 1):
        return None
    if out and into:
        old, new = out[0], into[0]
        assert old.qty is not None and new.qty is not None and old.symbol and new.symbol
        symbol = old.symbol
        new_symbol = new.symbol if new.symbol != old.symbol else None
        ratio = new.qty / -old.qty
    elif out:
        # Shares left for cash or nothing (a cash merger, a delisting).
        symbol, new_symbol, ratio = str(out[0].symbol), None, Decimal(0)
    elif into:
        # Shares arrived with no shares leaving (a spin-off): the qty is in the description.
        symbol, new_symbol, ratio = str(into[0].symbol), None, Decimal(1)
    else:
        return None
    description = first.description or f"{kind} {symbol}"
    return CorporateActionFacts(
        key=first.activity_id,
        kind=CORPORATE_ACTION_KINDS[kind],
        symbol=symbol,
        new_symbol=new_symbol,
        ratio=ratio,
        effective_date=first.on,
        description=description,
        legs=tuple(a.activity_id for a in legs),
    )


def _activity_time(activity: BrokerActivity) -> datetime:
    if activity.created_at is not None:
        return activity.created_at
    if activity.on is not None:
        return datetime(activity.on.year, activity.on.month, activity.on.day, tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def executions_of(fills: Iterable[BrokerFill]) -> tuple[list[Execution], list[BrokerFill]]:
    """Plain executions, and the fills that take an execution back or correct it."""
    plain: list[Execution] = []
    changes: list[BrokerFill] = []
    for fill in fills:
        if fill.status in BUSTED or fill.status in CORRECTED:
            changes.append(fill)
            continue
        plain.append(
            Execution(
                execution_id=fill.activity_id,
                qty=fill.qty,
                price=fill.price,
                filled_at=fill.transaction_time,
                cum_qty=fill.cum_qty,
            )
        )
    return plain, changes


@dataclass
class SyncOutcome:
    orders: list[Order] = field(default_factory=list)
    actions: list[CorporateAction] = field(default_factory=list)
    new_fills: int = 0
    new_orders: int = 0
    updated_orders: int = 0
    reversals: int = 0
    warnings: list[str] = field(default_factory=list)
    unresolved: list[UUID] = field(default_factory=list)
    fills_after: datetime | None = None
    activities_after: datetime | None = None
    # The ledger's order behind each broker order the reads concern, by broker order id.
    ledger_orders: dict[str, Order] = field(default_factory=dict)

    @property
    def aggregates(self) -> list[Order | CorporateAction]:
        return [*self.orders, *self.actions]


class SyncMapper:
    """Maps one set of reads onto aggregates. Use once per attempt: it caches loads."""

    def __init__(self, source: AggregateSource, *, broker: str, watched: Iterable[Order]) -> None:
        self.source = source
        self.broker = broker
        self._orders: dict[UUID, Order] = {o.id: o for o in watched}
        self._watched = list(self._orders)

    def map(self, reads: BrokerReads) -> SyncOutcome:
        outcome = SyncOutcome(warnings=list(reads.warnings))
        fills_by_order: dict[str, list[BrokerFill]] = defaultdict(list)
        for fill in reads.fills:
            fills_by_order[fill.broker_order_id].append(fill)
        failed_fill_times: list[datetime] = []
        touched: dict[UUID, Order] = {}
        for broker_order in sorted(
            reads.orders.values(), key=lambda o: (o.created_at, o.broker_order_id)
        ):
            fills = fills_by_order.get(broker_order.broker_order_id, [])
            order = self._order_for(broker_order, outcome)
            outcome.ledger_orders[broker_order.broker_order_id] = order
            try:
                self._apply(order, broker_order, fills, outcome)
            except InvalidInput as error:
                # The broker's account contradicts the ledger's order: record nothing for
                # it, say so, and read its fills again next time.
                outcome.warnings.append(
                    f"order {order.client_order_id} ({broker_order.symbol}) was not updated: "
                    f"{error}"
                )
                failed_fill_times.extend(f.transaction_time for f in fills)
                touched.pop(order.id, None)
                self._orders.pop(order.id, None)
                continue
            touched[order.id] = order
        outcome.orders = [o for o in touched.values() if o.pending_events]
        outcome.updated_orders = sum(
            1 for o in outcome.orders if o.version - len(o.pending_events) > 0
        )

        actions, waiting = corporate_actions(reads.activities)
        for facts in actions:
            action_id = corporate_action_id(self.broker, facts.key)
            if self.source.has_aggregate(action_id):
                continue
            outcome.actions.append(
                CorporateAction(
                    id=action_id,
                    broker=self.broker,
                    activity_id=facts.key,
                    kind=facts.kind,
                    symbol=facts.symbol,
                    new_symbol=facts.new_symbol,
                    ratio=facts.ratio,
                    effective_date=facts.effective_date,
                    description=facts.description,
                )
            )
        if waiting:
            outcome.warnings.append(
                "corporate action waiting for its other leg at the broker: "
                + ", ".join(sorted({a.activity_id for a in waiting}))
            )

        outcome.unresolved = sorted(
            (o.id for o in {**self._orders, **touched}.values() if needs_watching(o, self.broker)),
            key=str,
        )
        outcome.fills_after = next_cursor(
            reads.fills_after, [f.transaction_time for f in reads.fills], failed_fill_times
        )
        outcome.activities_after = next_cursor(
            reads.activities_after,
            [_activity_time(a) for a in reads.activities],
            [_activity_time(a) for a in waiting],
            ACTIVITY_OVERLAP,
        )
        return outcome

    def _order_for(self, broker_order: BrokerOrder, outcome: SyncOutcome) -> Order:
        own_id = order_id_from_client_order_id(broker_order.client_order_id)
        if own_id is not None:
            own = self._load(own_id)
            if own is not None:
                return own
        external_id = external_order_id(self.broker, broker_order.broker_order_id)
        existing = self._load(external_id)
        if existing is not None:
            return existing
        adopted = Order.adopt_external(
            broker=self.broker,
            broker_order_id=broker_order.broker_order_id,
            client_order_id=broker_order.client_order_id,
            intent=external_terms(broker_order),
        )
        self._orders[adopted.id] = adopted
        outcome.new_orders += 1
        return adopted

    def _load(self, order_id: UUID) -> Order | None:
        if order_id not in self._orders:
            found = self.source.load_order(order_id)
            if found is None:
                return None
            self._orders[order_id] = found
        return self._orders[order_id]

    def _apply(
        self,
        order: Order,
        broker_order: BrokerOrder,
        fills: list[BrokerFill],
        outcome: SyncOutcome,
    ) -> None:
        plain, changes = executions_of(fills)
        before = len(order.executions)
        rejected = broker_order.status == "rejected"
        answer = BrokerAnswer(
            broker=self.broker,
            broker_order_id=broker_order.broker_order_id,
            status=broker_order.status,
            executions=tuple(plain),
            rejection_reason="rejected by the broker" if rejected else None,
            filled_qty=broker_order.filled_qty,
            filled_avg_price=broker_order.filled_avg_price,
        )
        apply_answer(order, answer)
        for change in sorted(changes, key=lambda f: (f.transaction_time, f.activity_id)):
            outcome.reversals += self._apply_change(order, change)
        outcome.new_fills += len(order.executions) - before

    @staticmethod
    def _apply_change(order: Order, change: BrokerFill) -> int:
        """A busted execution is taken back; a corrected one is taken back and booked anew."""
        reversed_count = 0
        execution_id = change.activity_id
        if execution_id in order.executions and execution_id not in order.reversed_executions:
            reason = "busted" if change.status in BUSTED else "corrected"
            order.reverse_fill(execution_id=execution_id, reason=f"{reason} by the broker")
            reversed_count = 1
        if change.status in CORRECTED:
            order.record_fill(
                execution_id=execution_id + CORRECTION_SUFFIX,
                qty=change.qty,
                price=change.price,
                filled_at=change.transaction_time,
            )
        return reversed_count


def next_cursor(
    after: datetime,
    seen: Iterable[datetime],
    unfinished: Iterable[datetime],
    overlap: timedelta = OVERLAP,
) -> datetime:
    """Continue past the newest activity seen (less the overlap), but stay before any that
    has to be read again, and never move backwards."""
    pending = list(unfinished)
    times = pending or list(seen)
    if not times:
        return after
    mark = min(times) if pending else max(times)
    return max(after, mark - overlap)


# -- the snapshot --------------------------------------------------------------------------


def position_record(position: BrokerPosition) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "qty": position.qty,
        "avg_entry_price": position.avg_entry_price,
        "side": position.side,
        "asset_class": position.asset_class,
        "market_value": position.market_value,
        "cost_basis": position.cost_basis,
    }


def open_order_record(order: BrokerOrder, ledger_order: Order | None) -> dict[str, Any]:
    return {
        "broker_order_id": order.broker_order_id,
        "client_order_id": order.client_order_id,
        "order_id": None if ledger_order is None else ledger_order.id,
        "purpose": None if ledger_order is None else ledger_order.purpose,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.order_type,
        "time_in_force": order.time_in_force,
        "qty": order.qty,
        "notional": order.notional,
        "limit_price": order.limit_price,
        "filled_qty": order.filled_qty,
        "status": order.status,
        "created_at": order.created_at,
    }


@dataclass(frozen=True)
class SyncReport:
    """What one sync or poll did: for people (`commands sync`) and programs (`--json`)."""

    broker: str
    paper: bool
    broker_time: datetime
    cursor: SyncCursor
    sync_id: UUID | None = None  # the BrokerSynced stream; None for a poll
    account: BrokerAccount | None = None
    positions: list[dict[str, Any]] = field(default_factory=list)
    open_orders: list[dict[str, Any]] = field(default_factory=list)
    new_fills: int = 0
    new_orders: int = 0
    updated_orders: int = 0
    reversals: int = 0
    corporate_actions: int = 0
    lookups: int = 0
    warnings: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        account = self.account
        return {
            "broker": self.broker,
            "paper": self.paper,
            "sync_id": self.sync_id,
            "broker_time": self.broker_time,
            "account": None
            if account is None
            else {
                "id": account.account_id,
                "status": account.status,
                "currency": account.currency,
                "cash": account.cash,
                "equity": account.equity,
                "buying_power": account.buying_power,
            },
            "positions": self.positions,
            "open_orders": self.open_orders,
            "new": {
                "fills": self.new_fills,
                "orders": self.new_orders,
                "order_updates": self.updated_orders,
                "reversals": self.reversals,
                "corporate_actions": self.corporate_actions,
            },
            "warnings": self.warnings,
        }
