"""Every reconciliation run, dry or not: what it started from, what it planned, how it ended,
and what became of each compensating order since.

    document = reconciliations_document(views, limit=20)   # plain values: Decimal, datetime
    print_json(document)                                    # commands.output: decimal strings

`commands reconciliations --json` and the web page's JSON endpoint print this one document,
so the two agree by construction. The plan rows and orders are as the run stored them; an
order's status, fills and broker ids come from the orders view, so a run from last week
shows whether its order filled after the run ended.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger.domain import Reconciliation
from ledger.domain.order_status import FAILED_STATUSES, OUTCOME_UNKNOWN
from projections.model.records import OrderRecord
from projections.queries.views import Views

DEFAULT_LIMIT = 20

# A dry run's orders were never requested: they keep the status `reconcile --json` gave them.
DRY_RUN_STATUS = "planned"
# A run that stored its plan but never its completion (it crashed, or still runs).
INCOMPLETE = "incomplete"
# A run's orders are stored with its plan, in one save: one missing from the view is
# "unknown" (the views lag, or the store was damaged), never silently dropped.
MISSING_STATUS = "unknown"


def _order_id(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def order_document(planned: dict[str, Any], record: OrderRecord | None,
                   dry_run: bool, settled_by: dict[str, Any] | None = None) -> dict[str, Any]:
    """One compensating order: as planned, then as the orders view holds it now, and the
    later run that settled it if it was left unsettled (`settled_by`)."""
    live = record.status if record is not None else MISSING_STATUS
    status = DRY_RUN_STATUS if dry_run else live
    return {
        "symbol": planned.get("symbol"),
        "side": planned.get("side"),
        "qty": planned.get("qty"),
        "type": planned.get("type"),
        "limit_price": planned.get("limit_price"),
        "client_order_id": planned.get("client_order_id"),
        "order_id": planned.get("order_id"),
        "status": status,
        "filled_qty": None if record is None else record.filled_qty,
        "avg_fill_price": None if record is None else record.avg_fill_price,
        "broker": None if record is None else record.broker,
        "broker_order_id": None if record is None else record.broker_order_id,
        "error": None if record is None else record.error,
        # Sent, and no answer says whether the broker has it: the next run settles it.
        "outcome_unknown": status == OUTCOME_UNKNOWN,
        "settled_by": None if settled_by is None else {
            "run_id": settled_by["run_id"],
            "status": settled_by["status"],
            "how": settled_by["how"],
        },
    }


def outcome(run: Reconciliation, orders: list[dict[str, Any]]) -> str:
    """One word for the run: what a person scanning the list needs first."""
    if not run.completed:
        return INCOMPLETE
    if run.dry_run:
        return "dry_run"
    if getattr(run, "interrupted", None):
        return "interrupted"
    if any(o["status"] in FAILED_STATUSES | {MISSING_STATUS, OUTCOME_UNKNOWN} for o in orders):
        return "attention"
    if not orders:
        # Differences it left alone (in flight, above a cap, ...) are no agreement.
        return "skipped" if any(r.get("status") == "skipped" for r in run.rows) else "in_sync"
    return "submitted"


def run_document(views: Views, run: Reconciliation,
                 settlements: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`settlements`: client order id -> what a later run made of it (`settlements_of`)."""
    orders = []
    for planned in run.orders:
        order_id = _order_id(planned.get("order_id"))
        record = None if run.dry_run or order_id is None else views.order(order_id)
        settled_by = (settlements or {}).get(str(planned.get("client_order_id")))
        document = order_document(planned, record, run.dry_run, settled_by)
        if record is None and getattr(run, "interrupted", None):
            document["status"] = "not_sent"  # stopped before its intent was stored
        orders.append(document)
    return {
        "run_id": run.id,
        "started_at": run.created_on,
        "ended_at": run.modified_on if run.completed else None,
        "dry_run": run.dry_run,
        "broker": run.broker,
        "paper": run.paper,
        "sync_id": run.sync_id,
        "filters": run.filters,
        "market": run.market,
        "outcome": outcome(run, orders),
        # The plan rows as stored: local, broker, open qty, delta, cause, status per symbol.
        "positions": list(run.rows),
        "orders": orders,
        "summary": dict(run.counts) if run.completed else None,
        "interrupted": getattr(run, "interrupted", None),
        # Orders earlier runs (or trades) left unsettled, and what this run made of them.
        "settled": list(getattr(run, "settled", None) or []),
    }


def settlements_of(runs: list[Reconciliation]) -> dict[str, dict[str, Any]]:
    """Client order id -> the newest run that settled it, and how."""
    found: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r.created_on):
        for item in getattr(run, "settled", None) or []:
            found[str(item.get("client_order_id"))] = {
                "run_id": run.id, "status": item.get("status"), "how": item.get("how"),
            }
    return found


def reconciliations_document(views: Views, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The newest `limit` runs, newest first. `views` must have caught up with the events."""
    runs = views.ledger.recent_reconciliations(limit, include_dry_runs=True)
    # A run that settles another's order is always newer, so it is listed whenever the
    # order's own run is (save at the list's oldest edge).
    settlements = settlements_of(runs)
    return {
        "limit": limit,
        "count": len(runs),
        "runs": [run_document(views, run, settlements) for run in runs],
    }
