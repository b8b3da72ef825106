"""Alpaca's JSON for what the sandbox holds, as the trading API spec (2.0.1) shapes it:
account, positions, orders, assets, option contracts and the clock; and the control API's
own view of a symbol. Pure functions of the values they are given."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.model import OPTION_MULTIPLIER, Order, Position, Symbol
from sandbox.wire import ET, fmt, fmt_opt, iso, iso_et, iso_opt, money, ratio

MARGIN_MULTIPLIER = Decimal(2)


def account_json(
    *,
    account_id: str,
    account_number: str,
    flags: dict[str, Any],
    numbers: dict[str, Decimal],
    last_equity: Decimal,
    created_at: datetime,
    today: date,
) -> dict[str, Any]:
    """``numbers`` as `Account._account_numbers` computes them; ``today`` in New York."""
    n = numbers
    account = {
        "id": account_id,
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": account_number,
        "status": flags["status"],
        "crypto_status": flags["crypto_status"],
        "options_approved_level": 0,
        "options_trading_level": 0,
        "currency": "USD",
        "buying_power": money(n["buying_power"]),
        "regt_buying_power": money(n["regt"]),
        "daytrading_buying_power": "0",
        "effective_buying_power": money(n["buying_power"]),
        "non_marginable_buying_power": money(n["non_marginable"]),
        "options_buying_power": money(n["regt"] / 2),
        "bod_dtbp": "0",
        "cash": money(n["cash"]),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "portfolio_value": money(n["equity"]),
        "pattern_day_trader": flags["pattern_day_trader"],
        "trading_blocked": flags["trading_blocked"],
        "transfers_blocked": flags["transfers_blocked"],
        "account_blocked": flags["account_blocked"],
        "created_at": iso(created_at),
        "trade_suspended_by_user": flags["trade_suspended_by_user"],
        "multiplier": fmt(MARGIN_MULTIPLIER),
        "shorting_enabled": flags["shorting_enabled"],
        "equity": money(n["equity"]),
        "last_equity": money(last_equity),
        "long_market_value": money(n["long"]),
        "short_market_value": money(n["short"]),
        "position_market_value": money(n["long"] - n["short"]),
        "initial_margin": money(n["initial_margin"]),
        "maintenance_margin": money(n["maintenance_margin"]),
        "last_maintenance_margin": "0",
        "sma": money(n["equity"]),
        "daytrade_count": flags["daytrade_count"],
        "balance_asof": (today - timedelta(days=1)).isoformat(),
        "crypto_tier": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }
    for name in ("pattern_day_trader", "daytrade_count"):
        if account[name] is None:
            del account[name]  # as Alpaca's replies since 2026-07-06
    return account


def position_json(position: Position, cfg: Symbol, held: Decimal) -> dict[str, Any]:
    """``held``: what open orders on the closing side hold of the position."""
    qty, price, last = position.qty, cfg.price, cfg.lastday_price
    # prices stay per share; an option's values carry the contract multiplier
    market_value = qty * price * cfg.multiplier
    cost_basis = qty * position.avg_entry_price * cfg.multiplier
    unrealized = market_value - cost_basis
    intraday = (price - last) * qty * cfg.multiplier
    available = qty - held if qty > 0 else qty + held
    return {
        "asset_id": cfg.asset_id,  # "For options this represents the option contract ID"
        "symbol": cfg.position_symbol,
        "exchange": cfg.exchange,
        "asset_class": cfg.asset_class,
        "asset_marginable": cfg.marginable,
        "qty": fmt(qty),
        "avg_entry_price": money(position.avg_entry_price),
        "side": "long" if qty > 0 else "short",
        "market_value": money(market_value),
        "cost_basis": money(cost_basis),
        "unrealized_pl": money(unrealized),
        "unrealized_plpc": ratio(unrealized / abs(cost_basis)) if cost_basis else "0",
        "unrealized_intraday_pl": money(intraday),
        "unrealized_intraday_plpc": (
            ratio(intraday / abs(last * qty * cfg.multiplier)) if last else "0"
        ),
        "current_price": money(price),
        "lastday_price": money(last),
        "change_today": ratio((price - last) / last) if last else "0",
        "qty_available": fmt(available),
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "submitted_at": iso(order.created_at),
        "filled_at": iso_opt(order.filled_at),
        "expired_at": iso_opt(order.expired_at),
        "canceled_at": iso_opt(order.canceled_at),
        "failed_at": iso_opt(order.failed_at),
        "replaced_at": iso_opt(order.replaced_at),
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": order.asset_id,
        "symbol": order.symbol,
        "asset_class": order.asset_class,
        "notional": fmt_opt(order.notional),
        "qty": fmt_opt(order.qty),
        "filled_qty": fmt(order.filled_qty),
        "filled_avg_price": (
            None if order.filled_avg_price is None else money(order.filled_avg_price)
        ),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": order.position_intent,
        "time_in_force": order.time_in_force,
        "limit_price": fmt_opt(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": order.extended_hours,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
        "expires_at": iso_opt(order.expires_at),
    }


def asset_json(cfg: Symbol) -> dict[str, Any]:
    tradable = cfg.tradable and cfg.behavior != "not_tradable" and cfg.status == "active"
    asset: dict[str, Any] = {
        "id": cfg.asset_id,
        "class": cfg.asset_class,
        "exchange": cfg.exchange,
        "symbol": cfg.symbol,
        "name": cfg.name or cfg.symbol,
        "status": cfg.status,
        "tradable": tradable,
        "marginable": cfg.marginable,
    }
    if not cfg.is_crypto:
        asset["maintenance_margin_requirement"] = 30
        asset["margin_requirement_long"] = "30"
        asset["margin_requirement_short"] = "30"
    asset["shortable"] = cfg.shortable
    asset["easy_to_borrow"] = cfg.shortable
    asset["fractionable"] = cfg.fractionable
    increments = ("min_order_size", "min_trade_increment", "price_increment")
    if cfg.is_crypto:
        # The fields of the sample pair in Alpaca's crypto-trading docs.
        for name in increments:
            asset[name] = fmt_opt(getattr(cfg, name))
        return asset
    asset["attributes"] = []
    # increments a test set on a stock are served too (alpaca-py's Asset models them)
    for name in increments:
        value = getattr(cfg, name)
        if value is not None:
            asset[name] = fmt(value)
    return asset


def contract_json(cfg: Symbol, underlying_asset_id: str, today: date) -> dict[str, Any]:
    """An option contract in the spec's OptionContract shape; ``today`` in New York."""
    contract = cfg.contract
    assert contract is not None
    return {
        "id": cfg.asset_id,
        "symbol": cfg.symbol,
        "name": cfg.name,
        "status": cfg.status,
        "tradable": cfg.tradable and cfg.status == "active",
        "expiration_date": contract.expiration.isoformat(),
        "root_symbol": contract.root,
        "underlying_symbol": contract.root,
        "underlying_asset_id": underlying_asset_id,
        "type": contract.kind,
        "style": "american",  # US equity options are American-style
        "strike_price": fmt(contract.strike),
        "multiplier": fmt(OPTION_MULTIPLIER),
        "size": fmt(OPTION_MULTIPLIER),
        "close_price": fmt(cfg.lastday_price),
        "close_price_date": (today - timedelta(days=1)).isoformat(),
    }


def symbol_json(cfg: Symbol) -> dict[str, Any]:
    """A symbol's configuration, as the control API shows it."""
    return {
        "symbol": cfg.symbol,
        "asset_id": cfg.asset_id,
        "asset_class": cfg.asset_class,
        "price": fmt(cfg.price),
        "lastday_price": fmt(cfg.lastday_price),
        "behavior": cfg.behavior,
        "partial_fraction": fmt(cfg.partial_fraction),
        "tradable": cfg.tradable,
        "fractionable": cfg.fractionable,
        "shortable": cfg.shortable,
        "marginable": cfg.marginable,
        "status": cfg.status,
        "exchange": cfg.exchange,
        "name": cfg.name,
        "min_order_size": fmt_opt(cfg.min_order_size),
        "min_trade_increment": fmt_opt(cfg.min_trade_increment),
        "price_increment": fmt_opt(cfg.price_increment),
        "latest_trade": cfg.latest_trade,
    }


def clock_json(
    now: datetime, is_open: bool, next_open: datetime, next_close: datetime
) -> dict[str, Any]:
    return {
        "timestamp": iso_et(now),
        "is_open": is_open,
        "next_open": iso_et(next_open),
        "next_close": iso_et(next_close),
    }


def today_in_new_york(now: datetime) -> date:
    return now.astimezone(ET).date()
