"""Both ways of finding the newest orders agree, page by page and filter by filter. Both
stores."""

from __future__ import annotations

import pytest

from commands.web.context import WebContext
from ledger.application import Ledger
from ledger.domain.values import OrderIntent
from projections.queries.transactions import (
    OrderQuery,
    PageOutOfRange,
    _where,
    find_orders,
    sort_newest,
    walk_newest,
)


def test_walking_the_log_and_sorting_in_the_database_agree(ledger: Ledger) -> None:
    for n in range(9):
        ledger.trade(side="buy" if n % 3 else "sell", symbol=("AAPL", "MSFT")[n % 2],
                     qty=str(n + 1), price="100", reason=f"trade {n}")
    # Requested and never sent: another status on the same pages.
    ledger.record_decision(source="test", rationale="held back",
                           intents=[OrderIntent(symbol="NVDA", side="buy", qty=2)])
    fresh = WebContext(ledger, timezone="America/New_York").fresh()
    views = fresh.views
    for query in (OrderQuery(), OrderQuery(status="filled"), OrderQuery(status="requested"),
                  OrderQuery(purpose="decision"), OrderQuery(purpose="compensation")):
        clauses, params = _where(views, query) or ([], [])
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        for skip in (0, 4, 8):
            walked = walk_newest(views, query, skip, 4)
            sorted_ = sort_newest(views, condition, params, skip, 4)
            assert [o.order_id for o in walked] == [o.order_id for o in sorted_], (query, skip)
    newest, total, pages = find_orders(views, OrderQuery(), 1, per_page=4)
    assert (total, pages) == (10, 3)
    assert newest[0].symbol == "NVDA" and newest[0].status == "requested"
    seqs = [o.requested_seq for o in find_orders(views, OrderQuery(), 2, per_page=4)[0]]
    assert seqs == sorted(seqs, reverse=True)
    with pytest.raises(PageOutOfRange, match=r"page 4 is past the last page \(3\)"):
        find_orders(views, OrderQuery(), 4, per_page=4)
