"""Explanations kept between requests are the ones a fresh reading gives, event after event.
Both stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from commands.web.context import WebContext
from ledger.application import Ledger
from ledger.domain import BrokerSnapshot, CorporateAction
from ledger.domain.corporate_action import corporate_action_id
from ledger.domain.planning import SymbolFacts
from projections.queries.books import Books, read_books
from projections.queries.explained import ExplainMemo
from projections.queries.reconcile_books import ReconcileBooks


def snapshot(positions: dict[str, str]) -> BrokerSnapshot:
    return BrokerSnapshot(
        broker="alpaca", paper=True, account_id="acct", cash=Decimal(1000),
        equity=Decimal(1000), buying_power=Decimal(1000),
        positions=[
            {"symbol": s, "qty": Decimal(q), "avg_entry_price": Decimal(100), "side": "long",
             "market_value": Decimal(q) * 101}
            for s, q in positions.items()
        ],
        open_orders=[], broker_time=datetime.now(UTC) - timedelta(seconds=1),
        request={"test": True},
    )


def split(symbol: str, ratio: str) -> CorporateAction:
    activity = f"split-{uuid.uuid4().hex[:8]}"
    return CorporateAction(
        id=corporate_action_id("alpaca", activity), broker="alpaca", activity_id=activity,
        kind="split", symbol=symbol, new_symbol=None, ratio=Decimal(ratio),
        effective_date=date.today() + timedelta(days=1), description="test split",
    )


def causes(books: Books) -> dict[str, str | None]:
    return {d.symbol: d.cause for d in books.differences}


def test_kept_explanations_equal_fresh_ones(ledger: Ledger,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    web = WebContext(ledger, timezone="America/New_York")
    explained: list[str] = []
    original = ReconcileBooks._explain

    def counted(self: ReconcileBooks, fact: SymbolFacts) -> SymbolFacts:
        explained.append(fact.symbol)
        return original(self, fact)

    monkeypatch.setattr(ReconcileBooks, "_explain", counted)
    steps: list[Callable[[], object]] = [
        lambda: ledger.trade(side="buy", symbol="AAPL", qty="10", price="100"),
        lambda: ledger.trade(side="buy", symbol="MSFT", qty="5", price="400"),
        lambda: ledger.save(snapshot({"AAPL": "10", "MSFT": "20"})),
        # A 4-for-1 split the broker book saw coming, the local one too: MSFT's cause moves.
        lambda: ledger.save(split("MSFT", "4")),
        lambda: ledger.trade(side="sell", symbol="AAPL", qty="4", price="110"),
        lambda: ledger.save(snapshot({"AAPL": "3"})),
        lambda: ledger.trade(side="buy", symbol="NVDA", qty="1", price="130"),
    ]
    seen = []
    for step in steps:
        step()
        fresh = web.fresh()
        now = datetime.now(UTC)
        explained.clear()
        kept = read_books(fresh.views, fresh.position, now, web.explained)
        computed = set(explained)
        again = read_books(fresh.views, fresh.position, now, ExplainMemo())
        assert kept == again
        seen.append(causes(kept))
    assert seen[0] == {"AAPL": "a local decision the broker never executed "
                               "(filled by the paper broker)"}
    assert seen[-1]["NVDA"] is not None and seen[-1]["MSFT"] is not None
    # The last step touched NVDA alone: AAPL and MSFT were explained from memory.
    assert computed == {"NVDA"}
