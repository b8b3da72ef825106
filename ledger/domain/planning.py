"""The rules of a reconciliation plan, as small functions over plain values.

Nothing here reads a store or calls a broker: the caller gathers the facts of each
symbol, these functions decide what to send and why, and a test can check every rule
with a handful of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CAUSE_LOCAL_NOT_EXECUTED = "a local decision the broker never executed"
CAUSE_EXTERNAL_TRADE = "a broker trade the ledger did not originate"
CAUSE_CORPORATE_ACTION = "an unrecorded corporate action"
CAUSE_UNKNOWN = "unknown"

# Whole-number split and reverse-split ratios seen in practice; a broker position that is
# exactly one of these multiples of the local one is far more likely a split than drift.
SPLIT_RATIOS = frozenset(Decimal(r) for r in (2, 3, 4, 5, 8, 10, 15, 20, 25, 30, 40, 50, 100))

ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolFacts:
    """What the books and the order history say about one symbol."""

    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    # Signed remaining qty of open orders that will move the broker book but not the
    # local book (compensating orders already requested, orders the ledger did not make).
    pending_qty: Decimal = ZERO
    # An order for the symbol is live at the broker: its fills would race our delta.
    in_flight: bool = False
    last_broker_fill_at: datetime | None = None
    # Signed net qty of decision fills made by the paper broker (never reached the broker).
    paper_decision_qty: Decimal = ZERO
    # Signed net qty of broker fills of orders the ledger did not originate.
    external_qty: Decimal = ZERO
    has_corporate_action: bool = False
    last_local_trade_day: date | None = None
    last_price: Decimal | None = None
    # How many of the latest runs in a row had a compensating order for this symbol fill.
    consecutive_compensations: int = 0
    # How many of the latest runs in a row had their compensating order for it fail, and
    # the broker's reason the last time.
    consecutive_failures: int = 0
    last_failure: str | None = None
    # Client order ids of orders for this symbol whose outcome at the broker is unknown.
    unknown_orders: tuple[str, ...] = ()
    # The asset as the broker describes it (None: not read). `asset_problem` says why it
    # could not be traded at all (the broker does not know the symbol, say).
    asset_class: str | None = None
    tradable: bool = True
    fractionable: bool = True
    shortable: bool = True
    min_order_size: Decimal | None = None
    asset_problem: str | None = None
    # Sides of the broker fills of this symbol today (a plan against them day-trades).
    broker_sides_today: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlanRules:
    since: date | None = None
    recent_fill_seconds: Decimal = Decimal(30)
    oscillation_runs: int = 3
    max_order_notional: Decimal | None = None
    max_run_notional: Decimal | None = None
    extended_hours: bool = False
    extended_hours_slippage: Decimal = Decimal("0.005")
    # Also trade away differences the ledger did not originate (--include-external).
    include_external: bool = False


@dataclass(frozen=True)
class PlannedOrder:
    side: str
    qty: Decimal
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    extended_hours: bool


@dataclass(frozen=True)
class PlanRow:
    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    open_qty: Decimal
    delta: Decimal
    reason: str | None
    order: PlannedOrder | None = None
    skip_reason: str | None = None
    notional: Decimal | None = field(default=None)
    # The broker's price the order's notional was reckoned at.
    price: Decimal | None = None
    # Part of the difference this row leaves alone (a non-fractionable asset's fraction,
    # what the ledger's own decisions do not explain), and why.
    remainder: Decimal = ZERO
    remainder_reason: str | None = None

    @property
    def status(self) -> str:
        if self.order is not None:
            return "planned"
        return "skipped" if self.skip_reason else "in_sync"


def delta_for(local_qty: Decimal, broker_qty: Decimal, pending_qty: Decimal) -> Decimal:
    """What the broker must still trade to hold what the local book holds."""
    return local_qty - broker_qty - pending_qty


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def looks_like_split(local_qty: Decimal, broker_qty: Decimal) -> Decimal | None:
    """The ratio between the books, when it is a typical split or reverse-split ratio."""
    if local_qty == 0 or broker_qty == 0 or _sign(local_qty) != _sign(broker_qty):
        return None
    bigger, smaller = sorted((abs(local_qty), abs(broker_qty)), reverse=True)
    ratio = bigger / smaller
    return ratio if ratio in SPLIT_RATIOS else None


def likely_cause(facts: SymbolFacts, delta: Decimal) -> str | None:
    """Every difference carries its likely cause (docs/design.md, "Explained differences")."""
    if delta == 0:
        return None
    ratio = None if facts.has_corporate_action else looks_like_split(facts.local_qty,
                                                                      facts.broker_qty)
    if ratio is not None:
        return f"{CAUSE_CORPORATE_ACTION} (one book is {ratio:f}x the other)"
    if facts.paper_decision_qty and _sign(facts.paper_decision_qty) == _sign(delta):
        return f"{CAUSE_LOCAL_NOT_EXECUTED} (filled by the paper broker)"
    if facts.external_qty and _sign(facts.external_qty) == -_sign(delta):
        return CAUSE_EXTERNAL_TRADE
    return CAUSE_UNKNOWN


# Asset classes the ledger compensates; any other (options above all) is shown and skipped.
EQUITY, CRYPTO, OPTION = "us_equity", "crypto", "us_option"
TRADED_CLASSES = frozenset({EQUITY, CRYPTO})
# Alpaca's smallest fractional equity order is $1 of notional ("Fractional Trading": orders
# as small as $1); a smaller difference is dust, never sent.
MIN_FRACTIONAL_NOTIONAL = Decimal(1)


def is_own(facts: SymbolFacts, delta: Decimal) -> bool:
    """Whether the ledger's own decisions explain the difference: a local decision the
    broker never executed (filled by the paper broker). Positions opened by hand, by another
    program or before the ledger existed, and differences of unknown cause, are not."""
    return (likely_cause(facts, delta) or "").startswith(CAUSE_LOCAL_NOT_EXECUTED)


def _asset_reason(facts: SymbolFacts, delta: Decimal) -> str | None:
    if facts.asset_problem:
        return facts.asset_problem
    if facts.asset_class == OPTION:
        return "an option position: the ledger does not trade options (shown, never compensated)"
    if facts.asset_class is not None and facts.asset_class not in TRADED_CLASSES:
        return f"asset class {facts.asset_class}: the ledger does not trade it"
    if not facts.tradable:
        return f"Alpaca says {facts.symbol} is not tradable now"
    if delta < 0 and facts.broker_qty + delta < 0 and (
        facts.asset_class == CRYPTO or not facts.shortable
    ):
        return f"{facts.symbol} cannot be sold short at Alpaca"
    return None


def skip_reason(facts: SymbolFacts, delta: Decimal, rules: PlanRules, now: datetime) -> str | None:
    """Why this symbol must not be compensated now, or None when it may be."""
    if rules.since is not None and (
        facts.last_local_trade_day is None or facts.last_local_trade_day < rules.since
    ):
        return f"not traded by the local book since {rules.since.isoformat()} (--since)"
    asset = _asset_reason(facts, delta)
    if asset is not None:
        return asset
    if facts.unknown_orders:
        return (
            f"order {', '.join(facts.unknown_orders)} is of unknown outcome at the broker: "
            "the next run settles it by its client order id before this symbol is planned again"
        )
    if facts.in_flight:
        return "an order for this symbol is in flight at the broker"
    if facts.last_broker_fill_at is not None:
        age = Decimal(str((now - facts.last_broker_fill_at).total_seconds()))
        if age < rules.recent_fill_seconds:
            return (
                f"broker fill {age.quantize(Decimal(1))}s ago: Alpaca's positions can lag its "
                f"fills, wait {rules.recent_fill_seconds:f}s"
            )
    if facts.consecutive_compensations >= rules.oscillation_runs:
        return (
            f"oscillating: compensated in each of the last {rules.oscillation_runs} runs, "
            "each order filled; needs a person to look"
        )
    if facts.consecutive_failures >= rules.oscillation_runs:
        return (
            f"the last {rules.oscillation_runs} runs' orders for {facts.symbol} all failed: "
            f"{facts.last_failure or 'refused by the broker'}; needs a person to look"
        )
    if not rules.include_external and not is_own(facts, delta):
        cause = likely_cause(facts, delta)
        return (
            f"not the ledger's own difference ({cause}): `commands adopt {facts.symbol} "
            "--reason TEXT` takes the broker's quantity into the local book, `commands "
            "reconcile --include-external` trades it away"
        )
    if delta < 0 and facts.broker_qty + delta < 0 and facts.local_qty >= 0:
        return "would sell short at the broker while the local book is not short"
    return None


def order_qty(facts: SymbolFacts, delta: Decimal, rules: PlanRules) -> tuple[Decimal, str | None]:
    """How much of the difference one order may carry, and why the rest is left alone."""
    wanted = abs(delta)
    why = None
    if not rules.include_external and abs(facts.paper_decision_qty) < wanted:
        # Only what the ledger's own decisions left unexecuted is the ledger's to send.
        wanted, why = abs(facts.paper_decision_qty), "not explained by the ledger's decisions"
    if facts.asset_class != CRYPTO and not facts.fractionable:
        whole = wanted.to_integral_value(rounding=ROUND_DOWN)
        if whole != wanted:
            wanted, why = whole, f"{facts.symbol} is not fractionable: whole shares only"
    if facts.min_order_size is not None and wanted < facts.min_order_size:
        wanted, why = ZERO, f"below the broker's minimum order of {facts.min_order_size:f} (dust)"
    return wanted, why


def _dust(facts: SymbolFacts, qty: Decimal) -> str | None:
    """A fractional equity order below Alpaca's $1 minimum."""
    if facts.asset_class == CRYPTO or qty == qty.to_integral_value() or facts.last_price is None:
        return None
    if qty * facts.last_price < MIN_FRACTIONAL_NOTIONAL:
        return (f"{qty:f} is dust: below Alpaca's smallest fractional order "
                f"(${MIN_FRACTIONAL_NOTIONAL:f})")
    return None


def limit_price_for(side: str, last_price: Decimal, slippage: Decimal) -> Decimal:
    """Extended hours take only limit orders: cross the last price by the slippage."""
    factor = Decimal(1) + slippage if side == "buy" else Decimal(1) - slippage
    # Alpaca takes 2 decimals at or above $1 and 4 below.
    step = Decimal("0.01") if last_price >= 1 else Decimal("0.0001")
    return (last_price * factor).quantize(step, rounding=ROUND_HALF_UP)


def plan(facts: list[SymbolFacts], rules: PlanRules, now: datetime) -> list[PlanRow]:
    """One row per symbol, in symbol order; at most one order per symbol.

    Every order is priced at the broker's price (`last_price`: the position's current
    price or the latest trade), so the caps hold whatever the local book recorded; with no
    broker price nothing is sent for the symbol."""
    rows: list[PlanRow] = []
    run_notional = ZERO
    for fact in sorted(facts, key=lambda f: f.symbol):
        delta = delta_for(fact.local_qty, fact.broker_qty, fact.pending_qty)
        row = PlanRow(
            symbol=fact.symbol,
            local_qty=fact.local_qty,
            broker_qty=fact.broker_qty,
            open_qty=fact.pending_qty,
            delta=delta,
            reason=likely_cause(fact, delta),
            price=fact.last_price,
        )
        if delta == 0:
            rows.append(row)
            continue
        reason = skip_reason(fact, delta, rules, now)
        qty, why_less = order_qty(fact, delta, rules)
        if reason is None and qty == 0:
            reason = why_less
        if reason is None and fact.last_price is None:
            reason = ("no broker price for this symbol (no position, no latest trade): the "
                      "order's notional cannot be checked, so nothing is sent")
        if reason is None:
            reason = _dust(fact, qty)
        notional = None if fact.last_price is None else qty * fact.last_price
        if reason is None and notional is not None:
            if rules.max_order_notional is not None and notional > rules.max_order_notional:
                reason = (
                    f"order notional {notional:.2f} at the broker's price "
                    f"{fact.last_price:f} is above the per-order cap "
                    f"{rules.max_order_notional:f}"
                )
            elif (
                rules.max_run_notional is not None
                and run_notional + notional > rules.max_run_notional
            ):
                reason = (
                    f"run notional would reach {run_notional + notional:.2f}, above the "
                    f"per-run cap {rules.max_run_notional:f}"
                )
        if reason is not None:
            rows.append(replace(row, skip_reason=reason, notional=notional))
            continue
        assert fact.last_price is not None
        side = "buy" if delta > 0 else "sell"
        if fact.asset_class == CRYPTO:
            # Alpaca takes crypto orders as gtc or ioc only, around the clock.
            order = PlannedOrder(side, qty, "market", "gtc", None, False)
        elif rules.extended_hours:
            order = PlannedOrder(side, qty, "limit", "day",
                                 limit_price_for(side, fact.last_price,
                                                 rules.extended_hours_slippage), True)
        else:
            order = PlannedOrder(side, qty, "market", "day", None, False)
        run_notional += notional or ZERO
        rest = abs(delta) - qty
        rows.append(replace(row, order=order, notional=notional,
                            remainder=rest if delta > 0 else -rest,
                            remainder_reason=why_less if rest else None))
    return rows


# FINRA's pattern day trader rule: below this equity a flagged account may not day-trade.
PDT_MINIMUM_EQUITY = Decimal(25000)
ACTIVE = "ACTIVE"


def account_refusal(
    *, status: str, account_blocked: bool, trading_blocked: bool, trade_suspended_by_user: bool
) -> str | None:
    """Why the broker account cannot take orders now, or None when it can."""
    if account_blocked:
        return "the Alpaca account is blocked (account_blocked): see Alpaca's dashboard"
    if trading_blocked:
        return "trading is blocked on the Alpaca account (trading_blocked): see Alpaca's dashboard"
    if trade_suspended_by_user:
        return ("trading is suspended on the Alpaca account by its owner "
                "(trade_suspended_by_user): lift it in Alpaca's dashboard")
    if status.upper() != ACTIVE:
        return f"the Alpaca account's status is {status or 'empty'}, not ACTIVE: it cannot trade"
    return None


def day_trade_refusal(
    rows: list[PlanRow], facts: list[SymbolFacts], *, pattern_day_trader: bool, equity: Decimal
) -> str | None:
    """A plan that would day-trade (trade against a broker fill of the same day) on an
    account flagged as a pattern day trader below the equity minimum."""
    if not pattern_day_trader or equity >= PDT_MINIMUM_EQUITY:
        return None
    sides = {f.symbol: f.broker_sides_today for f in facts}
    day_trades = sorted(
        row.symbol for row in rows
        if row.order is not None
        and ({"buy", "sell"} - {row.order.side}) & sides.get(row.symbol, frozenset())
    )
    if not day_trades:
        return None
    return (
        f"the plan would day-trade {', '.join(day_trades)} on an account flagged as a pattern "
        f"day trader with equity {equity:f}, below the {PDT_MINIMUM_EQUITY:f} minimum"
    )
