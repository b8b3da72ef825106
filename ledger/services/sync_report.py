"""What a sync reports, and the records of the broker's positions and open orders that
its snapshot stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.brokers.port import BrokerAccount, BrokerOrder, BrokerPosition
from ledger.domain import Order
from ledger.services.sync_cursor import SyncCursor


def position_record(position: BrokerPosition) -> dict[str, Any]:
    """The position as the snapshot stores it: its fields, by name, in their order (a
    snapshot holds thousands: `vars`, not `asdict`'s deep copy)."""
    return dict(vars(position))


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
