"""Orders: what ``POST /v2/orders`` accepts (order types, time in force, crypto and
fractional rules, the account's flags, buying power and what is held), their lifecycle
(queued, filled, canceled, expired), and the control methods that act on them as the
broker does."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sandbox import shapes
from sandbox.market import Market, check_side
from sandbox.model import Order, Symbol
from sandbox.wire import (
    ZERO,
    Reply,
    SandboxError,
    as_bool,
    dec,
    fmt,
    loads,
    money,
    parse_time,
    positive,
)

TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
# Alpaca's crypto orders take only gtc and ioc (docs.alpaca.markets/docs/crypto-orders); any
# other time in force is refused with 422 {"code": 42210000, "message": "invalid crypto
# time_in_force"} (quoted in d-e-s-o/apca#27 and alpacahq/alpaca-py#681).
CRYPTO_TIME_IN_FORCE = ("gtc", "ioc")


def _refused(message: str, code: int = 40010001) -> SandboxError:
    return SandboxError(422, code, message)


class Orders(Market):
    """Order validation and lifecycle, the order endpoints, and broker-side order events."""

    # -------------------------------------------------------------------- control

    def fill_order(
        self,
        order_id: str,
        qty: Decimal | str | int | None = None,
        price: Decimal | str | int | None = None,
    ) -> dict[str, Any]:
        """Fill an open order now, fully or by ``qty``, at ``price`` or the symbol price."""
        with self._lock:
            order = self._open_order(self._require_order(order_id))
            cfg = self._require_symbol(order.symbol)
            at = cfg.price if price is None else positive(price, "price")
            remaining = order.total_qty(at) - order.filled_qty
            amount = remaining if qty is None else positive(qty, "qty")
            if amount > remaining:
                raise SandboxError(422, 40010001, f"qty exceeds the unfilled {fmt(remaining)}")
            self._apply_fill(order, amount, at)
            return shapes.order_json(order)

    def cancel_order(self, order_id: str, status: str = "canceled") -> dict[str, Any]:
        """End an open order from the broker's side: ``canceled``, ``expired``, ``rejected``."""
        if status not in ("canceled", "expired", "rejected"):
            raise SandboxError(422, 40010001, "status must be canceled, expired or rejected")
        with self._lock:
            order = self._open_order(self._require_order(order_id))
            self._close_order(order, status)
            return shapes.order_json(order)

    def create_external_order(
        self,
        symbol: str,
        side: str,
        qty: Decimal | str | int,
        price: Decimal | str | int | None = None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        """An order placed outside the ledger (say, in Alpaca's web app) that fills at once."""
        check_side(side)
        with self._lock:
            cfg, amount, at = self._booked(symbol, qty, price)
            coid = client_order_id or str(uuid.uuid4())
            if coid in self._by_client_id:
                raise SandboxError(422, 40010001, "client_order_id must be unique")
            tif = "gtc" if cfg.is_crypto else "day"  # crypto takes no day orders
            order = self._new_order(
                cfg, coid, side, "market", tif, qty=amount, origin="external"
            )
            self._store_order(order)
            self._apply_fill(order, amount, at)
            return shapes.order_json(order)

    # ------------------------------------------------------------------- internal

    @staticmethod
    def _open_order(order: Order) -> Order:
        if not order.is_open:
            raise SandboxError(422, 42210000, f'order is already in "{order.status}" state')
        return order

    def _new_order(
        self,
        cfg: Symbol,
        client_order_id: str | None,
        side: str,
        order_type: str,
        tif: str,
        *,
        qty: Decimal | None,
        notional: Decimal | None = None,
        limit_price: Decimal | None = None,
        extended_hours: bool = False,
        origin: str,
    ) -> Order:
        now = self._tick()
        return Order(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id or str(uuid.uuid4()),
            symbol=cfg.symbol,
            asset_id=cfg.asset_id,
            side=side,
            type=order_type,
            time_in_force=tif,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            extended_hours=extended_hours,
            position_intent=self._intent(cfg.symbol, side),
            status="new",
            created_at=now,
            updated_at=now,
            expires_at=self._expiry(tif, now),
            origin=origin,
            asset_class=cfg.asset_class,
        )

    def _close_order(self, order: Order, status: str) -> None:
        at = self._tick()
        order.status = status
        order.updated_at = at
        if status == "canceled":
            order.canceled_at = at
        elif status == "expired":
            order.expired_at = at
        else:
            order.failed_at = at
        self._order_event(status, order)  # the event is named as the status

    # ------------------------------------------------------------------------ API

    def _api_order(self, order_id: str) -> Order:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise SandboxError(422, 40010001, "order_id is not a valid uuid") from None
        return self._require_order(order_id)

    def _api_order_by_client_id(self, query: dict[str, str]) -> dict[str, Any]:
        coid = query.get("client_order_id")
        if not coid:
            raise SandboxError(422, 40010001, "client_order_id is required")
        order = self._by_client_id.get(coid)
        if order is None:
            raise SandboxError(404, 40410000, "order not found")
        return shapes.order_json(order)

    def _api_cancel(self, order_id: str) -> Reply:
        order = self._open_order(self._api_order(order_id))
        self._close_order(order, "canceled")
        return Reply(204)

    def _api_replace(self, order_id: str, raw: bytes) -> Reply:
        """``PATCH /v2/orders/{order_id}``: "Replaces a single order with updated parameters.
        Each parameter overrides the corresponding attribute of the existing order. The other
        attributes remain the same" (docs.alpaca.markets/reference/replaceorderforaccount).
        The old order becomes ``replaced`` (``replaced_by``, ``replaced_at``), the answer is
        the new one (``replaces``), and the stream says ``replaced`` then ``new``.

        The sandbox replaces only an order still ``new`` (the docs refuse accepted and
        pending ones; a partly filled one is the sandbox's own refusal), and only ``qty``,
        ``time_in_force``, ``limit_price`` and ``client_order_id``.
        """
        old = self._api_order(order_id)
        try:
            body = loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SandboxError(400, 40010000, "request body format is invalid")
        if old.status != "new" or old.fills:
            raise _refused(f'order is not replaceable in "{old.status}" state', 42210000)
        for name in ("stop_price", "trail"):
            if body.get(name) is not None:
                raise _refused(f"{name} is not supported by the sandbox")
        qty = old.qty if body.get("qty") is None else positive(body["qty"], "qty")
        if old.qty is None and body.get("qty") is not None:
            raise _refused("qty cannot replace the notional of a notional order")
        tif = body.get("time_in_force") or old.time_in_force
        if tif not in TIME_IN_FORCE:
            raise _refused(f"invalid time_in_force: {tif}")
        limit_price = old.limit_price
        if body.get("limit_price") is not None:
            if old.type != "limit":
                raise _refused("limit_price is only for limit orders")
            limit_price = positive(body["limit_price"], "limit_price")
        coid = body.get("client_order_id")
        if coid is not None and (not isinstance(coid, str) or len(coid) > 128):
            raise _refused("client_order_id must be a string of at most 128 characters")
        if coid is not None and coid in self._by_client_id:
            raise _refused("client_order_id must be unique")
        cfg = self._require_symbol(old.symbol)
        new = self._new_order(
            cfg, coid, old.side, old.type, tif, qty=qty, notional=old.notional,
            limit_price=limit_price, extended_hours=old.extended_hours, origin=old.origin,
        )
        new.replaces = old.id
        if not self._can_trade_now(new):
            new.status = "accepted"
        at = self._tick()
        old.status = "replaced"
        old.replaced_at = old.updated_at = at
        old.replaced_by = new.id
        self._order_event("replaced", old)
        self._store_order(new)
        self._try_execute(new)
        return Reply(200, shapes.order_json(new))

    def _api_cancel_all(self) -> Reply:
        canceled = [o for o in self._orders.values() if o.is_open]
        for order in canceled:
            self._close_order(order, "canceled")
        return Reply(207, [{"id": o.id, "status": 200} for o in canceled])

    def _api_list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise SandboxError(422, 40010001, "invalid status")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise SandboxError(422, 40010001, "invalid direction")
        try:
            limit = min(max(int(query.get("limit", "50")), 1), 500)
        except ValueError:
            raise SandboxError(422, 40010001, "invalid limit") from None
        after = parse_time(query["after"], "after") if query.get("after") else None
        until = parse_time(query["until"], "until") if query.get("until") else None
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        side = query.get("side")
        chosen = [
            o
            for o in self._orders.values()
            if (status == "all" or o.is_open == (status == "open"))
            and (after is None or o.created_at > after)
            and (until is None or o.created_at < until)
            # "A currency pair is required for crypto orders (ex. BTCUSD,BCHUSD...)" (the
            # spec's GET /v2/orders symbols); BTC/USD is matched too
            and (not symbols or o.symbol in symbols or o.symbol.replace("/", "") in symbols)
            and (not side or o.side == side)
        ]
        chosen.sort(key=lambda o: (o.created_at, o.id), reverse=direction == "desc")
        return [shapes.order_json(o) for o in chosen[:limit]]

    def _api_create_order(self, raw: bytes) -> Reply:
        try:
            body = loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SandboxError(400, 40010000, "request body format is invalid")
        order = self._validate_and_create(body)
        self._try_execute(order)
        if order.is_open and order.time_in_force in ("ioc", "fok") and self._can_trade_now(order):
            self._close_order(order, "canceled")  # the unfilled rest of an IOC/FOK dies at once
        return Reply(200, shapes.order_json(order))

    def _validate_and_create(self, body: dict[str, Any]) -> Order:
        self._check_account_may_trade()
        coid = body.get("client_order_id")
        if coid is not None and (not isinstance(coid, str) or len(coid) > 128):
            raise _refused("client_order_id must be a string of at most 128 characters")
        order_type = body.get("type")
        if order_type is None:
            raise _refused("type is required")
        if order_type in ("stop", "stop_limit", "trailing_stop"):
            raise _refused(f'order type "{order_type}" is not supported by the sandbox')
        if order_type not in ("market", "limit"):
            raise _refused(f"invalid order type: {order_type}")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise _refused("side is required" if side is None else f"invalid side: {side}")
        tif = body.get("time_in_force")
        if tif not in TIME_IN_FORCE:
            raise _refused(
                "time_in_force is required" if tif is None else f"invalid time_in_force: {tif}"
            )
        if body.get("order_class") not in (None, "", "simple"):
            raise _refused(f'order_class "{body["order_class"]}" is not supported by the sandbox')
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise _refused("symbol is required")
        cfg = self._find_symbol(symbol)
        crypto = cfg is not None and cfg.is_crypto
        if crypto and tif not in CRYPTO_TIME_IN_FORCE:
            raise _refused("invalid crypto time_in_force", 42210000)
        if cfg is not None and cfg.is_option:
            raise _refused("option orders are not supported by the sandbox")
        if crypto and self._flags["crypto_status"] != "ACTIVE":
            # By analogy with Alpaca's 422 "us_equity orders not allowed for account" (code
            # 40010001, quoted in Petersoj/alpaca-java#147); the crypto wording is inferred.
            raise _refused("crypto orders not allowed for account")
        qty = None if body.get("qty") is None else dec(body["qty"], "qty")
        notional = None if body.get("notional") is None else dec(body["notional"], "notional")
        if (qty is None) == (notional is None):
            raise _refused(
                "qty or notional is required" if qty is None else "qty and notional are exclusive"
            )
        if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
            raise _refused("qty must be > 0" if qty is not None else "notional must be > 0")
        limit_price = (
            None if body.get("limit_price") is None else dec(body["limit_price"], "limit_price")
        )
        if order_type == "limit" and (limit_price is None or limit_price <= 0):
            raise _refused("limit_price is required for limit orders")
        if order_type == "market" and limit_price is not None:
            raise _refused("limit_price is not allowed for market orders")
        if notional is not None and order_type != "market":
            raise _refused("notional orders must be market orders", 42210000)
        fractional = notional is not None or (qty is not None and qty != qty.to_integral_value())
        if fractional and tif != "day" and not crypto:
            # crypto is fractional by nature and takes no day orders at all
            raise _refused("fractional orders must be DAY orders", 42210000)
        extended = body.get("extended_hours", False)
        extended = False if extended is None else as_bool(extended, "extended_hours")
        if extended and (order_type != "limit" or tif not in ("day", "gtc")):
            raise _refused("extended hours order must be DAY or GTC limit orders", 42210000)
        if coid is not None and coid in self._by_client_id:
            raise _refused("client_order_id must be unique")
        if cfg is None:
            raise _refused(f'asset "{symbol}" not found')
        if cfg.behavior == "reject_buying_power":
            raise SandboxError(403, 40310000, "insufficient buying power")
        if cfg.behavior == "not_tradable" or not cfg.tradable or cfg.status != "active":
            raise _refused(f"asset {cfg.symbol} is not tradable", 42210000)
        if fractional and not cfg.fractionable:
            raise _refused(f"asset {cfg.symbol} is not fractionable", 42210000)
        unit = limit_price or cfg.price
        # notional orders are sized at the current price for these checks
        wanted = qty if qty is not None else (notional or ZERO) / cfg.price
        self._check_holdings(cfg, side, wanted, unit)
        order = self._new_order(
            cfg, coid, side, order_type, tif, qty=qty, notional=notional,
            limit_price=limit_price, extended_hours=extended, origin="api",
        )
        if not self._can_trade_now(order):
            order.status = "accepted"  # queued for the next session
        self._store_order(order)
        return order

    def _check_holdings(self, cfg: Symbol, side: str, wanted: Decimal, unit: Decimal) -> None:
        """What the account holds, and its buying power, allow an order for ``wanted``."""
        held = self._held(cfg.symbol)
        if cfg.is_crypto:
            self._check_crypto_balance(cfg, side, held, wanted, wanted * unit)
        elif side == "sell":
            if held > 0:
                available = self._position_json(self._positions[cfg.symbol])["qty_available"]
                # Alpaca will not take a long position through zero in one order.
                if wanted > Decimal(available):
                    raise SandboxError(
                        403,
                        40310000,
                        f"insufficient qty available for order (requested: {fmt(wanted)}, "
                        f"available: {available})",
                    )
            elif not cfg.shortable:
                raise SandboxError(403, 40310000, f"asset {cfg.symbol} cannot be sold short")
            else:
                self._check_buying_power(wanted * unit)
        elif held >= 0:
            self._check_buying_power(wanted * unit)

    def _check_buying_power(self, cost: Decimal) -> None:
        if cost > self._account_numbers()["buying_power"]:
            raise SandboxError(403, 40310000, "insufficient buying power")

    def _check_account_may_trade(self) -> None:
        """Refuse an order POST as Alpaca does for an account that may not trade.

        "An order request may be rejected if the account is not authorized for trading" (the
        spec's POST /v2/orders); the reply is 403 {"code": 40310000, "message": "account is not
        authorized to trade"} (alpacahq/alpaca-trade-api-csharp#330), and for a user's own
        suspension 403 {"code": 40310000, "message": "new orders are rejected by user
        request"} (Lumiwealth/lumibot#373). ACCOUNT_UPDATED and the other statuses but ACTIVE
        are not allowed to trade (the spec's AccountStatus).
        """
        flags = self._flags
        if flags["account_blocked"] or flags["trading_blocked"] or flags["status"] != "ACTIVE":
            raise SandboxError(403, 40310000, "account is not authorized to trade")
        if flags["trade_suspended_by_user"]:
            raise SandboxError(403, 40310000, "new orders are rejected by user request")

    def _check_crypto_balance(
        self, cfg: Symbol, side: str, held: Decimal, wanted: Decimal, cost: Decimal
    ) -> None:
        """Crypto is bought with cash and sold only from what is held: no margin, no shorts.

        Alpaca refuses a sale beyond the coins held with 403 {"available": "0", "balance":
        "0", "code": 40310000, "message": "insufficient balance for BTC (requested: 0.016135,
        available: 0)"}, as logs of real replies show (e.g. a sell without a holding). The
        same wording for a purchase beyond the cash ("insufficient balance for USD") is
        inferred from it.
        """
        base, _, quote = cfg.symbol.partition("/")
        if side == "sell":
            balance = max(held, ZERO)
            available = (
                Decimal(self._position_json(self._positions[cfg.symbol])["qty_available"])
                if held > 0
                else ZERO
            )
            if wanted > available:
                raise SandboxError(
                    403,
                    40310000,
                    f"insufficient balance for {base} (requested: {fmt(wanted)}, "
                    f"available: {fmt(available)})",
                    {"available": fmt(available), "balance": fmt(balance)},
                )
            return
        cash = self._account_numbers()["non_marginable"]
        if cost > cash:
            raise SandboxError(
                403,
                40310000,
                f"insufficient balance for {quote or 'USD'} (requested: {money(cost)}, "
                f"available: {money(cash)})",
                {"available": money(cash), "balance": money(max(self._cash, ZERO))},
            )
