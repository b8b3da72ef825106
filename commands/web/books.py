"""The books page's banners: what a person must see before reading any number on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from projections.queries.books import Books
from projections.queries.drift import DriftWindow

# A sync older than this is shown as stale: `commands run` resyncs every 15 minutes.
STALE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Banner:
    level: str  # "alert" (something is wrong), "warn" (look soon), "ok"
    text: str
    command: str | None = None  # what to run about it


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minute(s)"
    hours = minutes // 60
    return f"{hours} hour(s)" if hours < 48 else f"{hours // 24} day(s)"


def _drift_age(delta: timedelta) -> str:
    # A drift is reported a minute after it starts: seconds matter then.
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds} s" if seconds < 120 else _age(delta)


def drift_banner(drift: DriftWindow, now: datetime) -> Banner:
    """The watchdog of `commands run` found the books apart for longer than
    LEDGER_DRIFT_ALERT_SECONDS and has not seen them agree since."""
    parts = []
    for item in drift.symbols:
        parts.append(f"{item['symbol']} {Decimal(item['delta']):+f} ({item['cause']})")
    began: datetime = drift.began_at
    return Banner(
        "alert",
        f"Drift open for {_drift_age(now - began)} (since "
        f"{began.isoformat(timespec='seconds')}): "
        f"the books stayed apart on {len(parts)} symbol(s): {'; '.join(parts)}. "
        "Act on it: see the plan with",
        "commands reconcile --dry-run",
    )


def banners(books: Books, now: datetime, drift: DriftWindow | None = None) -> list[Banner]:
    """What a person must see before reading any number on the page; `drift`: the open
    drift the watchdog recorded (`projections.queries.drift`), if any."""
    found = [] if drift is None else [drift_banner(drift, now)]
    differing = books.differing
    if differing:
        listed = ", ".join(f"{d.symbol} {d.delta:+f}" for d in differing)
        found.append(Banner(
            "alert",
            f"The books differ on {len(differing)} symbol(s): {listed} (what the broker still "
            "needs to match the local book). See the plan with",
            "commands reconcile --dry-run",
        ))
    account = books.account
    if account is None:
        found.append(Banner(
            "alert",
            "No broker sync yet: the broker book is empty because it was never read. Run",
            "commands sync",
        ))
    elif now - account.synced_at > STALE_AFTER:
        found.append(Banner(
            "warn",
            f"The last broker sync is {_age(now - account.synced_at)} old "
            f"(stale after {_age(STALE_AFTER)}): the broker book may be out of date. Run "
            "commands run to keep it current, or once:",
            "commands sync",
        ))
    if not found:
        found.append(Banner("ok", "The books agree, and the last broker sync is recent."))
    return found
