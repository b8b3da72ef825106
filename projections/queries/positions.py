"""The documents of `positions --json`: one book, or both side by side. The CLI prints them
and the web serves them, from the live views or the books at a past instant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.model.positions import DiffRow
from projections.model.records import BrokerAccountState
from projections.queries.views import PositionRow


def book_document(book: str, moment: datetime, rows: list[PositionRow],
                  account: BrokerAccountState | None = None) -> dict[str, Any]:
    """One book ("local" or "broker"; the broker's with its account) as of `moment`."""
    document: dict[str, Any] = {
        "book": book,
        "as_of": moment,
        "positions": [
            {"symbol": row.symbol, "qty": row.qty, "avg_price": row.avg_price,
             "realised_pnl": row.realised_pnl}
            for row in rows
        ],
    }
    if book == "broker":
        document["account"] = None if account is None else account.document()
    return document


def diff_document(moment: datetime, rows: list[DiffRow]) -> dict[str, Any]:
    return {
        "book": "diff",
        "as_of": moment,
        "positions": [
            {"symbol": row.symbol, "local_qty": row.local_qty, "broker_qty": row.broker_qty,
             "open_qty": row.open_qty, "delta": row.delta}
            for row in rows
        ],
    }
