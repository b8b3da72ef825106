"""A drift: a window in which the two books disagreed for longer than the safety envelope.

The watchdog of `commands run` records one when a difference outlives
LEDGER_DRIFT_ALERT_SECONDS and ends it when the books agree again, so the audit and the
web page can show when the books were apart, by how much and why. One stream per drift.

Which differences count is decided here from the facts reconcile plans with
(`ledger.domain.planning`), never by rules of its own: the same netting of open orders,
the same delta, the same cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.planning import PlanRow, SymbolFacts, is_own

# The two causes a person acts on differently: `commands reconcile` sends only what the
# ledger itself originated; an external difference needs `commands adopt` or
# `reconcile --include-external`.
LEDGER_ORIGINATED = "ledger-originated"
EXTERNAL = "external"


class Drift(Aggregate):
    @event("Began")
    def __init__(
        self, *, id: UUID, began_at: datetime, symbols: list[dict[str, str]]
    ) -> None:
        """`symbols`: one dict per symbol, every value text (symbol, local_qty, broker_qty,
        open_qty, delta, cause, since): exact decimals, and nothing a reader must decode."""
        self.began_at = began_at
        self.symbols = symbols
        self.ended_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def end(self, ended_at: datetime) -> None:
        """The books agree again. Ending an ended drift records nothing."""
        if self.ended_at is None:
            self._ended(ended_at=ended_at)

    @event("Ended")
    def _ended(self, ended_at: datetime) -> None:
        self.ended_at = ended_at


@dataclass(frozen=True)
class Difference:
    """One symbol whose books disagree now, beyond what the safety envelope excuses."""

    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    open_qty: Decimal
    delta: Decimal
    cause: str  # LEDGER_ORIGINATED or EXTERNAL
    reason: str  # the planning's likely cause, in words


def excused(fact: SymbolFacts, recent_fill_seconds: Decimal, now: datetime) -> str | None:
    """Why a difference is not (yet) drift: what reconcile waits for before it plans.

    An order live at the broker or of unknown outcome races the books, and Alpaca's
    positions lag its fills for a while (`planning.skip_reason` waits the same time)."""
    if fact.unknown_orders:
        return "an order of unknown outcome"
    if fact.in_flight:
        return "an order in flight at the broker"
    if fact.last_broker_fill_at is not None:
        age = Decimal(str((now - fact.last_broker_fill_at).total_seconds()))
        if age < recent_fill_seconds:
            return "a recent broker fill"
    return None


def differences(
    rows: list[PlanRow], facts: list[SymbolFacts], recent_fill_seconds: Decimal,
    now: datetime,
) -> list[Difference]:
    """The symbols of a (dry) plan whose books differ outside the safety envelope.

    `rows` come from `planning.plan` over `facts`: the delta there has the open orders
    netted out and corporate actions applied to both books already."""
    by_symbol = {fact.symbol: fact for fact in facts}
    found = []
    for row in rows:
        fact = by_symbol.get(row.symbol)
        if not row.delta or fact is None or excused(fact, recent_fill_seconds, now):
            continue
        found.append(Difference(
            symbol=row.symbol,
            local_qty=row.local_qty,
            broker_qty=row.broker_qty,
            open_qty=row.open_qty,
            delta=row.delta,
            cause=LEDGER_ORIGINATED if is_own(fact, row.delta) else EXTERNAL,
            reason=row.reason or "unknown",
        ))
    return found
