"""`commands run`: the long-running service that keeps orders and fills current."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

import click

from commands.output import error_console
from commands.session import Session
from commands.sync import sync_failure
from ledger.brokers.port import BrokerReadError
from ledger.services.sync_report import SyncReport


@click.command()
@click.pass_obj
def run(session: Session) -> None:
    """Sync at start-up, then poll the broker for order states and fills every
    LEDGER_POLL_INTERVAL_SECONDS until SIGINT or SIGTERM; stops cleanly with exit 0.

    A full snapshot is taken again every LEDGER_RESYNC_INTERVAL_SECONDS. A failed poll is
    reported and retried at the next interval; a failed start-up sync exits 2.
    """
    settings = session.settings
    ledger = session.ledger
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the loop finishes its current step and returns.
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    interval = float(settings.poll_interval_seconds)
    try:
        click.echo(
            f"tradeledger service: keeping {ledger.router.broker} current every "
            f"{interval:g} s (Ctrl-C or SIGTERM stops it)"
        )
        ledger.keep_current(
            stop,
            interval=interval,
            resync_interval=float(settings.resync_interval_seconds),
            lookback=timedelta(days=settings.sync_lookback_days),
            on_report=_report,
            on_error=lambda error: _warn(error, interval, session.scrub),
        )
    except BrokerReadError as error:
        raise sync_failure(error) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("tradeledger service stopped.")


def _warn(error: Exception, interval: float, scrub: Callable[[str], str]) -> None:
    if isinstance(error, BrokerReadError):
        error_console.print(f"Warning: broker poll failed: {error}", markup=False)
        return
    # The event store failed (a database restart, a lock held too long): nothing of this
    # poll was recorded; the next one reads the broker again from the same place.
    lines = str(error).strip().splitlines()
    cause = scrub(lines[0]) if lines else type(error).__name__
    error_console.print(
        f"Warning: the event store failed ({cause}); trying again in {interval:g} s",
        markup=False,
    )


def _report(report: SyncReport) -> None:
    now = datetime.now(UTC).strftime("%H:%M:%S")
    if report.sync_id is not None:
        click.echo(
            f"{now} synced: {len(report.positions)} positions, {len(report.open_orders)} open "
            f"orders, {report.new_fills} new fills"
        )
    elif report.new_fills or report.new_orders or report.updated_orders or report.reversals:
        click.echo(
            f"{now} recorded {report.new_fills} fills, {report.new_orders} external orders, "
            f"{report.updated_orders} order updates, {report.reversals} reversals"
        )
    if report.corporate_actions:
        click.echo(f"{now} recorded {report.corporate_actions} corporate actions")
    for warning in report.warnings:
        error_console.print(f"Warning: {warning}")
