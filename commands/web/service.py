"""What the page says of `commands run`: asked of the service's own /healthz.

The page and the service are separate processes; the service serves its status on
LEDGER_HEALTH_HOST:LEDGER_HEALTH_PORT (commands/health.py). The page asks there with a
short timeout, so a service that is down or hung never slows a page: it is shown as "not
answering", and the last sync the events hold is shown beside it either way.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A service on this machine answers /healthz in a few milliseconds; longer is "not
# answering" rather than a slow page.
PROBE_TIMEOUT_SECONDS = 0.2
# Pages read by several tabs at once ask the service once per this many seconds.
PROBE_REUSE_SECONDS = 1.0
# A service listening on every address is reached on this machine's own.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class ServiceView:
    address: str  # where it was asked, host:port
    answering: bool
    why_not: str = ""  # when not answering: what the page could tell
    healthy: bool = False
    reasons: tuple[str, ...] = ()
    stream_enabled: bool = False
    stream_connected: bool = False
    stream_reason: str = ""
    last_sync_at: datetime | None = None  # the service's last successful sync or poll
    started_at: datetime | None = None


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def read_status(document: dict[str, Any], address: str) -> ServiceView:
    return ServiceView(
        address=address,
        answering=True,
        healthy=bool(document.get("healthy")),
        reasons=tuple(str(r) for r in document.get("reasons") or ()),
        stream_enabled=bool(document.get("stream_enabled")),
        stream_connected=bool(document.get("stream_connected")),
        stream_reason=str(document.get("stream_reason") or ""),
        last_sync_at=_instant(document.get("last_sync_at")),
        started_at=_instant(document.get("started_at")),
    )


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT_SECONDS) -> ServiceView:
    """The service's status from its /healthz (a 503 answers too: it is the status)."""
    host = _ANY.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    address = f"{shown}:{port}"
    if port == 0:
        return ServiceView(address, False, "LEDGER_HEALTH_PORT is 0 (any free port): set the "
                                           "port `commands run` serves on")
    try:
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return ServiceView(address, False, str(getattr(reason, "strerror", None) or reason))
    try:
        document = json.loads(body)
    except ValueError:
        return ServiceView(address, False, "its answer was not the service's status")
    if not isinstance(document, dict) or "healthy" not in document:
        return ServiceView(address, False, "its answer was not the service's status")
    return read_status(document, address)


class ServiceProbe:
    """`probe`, its answer reused for PROBE_REUSE_SECONDS."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._last: tuple[float, ServiceView] | None = None

    def __call__(self) -> ServiceView:
        with self._lock:
            last = self._last
        if last is not None and time.monotonic() - last[0] < PROBE_REUSE_SECONDS:
            return last[1]
        view = probe(self.host, self.port)
        with self._lock:
            self._last = (time.monotonic(), view)
        return view
