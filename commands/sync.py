"""`commands sync [--json]`: pull the broker account into the ledger as events."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.table import Table

from commands.errors import EXIT_ATTENTION, EXIT_USAGE, CommandError
from commands.output import (
    decimal_text,
    error_console,
    json_option,
    literal_console,
    print_json,
    visible,
)
from commands.session import Session
from ledger.application import Ledger
from ledger.brokers.port import BrokerReadError
from ledger.services.sync_report import SyncReport
from ledger.settings import Settings


def sync_failure(error: BrokerReadError) -> CommandError:
    """One line: bad keys get the advice users search for, anything else its real cause.

    Bad keys are configuration (exit 2); a broker that is down, slow or failing is not: it
    needs attention and a later run (exit 1).
    """
    # The broker's own words reach the terminal through click, not rich: only the control
    # characters need taming (markup means nothing there).
    cause = visible(str(error))
    if error.auth:
        return CommandError(
            f"Failed to sync Alpaca account. Check your API keys ({cause})", EXIT_USAGE
        )
    return CommandError(f"Failed to sync Alpaca account: {cause}", EXIT_ATTENTION)


def run_sync(ledger: Ledger, settings: Settings) -> SyncReport:
    try:
        return ledger.sync(lookback=timedelta(days=settings.sync_lookback_days))
    except BrokerReadError as error:
        raise sync_failure(error) from None


@click.command()
@json_option
@click.pass_obj
def sync(session: Session, as_json: bool) -> None:
    """Pull the broker's account, positions, open orders, new fills and corporate actions.

    Appends one BrokerSynced snapshot plus the order and fill events it implies, in one
    save; a failed read stores nothing. Safe to run as often as you like: a fill already
    recorded is never recorded again.
    """
    report = run_sync(session.ledger, session.settings)
    if as_json:
        print_json(report.document())
    else:
        print_report(report)
    warnings = list(report.warnings)
    refusal = None if report.account is None else report.account.refusal()
    if refusal is not None:
        warnings.append(f"the account cannot trade: {refusal}")
    for warning in warnings:
        error_console.print(f"Warning: {warning}")
    if warnings:
        raise click.exceptions.Exit(EXIT_ATTENTION)


def print_report(report: SyncReport) -> None:
    account = report.account
    mode = "paper" if report.paper else "LIVE"
    if account is not None:
        literal_console.print(
            f"Synced {report.broker} ({mode}) account {account.account_id} at "
            f"{report.broker_time.isoformat()}: cash {decimal_text(account.cash)}, "
            f"equity {decimal_text(account.equity)}, "
            f"buying power {decimal_text(account.buying_power)}"
        )
    if report.positions:
        table = Table(title="Broker positions")
        for column in ("symbol", "qty", "avg entry price", "market value"):
            table.add_column(column, justify="left" if column == "symbol" else "right")
        for position in report.positions:
            table.add_row(
                position["symbol"],
                decimal_text(position["qty"]),
                decimal_text(position["avg_entry_price"]),
                decimal_text(position["market_value"]),
            )
        literal_console.print(table)
    else:
        literal_console.print("No positions at the broker.")
    if report.open_orders:
        table = Table(title="Open orders at the broker")
        for column in ("symbol", "side", "qty", "type", "status", "client order id"):
            table.add_column(column)
        for order in report.open_orders:
            table.add_row(
                order["symbol"],
                order["side"],
                decimal_text(order["qty"] if order["qty"] is not None else order["notional"]),
                order["type"],
                order["status"],
                order["client_order_id"],
            )
        literal_console.print(table)
    literal_console.print(
        f"New: {report.new_fills} fills, {report.new_orders} external orders, "
        f"{report.updated_orders} order updates, {report.reversals} reversals, "
        f"{report.corporate_actions} corporate actions."
    )
