"""The drift watchdog of `commands run`: it compares the books as reconcile would, and tells
a person when they stay apart.

The failure this project exists for went unnoticed for weeks: decisions recorded against
the paper broker while the account was Alpaca's. Reconcile would have found it, but nobody
ran it. So after every recorded change and at every poll the service asks the watchdog to
check: the books are read through the same `BooksPort` reconcile reads, and planned by the
same `planning.plan` (a dry plan: nothing is sent, the reconcile lock is not taken, no
Reconciliation is written), so orders in flight are netted, recent broker fills and orders
of unknown outcome excuse a difference for as long as reconcile would wait, and each
symbol gets the cause reconcile gives it.

A difference that stays, symbol by symbol, for LEDGER_DRIFT_ALERT_SECONDS is a drift: it is
stored (`Drift.Began`), the service status shows it (/healthz turns 503), one WARNING line
names it, and LEDGER_ALERT_COMMAND, when set, receives it as JSON on stdin. When the books
agree again it is ended (`Drift.Ended`). A drift left open by an earlier run is taken up
again at start-up without a second alert. The watchdog never sends an order: it tells a
person (or a cron'd `commands reconcile`) to act.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Drift
from ledger.domain.drift import EXTERNAL, Difference, differences
from ledger.domain.planning import PlanRules, SymbolFacts, plan
from ledger.services.service_status import DriftState, DriftSymbol, ServiceStatus
from ledger.settings import Settings

# How long the alert hook may run before it is killed and reported.
ALERT_TIMEOUT_SECONDS = 10.0
_BEGAN_TOPIC = get_topic(Drift.Began)


class DriftBooks(Protocol):
    """What the watchdog reads: the part of reconcile's `BooksPort` that plans."""

    def catch_up(self) -> int: ...

    def symbol_facts(
        self,
        *,
        now: datetime,
        recent_runs: list[Any],
        since: Any,
        broker_positions: list[dict[str, Any]] | None = None,
    ) -> list[SymbolFacts]: ...


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Watchdog:
    def __init__(
        self,
        ledger: Ledger,
        books: DriftBooks,
        status: ServiceStatus,
        alert_seconds: Decimal,
        alert_command: str | None,
        say: Callable[[str], None] = _stderr,
        *,
        recent_fill_seconds: Decimal = Decimal(30),
        clock: Callable[[], datetime] | None = None,
        alert_timeout: float = ALERT_TIMEOUT_SECONDS,
        scrub: Callable[[str], str] = lambda text: text,
        min_gap: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.books = books
        self.status = status
        self.alert_seconds = Decimal(alert_seconds)
        self.alert_command = alert_command or None
        self.say = say
        self.recent_fill_seconds = Decimal(recent_fill_seconds)
        self.now = clock or (lambda: datetime.now(UTC))
        self.alert_timeout = alert_timeout
        self.scrub = scrub
        # A burst of stream updates makes a poll after every few fills: a check after each
        # would hold up the next poll, and the alert is counted in seconds anyway.
        self.min_gap = timedelta(seconds=min_gap)
        self._last_check: datetime | None = None
        # When each differing symbol was first seen differing, continuously: in memory only,
        # so a restart starts the clock again (an open drift is resumed from the log).
        self.first_seen: dict[str, datetime] = {}
        self.open: DriftState | None = None
        self._resumed = False
        # What the last check saw: the symbols apart (excused or not) and the last event
        # its books were folded up to.
        self._checked_once = False
        self._apart: set[str] = set()
        self._applied = 0
        # The poll loop and the stream's worker both call `check`: one at a time.
        self._lock = threading.Lock()
        self._alerts: list[threading.Thread] = []

    @classmethod
    def from_settings(
        cls,
        ledger: Ledger,
        books: DriftBooks,
        status: ServiceStatus,
        settings: Settings,
        say: Callable[[str], None] = _stderr,
        **options: Any,
    ) -> Watchdog:
        return cls(
            ledger, books, status, settings.drift_alert_seconds, settings.alert_command, say,
            recent_fill_seconds=settings.recent_fill_seconds,
            min_gap=min(1.0, float(settings.poll_interval_seconds)), **options,
        )

    # -- the check -----------------------------------------------------------------------

    def check(self, now: datetime | None = None) -> None:
        """Compare the books once; begin or end a drift as they say. Never raises: a failed
        check is reported in one line and the next one tries again."""
        now = now or self.now()
        with self._lock:
            if self._last_check is not None and now - self._last_check < self.min_gap:
                return
            try:
                self._check(now)
                self._last_check = now
            except Exception as error:
                lines = str(error).strip().splitlines()
                cause = self.scrub(lines[0]) if lines else type(error).__name__
                self.say(f"Warning: the drift check failed ({cause}); the next poll tries again")

    def _check(self, now: datetime) -> None:
        if not self._resumed:
            self._resume()
        applied = self.books.catch_up()
        apart, found = self.differences(now)
        current = {d.symbol: d for d in found}
        # A symbol that agrees again, or is excused for a moment, starts its clock afresh:
        # only a difference present at every check counts.
        first_seen = {}
        for symbol in current:
            since = self.first_seen.get(symbol)
            if since is None:
                since = self._appeared(symbol, applied, now)
            first_seen[symbol] = since
        self.first_seen = first_seen
        self._apart = apart
        self._applied = applied
        self._checked_once = True
        if self.open is None:
            due = [
                d for d in found
                if Decimal(str((now - self.first_seen[d.symbol]).total_seconds()))
                >= self.alert_seconds
            ]
            if due:
                self._begin(due, now)
        elif not current:
            # Only agreement ends a drift: symbols that part while one is open are in its
            # WARNING's advice already (`reconcile --dry-run` lists every difference).
            self._end(now)

    def _appeared(self, symbol: str, applied: int, now: datetime) -> datetime:
        """When a difference seen for the first time began, as near as the log tells.

        Both books are folded from the events, so a symbol that agreed at the last check
        and differs now was set apart by an event stored since: at the latest by the newest
        one, so the difference has lasted at least since then (never overstated, and the
        alert comes within LEDGER_DRIFT_ALERT_SECONDS and one poll of the event, not two
        polls). A symbol that differed but was excused (an order in flight, a recent fill)
        counts from now; so does anything at the first check."""
        if not self._checked_once or symbol in self._apart or applied <= self._applied:
            return now
        stored = self.ledger.recorder.select_notifications(start=applied, limit=1)
        if not stored:
            return now
        at: datetime = self.ledger.mapper.to_domain_event(stored[0]).timestamp
        return min(at, now)

    def differences(self, now: datetime) -> tuple[set[str], list[Difference]]:
        """Every symbol whose books differ now (excused or not), and those that differ
        beyond the safety envelope, by a dry plan of the books as they stand (caught up)."""
        # No runs (oscillation counts decide sending, not difference) and no prices (the
        # sync stored them; reading the snapshot back costs a row per symbol held).
        facts = self.books.symbol_facts(now=now, recent_runs=[], since=None,
                                        broker_positions=[])
        rows = plan(facts, PlanRules(recent_fill_seconds=self.recent_fill_seconds), now)
        apart = {row.symbol for row in rows if row.delta}
        return apart, differences(rows, facts, self.recent_fill_seconds, now)

    # -- begin, end, resume ----------------------------------------------------------------

    def _begin(self, due: list[Difference], now: datetime) -> None:
        symbols = tuple(
            DriftSymbol(symbol=d.symbol, local_qty=d.local_qty, broker_qty=d.broker_qty,
                        open_qty=d.open_qty, delta=d.delta, cause=d.cause,
                        since=self.first_seen[d.symbol])
            for d in due
        )
        # The drift began when the first of its symbols was seen apart, not when the alert
        # threshold was reached.
        began_at = min(s.since for s in symbols)
        drift = Drift(id=uuid4(), began_at=began_at, symbols=[s.as_json() for s in symbols])
        self.ledger.save(drift)
        state = DriftState(drift_id=drift.id, began_at=began_at, symbols=symbols)
        self.open = state
        self.status.drift_opened(state)
        line = warning_line(state, due, now)
        self.say(line)
        if self.alert_command is not None:
            payload = alert_document(state, due, line)
            thread = threading.Thread(
                target=self._run_hook, args=(json.dumps(payload),), name="drift-alert"
            )
            # Not a daemon: a drift found just before a stop still reaches its hook.
            self._alerts.append(thread)
            thread.start()

    def _end(self, now: datetime) -> None:
        assert self.open is not None
        drift: Drift = self.ledger.repository.get(self.open.drift_id)
        drift.end(now)
        self.ledger.save(drift)
        began = self.open.began_at
        self.open = None
        self.status.drift_closed()
        self.say(
            f"{now:%H:%M:%S} drift ended: the books agree again (apart since "
            f"{began:%H:%M:%S} UTC)"
        )

    def _resume(self) -> None:
        """An open drift an earlier run recorded is this run's: shown, not alerted again."""
        newest = next(self.ledger.newest_of(_BEGAN_TOPIC), None)
        drift: Drift | None = (
            None if newest is None else self.ledger.repository.get(newest.originator_id)
        )
        # Only once it was read: a store that failed is asked again at the next check.
        self._resumed = True
        if drift is None or not drift.is_open:
            return
        state = drift_state(drift.id, drift.began_at, drift.symbols)
        self.open = state
        # Its symbols have differed since then: no new drift starts while this one is open.
        self.first_seen = {s.symbol: s.since for s in state.symbols}
        self.status.drift_opened(state)
        names = ", ".join(s.symbol for s in state.symbols)
        self.say(
            f"drift open since {state.began_at:%Y-%m-%d %H:%M:%S} UTC ({names}), recorded by "
            "an earlier run: watching it (no new alert); `commands reconcile` acts on it"
        )

    # -- the alert hook ----------------------------------------------------------------------

    def _run_hook(self, payload: str) -> None:
        assert self.alert_command is not None
        problem = run_alert_command(self.alert_command, payload, self.alert_timeout)
        if problem is not None:
            self.say(
                f"Warning: the alert hook (LEDGER_ALERT_COMMAND) {problem}; the drift is "
                "recorded and shown all the same"
            )

    def wait_for_alerts(self, timeout: float | None = None) -> None:
        """Wait for the alert hooks started so far (tests, and a clean stop)."""
        for thread in list(self._alerts):
            thread.join(timeout)


def drift_state(drift_id: UUID, began_at: datetime, symbols: list[dict[str, str]]
                ) -> DriftState:
    """A stored drift as the service status holds it."""
    return DriftState(
        drift_id=drift_id,
        began_at=began_at,
        symbols=tuple(
            DriftSymbol(
                symbol=s["symbol"], local_qty=Decimal(s["local_qty"]),
                broker_qty=Decimal(s["broker_qty"]), open_qty=Decimal(s["open_qty"]),
                delta=Decimal(s["delta"]), cause=s["cause"],
                since=datetime.fromisoformat(s["since"]),
            )
            for s in symbols
        ),
    )


ACTION = "run `commands reconcile --dry-run` to see the plan, then `commands reconcile`"
EXTERNAL_ACTION = (
    "external differences are left alone by it: `commands adopt SYMBOL --reason TEXT` takes "
    "the broker's quantity, `commands reconcile --include-external` trades it away"
)


def warning_line(state: DriftState, due: list[Difference], now: datetime) -> str:
    """One line: which symbols, by how much, why, and what to run."""
    parts = ", ".join(f"{d.symbol} delta {d.delta:f} ({d.cause}: {d.reason})" for d in due)
    seconds = max((now - state.began_at).total_seconds(), 0)
    external = any(d.cause == EXTERNAL for d in due)
    return (
        f"WARNING: the books drifted apart (local vs broker, for {seconds:.0f} s since "
        f"{state.began_at:%H:%M:%S} UTC): {parts}; {ACTION}"
        + (f"; {EXTERNAL_ACTION}" if external else "")
    )


def alert_document(state: DriftState, due: list[Difference], line: str) -> dict[str, Any]:
    """What the alert hook reads on stdin: the stored drift, each symbol's reason, and the
    line the service printed. Quantities are decimal strings, never JSON numbers."""
    reasons = {d.symbol: d.reason for d in due}
    return {
        "event": "DriftBegan",  # as `ledger.domain.event_name` names it in the audit
        **state.as_json(),
        "symbols": [{**s.as_json(), "reason": reasons.get(s.symbol, "")} for s in state.symbols],
        "message": line,
        "action": ACTION,
    }


def run_alert_command(command: str, payload: str, timeout: float) -> str | None:
    """Run the hook with `payload` on stdin; what went wrong, or None. Never raises."""
    try:
        process = subprocess.Popen(
            command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
            # Its own process group: a timeout kills whatever the shell started too.
            start_new_session=True,
        )
    except OSError as error:
        return f"could not start ({error.strerror or error})"
    try:
        _, errors = process.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return f"did not finish within {timeout:g} s and was stopped"
    if process.returncode:
        said = (errors or "").strip().splitlines()
        # A shell quotes the command it could not run, and the command may carry a
        # webhook's token: it is never repeated.
        tail = f": {said[0].replace(command, '<the command>')[:200]}" if said else ""
        return f"exited with status {process.returncode}{tail}"
    return None
