"""The fold as the view tables take it: each event placed in its trading day as it is
folded, and what the events changed handed over a batch at a time, to be written in one
transaction (`Changes`).

The fold itself (`projections.model.fold.FoldState`) knows nothing of tables; this keeps
what writing them needs: which orders changed, which are new rows, whether the account
moved, and the ids of the open orders a day's close lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ledger.domain.order_status import OPEN_STATUSES
from projections.engine.audit_index import AuditDay, AuditIndexer, closing_document
from projections.model.book import BookChanges
from projections.model.fold import FoldState
from projections.model.records import BrokerAccountState, OrderRecord


@dataclass(slots=True)
class Changes:
    """Everything a batch of events changed, ready to be written in one transaction."""

    position: int
    # The first event of the batch: an order requested at it or later has no row yet.
    since: int
    orders: list[OrderRecord]
    local: BookChanges
    broker: BookChanges
    account: BrokerAccountState | None
    days: list[AuditDay]

    def is_new(self, record: OrderRecord) -> bool:
        return record.requested_seq >= self.since


class TrackedFold:
    """A `FoldState`, its audit index (None: not kept) and what changed since last taken."""

    def __init__(
        self,
        state: FoldState,
        *,
        audit: AuditIndexer | None = None,
        open_order_ids: set[UUID] | None = None,
    ) -> None:
        self.state = state
        self.audit = audit
        # Ids of the orders open after the events folded so far, as of the last settle:
        # a day's close lists them, so an audit finds the orders open at a close without
        # searching the orders view.
        self.open_order_ids: set[UUID] = set() if open_order_ids is None else open_order_ids
        # `state.touched` before this index is settled into `open_order_ids`: a close
        # settles only what changed since the previous close.
        self._settled = len(state.touched)
        self._account = state.account  # as last handed over
        self._since: int | None = None

    @property
    def position(self) -> int:
        return self.state.position

    def fold(self, page: Sequence[tuple[int, Any]]) -> None:
        """Fold a page of (notification id, event), each placed in its day first: the
        close of a day an event ends is read before the event is applied."""
        if not page:
            return
        if self._since is None:
            self._since = page[0][0]
        apply = self.state.apply
        audit = self.audit
        if audit is None:
            for seq, event in page:
                apply(seq, event)
            return
        index, closing = audit.index, self.closing_document
        for seq, event in page:
            index(seq, event.timestamp, closing)
            apply(seq, event)

    def apply(self, seq: int, event: Any) -> None:
        """Fold one event (as `fold` does a page)."""
        self.fold(((seq, event),))

    def _settle(self) -> set[UUID]:
        """Bring `open_order_ids` up to date with the orders touched since it was last
        settled (every status change passes through `state.touched`)."""
        ids = self.open_order_ids
        touched = self.state.touched
        for record in touched[self._settled :]:
            if record.status in OPEN_STATUSES:
                ids.add(record.order_id)
            else:
                ids.discard(record.order_id)
        self._settled = len(touched)
        return ids

    def closing_document(self) -> str:
        return closing_document(self.state, self._settle())

    def take_changes(self) -> Changes:
        state = self.state
        self._settle()
        # Once per order, in the order they were first touched.
        orders = list({record.key: record for record in state.touched}.values())
        state.touched = []
        self._settled = 0
        account = state.account if state.account is not self._account else None
        self._account = state.account
        since = state.position + 1 if self._since is None else self._since
        self._since = None
        days = self.audit.take_changes(self.closing_document) if self.audit is not None else []
        return Changes(
            position=state.position,
            since=since,
            orders=orders,
            local=state.local.take_changes(),
            broker=state.broker.take_changes(),
            account=account,
            days=days,
        )

    def forget_orders_except(self, keep: Sequence[OrderRecord]) -> None:
        """Bound memory over a long history: orders come back from the view when needed."""
        self.state.orders = {record.order_id: record for record in keep}
