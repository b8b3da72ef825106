"""The routes of Alpaca's trading API v2 (and, through `MarketData`, its market data API):
which handler answers each method and path, and the lookups of positions, assets and
option contracts."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from sandbox import shapes
from sandbox.market_data import MarketData, is_market_data
from sandbox.model import ASSET_CLASSES
from sandbox.orders import Orders
from sandbox.wire import (
    Reply,
    SandboxError,
    asset_id,
    error_reply,
    method_not_allowed,
    route_not_found,
)


class Api(Orders, MarketData):
    """Everything under ``/v2`` and the market data paths, once faults have had their say."""

    def _route(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any
    ) -> Reply:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if is_market_data(parts):
            return self._route_market_data(method, parts, query, headers)
        if not self._authorized(headers):
            return Reply(401, {"code": 40110000, "message": "request is not authorized"})
        try:
            with self._lock:
                return self._dispatch(method, parts, query, raw)
        except SandboxError as error:
            return error_reply(error)

    def _dispatch(self, method: str, parts: list[str], query: dict[str, str], raw: bytes) -> Reply:
        route = parts[1:] if parts[:1] == ["v2"] else None
        allowed: tuple[str, ...] = ("GET",)
        match route:
            case ["account"]:
                handler = lambda: self._account_json()  # noqa: E731
            case ["positions"]:
                handler = lambda: [self._position_json(p) for p in self._positions.values()]  # noqa: E731
            case ["positions", *ref] if ref:
                # alpaca-py puts BTC/USD into the path as it is: /v2/positions/BTC/USD
                handler = lambda: self._api_position("/".join(ref))  # noqa: E731
            case ["orders"]:
                allowed = ("GET", "POST", "DELETE")
                if method == "POST":
                    return self._api_create_order(raw)
                if method == "DELETE":
                    return self._api_cancel_all()
                handler = lambda: self._api_list_orders(query)  # noqa: E731
            case ["orders:by_client_order_id"]:
                handler = lambda: self._api_order_by_client_id(query)  # noqa: E731
            case ["orders", order_id]:
                allowed = ("GET", "DELETE", "PATCH")
                if method == "DELETE":
                    return self._api_cancel(order_id)
                if method == "PATCH":
                    return self._api_replace(order_id, raw)
                handler = lambda: shapes.order_json(self._api_order(order_id))  # noqa: E731
            case ["account", "activities"]:
                handler = lambda: self._api_activities(None, query)  # noqa: E731
            case ["account", "activities", kind]:
                handler = lambda: self._api_activities(kind, query)  # noqa: E731
            case ["clock"]:
                handler = lambda: self._clock_json()  # noqa: E731
            case ["assets"]:
                handler = lambda: self._api_assets(query)  # noqa: E731
            case ["assets", *ref] if ref:
                # BTC/USD arrives as BTC%2FUSD (the spec's advice) or, from alpaca-py's
                # get_asset, as two path segments
                handler = lambda: self._api_asset("/".join(ref))  # noqa: E731
            case ["options", "contracts", ref]:
                handler = lambda: self._api_option_contract(ref)  # noqa: E731
            case _:
                return route_not_found()
        if method not in allowed:
            return method_not_allowed()
        return Reply(200, handler())

    def _api_position(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        position = self._positions.get(cfg.symbol) if cfg else None
        if position is None:
            raise SandboxError(404, 40410000, "position does not exist")
        return self._position_json(position)

    def _api_asset(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        # Option contracts are looked up at /v2/options/contracts/{symbol_or_id}, the endpoint
        # the options docs introduced "to obtain contract details"; the sandbox does not
        # serve them as assets (what live /v2/assets says of an OCC symbol is undocumented).
        if cfg is None or cfg.is_option:
            raise SandboxError(404, 40410000, "asset not found")
        return shapes.asset_json(cfg)

    def _api_assets(self, query: dict[str, str]) -> list[dict[str, Any]]:
        # The spec's GET /v2/assets: asset_class "Defaults to us_equity"; status "By default,
        # all statuses are included".
        asset_class = query.get("asset_class") or "us_equity"
        if asset_class not in ASSET_CLASSES:
            raise SandboxError(422, 40010001, f"invalid asset_class: {asset_class}")
        status = query.get("status")
        return [
            shapes.asset_json(c)
            for c in self._symbols.values()
            if c.asset_class == asset_class
            and not c.is_option
            and (not status or c.status == status)
        ]

    def _api_option_contract(self, ref: str) -> dict[str, Any]:
        cfg = self._find_symbol(ref)
        if cfg is None or not cfg.is_option:
            # the spec's 404 example for this endpoint
            raise SandboxError(404, 40410000, f"option contract {ref} not found")
        assert cfg.contract is not None
        underlying = self._symbols.get(cfg.contract.root)
        return shapes.contract_json(
            cfg,
            underlying.asset_id if underlying else asset_id(cfg.contract.root),
            shapes.today_in_new_york(self._now()),
        )
