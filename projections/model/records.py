"""What the fold keeps besides the books: one record per order, and the broker's account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.model.positions import OpenOrder, average


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
