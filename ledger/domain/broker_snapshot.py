"""What the broker said at one moment: one stream per sync, so a sync never waits on another."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate, event


class BrokerSnapshot(Aggregate):
    @event("Synced")
    def __init__(
        self,
        *,
        broker: str,
        paper: bool,
        account_id: str,
        cash: Decimal,
        equity: Decimal,
        buying_power: Decimal,
        positions: list[dict[str, Any]],
        open_orders: list[dict[str, Any]],
        broker_time: datetime,
        request: dict[str, Any],
    ) -> None:
        self.broker = broker
        self.paper = paper
        self.account_id = account_id
        self.cash = cash
        self.equity = equity
        self.buying_power = buying_power
        self.positions = positions
        self.open_orders = open_orders
        self.broker_time = broker_time
        self.request = request
