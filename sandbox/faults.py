"""What goes wrong on the way: injected faults (error replies, hang-ups, slow or malformed
answers, unknown enum values), per-route delays, and the log of every API request."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.state import SandboxState
from sandbox.wire import Reply, SandboxError, iso, loads

FAULT_KINDS = (
    "429",
    "500",
    "502_html",
    "503",
    "504",
    "slow",
    "drop_after_create",
    "drop",
    "malformed_json",
    "unknown_enum",
)
# Faults that answer (or hang up) before the request reaches the API at all.
PRE_FAULTS = frozenset({"429", "500", "502_html", "503", "504", "drop"})
UNKNOWN_ENUM_VALUE = "pending_risk_review"
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
HTML_504 = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _matches(wanted_method: str | None, pattern: str, method: str, path: str) -> bool:
    if wanted_method not in (None, "*") and wanted_method.upper() != method:
        return False
    return fnmatch.fnmatchcase(path, pattern)


@dataclass
class Fault:
    kind: str
    method: str | None
    path: str
    remaining: int
    retry_after: str | None = None
    delay: float = 1.0
    field: str | None = "status"
    value: str = UNKNOWN_ENUM_VALUE

    def matches(self, method: str, path: str) -> bool:
        return _matches(self.method, self.path, method, path)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "count": self.remaining,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "field": self.field,
            "value": self.value,
        }


@dataclass
class Delay:
    """Every request matching `method` and `path` (a glob) waits `seconds` before the
    sandbox acts on it, as a slow broker does. The work is done whether or not the client
    is still there to hear the answer: a real server finishes what it started."""

    method: str | None
    path: str
    seconds: float

    def matches(self, method: str, path: str) -> bool:
        return _matches(self.method, self.path, method, path)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "seconds": self.seconds}


def fault_reply(fault: Fault) -> Reply:
    """The answer of a fault that stops a request before the API sees it."""
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
    if fault.kind == "drop":
        return Reply(0, drop=True)
    if fault.kind == "429":
        return Reply(429, {"code": 42910000, "message": "rate limit exceeded"}, headers=headers)
    if fault.kind == "500":
        return Reply(500, {"code": 50010000, "message": "internal server error occurred"})
    if fault.kind == "503":
        body = {"code": 50310000, "message": "service unavailable"}
        return Reply(503, body, headers=headers)
    html = HTML_502 if fault.kind == "502_html" else HTML_504
    return Reply(
        502 if fault.kind == "502_html" else 504,
        raw=html.encode(),
        content_type="text/html",
    )


def distort(fault: Fault, reply: Reply) -> Reply:
    """What a fault that lets the API do its work makes of the API's answer."""
    if fault.kind == "drop_after_create":
        return Reply(0, drop=True)
    if fault.kind == "malformed_json":
        text = reply.body() or b'{"code":'
        return Reply(reply.status or 200, raw=text[: max(1, len(text) // 2)])
    if fault.kind == "unknown_enum" and reply.payload is not None:
        items = reply.payload if isinstance(reply.payload, list) else [reply.payload]
        for item in items:
            if isinstance(item, dict):
                if fault.field and fault.field in item:
                    item[fault.field] = fault.value
                item["sandbox_unknown_field"] = {"note": "a field alpaca-py does not model"}
                item["routing_venue"] = "XSBX"
    return reply


class FaultInjection(SandboxState):
    """The faults and delays a test sets, and the request log they are matched against."""

    def _reset_state(self, cash: Decimal) -> None:
        with self._lock:
            super()._reset_state(cash)
            self._faults: list[Fault] = []
            self._delays: list[Delay] = []
            self._requests: list[dict[str, Any]] = []

    # -------------------------------------------------------------------- control

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The log of API requests received, oldest first; ``path`` may be a glob.

        JSON numbers in request bodies are kept as ``Decimal`` and strings as ``str``, so
        a test can tell what the client actually put on the wire.
        """
        with self._lock:
            return [
                dict(r)
                for r in self._requests
                if (method is None or r["method"] == method.upper())
                and (path is None or fnmatch.fnmatchcase(r["path"], path))
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def add_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str = "/v2/*",
        count: int = 1,
        retry_after: int | str | None = None,
        delay: float | str | None = None,
        field: str | None = "status",
        value: str = UNKNOWN_ENUM_VALUE,
    ) -> dict[str, Any]:
        """Make the next ``count`` requests matching ``method`` and ``path`` (a glob) fail.

        Kinds: ``429`` (``Retry-After: retry_after`` if given), ``500``, ``502_html``,
        ``503`` (``Retry-After`` if given), ``504``, ``slow`` (sleep ``delay`` s, then answer
        normally), ``drop`` (hang up, no effect), ``drop_after_create`` (do the work, then
        hang up), ``malformed_json`` (do the work, send truncated JSON), ``unknown_enum``
        (do the work, then put ``value`` into ``field`` of each object replied and add
        fields alpaca-py does not know; ``field`` None only adds the fields).
        """
        if kind not in FAULT_KINDS:
            raise SandboxError(422, 40010001, f"kind must be one of {FAULT_KINDS}")
        if count < 1:
            raise SandboxError(422, 40010001, "count must be at least 1")
        fault = Fault(
            kind=kind,
            method=method.upper() if method else None,
            path=path,
            remaining=int(count),
            retry_after=None if retry_after is None else str(retry_after),
            delay=1.0 if delay is None else float(delay),
            field=field,
            value=value,
        )
        with self._lock:
            self._faults.append(fault)
            return fault.to_json()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def set_delay(self, seconds: float | str, *, method: str | None = None,
                  path: str = "/v2/*") -> dict[str, Any]:
        """Hold every matching request ``seconds`` before acting on it, until cleared (a
        route's latency, where a ``slow`` fault delays a counted few). The newest delay
        set for a route wins; 0 removes it."""
        wait = float(seconds)
        if not 0 <= wait <= 600:
            raise SandboxError(422, 40010001, "seconds must be from 0 to 600")
        delay = Delay(method.upper() if method else None, path, wait)
        with self._lock:
            self._delays = [d for d in self._delays
                            if (d.method, d.path) != (delay.method, delay.path)]
            if wait:
                self._delays.insert(0, delay)
            return delay.to_json()

    def delays(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.to_json() for d in self._delays]

    def clear_delays(self) -> None:
        with self._lock:
            self._delays.clear()

    # ------------------------------------------------------------------- internal

    def _admit(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> tuple[dict[str, Any], float, Fault | None]:
        """Log a request; the delay it waits and the fault (now used up by one) it meets."""
        with self._lock:
            entry: dict[str, Any] = {
                "seq": len(self._requests) + 1,
                "time": iso(datetime.now(UTC)),
                "method": method,
                "path": path,
                "query": dict(query),
                "body": None,
                "body_text": raw.decode("utf-8", "replace") if raw else None,
                "fault": None,
                "status": None,
            }
            if raw:
                try:
                    entry["body"] = loads(raw)
                except ValueError:
                    entry["body"] = None
            self._requests.append(entry)
            delay = next((d.seconds for d in self._delays if d.matches(method, path)), 0.0)
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                entry["fault"] = fault.kind
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        return entry, delay, fault

    def _answered(self, entry: dict[str, Any], reply: Reply) -> None:
        with self._lock:
            entry["status"] = None if reply.drop else reply.status
