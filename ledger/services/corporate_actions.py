"""Corporate actions from the broker's non-trade activities: the legs Alpaca books
(shares out, shares in) paired into one action each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from ledger.brokers.port import BrokerActivity
from ledger.services.sync_reads import BUSTED

CORPORATE_ACTION_KINDS = {
    "SPLIT": "split",
    "NC": "symbol_change",
    "MA": "merger",
    "SPIN": "spinoff",
    "REORG": "reorganization",
}
# Booked by Alpaca as two legs (shares out, shares in): one leg alone is not the whole story.
TWO_LEGGED = frozenset({"SPLIT", "NC"})


@dataclass(frozen=True)
class CorporateActionFacts:
    key: str  # the broker activity id the action is recorded under
    kind: str
    symbol: str
    new_symbol: str | None
    ratio: Decimal
    effective_date: date | None
    description: str
    legs: tuple[str, ...]


def corporate_actions(
    activities: Iterable[BrokerActivity],
) -> tuple[list[CorporateActionFacts], list[BrokerActivity]]:
    """Pair the legs Alpaca books (shares out, shares in) into one action each.

    Returns the complete actions and the activities of incomplete ones, which wait for
    their other leg (the next sync reads them again).
    """
    groups: dict[str, list[BrokerActivity]] = defaultdict(list)
    for activity in activities:
        if activity.activity_type not in CORPORATE_ACTION_KINDS:
            continue
        if activity.status in BUSTED:
            continue
        groups[activity.group_id or activity.activity_id].append(activity)
    complete: list[CorporateActionFacts] = []
    waiting: list[BrokerActivity] = []
    for legs in groups.values():
        legs.sort(key=lambda a: a.activity_id)
        facts = _action_from_legs(legs)
        if facts is None:
            waiting.extend(legs)
        else:
            complete.append(facts)
    complete.sort(key=lambda f: f.key)
    return complete, waiting


def _action_from_legs(legs: list[BrokerActivity]) -> CorporateActionFacts | None:
    first = legs[0]
    kind = first.activity_type
    out = [a for a in legs if a.qty is not None and a.qty < 0 and a.symbol]
    into = [a for a in legs if a.qty is not None and a.qty > 0 and a.symbol]
    if kind in TWO_LEGGED and (len(out) != 1 or len(into) != 1):
        return None
    if out and into:
        old, new = out[0], into[0]
        assert old.qty is not None and new.qty is not None and old.symbol and new.symbol
        symbol = old.symbol
        new_symbol = new.symbol if new.symbol != old.symbol else None
        ratio = new.qty / -old.qty
    elif out:
        # Shares left for cash or nothing (a cash merger, a delisting).
        symbol, new_symbol, ratio = str(out[0].symbol), None, Decimal(0)
    elif into:
        # Shares arrived with no shares leaving (a spin-off): the qty is in the description.
        symbol, new_symbol, ratio = str(into[0].symbol), None, Decimal(1)
    else:
        return None
    description = first.description or f"{kind} {symbol}"
    return CorporateActionFacts(
        key=first.activity_id,
        kind=CORPORATE_ACTION_KINDS[kind],
        symbol=symbol,
        new_symbol=new_symbol,
        ratio=ratio,
        effective_date=first.on,
        description=description,
        legs=tuple(a.activity_id for a in legs),
    )


def activity_time(activity: BrokerActivity) -> datetime:
    if activity.created_at is not None:
        return activity.created_at
    if activity.on is not None:
        return datetime(activity.on.year, activity.on.month, activity.on.day, tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)

