"""`commands reconciliations`: every reconciliation run, dry or not, newest first."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from commands.output import decimal_text, json_option, literal_console, print_json
from commands.session import Session
from projections.queries.reconciliations import DEFAULT_LIMIT, reconciliations_document


@click.command()
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True,
              type=click.IntRange(min=1, max=10_000), help="How many of the newest runs.")
@json_option
@click.pass_obj
def reconciliations(session: Session, limit: int, as_json: bool) -> None:
    """Show the newest reconciliation runs: each plan, its orders as they stand now, and
    how the run ended."""
    from projections import catch_up

    views = catch_up(session.ledger, timezone=session.settings.timezone)
    document = reconciliations_document(views, limit)
    if as_json:
        print_json(document)
        return
    show(document)


def _orders_text(orders: list[dict[str, Any]]) -> str:
    if not orders:
        return "none"
    return "; ".join(f"{o['side']} {decimal_text(o['qty'])} {o['symbol']}: {_status(o)}"
                     for o in orders)


def _status(order: dict[str, Any]) -> str:
    text = "OUTCOME UNKNOWN" if order["outcome_unknown"] else order["status"]
    settled = order.get("settled_by")
    if settled is not None:
        text += f" (settled by run {settled['run_id']}: {settled['how']})"
    return text


def show(document: dict[str, Any]) -> None:
    runs = document["runs"]
    if not runs:
        literal_console.print(
            "No reconciliation has run yet: `commands reconcile --dry-run` plans one."
        )
        return
    table = Table(title=f"Newest {len(runs)} reconciliation run(s)")
    for column in ("started (UTC)", "mode", "differences", "orders", "summary", "outcome"):
        table.add_column(column, overflow="fold")
    for run in runs:
        differing = [r for r in run["positions"] if r.get("delta")]
        summary = run["summary"]
        table.add_row(
            run["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            "dry run" if run["dry_run"] else "run",
            ", ".join(f"{r['symbol']} {decimal_text(r['delta'])}" for r in differing) or "none",
            _orders_text(run["orders"]),
            "" if summary is None else ", ".join(f"{k} {v}" for k, v in summary.items()),
            run["outcome"] + (f": {run['interrupted']}" if run["interrupted"] else ""),
        )
    literal_console.print(table)
