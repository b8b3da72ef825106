"""The market: assets and their prices (stocks, crypto pairs, option contracts), positions
placed from outside, the market clock, and fills: how each symbol's behaviour executes the
orders resting on it, and fills whose order is gone."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sandbox import shapes
from sandbox.account import UNSET, Account
from sandbox.model import (
    ASSET_CLASSES,
    BEHAVIORS,
    CRYPTO_DEFAULT_INCREMENTS,
    OCC,
    Contract,
    Fill,
    Order,
    Position,
    Symbol,
    new_crypto,
)
from sandbox.wire import QTY_STEP, ZERO, SandboxError, asset_id, dec, parse_time, positive, public


class Market(Account):
    """Symbols, prices and the clock; the execution of resting orders."""

    # -------------------------------------------------------------------- control

    def set_symbol(
        self,
        symbol: str,
        *,
        behavior: str | None = None,
        price: Decimal | str | int | None = None,
        partial_fraction: Decimal | str | int | None = None,
        tradable: bool | None = None,
        lastday_price: Decimal | str | int | None = None,
        fractionable: bool | None = None,
        shortable: bool | None = None,
        exchange: str | None = None,
        name: str | None = None,
        asset_class: str | None = None,
        status: str | None = None,
        marginable: bool | None = None,
        min_order_size: Decimal | str | int | None = None,
        min_trade_increment: Decimal | str | int | None = None,
        price_increment: Decimal | str | int | None = None,
        latest_trade: bool | None = None,
    ) -> dict[str, Any]:
        """Create or change a symbol; a new price may fill resting limit orders.

        A new symbol needs a price; one with a ``/`` (``SOL/USD``) is a crypto pair unless
        ``asset_class`` says otherwise. ``status`` ``inactive`` makes the asset untradable, as
        Alpaca's inactive assets are. ``latest_trade=False`` leaves the symbol out of the
        market data API's latest trades.
        """
        if asset_class is not None and asset_class not in ASSET_CLASSES:
            raise SandboxError(422, 40010001, f"asset_class must be one of {ASSET_CLASSES}")
        with self._lock:
            cfg = self._find_symbol(symbol)
            if cfg is None:
                cfg = self._new_symbol(symbol.upper(), price, asset_class)
            elif asset_class is not None and asset_class != cfg.asset_class:
                raise SandboxError(422, 40010001, "asset_class cannot change")
            if behavior is not None:
                if behavior not in BEHAVIORS:
                    raise SandboxError(422, 40010001, f"behavior must be one of {BEHAVIORS}")
                cfg.behavior = behavior
            if price is not None:
                new_price = positive(price, "price")
                if new_price != cfg.price:
                    cfg.trade_id += 1  # a new price is a new trade on the tape
                cfg.price = new_price
                cfg.price_time = self._now()
            if lastday_price is not None:
                cfg.lastday_price = positive(lastday_price, "lastday_price")
            if partial_fraction is not None:
                fraction = dec(partial_fraction, "partial_fraction")
                if not 0 < fraction < 1:
                    raise SandboxError(422, 40010001, "partial_fraction must be in (0, 1)")
                cfg.partial_fraction = fraction
            if status is not None:
                if status not in ("active", "inactive"):
                    raise SandboxError(422, 40010001, "status must be active or inactive")
                cfg.status = status
            for flag, given in (
                ("tradable", tradable),
                ("fractionable", fractionable),
                ("shortable", shortable),
                ("marginable", marginable),
                ("exchange", exchange),
                ("name", name),
            ):
                if given is not None:
                    setattr(cfg, flag, given)
            for step, amount in (
                ("min_order_size", min_order_size),
                ("min_trade_increment", min_trade_increment),
                ("price_increment", price_increment),
            ):
                if amount is not None:
                    setattr(cfg, step, positive(amount, step))
            if latest_trade is not None:
                cfg.latest_trade = latest_trade
            for order in list(self._orders.values()):
                if order.symbol == cfg.symbol:
                    self._try_execute(order)
            return shapes.symbol_json(cfg)

    def set_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
    ) -> dict[str, Any] | None:
        """Put a position in the account as if it came from outside the ledger.

        No order, no activity and no cash movement; ``qty`` 0 removes the position. Any
        quantity Alpaca can hold is kept, down to broker dust such as ``0.000000001`` (Alpaca
        quantities carry up to 9 decimals: the spec's DELETE /v2/positions ``qty``).
        """
        with self._lock:
            cfg = self._require_symbol(symbol)
            amount = dec(qty, "qty")
            if amount != amount.quantize(QTY_STEP):
                raise SandboxError(422, 40010001, "qty can have at most 9 decimal places")
            if amount == 0:
                self._positions.pop(cfg.symbol, None)
                return None
            if cfg.is_crypto and amount < 0:
                raise SandboxError(422, 40010001, "crypto positions cannot be short")
            return self._place_position(cfg, amount, avg_entry_price)

    def set_option_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
        *,
        price: Decimal | str | int | None = None,
        lastday_price: Decimal | str | int | None = None,
    ) -> dict[str, Any] | None:
        """Hold ``qty`` contracts of the option with OCC symbol ``symbol`` (AAPL240119C00150000).

        Prices are per share, as Alpaca quotes premiums; the position's market value and cost
        basis carry the contract multiplier of 100. The contract is made on first use (its
        ``price`` defaults to ``avg_entry_price``) and is then served at
        ``/v2/options/contracts/{symbol_or_id}``. ``qty`` 0 removes the position.
        """
        occ = symbol.upper()
        contract = _parse_occ(occ, symbol)
        amount = dec(qty, "qty")
        if amount != amount.to_integral_value():
            # options trade in whole contracts
            raise SandboxError(422, 40010001, "option qty must be a whole number of contracts")
        with self._lock:
            cfg = self._symbols.get(occ)
            if cfg is None:
                first = price if price is not None else avg_entry_price
                if first is None:
                    raise SandboxError(422, 40010001, f"a new option contract {occ} needs a price")
                premium = positive(first, "price")
                cfg = Symbol(
                    symbol=occ,
                    asset_id=asset_id(occ),
                    price=premium,
                    lastday_price=premium,
                    # The spec's ExchangeForPosition: "Can be empty if not applicable (e.g.,
                    # for options contracts)".
                    exchange="",
                    name=contract.name,
                    asset_class="us_option",
                    fractionable=False,
                    shortable=False,
                    marginable=False,
                    contract=contract,
                    price_time=self._now(),
                )
                self._symbols[occ] = cfg
            elif price is not None:
                cfg.price = positive(price, "price")
            if lastday_price is not None:
                cfg.lastday_price = positive(lastday_price, "lastday_price")
            if amount == 0:
                self._positions.pop(occ, None)
                return None
            return self._place_position(cfg, amount, avg_entry_price)

    def set_clock(
        self,
        *,
        is_open: bool | None = None,
        next_open: datetime | str | None = None,
        next_close: datetime | str | None = None,
        timestamp: datetime | str | None = UNSET,
    ) -> dict[str, Any]:
        """Open or close the market, set next open/close, or freeze "now".

        ``timestamp`` freezes the sandbox's notion of now (``None`` unfreezes). Opening
        the market lets queued market orders execute.
        """
        with self._lock:
            if timestamp is not UNSET:
                self._frozen_now = None if timestamp is None else parse_time(timestamp, "ts")
            if next_open is not None:
                self._next_open = parse_time(next_open, "next_open")
            if next_close is not None:
                self._next_close = parse_time(next_close, "next_close")
            if is_open is not None:
                self._clock_open = is_open
                if is_open:
                    for order in list(self._orders.values()):
                        self._try_execute(order)
            return self._clock_json()

    def add_orphan_fill(
        self,
        symbol: str,
        side: str,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        *,
        order_id: str | None = None,
        at: datetime | str | None = None,
        apply: bool = True,
    ) -> dict[str, Any]:
        """A FILL activity whose order the orders endpoint does not know (a 404).

        That is what an account shows for an order placed long ago or purged: the execution
        is in the activities, ``GET /v2/orders/{order_id}`` finds nothing. ``at`` backdates
        the execution (default: now); ``apply`` moves the position and cash as the fill did.
        """
        check_side(side)
        with self._lock:
            cfg, amount, fill_price = self._booked(symbol, qty, price)
            oid = str(uuid.uuid4()) if order_id is None else str(order_id)
            try:
                uuid.UUID(oid)
            except ValueError:
                raise SandboxError(422, 40010001, "order_id must be a uuid") from None
            if oid in self._orders:
                raise SandboxError(422, 40010001, "order_id belongs to an order the API knows")
            when = self._tick() if at is None else parse_time(at, "at")
            activity = self._execute(
                cfg.symbol, side, amount, fill_price, when, cfg.multiplier,
                order_id=oid, cum_qty=amount, leaves_qty=ZERO, status="filled", apply=apply,
            )
            return public(activity)

    # ------------------------------------------------------------------- internal

    def _booked(
        self, symbol: str, qty: Decimal | str | int, price: Decimal | str | int | None
    ) -> tuple[Symbol, Decimal, Decimal]:
        """The symbol, quantity and price of an execution a control method books: at the
        symbol's price unless one is given."""
        cfg = self._require_symbol(symbol)
        amount = positive(qty, "qty")
        return cfg, amount, cfg.price if price is None else positive(price, "price")

    def _new_symbol(
        self, symbol: str, price: Decimal | str | int | None, asset_class: str | None
    ) -> Symbol:
        if price is None:
            raise SandboxError(422, 40010001, f"a new symbol {symbol} needs a price")
        first = positive(price, "price")
        kind = asset_class or ("crypto" if "/" in symbol else "us_equity")
        if kind == "crypto":
            size, increment, tick = CRYPTO_DEFAULT_INCREMENTS
            cfg = new_crypto(symbol, first, f"{symbol} pair", size, increment, tick)
        elif kind == "us_equity":
            cfg = Symbol(
                symbol=symbol,
                asset_id=asset_id(symbol),
                price=first,
                lastday_price=first,
                name=f"{symbol} Sandbox Common Stock",
            )
        else:
            raise SandboxError(422, 40010001, "option contracts are made by set_option_position")
        cfg.price_time = self._now()
        self._symbols[symbol] = cfg
        return cfg

    def _place_position(
        self, cfg: Symbol, amount: Decimal, avg_entry_price: Decimal | str | int | None
    ) -> dict[str, Any]:
        avg = cfg.price if avg_entry_price is None else positive(avg_entry_price, "avg")
        self._positions[cfg.symbol] = Position(cfg.symbol, amount, avg)
        return self._position_json(self._positions[cfg.symbol])

    def _can_trade_now(self, order: Order) -> bool:
        # "Alpaca supports crypto trading 24 hours a day, every day" (the crypto-trading docs).
        if order.asset_class == "crypto":
            return True
        return self._clock_open or (order.extended_hours and order.type == "limit")

    def _try_execute(self, order: Order) -> None:
        """Let the symbol's behaviour act on an order nothing has filled yet."""
        cfg = self._symbols.get(order.symbol)
        if cfg is None or not order.is_open or order.fills:
            return
        if order.status == "accepted" and self._can_trade_now(order):
            order.status = "new"
            order.updated_at = self._tick()
            self._order_event("new", order)
        if cfg.behavior not in ("fill", "partial") or not self._can_trade_now(order):
            return
        price = cfg.price
        if order.type == "limit":
            assert order.limit_price is not None
            crosses = (
                price <= order.limit_price if order.side == "buy" else price >= order.limit_price
            )
            if not crosses:
                return
        total = order.total_qty(price)
        if cfg.behavior == "fill":
            amount = total
        else:
            if order.time_in_force == "fok":
                return  # all or nothing: a partial fill is not allowed
            amount = (total * cfg.partial_fraction).quantize(QTY_STEP, ROUND_DOWN)
        if amount > 0:
            self._apply_fill(order, amount, price)

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        at = self._tick()
        total = order.total_qty(price)
        cumulative = order.filled_qty + qty
        status = "filled" if cumulative >= total else "partially_filled"
        cfg = self._symbols.get(order.symbol)
        activity = self._execute(
            order.symbol, order.side, qty, price, at, cfg.multiplier if cfg else Decimal(1),
            order_id=order.id, cum_qty=cumulative, leaves_qty=total - cumulative, status=status,
        )
        order.status = status
        order.updated_at = at
        if status == "filled":
            order.filled_at = at
        order.fills.append(Fill(qty, price, at, activity["id"]))
        self._order_event("fill" if status == "filled" else "partial_fill", order, order.fills[-1])

    def _execute(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        at: datetime,
        multiplier: Decimal,
        *,
        order_id: str,
        cum_qty: Decimal,
        leaves_qty: Decimal,
        status: str,
        apply: bool = True,
    ) -> dict[str, Any]:
        """One execution: the position and cash move (when `apply`), its FILL is logged."""
        held_before = self._held(symbol)
        if apply:
            signed = qty if side == "buy" else -qty
            self._move_position(symbol, signed, price)
            self._cash -= signed * price * multiplier
        activity = self._fill_activity(
            at,
            order_id=order_id,
            symbol=symbol,
            side=side,
            held_before=held_before,
            qty=qty,
            price=price,
            cum_qty=cum_qty,
            leaves_qty=leaves_qty,
            status=status,
        )
        self._activities.append(activity)
        return activity


def check_side(side: str) -> None:
    if side not in ("buy", "sell"):
        raise SandboxError(422, 40010001, "side must be buy or sell")


def _parse_occ(occ: str, given: str) -> Contract:
    match = OCC.match(occ)
    if match is None:
        raise SandboxError(422, 40010001, f"not an OCC option symbol: {given}")
    root, yy, mm, dd, kind, strike = match.groups()
    try:
        expiration = date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise SandboxError(422, 40010001, f"not an OCC option symbol: {given}") from None
    return Contract(root, expiration, "call" if kind == "C" else "put", Decimal(strike) / 1000)
