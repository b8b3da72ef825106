"""The account the sandbox keeps in memory, behind one re-entrant lock, and its clock.

`SandboxState` is the bottom of the sandbox's layers: activities, the account, the market,
orders and the API each add their part on top of it (see ``sandbox/server.py``).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox import shapes
from sandbox.model import Fill, Order, Position, Symbol, default_universe
from sandbox.wire import ET, ZERO, SandboxError, dec, parse_time

DEFAULT_KEY = "sandbox-key"
DEFAULT_SECRET = "sandbox-secret"
DEFAULT_CASH = Decimal("100000")


class SandboxState:
    """Symbols, positions, account flags, orders and activities; the market clock."""

    def __init__(self, key: str, secret: str, cash: Decimal | str | int) -> None:
        self.key = key
        self.secret = secret
        self._lock = threading.RLock()
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sandbox/account/{key}"))
        self.account_number = "PA" + self.account_id.replace("-", "")[:10].upper()
        self._created_at = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        self._reset_state(dec(cash, "cash"))

    def reset(self, cash: Decimal | str | int | None = None) -> None:
        """Forget orders, positions, activities, faults and the request log."""
        with self._lock:
            self._reset_state(DEFAULT_CASH if cash is None else dec(cash, "cash"))

    def _reset_state(self, cash: Decimal) -> None:
        with self._lock:
            self._cash = cash
            self._last_equity = cash
            self._symbols: dict[str, Symbol] = default_universe()
            self._positions: dict[str, Position] = {}
            # Account flags as /v2/account reports them; None leaves a field out, as Alpaca
            # has done with pattern_day_trader and daytrade_count since 2026-07-06 (alpaca-py
            # 0.44's TradeAccount: "removed from Alpaca responses ... FINRA intraday-margin
            # migration").
            self._flags: dict[str, Any] = {
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "trading_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "transfers_blocked": False,
                "shorting_enabled": True,
                "pattern_day_trader": False,
                "daytrade_count": 0,
            }
            self._orders: dict[str, Order] = {}
            self._by_client_id: dict[str, Order] = {}
            self._activities: list[dict[str, Any]] = []
            self._frozen_now: datetime | None = None
            self._last_tick: datetime | None = None
            self._clock_open = True
            self._next_open: datetime | None = None
            self._next_close: datetime | None = None

    # ------------------------------------------------------------------------ time

    def _now(self) -> datetime:
        return self._frozen_now or datetime.now(UTC)

    def _tick(self) -> datetime:
        """A strictly increasing "now", so activity ids sort in the order things happened."""
        now = self._now()
        if self._last_tick is not None and now <= self._last_tick:
            now = self._last_tick + timedelta(milliseconds=1)
        self._last_tick = now
        return now

    def _day(self, on: date | str | None) -> date | None:
        if on is None or isinstance(on, date):
            return on
        return parse_time(on, "date").date()

    def _expiry(self, tif: str, now: datetime) -> datetime | None:
        return self._clock_values(now)[2] if tif == "day" else None

    def _clock_values(self, now: datetime) -> tuple[bool, datetime, datetime]:
        local = now.astimezone(ET)
        close_today = local.replace(hour=16, minute=0, second=0, microsecond=0)
        next_close = close_today if local < close_today else close_today + timedelta(days=1)
        next_open = (local + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
        while next_open.weekday() >= 5:
            next_open += timedelta(days=1)
        while next_close.weekday() >= 5:
            next_close += timedelta(days=1)
        return (
            self._clock_open,
            self._next_open or next_open,
            self._next_close or next_close,
        )

    def _clock_json(self) -> dict[str, Any]:
        now = self._now()
        return shapes.clock_json(now, *self._clock_values(now))

    # --------------------------------------------------------------------- lookups

    def _require_symbol(self, symbol: str) -> Symbol:
        cfg = self._find_symbol(symbol)
        if cfg is None:
            raise SandboxError(404, 40410000, "asset not found")
        return cfg

    def _require_order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise SandboxError(404, 40410000, "order not found")
        return order

    def _find_symbol(self, symbol_or_id: str) -> Symbol | None:
        """By symbol, by a crypto pair's old symbology (BTCUSD for BTC/USD, which Alpaca still
        accepts: "For crypto, the symbol has to follow old symbology, e.g. BTCUSD", the spec's
        GET /v2/assets/{symbol_or_asset_id}), or by asset id."""
        ref = symbol_or_id.upper()
        cfg = self._symbols.get(ref)
        if cfg is not None:
            return cfg
        for candidate in self._symbols.values():
            if candidate.asset_id == symbol_or_id:
                return candidate
            if candidate.is_crypto and candidate.position_symbol == ref:
                return candidate
        return None

    def _held(self, symbol: str) -> Decimal:
        return self._positions[symbol].qty if symbol in self._positions else ZERO

    def _intent(self, symbol: str, side: str) -> str:
        held = self._held(symbol)
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _store_order(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.client_order_id] = order
        # Alpaca's "accepted": received while the market is closed, not yet routed
        self._order_event("accepted" if order.status == "accepted" else "new", order)

    def _order_event(self, event: str, order: Order, fill: Fill | None = None) -> None:
        """An order changed (called under the lock): the stream layer (``sandbox/stream.py``)
        sends it to its listeners as a ``trade_updates`` message."""
