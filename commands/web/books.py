"""The books page's banners: what a person must see before reading any number on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from projections.queries.books import Books

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


def banners(books: Books, now: datetime) -> list[Banner]:
    """What a person must see before reading any number on the page."""
    found = []
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
