"""Orders by status, counted in the orders view: `tradeledger_orders{status=...}` of
`commands run`'s /metrics.

    counts = OrderCounts(Views(ledger, timezone=settings.timezone))
    counts()  # {"filled": 120, "canceled": 3, ...}
"""

from __future__ import annotations

import threading

from projections.engine.tables import ORDERS
from projections.queries.views import Views


def orders_by_status(views: Views) -> dict[str, int]:
    """How many orders the orders view holds in each status, as of its position."""
    store = views.store
    with store.read() as tx:
        # One grouped count in the database: the view holds an order per row, and a long
        # history has hundreds of thousands of them.
        rows = tx.query(
            f'SELECT "status", COUNT(*) FROM {store.name(ORDERS.name)} GROUP BY "status"'
        )
    return {str(status): int(count) for status, count in rows}


class OrderCounts:
    """`orders_by_status` with the views caught up first, for a scrape: Prometheus asks
    every few seconds, and the count must follow the orders the service just recorded.
    One scrape at a time: two catch-ups in one process would only queue on the views'
    lock in the database."""

    def __init__(self, views: Views) -> None:
        self.views = views
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self._lock:
            self.views.catch_up()
            return orders_by_status(self.views)
