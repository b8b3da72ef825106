"""Both books at a past instant, folded from the events alone: the live views are not touched.

An event belongs to the past of an instant when the ledger recorded it at or before
that instant (its timestamp): the books as the ledger knew them then. Events are read
in notification order and the scan stops a margin past the instant, because two
writers' clocks may disagree by a little about which of their events came first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ledger.application import Ledger
from projections.engine.memory_fold import MemoryFold
from projections.engine.runner import DEFAULT_PAGE_SIZE, read_page
from projections.model.fold import FoldState
from projections.model.positions import DiffRow, diff_rows, open_qty_by_symbol
from projections.model.records import BrokerAccountState
from projections.queries.views import PositionRow, position_rows

# How far past the instant to keep reading for events stamped before it but stored after a
# later-stamped one: far beyond the time between creating an event and committing it.
CLOCK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class BooksAt:
    instant: datetime
    position: int  # the last notification id folded (0: none)
    state: FoldState

    def local_book(self, *, include_flat: bool = False) -> list[PositionRow]:
        return position_rows(self.state.local.positions, include_flat)

    def broker_book(self, *, include_flat: bool = False) -> list[PositionRow]:
        return position_rows(self.state.broker.positions, include_flat)

    @property
    def broker_account(self) -> BrokerAccountState | None:
        return self.state.account

    def diff(self) -> list[DiffRow]:
        account = self.state.account
        pending = open_qty_by_symbol(
            account.open_orders if account else [],
            account.broker_time if account else None,
            self.state.orders_for_netting(),
        )
        return diff_rows(
            {s: p.qty for s, p in self.state.local.positions.items()},
            {s: p.qty for s, p in self.state.broker.positions.items()},
            pending,
        )


def books_at(
    ledger: Ledger, instant: datetime, zone: ZoneInfo, page_size: int = DEFAULT_PAGE_SIZE
) -> BooksAt:
    """Fold every event recorded at or before `instant` (an aware datetime)."""
    if instant.tzinfo is None:
        raise ValueError("the instant needs a time zone")
    fold = MemoryFold(zone, audit=False)
    horizon = instant + CLOCK_SLACK
    after, last = 0, 0
    while True:
        page = read_page(ledger, after, page_size, full=False)
        if not page:
            break
        for seq, event in page:
            stamp = event.timestamp
            if stamp > horizon:
                return BooksAt(instant, last, fold.settle())
            if stamp <= instant:
                fold.apply(seq, event)
                last = seq
        after = page[-1][0]
    return BooksAt(instant, last, fold.settle())
