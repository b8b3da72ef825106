"""The account: cash, positions, the flags ``GET /v2/account`` reports, and what they are
worth (equity, margin, buying power)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox import shapes
from sandbox.activities import Activities
from sandbox.model import Position
from sandbox.wire import ZERO, SandboxError, as_bool, dec

# The AccountStatus enum of the trading API spec (2.0.1); only ACTIVE may place orders.
ACCOUNT_STATUSES = (
    "ONBOARDING",
    "SUBMISSION_FAILED",
    "SUBMITTED",
    "ACCOUNT_UPDATED",
    "APPROVAL_PENDING",
    "ACTIVE",
    "REJECTED",
)
# crypto_status also takes INACTIVE, "Account not enabled" for crypto (the crypto-trading
# docs' table of crypto_status values).
CRYPTO_STATUSES = (*ACCOUNT_STATUSES, "INACTIVE")
INITIAL_MARGIN = Decimal("0.5")
MAINTENANCE_MARGIN = Decimal("0.3")

# Tells "leave it as it is" from None, which means "leave the field out of the reply".
UNSET: Any = object()


class Account(Activities):
    """Cash, positions and flags, their valuation, and their JSON."""

    # -------------------------------------------------------------------- control

    def set_account_flags(
        self,
        *,
        status: str | None = None,
        crypto_status: str | None = None,
        trading_blocked: bool | None = None,
        account_blocked: bool | None = None,
        trade_suspended_by_user: bool | None = None,
        transfers_blocked: bool | None = None,
        shorting_enabled: bool | None = None,
        pattern_day_trader: bool | None = UNSET,
        daytrade_count: int | None = UNSET,
    ) -> dict[str, Any]:
        """Set the flags ``GET /v2/account`` reports; arguments left out stay as they are.

        ``status`` takes the spec's AccountStatus values (``crypto_status`` INACTIVE too). While
        ``trading_blocked`` or ``account_blocked`` is set or ``status`` is not ACTIVE, order
        POSTs are refused 403 ``account is not authorized to trade``; with
        ``trade_suspended_by_user`` they are refused 403 ``new orders are rejected by user
        request``; with ``crypto_status`` not ACTIVE crypto orders are refused. ``None`` for
        ``pattern_day_trader`` or ``daytrade_count`` leaves the field out of the reply.
        """
        with self._lock:
            for name, value, allowed in (
                ("status", status, ACCOUNT_STATUSES),
                ("crypto_status", crypto_status, CRYPTO_STATUSES),
            ):
                if value is not None:
                    if value not in allowed:
                        raise SandboxError(422, 40010001, f"{name} must be one of {allowed}")
                    self._flags[name] = value
            for name, flag in (
                ("trading_blocked", trading_blocked),
                ("account_blocked", account_blocked),
                ("trade_suspended_by_user", trade_suspended_by_user),
                ("transfers_blocked", transfers_blocked),
                ("shorting_enabled", shorting_enabled),
            ):
                if flag is not None:
                    self._flags[name] = as_bool(flag, name)
            if pattern_day_trader is not UNSET:
                self._flags["pattern_day_trader"] = (
                    None if pattern_day_trader is None
                    else as_bool(pattern_day_trader, "pattern_day_trader")
                )
            if daytrade_count is not UNSET:
                if daytrade_count is not None and (
                    isinstance(daytrade_count, bool)
                    or not isinstance(daytrade_count, int)
                    or daytrade_count < 0
                ):
                    raise SandboxError(422, 40010001, "daytrade_count must be an integer >= 0")
                self._flags["daytrade_count"] = daytrade_count
            return self._account_json()

    def set_cash(
        self,
        cash: Decimal | str | int,
        last_equity: Decimal | str | int | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self._cash = dec(cash, "cash")
            if last_equity is not None:
                self._last_equity = dec(last_equity, "last_equity")
            return self._account_json()

    # ------------------------------------------------------------------ positions

    def _move_position(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        position = self._positions.get(symbol)
        before = position.qty if position else ZERO
        avg = position.avg_entry_price if position else ZERO
        after = before + signed
        if after == 0:
            self._positions.pop(symbol, None)
            return
        if before == 0 or (before > 0) == (signed > 0):
            avg = (abs(before) * avg + abs(signed) * price) / abs(after)
        elif abs(signed) > abs(before):
            avg = price  # flipped through zero: the new side starts at this price
        self._positions[symbol] = Position(symbol, after, avg)

    # ------------------------------------------------------------------ valuation

    def _position_value(self, position: Position) -> Decimal:
        cfg = self._symbols.get(position.symbol)
        if cfg is None:
            return position.qty * position.avg_entry_price
        return position.qty * cfg.price * cfg.multiplier

    def _market_values(self) -> tuple[Decimal, Decimal, Decimal]:
        """Long and short market value, and the part of the long value that cannot be margined
        (crypto: "cryptocurrencies are not eligible assets to be used as collateral for margin
        accounts", the spec's Account; and long options, which are paid in full)."""
        long_value, short_value, cash_only = ZERO, ZERO, ZERO
        for position in self._positions.values():
            value = self._position_value(position)
            cfg = self._symbols.get(position.symbol)
            if value > 0:
                long_value += value
                if cfg is not None and not cfg.marginable:
                    cash_only += value
            else:
                short_value += value
        return long_value, short_value, cash_only

    def _reserved_for_buys(self) -> Decimal:
        reserved = ZERO
        for order in self._orders.values():
            if order.side != "buy" or not order.is_open:
                continue
            cfg = self._symbols.get(order.symbol)
            if order.qty is None:
                reserved += (order.notional or ZERO) - sum(
                    (f.qty * f.price for f in order.fills), ZERO
                )
                continue
            unit = order.limit_price or (cfg.price if cfg else ZERO)
            reserved += (order.qty - order.filled_qty) * unit
        return reserved

    def _account_numbers(self) -> dict[str, Decimal]:
        long_value, short_value, cash_only = self._market_values()
        equity = self._cash + long_value + short_value
        marginable_gross = long_value - cash_only - short_value
        # what cannot be margined needs its full value as margin
        initial_margin = marginable_gross * INITIAL_MARGIN + cash_only
        maintenance_margin = marginable_gross * MAINTENANCE_MARGIN + cash_only
        regt = max(equity - initial_margin, ZERO) * shapes.MARGIN_MULTIPLIER
        reserved = self._reserved_for_buys()
        return {
            "cash": self._cash,
            "long": long_value,
            "short": short_value,
            "equity": equity,
            "initial_margin": initial_margin,
            "maintenance_margin": maintenance_margin,
            "regt": regt,
            "buying_power": max(regt - reserved, ZERO),
            "non_marginable": max(self._cash - reserved, ZERO),
        }

    # ----------------------------------------------------------------------- JSON

    def _account_json(self) -> dict[str, Any]:
        return shapes.account_json(
            account_id=self.account_id,
            account_number=self.account_number,
            flags=self._flags,
            numbers=self._account_numbers(),
            last_equity=self._last_equity,
            created_at=self._created_at,
            today=shapes.today_in_new_york(self._now()),
        )

    def _position_json(self, position: Position) -> dict[str, Any]:
        qty = position.qty
        # what open orders on the closing side hold of it
        held = sum(
            (
                o.qty - o.filled_qty
                for o in self._orders.values()
                if o.symbol == position.symbol
                and o.is_open
                and o.qty is not None
                and o.side == ("sell" if qty > 0 else "buy")
            ),
            ZERO,
        )
        return shapes.position_json(position, self._symbols[position.symbol], held)
