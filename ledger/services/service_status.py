"""What `commands run` knows of itself: stream, last sync, fills, broker errors, open drift.

The keep-current service and the watchdog write it from their threads; /healthz, /metrics and
the web page read it from the health server's. One lock guards every field, so a reader never
sees half an update (a stream marked up with the reason it was down).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

# A poll that fails now and then is not an outage: /healthz turns 503 only when no sync
# succeeded for three poll intervals, and never sooner than this (a 0.2 s poll interval in
# tests must not flap on one slow call).
MIN_STALE_SECONDS = 30.0


@dataclass(frozen=True)
class DriftSymbol:
    """One symbol of an open drift: the books' quantities and why they differ."""

    symbol: str
    local_qty: Decimal
    broker_qty: Decimal
    open_qty: Decimal  # in-flight orders' remaining quantity, netted before calling it drift
    delta: Decimal
    cause: str
    since: datetime

    def as_json(self) -> dict[str, str]:
        # Decimals as text: JSON numbers are floats to most readers, and money never is.
        return {
            "symbol": self.symbol,
            "local_qty": str(self.local_qty),
            "broker_qty": str(self.broker_qty),
            "open_qty": str(self.open_qty),
            "delta": str(self.delta),
            "cause": self.cause,
            "since": self.since.isoformat(),
        }


@dataclass(frozen=True)
class DriftState:
    """The drift the watchdog has open (recorded as Drift.Began, not yet ended)."""

    drift_id: UUID
    began_at: datetime
    symbols: tuple[DriftSymbol, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "drift_id": str(self.drift_id),
            "began_at": self.began_at.isoformat(),
            "symbols": [symbol.as_json() for symbol in self.symbols],
        }


class ServiceStatus:
    """What `commands run` knows of itself, read by /healthz, /metrics and the web page."""

    def __init__(self, *, poll_interval: float, stream_enabled: bool,
                 started_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self.started_at: datetime = started_at or datetime.now(UTC)
        self.poll_interval: float = float(poll_interval)
        self.stream_enabled: bool = stream_enabled
        self.stream_connected: bool = False
        # Why the stream is not connected; empty while it is.
        self.stream_reason: str = "not connected yet" if stream_enabled else "disabled"
        self.last_sync_at: datetime | None = None
        self.fills_recorded: int = 0
        self.broker_errors: dict[str, int] = {}
        self.open_drift: DriftState | None = None

    # -- writers ---------------------------------------------------------------------------

    def stream_up(self) -> None:
        with self._lock:
            self.stream_connected, self.stream_reason = True, ""

    def stream_down(self, reason: str) -> None:
        with self._lock:
            self.stream_connected, self.stream_reason = False, reason or "disconnected"

    def synced(self, at: datetime, new_fills: int = 0) -> None:
        """A sync or poll succeeded at `at` and recorded `new_fills` fills."""
        with self._lock:
            if self.last_sync_at is None or at > self.last_sync_at:
                self.last_sync_at = at
            self.fills_recorded += max(0, new_fills)

    def broker_error(self, kind: str) -> None:
        """A broker call failed: `kind` is a FailureKind value, or "read" for a failed read."""
        with self._lock:
            self.broker_errors[kind] = self.broker_errors.get(kind, 0) + 1

    def drift_opened(self, state: DriftState) -> None:
        with self._lock:
            self.open_drift = state

    def drift_closed(self) -> None:
        with self._lock:
            self.open_drift = None

    # -- readers ---------------------------------------------------------------------------

    def stale_after(self) -> float:
        """Seconds without a successful sync after which the service is unhealthy."""
        return max(3 * self.poll_interval, MIN_STALE_SECONDS)

    def health(self, now: datetime) -> tuple[bool, list[str]]:
        """Healthy?, and the reasons when not.

        A stream that is down is not by itself unhealthy: polling is the fallback, and the
        snapshot says the stream is down. Stale polls or an open drift are.
        """
        with self._lock:
            last, drift = self.last_sync_at, self.open_drift
            started = self.started_at
        reasons: list[str] = []
        limit = self.stale_after()
        if last is None:
            if (now - started).total_seconds() > limit:
                reasons.append(f"no successful sync in the {_ago(now, started)} since the start")
            else:
                reasons.append("no successful sync yet")
        elif (now - last) > timedelta(seconds=limit):
            reasons.append(f"no successful sync for {_ago(now, last)} (limit {limit:g} s)")
        if drift is not None:
            names = ", ".join(symbol.symbol for symbol in drift.symbols)
            reasons.append(f"drift open since {drift.began_at.isoformat()}: {names}")
        return not reasons, reasons

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """Everything above as JSON-able values (for /healthz and the web page)."""
        now = now or datetime.now(UTC)
        with self._lock:
            last = self.last_sync_at
            data: dict[str, Any] = {
                "started_at": self.started_at.isoformat(),
                "poll_interval_seconds": self.poll_interval,
                "stream_enabled": self.stream_enabled,
                "stream_connected": self.stream_connected,
                "stream_reason": self.stream_reason,
                "last_sync_at": last.isoformat() if last else None,
                "last_sync_age_seconds": (
                    round((now - last).total_seconds(), 3) if last else None
                ),
                "fills_recorded": self.fills_recorded,
                "broker_errors": dict(self.broker_errors),
                "open_drift": self.open_drift.as_json() if self.open_drift else None,
            }
        return data


def _ago(now: datetime, then: datetime) -> str:
    return f"{max(0.0, (now - then).total_seconds()):.0f} s"
