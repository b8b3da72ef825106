"""The part of Alpaca's market data API a ledger reads: latest trades of stocks
(``/v2/stocks/...``) and of crypto pairs (``/v1beta3/crypto/...``), at each symbol's price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.model import Symbol
from sandbox.state import SandboxState
from sandbox.wire import Reply, SandboxError, error_reply, iso, method_not_allowed, route_not_found

# The market data API's exchange codes and tapes (v2/stocks/meta/exchanges, whose example
# has "V": "IEX"; the SIP's codes; stock_tape in the market data spec: A NYSE, B NYSE
# Arca/Bats/IEX/regionals, C NASDAQ).
EXCHANGE_CODES = {
    "NASDAQ": "Q",
    "NYSE": "N",
    "ARCA": "P",
    "NYSEARCA": "P",
    "AMEX": "A",
    "BATS": "Z",
}
TAPES = {"NYSE": "A", "NASDAQ": "C"}
# stock_latest_feed and crypto_latest_loc enums of the market data spec (1.1).
STOCK_LATEST_FEEDS = ("delayed_sip", "iex", "otc", "sip", "boats", "overnight")
CRYPTO_LOCATIONS = ("us", "us-1", "us-2", "eu-1", "bs-1")


def is_market_data(parts: list[str]) -> bool:
    return parts[:2] == ["v2", "stocks"] or parts[:2] == ["v1beta3", "crypto"]


class MarketData(SandboxState):
    """Latest trades, and the API keys every request is checked against."""

    def _authorized(self, headers: Any) -> bool:
        return (
            headers.get("APCA-API-KEY-ID") == self.key
            and headers.get("APCA-API-SECRET-KEY") == self.secret
        )

    def _route_market_data(
        self, method: str, parts: list[str], query: dict[str, str], headers: Any
    ) -> Reply:
        crypto = parts[0] == "v1beta3"
        given = any(headers.get(h) is not None for h in ("APCA-API-KEY-ID", "APCA-API-SECRET-KEY"))
        # Stock data needs the API keys; "The market data endpoints return HTTP 403 if ... the
        # request was not authenticated [or] the provided credentials were incorrect" (Market
        # Data FAQ), with the gateway's body {"message": "forbidden."} (quoted in
        # alpacahq/Alpaca-API#228). The crypto endpoints need none (the spec gives them
        # "security": []); keys that are sent must still be right, so a misconfigured
        # client is caught here (what Alpaca does with wrong keys there is undocumented).
        if (not crypto or given) and not self._authorized(headers):
            return Reply(403, {"message": "forbidden."})
        match parts:
            case ["v2", "stocks", "trades", "latest"]:
                handler = lambda: self._md_stock_latest(query)  # noqa: E731
            case ["v2", "stocks", symbol, "trades", "latest"]:
                handler = lambda: self._md_stock_latest_single(symbol, query)  # noqa: E731
            case ["v1beta3", "crypto", loc, "latest", "trades"]:
                handler = lambda: self._md_crypto_latest(loc, query)  # noqa: E731
            case _:
                return route_not_found()
        if method != "GET":
            return method_not_allowed()
        try:
            with self._lock:
                return Reply(200, handler())
        except SandboxError as error:
            return error_reply(error)

    @staticmethod
    def _md_symbols(query: dict[str, str]) -> list[str]:
        raw = query.get("symbols", "")
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not symbols:
            # "symbols" is required by the spec; the 400 body is the sandbox's own wording
            raise SandboxError(400, 40010001, "missing symbols")
        return symbols

    @staticmethod
    def _md_stock_params(query: dict[str, str]) -> str:
        feed = query.get("feed") or "iex"  # without a subscription Alpaca serves iex
        if feed not in STOCK_LATEST_FEEDS:
            raise SandboxError(400, 40010001, f"invalid feed: {feed}")
        currency = query.get("currency")
        if currency not in (None, "", "USD"):
            raise SandboxError(400, 40010001, "the sandbox has prices in USD only")
        return feed

    def _stock_trade(self, cfg: Symbol, feed: str) -> dict[str, Any]:
        # The spec's stock_trade: t, x, p, s (integer), c, i, z, all required.
        return {
            "t": iso(cfg.price_time or self._now()),
            "x": "V" if feed == "iex" else EXCHANGE_CODES.get(cfg.exchange, "Q"),
            "p": cfg.price,
            "s": 100,
            "c": ["@"],
            "i": cfg.trade_id,
            "z": TAPES.get(cfg.exchange, "B"),
        }

    def _quoted(self, symbol: str, asset_class: str) -> Symbol | None:
        cfg = self._symbols.get(symbol)
        if cfg is None or cfg.asset_class != asset_class or not cfg.latest_trade:
            return None
        return cfg

    def _md_stock_latest(self, query: dict[str, str]) -> dict[str, Any]:
        """``{"trades": {symbol: stock_trade}}``; a symbol without a trade is left out, as
        Alpaca's Go SDK expects (GetLatestTrade returns nil when the map lacks the symbol)."""
        feed = self._md_stock_params(query)
        trades = {}
        for symbol in self._md_symbols(query):
            cfg = self._quoted(symbol, "us_equity")
            if cfg is not None:
                trades[symbol] = self._stock_trade(cfg, feed)
        return {"trades": trades}

    def _md_stock_latest_single(self, symbol: str, query: dict[str, str]) -> dict[str, Any]:
        feed = self._md_stock_params(query)
        cfg = self._quoted(symbol.upper(), "us_equity")
        if cfg is None:
            # the spec's stock_latest_trades_resp_single requires a trade; with none to give
            # the sandbox answers 404 (its own wording)
            raise SandboxError(404, 40410000, f"no trade found for {symbol.upper()}")
        return {"symbol": cfg.symbol, "trade": self._stock_trade(cfg, feed)}

    def _md_crypto_latest(self, loc: str, query: dict[str, str]) -> dict[str, Any]:
        if loc not in CRYPTO_LOCATIONS:
            raise SandboxError(400, 40010001, f"invalid location: {loc}")
        trades = {}
        for symbol in self._md_symbols(query):
            cfg = self._quoted(symbol, "crypto")
            if cfg is not None:
                # The spec's crypto_trade: t, p, s (a number), i, tks (taker side B/S).
                trades[symbol] = {
                    "t": iso(cfg.price_time or self._now()),
                    "p": cfg.price,
                    "s": Decimal("0.01"),
                    "i": cfg.trade_id,
                    "tks": "B",
                }
        return {"trades": trades}
