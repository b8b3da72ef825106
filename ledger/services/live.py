"""The keep-current service `commands run` runs: sync, then poll, stream, and watch.

One worker thread does every broker read and every write: the polls the interval asks for,
and the polls the stream asks for. A stream update is only a reason to poll now, so an
update is recorded by the same code as a poll (exactly once by execution id: announced
twice, or announced and then polled, a fill is still one fill). Requests that arrive while
a poll runs are coalesced into one more poll, so a burst of updates costs one or two
polls, never a queue of them.

    start-up sync (a failure raises: `commands run` exits 2)
    every interval ........ poll (a full snapshot every resync interval): the safety net
    stream connects ....... poll what may have been missed while it was not connected
    stream update ......... poll
    after every poll ...... the after-change hooks (the drift watchdog's `check(now)`)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import PersistenceError

from ledger.brokers.port import BrokerReadError, OrderUpdate, OrderUpdateStream
from ledger.services.service_status import ServiceStatus
from ledger.services.sync_report import SyncReport
from ledger.services.syncing import DEFAULT_SYNC_LOOKBACK

if TYPE_CHECKING:
    from ledger.application import Ledger

log = logging.getLogger(__name__)

# Longest wait for the worker to finish its poll when the service stops: a broker call is
# bounded by BROKER_TIMEOUT_SECONDS, and a stop should not hang on a dead one forever.
STOP_WAIT_SECONDS = 30.0

AfterChange = Callable[[datetime], None]


class _Wakeup:
    """Coalescing poll requests: any number of requests before the worker looks make one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = False
        self._closed = False

    def request(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def next(self) -> bool:
        """Block until a poll is requested (True) or the service stops (False)."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._pending = False
            return True


class LiveService:
    """Keeps the ledger current from a broker: polls, an optional stream, after-change hooks."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        interval: float = 5.0,
        resync_interval: float = 900.0,
        lookback: timedelta = DEFAULT_SYNC_LOOKBACK,
        on_report: Callable[[SyncReport], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        stream: OrderUpdateStream | None = None,
        status: ServiceStatus | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.interval = interval
        self.resync_interval = resync_interval
        self.lookback = lookback
        self.on_report = on_report
        self.on_error = on_error
        self.stream = stream
        self.status = status or ServiceStatus(poll_interval=interval,
                                              stream_enabled=stream is not None)
        self.say = say or (lambda line: log.info("%s", line))
        self._hooks: list[AfterChange] = []
        self._wakeup = _Wakeup()
        self._report: SyncReport | None = None
        self._last_snapshot = 0.0
        self._crash: BaseException | None = None
        self._stop: threading.Event | None = None
        # The stream's state as last said: each change is said once, not each retry.
        self._said_connected: bool | None = None
        self._state_lock = threading.Lock()

    def after_change(self, hook: AfterChange) -> None:
        """Call `hook(now)` after the start-up sync and after every poll (in the worker
        thread: one hook call at a time, never beside a poll).

        A hook that raises is logged and the service goes on: a watchdog's bug must not
        stop fills from being recorded.
        """
        self._hooks.append(hook)

    # -- the stream's callbacks (its own thread) -------------------------------------------

    def on_connected(self) -> None:
        self.status.stream_up()
        with self._state_lock:
            was, self._said_connected = self._said_connected, True
        if was is None:
            self.say("stream connected: order updates arrive as Alpaca sends them")
        elif was is False:
            self.say("stream back: order updates arrive as Alpaca sends them")
        # What happened while it was not connected is read now, not at the next interval.
        self._wakeup.request()

    def on_disconnected(self, reason: str) -> None:
        self.status.stream_down(reason)
        with self._state_lock:
            was, self._said_connected = self._said_connected, False
        if was is not False:
            self.say(f"stream down ({reason}): polling every {self.interval:g} s")

    def on_update(self, update: OrderUpdate | None) -> None:
        if update is not None:
            log.debug("order update %s for %s", update.event, update.broker_order_id)
        self._wakeup.request()

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> SyncReport:
        """Sync now, then keep current until `stop` is set; returns the last report.

        A failed start-up sync raises (nothing runs yet). A failed poll is reported to
        `on_error` and tried again next time. Anything else a poll raises ends the
        service and is raised here, as before the stream existed.
        """
        self._stop = stop
        report = self.ledger.sync(lookback=self.lookback)
        self._last_snapshot = time.monotonic()
        self._recorded(report)
        worker = threading.Thread(target=self._work, name="keep-current", daemon=True)
        worker.start()
        try:
            if self.stream is not None:
                self.stream.start(self)
            # The interval is the safety net: it polls whether or not the stream speaks.
            while not stop.wait(self.interval):
                self._wakeup.request()
        finally:
            if self.stream is not None:
                self.stream.stop()
            self._wakeup.close()
            worker.join(STOP_WAIT_SECONDS)
            if worker.is_alive():
                log.warning("the last poll did not finish in %s s; stopping anyway",
                            STOP_WAIT_SECONDS)
        if self._crash is not None:
            raise self._crash
        assert self._report is not None
        return self._report

    def _work(self) -> None:
        try:
            while self._wakeup.next():
                self._poll()
        except BaseException as error:  # ends the service: `run` raises it
            self._crash = error
            self._wakeup.close()
            # Wake `run` from its wait: it raises the crash after stopping the stream.
            if self._stop is not None:
                self._stop.set()

    def _poll(self) -> None:
        cursor = self._report.cursor if self._report is not None else None
        try:
            if time.monotonic() - self._last_snapshot >= self.resync_interval:
                report = self.ledger.sync(lookback=self.lookback)
                self._last_snapshot = time.monotonic()
            else:
                report = self.ledger.poll(cursor, lookback=self.lookback)
        except (BrokerReadError, PersistenceError) as error:
            # IntegrityError (another writer first) is a PersistenceError too. A store
            # that went away is reconnected by the pool (pre-ping) once it is back.
            log.warning("poll failed: %s", error)
            if isinstance(error, BrokerReadError):
                self.status.broker_error(error.kind.value)
            if self.on_error is not None:
                self.on_error(error)
            return
        self._recorded(report)

    def _recorded(self, report: SyncReport) -> None:
        self._report = report
        now = datetime.now(UTC)
        self.status.synced(now, report.new_fills)
        if self.on_report is not None:
            self.on_report(report)
        for hook in self._hooks:
            try:
                hook(now)
            except Exception:
                log.exception("an after-change hook failed; the service goes on")


def keep_current(
    ledger: Ledger,
    stop: threading.Event,
    *,
    after_change: Sequence[AfterChange] = (),
    **options: Any,
) -> SyncReport:
    """The service loop: sync now, then poll every `interval` seconds (and take a full
    snapshot every `resync_interval`) until `stop` is set; with a `stream`, also poll at
    once on each update and (re)connect. A failed start-up sync raises; a failed poll (the
    broker, or the event store: a restarted database server) is reported to `on_error`
    and tried again next time. `options` are `LiveService`'s."""
    service = LiveService(ledger, **options)
    for hook in after_change:
        service.after_change(hook)
    return service.run(stop)
