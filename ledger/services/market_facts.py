"""What the broker says of the symbols a plan would trade: their assets and prices.

Read only for the symbols that would otherwise get an order (a plan of thousands of held
symbols asks about the few that differ and pass the other rules), once per run."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.brokers.port import BrokerReadError, MarketReader
from ledger.domain.planning import OPTION, PlanRules, SymbolFacts, delta_for, skip_reason

log = logging.getLogger(__name__)


def with_market_facts(
    facts: list[SymbolFacts],
    market: MarketReader,
    positions: list[dict[str, Any]],
    rules: PlanRules,
    now: datetime,
) -> list[SymbolFacts]:
    """`facts` with the broker's asset and latest price filled in where a plan needs them.

    `positions`: the sync's, whose asset classes are known without asking (Alpaca's assets
    endpoint does not list option contracts)."""
    classes = {str(p["symbol"]): str(p.get("asset_class") or "") for p in positions}
    enriched: dict[str, SymbolFacts] = {}
    for fact in facts:
        delta = delta_for(fact.local_qty, fact.broker_qty, fact.pending_qty)
        if not delta:
            continue
        known = replace(fact, asset_class=classes.get(fact.symbol) or None)
        if skip_reason(known, delta, rules, now) is not None:
            enriched[fact.symbol] = known  # skipped whatever the asset: nothing to ask
            continue
        enriched[fact.symbol] = replace(known, **asset_fields(market, fact.symbol))
    unpriced = [f.symbol for f in enriched.values()
                if f.last_price is None and f.asset_problem is None
                and f.asset_class != OPTION]
    prices: dict[str, Decimal] = {}
    if unpriced:
        try:
            prices = market.latest_prices(unpriced)
        except BrokerReadError as error:
            # Each symbol without a price is skipped with the reason; the others go on.
            log.warning("the broker's latest prices could not be read: %s", error)
    return [
        replace(enriched[f.symbol], last_price=f.last_price or prices.get(f.symbol))
        if f.symbol in enriched else f
        for f in facts
    ]


def asset_fields(market: MarketReader, symbol: str) -> dict[str, Any]:
    try:
        asset = market.get_asset(symbol)
    except BrokerReadError as error:
        return {"asset_problem": f"its asset could not be read from the broker: {error}"}
    if asset is None:
        return {"asset_problem": (f"Alpaca does not know {symbol}: check the symbol, or take "
                                  f"the broker's word with `commands adopt {symbol}`")}
    return {
        "asset_class": asset.asset_class,
        "tradable": asset.tradable,
        "fractionable": asset.fractionable,
        "shortable": asset.shortable,
        "min_order_size": asset.min_order_size,
    }
