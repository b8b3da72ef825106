"""The books as a page shows them: both books side by side, their difference with its
cause, and their value.

The difference and its cause are what `commands reconcile --dry-run` would plan from:
the same facts (`ReconcileBooks.symbol_facts`) and the same rules (`delta_for`,
`likely_cause`), so the page and a reconciliation never tell two stories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ledger.domain.planning import SymbolFacts, delta_for, likely_cause
from projections.model.records import BrokerAccountState, OrderRecord
from projections.queries.explained import ExplainMemo
from projections.queries.reconcile_books import ReconcileBooks
from projections.queries.views import PositionRow, Views

ZERO = Decimal(0)
# The books page lists this many open orders, newest first; Transactions has them all.
OPEN_ORDERS_SHOWN = 50


class _ExplainingBooks(ReconcileBooks):
    """`ReconcileBooks` for a page that explains differences and plans nothing: the
    recent-fill window (a planning rule, read from the tail of the log) does not apply,
    and explanations are kept between requests (`ExplainMemo`)."""

    def __init__(self, views: Views, memo: ExplainMemo, *, kept_only: bool = False) -> None:
        super().__init__(views)
        self.memo = memo
        self.kept_only = kept_only
        # With `kept_only`: the differing symbols the memo holds no explanation for.
        self.unexplained: set[str] = set()

    def recent_broker_fills(self, now: datetime) -> dict[str, datetime]:
        return {}

    def _explain(self, fact: SymbolFacts) -> SymbolFacts:
        if self.kept_only:
            kept = self.memo.kept(fact)
            if kept is None:
                self.unexplained.add(fact.symbol)
                return fact
            return kept
        return self.memo.explain(fact, super()._explain)


@dataclass(frozen=True)
class Holding:
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realised_pnl: Decimal
    price: Decimal | None  # the broker's last price (else the last fill's); None: unknown
    value: Decimal | None


@dataclass(frozen=True)
class Difference:
    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    open_qty: Decimal  # netted: open orders that move the broker book but not the local one
    delta: Decimal  # what the broker still needs: local - broker - open
    cause: str | None
    in_flight: bool
    value: Decimal | None  # the delta at the last price
    # The cause is still being worked out (a quick reading while the explanations are
    # computed in the background): `cause` is None until then.
    explaining: bool = False

    @property
    def differs(self) -> bool:
        return bool(self.delta)


@dataclass(frozen=True)
class BookValue:
    """Cash plus positions at the broker's last prices. The ledger keeps no cash of its own,
    so both books count the broker account's cash: their values differ by exactly what the
    differing positions are worth."""

    cash: Decimal | None  # None before the first sync
    positions: Decimal
    unpriced: tuple[str, ...]  # held symbols without a price: left out of the value

    @property
    def total(self) -> Decimal | None:
        return None if self.cash is None else self.cash + self.positions


@dataclass(frozen=True)
class Books:
    position: int  # the views' position these were read at
    local: list[Holding]
    broker: list[Holding]
    account: BrokerAccountState | None
    differences: list[Difference]
    local_value: BookValue
    broker_value: BookValue
    open_orders: list[OrderRecord]  # the newest OPEN_ORDERS_SHOWN
    open_order_count: int
    # Differing symbols whose cause is still being worked out (`read_books(kept_only=True)`).
    explaining: tuple[str, ...] = ()

    @property
    def differing(self) -> list[Difference]:
        return [d for d in self.differences if d.differs]


def _holdings(rows: Sequence[PositionRow], prices: dict[str, Decimal]) -> list[Holding]:
    holdings = []
    for row in rows:
        price = prices.get(row.symbol)
        value = None if price is None else row.qty * price
        holdings.append(
            Holding(row.symbol, row.qty, row.avg_price, row.realised_pnl, price, value)
        )
    return holdings


def _value(holdings: Sequence[Holding], account: BrokerAccountState | None) -> BookValue:
    return BookValue(
        cash=None if account is None else account.cash,
        positions=sum((h.value for h in holdings if h.value is not None), ZERO),
        unpriced=tuple(h.symbol for h in holdings if h.value is None),
    )


def _difference(fact: SymbolFacts, explaining: bool = False) -> Difference:
    delta = delta_for(fact.local_qty, fact.broker_qty, fact.pending_qty)
    if explaining:
        # An unexplained fact would give a wrong cause: show none until it is worked out.
        return Difference(fact.symbol, fact.local_qty, fact.broker_qty, fact.pending_qty, delta,
                          None, fact.in_flight,
                          None if fact.last_price is None else delta * fact.last_price,
                          explaining=True)
    return Difference(
        symbol=fact.symbol,
        local_qty=fact.local_qty,
        broker_qty=fact.broker_qty,
        open_qty=fact.pending_qty,
        delta=delta,
        cause=likely_cause(fact, delta),
        in_flight=fact.in_flight,
        value=None if fact.last_price is None else delta * fact.last_price,
    )


def read_books(views: Views, position: int, now: datetime, memo: ExplainMemo, *,
               kept_only: bool = False) -> Books:
    """Both books and their difference; `views` must have caught up to `position`, and
    `memo` advanced to it.

    With `kept_only`, nothing is explained afresh: a differing symbol the memo holds no
    explanation for is listed with its quantities and `explaining` set, its cause left
    out. That reading is quick on any history; the page shows it while the full one is
    computed (`commands serve` listens before the first explanation of a long history)."""
    explaining = _ExplainingBooks(views, memo, kept_only=kept_only)
    facts = explaining.symbol_facts(now=now, recent_runs=[], since=None)
    pending = explaining.unexplained
    prices = {f.symbol: f.last_price for f in facts if f.last_price is not None}
    broker_book = views.broker_book()
    local = _holdings(views.local_book(), prices)
    broker = _holdings(broker_book.positions, prices)
    account = broker_book.account
    open_orders = views.orders(open_only=True)
    return Books(
        position=position,
        local=local,
        broker=broker,
        account=account,
        differences=[_difference(fact, fact.symbol in pending) for fact in facts],
        local_value=_value(local, account),
        broker_value=_value(broker, account),
        open_orders=open_orders[::-1][:OPEN_ORDERS_SHOWN],
        open_order_count=len(open_orders),
        explaining=tuple(sorted(pending)),
    )
