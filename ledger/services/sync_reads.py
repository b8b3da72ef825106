"""A sync's reads: everything it asks the broker, all before anything is written.

`read_broker` makes every read through the broker port and fails as a whole
(`BrokerReadError`) if any read fails: nothing is mapped from a partial picture
(docs/design.md, "A failed read is never flat").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.brokers.port import (
    BrokerAccount,
    BrokerActivity,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerReader,
)

# The statuses a broker gives an execution or activity it took back, or corrected.
BUSTED = frozenset({"canceled", "cancelled", "busted"})
CORRECTED = frozenset({"correct", "corrected"})


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
    # Plain executions among `fills` the store already holds (the cursor's `recorded`):
    # their orders were not looked up, so the mapper leaves them alone.
    recorded: frozenset[str] = frozenset()


def read_broker(
    reader: BrokerReader,
    *,
    watched: Iterable[WatchedOrder],
    fills_after: datetime,
    activities_after: datetime,
    with_account: bool = True,
    recorded: Collection[str] = frozenset(),
) -> BrokerReads:
    """All reads, before anything is written. Raises BrokerReadError on any failure.

    `recorded`: execution ids the store holds already. Such a fill, read again in the
    cursor's overlap, needs no order lookup (a busted or corrected one still does).
    """
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
    known: set[str] = set()
    for fill in fills:
        if fill.broker_order_id in orders:
            continue
        if is_recorded(fill, recorded):
            # Checked fill by fill: a bust read beside the execution it takes back has the
            # same id, and must still reach its order.
            known.add(fill.activity_id)
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
        recorded=frozenset(known),
    )


def is_recorded(fill: BrokerFill, recorded: Collection[str]) -> bool:
    """A plain execution the store holds. A bust or correction carries the id of the
    execution it changes, so it is never "recorded": it must reach its order."""
    return (
        fill.activity_id in recorded
        and fill.status not in BUSTED
        and fill.status not in CORRECTED
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

