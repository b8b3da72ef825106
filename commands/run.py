"""`commands run`: the long-running service that keeps orders and fills current.

It wires the keep-current service (`ledger.services.live`) to Alpaca's trade_updates stream
(`ledger.brokers.alpaca.stream`), the drift watchdog (`ledger.services.watchdog`) and the
/healthz and /metrics server (`commands.health`), all sharing one `ServiceStatus`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

import click

from commands.health import HealthServer, serve_health
from commands.output import error_console
from commands.session import Session
from commands.sync import sync_failure
from ledger.brokers.port import BrokerReadError, OrderUpdateStream
from ledger.services.service_status import ServiceStatus
from ledger.services.sync_report import SyncReport
from ledger.services.syncing import sync_reader
from ledger.services.watchdog import Watchdog
from ledger.settings import Settings


@click.command()
@click.pass_obj
def run(session: Session) -> None:
    """Sync at start-up, then poll the broker for order states and fills every
    LEDGER_POLL_INTERVAL_SECONDS until SIGINT or SIGTERM; stops cleanly with exit 0.

    With BROKER_PROVIDER=alpaca it also listens to Alpaca's trade_updates stream
    (LEDGER_STREAM=false turns that off): each update, and each (re)connect, polls at once.
    After every poll the drift watchdog compares the books; /healthz and /metrics are served
    on LEDGER_HEALTH_HOST:LEDGER_HEALTH_PORT.

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
    stream = _stream(settings)
    status = ServiceStatus(poll_interval=interval, stream_enabled=stream is not None)
    health = None
    try:
        click.echo(
            f"tradeledger service: keeping {ledger.router.broker} current every "
            f"{interval:g} s (Ctrl-C or SIGTERM stops it)"
        )
        # Refused before anything is bound or started: the paper broker has no account.
        sync_reader(ledger)
        health = _serve_health(session, status)
        watchdog = _watchdog(session, status)
        ledger.keep_current(
            stop,
            interval=interval,
            resync_interval=float(settings.resync_interval_seconds),
            lookback=timedelta(days=settings.sync_lookback_days),
            on_report=_report,
            on_error=lambda error: _warn(error, interval, session.scrub),
            stream=stream,
            status=status,
            after_change=[watchdog.check],
            say=click.echo,
        )
    except BrokerReadError as error:
        raise sync_failure(error) from None
    finally:
        if health is not None:
            health.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("tradeledger service stopped.")


def _stream(settings: Settings) -> OrderUpdateStream | None:
    """Alpaca's trade_updates stream, or None: only Alpaca streams, and LEDGER_STREAM=false
    leaves polling alone."""
    if settings.broker_provider != "alpaca" or not settings.stream_enabled:
        return None
    from ledger.brokers.alpaca.stream import AlpacaOrderStream

    return AlpacaOrderStream.from_settings(settings)


def _serve_health(session: Session, status: ServiceStatus) -> HealthServer:
    """/healthz and /metrics in a thread of their own; a taken port exits 2 with the fix."""
    from projections.queries.order_counts import OrderCounts
    from projections.queries.views import Views

    settings = session.settings
    # Views of their own: the health server's thread catches them up per scrape, while
    # the watchdog's catch up in the poll worker.
    counts = OrderCounts(Views(session.ledger, timezone=settings.timezone))
    server = serve_health(status, settings.health_host, settings.health_port, counts)
    host, port = server.address
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"health: http://{shown}:{port}/healthz and /metrics")
    return server


def _watchdog(session: Session, status: ServiceStatus) -> Watchdog:
    from projections.queries.reconcile_books import ReconcileBooks
    from projections.queries.views import Views

    settings = session.settings
    books = ReconcileBooks(Views(session.ledger, timezone=settings.timezone),
                           recent_fill_seconds=settings.recent_fill_seconds)
    return Watchdog.from_settings(session.ledger, books, status, settings, scrub=session.scrub)


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
