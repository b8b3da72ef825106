"""Values as they cross the wire: Alpaca's decimal strings and times, request parsing, JSON
text that keeps a ``Decimal`` exact, the error shape, and a reply as the server sends it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

try:
    from zoneinfo import ZoneInfo

    ET: Any = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover - only on hosts without tz data
    # Activity ids and the clock are stamped in New York time by Alpaca; without tz data
    # UTC keeps them well-formed, which is all a test double needs.
    ET = UTC

ZERO = Decimal(0)
QTY_STEP = Decimal("1e-9")  # Alpaca accepts up to 9 decimal places of quantity
MONEY_STEP = Decimal("1e-10")
RATIO_STEP = Decimal("1e-16")


class SandboxError(Exception):
    """An error reply in Alpaca's ``{"code": ..., "message": ...}`` shape, with any extra
    fields Alpaca adds to some of them (``extra``)."""

    def __init__(
        self, status: int, code: int, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {**self.extra, "code": self.code, "message": self.message}


def fmt(value: Decimal) -> str:
    """Alpaca's decimal strings: plain notation, no trailing zeros, never ``-0``."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def fmt_opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def money(value: Decimal) -> str:
    return fmt(value.quantize(MONEY_STEP))


def ratio(value: Decimal) -> str:
    return fmt(value.quantize(RATIO_STEP))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_opt(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def iso_et(moment: datetime) -> str:
    # The clock endpoint answers in New York time with an offset, like the real one.
    return moment.astimezone(ET).isoformat(timespec="microseconds")


def dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise SandboxError(422, 40010001, f"{name} must be a decimal number")
    try:
        # floats only arrive from Python callers; str() keeps their shortest repr
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise SandboxError(422, 40010001, f"invalid {name}: {value!r}") from None
    if not number.is_finite():
        raise SandboxError(422, 40010001, f"invalid {name}: {value!r}")
    return number


def positive(value: Any, name: str) -> Decimal:
    number = dec(value, name)
    if number <= 0:
        raise SandboxError(422, 40010001, f"{name} must be > 0")
    return number


def parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if "T" in text:
            # a literal '+' in a query string arrives as a space
            text = text.replace(" ", "+")
        try:
            moment = (
                datetime.combine(date.fromisoformat(text), datetime.min.time())
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            raise SandboxError(422, 40010001, f"invalid {name}: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SandboxError(422, 40010001, f"{name} must be a boolean")


def dumps(obj: Any) -> str:
    """JSON text in which a ``Decimal`` stays a JSON number (used by the request log)."""
    if isinstance(obj, Decimal):
        return fmt(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    if isinstance(obj, datetime):
        return json.dumps(iso(obj))
    return json.dumps(obj)


def loads(raw: bytes) -> Any:
    # parse_float keeps a client's 10.5 exact and tells it apart from the string "10.5"
    return json.loads(raw.decode("utf-8"), parse_float=Decimal)


def public(activity: dict[str, Any]) -> dict[str, Any]:
    """An activity as served: without the sandbox's own ``_`` keys (its sort time)."""
    return {k: v for k, v in activity.items() if not k.startswith("_")}


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sandbox/asset/{symbol}"))


@dataclass
class Reply:
    status: int
    payload: Any = None  # JSON-able; None means an empty body
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.payload is None:
            return b""
        return dumps(self.payload).encode("utf-8")


def error_reply(error: SandboxError) -> Reply:
    return Reply(error.status, error.body())


def route_not_found() -> Reply:
    # Unknown routes get the Go router's plain-text 404, not JSON.
    return Reply(404, raw=b"404 page not found", content_type="text/plain")


def method_not_allowed() -> Reply:
    return Reply(405, {"code": 40510000, "message": "method not allowed"})
