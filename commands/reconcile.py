"""`commands reconcile`: replay both books, diff them, route compensating orders."""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from commands.errors import EXIT_ATTENTION, CommandError
from commands.interrupts import stop_on_signals
from commands.output import decimal_text, json_option, literal_console, price_text, print_json
from commands.session import Session
from commands.sync import sync_failure
from ledger.brokers.port import BrokerReadError
from ledger.domain.values import InvalidInput, parse_symbols
from ledger.services.reconcile_records import ReconcileResult
from ledger.services.reconcile_refusals import LiveRunUnconfirmed
from ledger.services.reconciling import Reconciler, ReconcileRequest
from projections.queries.reconcile_books import ReconcileBooks


def parse_day(text: str | None, option: str, zone: ZoneInfo) -> date | None:
    """A trading day; "the future" is judged in the ledger's time zone, not the machine's."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date: use YYYY-MM-DD") from None
    if day > datetime.now(zone).date():
        raise CommandError(f"{option} {text} is in the future")
    if day.year < 1970:
        # Nothing in a ledger is that old: most likely a typo in the year.
        raise CommandError(f"{option} {text} is before 1970: check the year")
    return day


def symbols_option(text: str | None) -> tuple[str, ...]:
    try:
        return parse_symbols(text)
    except InvalidInput as error:
        raise CommandError(f"--symbols: {error}") from None


@click.command()
@click.option("--dry-run", is_flag=True, help="Plan and show; send nothing to the broker.")
@click.option("--since", help="Compensate only symbols the local book traded on or after "
              "this trading day (YYYY-MM-DD); other differences are shown as skipped.")
@click.option("--symbols", help="Only these symbols, comma-separated (AAPL,MSFT).")
@click.option("--extended-hours", is_flag=True,
              help="Place limit orders with extended_hours at the last price plus or minus "
              "RECONCILE_EXTENDED_HOURS_SLIPPAGE (Alpaca takes only limit orders then).")
@click.option("--include-external", is_flag=True,
              help="Also trade away differences the ledger did not originate (positions "
              "opened by hand or held before the ledger; causes unknown). Without it they "
              "are shown and skipped: `commands adopt` takes them into the local book.")
@click.option("--yes", is_flag=True, help="Confirm sending orders to a live account "
              "(ALPACA_PAPER_MODE=false).")
@json_option
@click.pass_obj
def reconcile(session: Session, dry_run: bool, since: str | None, symbols: str | None,
              extended_hours: bool, include_external: bool, yes: bool, as_json: bool) -> None:
    """Compare the local book with the broker book and send one compensating order per
    symbol whose difference the ledger's own decisions explain, through the broker router.

    Syncs with the broker first. Safe to run at any time, any number of times: orders
    still open at the broker, and compensating orders already requested, are netted out;
    an order whose answer was lost is settled by its client order id, never sent under a
    new one. Positions the ledger never made are shown and left alone unless
    --include-external (or `commands adopt` takes them into the local book).
    """
    request = ReconcileRequest(
        dry_run=dry_run,
        since=parse_day(since, "--since", session.settings.zone),
        symbols=symbols_option(symbols),
        extended_hours=extended_hours,
        confirmed=yes,
        include_external=include_external,
    )
    settings = session.settings
    if not dry_run and not settings.alpaca_paper_mode and yes and sys.stdin.isatty():
        click.confirm("Send compensating orders to the LIVE Alpaca account?", abort=True)
    from projections import catch_up

    reconciler = Reconciler(
        session.ledger,
        ReconcileBooks(catch_up(session.ledger, timezone=settings.timezone),
                       recent_fill_seconds=settings.recent_fill_seconds),
        settings,
    )
    try:
        reconciler.check(request)
    except LiveRunUnconfirmed:
        raise CommandError(
            "ALPACA_PAPER_MODE=false sends orders to the live account: pass --yes to "
            "confirm, or use --dry-run"
        ) from None
    try:
        with stop_on_signals() as stop:
            result = reconciler.run(request, stop)
    except BrokerReadError as error:
        # Invariant 9: a failed read is never "flat". One line, no plan, nothing sent. The
        # first words are the old sync script's, which its users search for.
        failed = sync_failure(error)
        raise CommandError(
            f"{failed}. Reconciliation stopped: nothing was planned or sent"
            + ("" if error.auth else "; run reconcile again later"),
            failed.exit_code,
        ) from None
    document = result_document(result)
    if as_json:
        print_json(document)
    else:
        show(result, document)
    if result.account_problem is not None:
        click.echo(f"Error: the account cannot take this plan: {result.account_problem}",
                   err=True)
    if result.interrupted is not None:
        counts = result.counts
        click.echo(
            f"Error: {result.interrupted}: {counts['submitted']} order(s) sent, "
            f"{counts['not_sent']} not sent, {counts['unknown']} of unknown outcome: the next "
            "run settles them",
            err=True,
        )
    if result.failed:
        raise click.exceptions.Exit(EXIT_ATTENTION)


def result_document(result: ReconcileResult) -> dict[str, Any]:
    """The JSON of docs/design.md, "reconcile --json"."""
    positions = [
        {
            "symbol": row.symbol,
            "local_qty": row.local_qty,
            "broker_qty": row.broker_qty,
            "open_qty": row.open_qty,
            "delta": row.delta,
            "reason": row.reason,
            "status": row.status,
            "skip_reason": row.skip_reason,
            # The broker's price the plan assumed, and what it left alone and why.
            "price": row.price,
            "notional": row.notional,
            "remainder": row.remainder,
            "remainder_reason": row.remainder_reason,
        }
        for row in result.rows
    ]
    orders: list[dict[str, Any]] = []
    outcomes = {o.symbol: o for o in result.orders}
    for row in result.rows:
        if row.order is not None:
            outcome = outcomes[row.symbol]
            orders.append({
                "symbol": row.symbol,
                "side": outcome.side,
                "qty": outcome.qty,
                "type": outcome.order_type,
                "time_in_force": row.order.time_in_force,
                "limit_price": outcome.limit_price,
                "price": row.price,
                "notional": row.notional,
                "client_order_id": outcome.client_order_id,
                # The contract's statuses: an order not sent is "skipped", one of unknown
                # outcome "failed" (it needs the next run) with `outcome_unknown` true.
                "status": "skipped" if outcome.status == "not_sent" else outcome.status,
                "outcome_unknown": outcome.outcome_unknown,
                "error": outcome.error,
                "hint": outcome.hint,
            })
        elif row.skip_reason:
            orders.append({
                "symbol": row.symbol,
                "side": "buy" if row.delta > 0 else "sell",
                "qty": abs(row.delta),
                "type": "market",
                "time_in_force": None,
                "limit_price": None,
                "price": row.price,
                "notional": row.notional,
                "client_order_id": None,
                "status": "skipped",
                "outcome_unknown": False,
                "error": row.skip_reason,
                "hint": None,
            })
    clock = result.clock
    return {
        "dry_run": result.dry_run,
        "broker": result.broker,
        "paper": result.paper,
        "run_id": result.run_id,
        "sync_id": result.sync_id,
        "market": None if clock is None else {
            "is_open": clock.is_open, "next_open": clock.next_open,
            "next_close": clock.next_close, "timestamp": clock.timestamp,
        },
        "settled": result.settled,
        "interrupted": result.interrupted,
        "account_problem": result.account_problem,
        "positions": positions,
        "orders": orders,
        "summary": result.counts,
    }


def show(result: ReconcileResult, document: dict[str, Any]) -> None:
    mode = "DRY RUN: nothing is sent to the broker" if result.dry_run else "orders are sent"
    account = "paper" if result.paper else "LIVE"
    literal_console.print(f"Reconciliation against {result.broker} ({account} account): {mode}")
    clock = result.clock
    # Crypto trades around the clock (gtc orders): the stock market's clock is no news then.
    stock_orders = [r for r in result.rows if r.order is not None
                    and r.order.time_in_force != "gtc"]
    if clock is not None and not clock.is_open and stock_orders:
        when = clock.next_open.isoformat() if clock.next_open else "the next session"
        literal_console.print(
            f"The market is closed: market orders queue until it opens at {when}."
        )
    for item in result.settled:
        literal_console.print(
            f"Settled {item['client_order_id']} ({item['symbol']}, left by run "
            f"{item['from_run'] or 'a trade'}): {item['how']}"
        )
    rows = [r for r in document["positions"] if r["delta"] or r["open_qty"]]
    if not rows:
        literal_console.print("The books agree: nothing to do.")
    else:
        table = Table(title="Local book vs broker book")
        for column in ("symbol", "local", "broker", "open", "delta", "likely cause", "action"):
            table.add_column(column, overflow="fold",
                             justify="right" if column in ("local", "broker", "open", "delta")
                             else "left")
        by_symbol = {o["symbol"]: o for o in document["orders"]}
        for row in rows:
            order = by_symbol.get(row["symbol"])
            table.add_row(row["symbol"], decimal_text(row["local_qty"]),
                          decimal_text(row["broker_qty"]), decimal_text(row["open_qty"]),
                          decimal_text(row["delta"]), row["reason"] or "",
                          _action(order) if order else "none (nets out)")
        literal_console.print(table)
    summary = document["summary"]
    literal_console.print(
        f"planned {summary['planned']}, submitted {summary['submitted']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']}"
        + (f", not sent {summary['not_sent']}" if summary["not_sent"] else "")
        + (f", of unknown outcome {summary['unknown']}" if summary["unknown"] else "")
    )
    for order in document["orders"]:
        if order["status"] == "failed":
            literal_console.print(f"FAILED {order['symbol']}: {order['error']}. What to do: "
                                  f"{order['hint']}")


def _action(order: dict[str, Any]) -> str:
    what = f"{order['side']} {decimal_text(order['qty'])} {order['type']}"
    if order["limit_price"] is not None:
        what += f" @ {decimal_text(order['limit_price'])}"
    if order["status"] == "skipped":
        return f"skipped: {order['error']}"
    if order["outcome_unknown"]:
        what += ": OUTCOME UNKNOWN"
    elif order["status"] == "failed":
        what += ": FAILED"
    else:
        what += f": {order['status']}"
    if order["price"] is not None and order["notional"] is not None:
        what += (f" (at the broker's price {price_text(order['price'])}, notional "
                 f"{decimal_text(order['notional'])})")
    return what
