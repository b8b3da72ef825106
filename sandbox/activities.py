"""Account activities: the FILL of each execution, non-trade activities (dividends, fees,
splits, symbol changes, ...), the corporate actions that book them, and the query
``GET /v2/account/activities`` answers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sandbox.state import SandboxState
from sandbox.wire import ET, ZERO, SandboxError, dec, fmt, iso, money, parse_time, positive, public

# Alpaca's activity_type enum from the 2.0.1 spec; unknown types in the path are a 422.
ACTIVITY_TYPES = (
    "FILL",
    "TRANS",
    "MISC",
    "ACATC",
    "ACATS",
    "CFEE",
    "CSD",
    "CSW",
    "DIV",
    "DIVCGL",
    "DIVCGS",
    "DIVFEE",
    "DIVFT",
    "DIVNRA",
    "DIVROC",
    "DIVTW",
    "DIVTXEX",
    "FEE",
    "INT",
    "INTNRA",
    "INTTW",
    "JNL",
    "JNLC",
    "JNLS",
    "MA",
    "NC",
    "OPASN",
    "OPCA",
    "OPCSH",
    "OPEXC",
    "OPEXP",
    "OPTRD",
    "PTC",
    "PTR",
    "REORG",
    "SPIN",
    "SPLIT",
    "FOPT",
)


class Activities(SandboxState):
    """The activity log, and the control methods that add non-trade activities to it."""

    # -------------------------------------------------------------------- control

    def add_split(
        self,
        symbol: str,
        ratio: Decimal | str | int,
        on: date | str | None = None,
    ) -> list[dict[str, Any]]:
        """A stock split: qty x ratio, avg price / ratio, prices / ratio.

        ``ratio`` 4 is a 4-for-1 forward split, 0.1 a 1-for-10 reverse split. Like a broker
        booking, a held position yields two ``SPLIT`` activities sharing a ``group_id``: the
        old shares leave (negative qty, old average price) and the new ones arrive.
        """
        symbol = symbol.upper()
        with self._lock:
            cfg = self._require_symbol(symbol)
            factor = positive(ratio, "ratio")
            cfg.price = cfg.price / factor
            cfg.lastday_price = cfg.lastday_price / factor
            position = self._positions.get(symbol)
            if position is None:
                return []
            old_qty, old_avg = position.qty, position.avg_entry_price
            position.qty = old_qty * factor
            position.avg_entry_price = old_avg / factor
            sub_type = "FSPLIT" if factor > 1 else "RSPLIT"
            return self._add_pair(
                "SPLIT", sub_type, f"{symbol} split {fmt(factor)} for 1", self._day(on),
                (symbol, -old_qty, old_avg), (symbol, position.qty, position.avg_entry_price),
            )

    def change_symbol(
        self, old_symbol: str, new_symbol: str, on: date | str | None = None
    ) -> list[dict[str, Any]]:
        """A ticker change (Alpaca's ``NC`` activity, sub-type ``SNC``).

        The asset keeps its id and moves to the new symbol; a held position moves too and
        yields two ``NC`` activities sharing a ``group_id`` (old symbol out, new one in).
        """
        old, new = old_symbol.upper(), new_symbol.upper()
        with self._lock:
            cfg = self._require_symbol(old)
            if new in self._symbols:
                raise SandboxError(422, 40010001, f"symbol {new} already exists")
            del self._symbols[old]
            cfg.symbol = new
            self._symbols[new] = cfg
            position = self._positions.pop(old, None)
            if position is None:
                return []
            position.symbol = new
            self._positions[new] = position
            return self._add_pair(
                "NC", "SNC", f"Symbol change {old} -> {new}", self._day(on),
                (old, -position.qty, position.avg_entry_price),
                (new, position.qty, position.avg_entry_price),
            )

    def add_activity(
        self,
        activity_type: str,
        *,
        net_amount: Decimal | str | int = 0,
        symbol: str | None = None,
        qty: Decimal | str | int | None = None,
        per_share_amount: Decimal | str | int | None = None,
        sub_type: str | None = None,
        description: str = "",
        on: date | str | None = None,
        apply_cash: bool = True,
    ) -> dict[str, Any]:
        """Any other non-trade activity (DIV, FEE, CSD, ...); ``net_amount`` moves cash."""
        kind = activity_type.upper()
        if kind == "FILL" or kind not in ACTIVITY_TYPES:
            raise SandboxError(422, 40010001, f"not a non-trade activity type: {activity_type}")
        with self._lock:
            amount = dec(net_amount, "net_amount")
            if apply_cash:
                self._cash += amount
            activity = self._add_nta(
                kind,
                sub_type=sub_type,
                net_amount=amount,
                symbol=symbol.upper() if symbol else None,
                qty=None if qty is None else dec(qty, "qty"),
                per_share_amount=(
                    None if per_share_amount is None else dec(per_share_amount, "per_share")
                ),
                description=description,
                on=self._day(on),
            )
            return public(activity)

    # ------------------------------------------------------------------- internal

    def _activity_id(self, at: datetime) -> str:
        # Alpaca's ids are "<New York time to the millisecond>::<uuid>"
        local = at.astimezone(ET)
        return f"{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}::{uuid.uuid4()}"

    def _fill_activity(
        self,
        at: datetime,
        *,
        order_id: str,
        symbol: str,
        side: str,
        held_before: Decimal,
        qty: Decimal,
        price: Decimal,
        cum_qty: Decimal,
        leaves_qty: Decimal,
        status: str,
    ) -> dict[str, Any]:
        # Alpaca labels executions that open or grow a short as "sell_short"
        if side == "sell" and held_before <= 0:
            side = "sell_short"
        return {
            "id": self._activity_id(at),
            "activity_type": "FILL",
            "transaction_time": iso(at),
            "type": "fill" if status == "filled" else "partial_fill",
            "price": fmt(price),
            "qty": fmt(qty),
            "side": side,
            "symbol": symbol,
            "leaves_qty": fmt(leaves_qty),
            "order_id": order_id,
            "cum_qty": fmt(cum_qty),
            "order_status": status,
            "_ts": at,
        }

    def _add_pair(
        self,
        activity_type: str,
        sub_type: str,
        description: str,
        on: date | None,
        *legs: tuple[str, Decimal, Decimal],
    ) -> list[dict[str, Any]]:
        """A booking in two legs (symbol, qty, price) sharing a ``group_id``: what leaves
        the account, then what arrives."""
        group = str(uuid.uuid4())
        added = [
            self._add_nta(
                activity_type,
                sub_type=sub_type,
                symbol=symbol,
                qty=qty,
                price=price,
                description=description,
                group_id=group,
                on=on,
            )
            for symbol, qty, price in legs
        ]
        return [public(a) for a in added]

    def _add_nta(
        self,
        activity_type: str,
        *,
        sub_type: str | None = None,
        net_amount: Decimal = ZERO,
        symbol: str | None = None,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        per_share_amount: Decimal | None = None,
        description: str = "",
        group_id: str | None = None,
        on: date | None = None,
    ) -> dict[str, Any]:
        at = self._tick()
        activity: dict[str, Any] = {"id": self._activity_id(at), "activity_type": activity_type}
        if sub_type:
            activity["activity_sub_type"] = sub_type
        # Real NTAs carry a plain date here even though the spec says date-time.
        activity["date"] = (on or at.astimezone(ET).date()).isoformat()
        activity["net_amount"] = fmt(net_amount)
        activity["description"] = description
        if symbol is not None:
            activity["symbol"] = symbol
        if qty is not None:
            activity["qty"] = fmt(qty)
        if price is not None:
            activity["price"] = money(price)
        if per_share_amount is not None:
            activity["per_share_amount"] = fmt(per_share_amount)
        if group_id is not None:
            activity["group_id"] = group_id
        activity["status"] = "executed"
        activity["created_at"] = iso(at)
        activity["_ts"] = at
        self._activities.append(activity)
        return activity

    def _sorted_activities(self) -> list[dict[str, Any]]:
        return sorted(self._activities, key=lambda a: (a["_ts"], a["id"]))

    # ------------------------------------------------------------------------ API

    def _api_activities(self, kind: str | None, query: dict[str, str]) -> list[dict[str, Any]]:
        if kind is not None:
            types = {kind.upper()}
        else:
            types = {t.strip().upper() for t in query.get("activity_types", "").split(",") if t}
        unknown = sorted(types - set(ACTIVITY_TYPES))
        if unknown:
            raise SandboxError(422, 40010001, f"invalid activity type: {unknown[0]}")
        category = query.get("category")
        if category is not None:
            if types:
                raise SandboxError(422, 40010001, "category cannot be used with activity_types")
            if category not in ("trade_activity", "non_trade_activity"):
                raise SandboxError(422, 40010001, "invalid category")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise SandboxError(422, 40010001, "invalid direction")
        on = parse_time(query["date"], "date").date() if query.get("date") else None
        after = parse_time(query["after"], "after") if query.get("after") else None
        until = parse_time(query["until"], "until") if query.get("until") else None
        page_size: int | None = 100
        if "page_size" in query:
            try:
                page_size = min(max(int(query["page_size"]), 1), 100)
            except ValueError:
                raise SandboxError(422, 40010001, "invalid page_size") from None
        elif on is not None:
            page_size = None  # with date= Alpaca returns the whole day unless told otherwise

        def wanted(activity: dict[str, Any]) -> bool:
            is_trade = activity["activity_type"] == "FILL"
            moment: datetime = activity["_ts"]
            return (
                (not types or activity["activity_type"] in types)
                and (category is None or is_trade == (category == "trade_activity"))
                and (on is None or moment.astimezone(ET).date() == on)
                and (after is None or moment > after)
                and (until is None or moment < until)
            )

        items = [a for a in self._sorted_activities() if wanted(a)]
        if direction == "desc":
            items.reverse()
        token = query.get("page_token")
        if token:
            items = self._past_token(items, token, direction)
        if page_size is not None:
            items = items[:page_size]
        return [public(a) for a in items]

    def _past_token(
        self, items: list[dict[str, Any]], token: str, direction: str
    ) -> list[dict[str, Any]]:
        # The token is the id of the last activity seen; continue strictly past it.
        anchor = next((a for a in self._activities if a["id"] == token), None)
        if anchor is not None:
            key = (anchor["_ts"], anchor["id"])
            return [
                a
                for a in items
                if (
                    (a["_ts"], a["id"]) > key
                    if direction == "asc"
                    else (a["_ts"], a["id"]) < key
                )
            ]
        return [a for a in items if (a["id"] > token if direction == "asc" else a["id"] < token)]
