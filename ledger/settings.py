"""Configuration from the environment and `.env`, checked once at start.

Every refusal names the variable and what it accepts, so a typo in `.env` costs
one read of one line, not a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.domain.values import MAX_AMOUNT, InvalidInput, to_decimal


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


_BOOLEANS = {"true": True, "false": False}
# Every numeric setting has a range, so a typo is refused at start instead of becoming an
# endless wait (1e400 seconds is infinity as a float), a date no datetime holds (1e12
# seconds is 31,000 years), a broker hammered with retries, or an order priced 99% off.
ONE_DAY = 86400
# Intervals are used as floats: below a millisecond they round towards a zero timeout
# (refused by requests) or a busy loop, so they are whole milliseconds.
MILLISECOND = Decimal("0.001")
MAX_BROKER_TIMEOUT_SECONDS = 600  # no Alpaca call takes minutes; Ctrl-C waits this long
MAX_RETRY_WAIT_SECONDS = 30  # alpaca.LONGEST_WAIT_SECONDS: a command never sits longer
MAX_RETRY_ATTEMPTS = 10
MAX_SLIPPAGE = Decimal("0.1")  # 10% past the last price is a unit mix-up, not a limit


@dataclass(frozen=True)
class _Range:
    """What a decimal setting accepts, and how its refusal words that."""

    low: Decimal
    high: Decimal
    low_excluded: bool = False  # "above zero" rather than "from 0"
    noun: str = ""  # "seconds" or "amount"

    def holds(self, number: Decimal) -> bool:
        above = number > self.low if self.low_excluded else number >= self.low
        if not (above and number <= self.high):
            return False
        # Compared with its quantized self, not `% MILLISECOND`: the remainder of 1e-999999999
        # underflows to zero.
        whole_ms = number == number.quantize(MILLISECOND)
        return self.noun != "seconds" or not self.low_excluded or whole_ms

    def accepts(self, *, number: bool) -> str:
        """`number`: the value was a number (out of range), not text, NaN or infinity."""
        high = f"{self.high:f}"
        if self.noun == "amount":
            what = "an amount" if number else "a decimal amount"
            return f"{what} above zero and at most {high}, or empty"
        if self.low_excluded:
            what = "a number" if number else "a decimal number"
            return f"{what} of seconds above zero and at most {high}, to the millisecond"
        what = "" if number else "a decimal number "
        unit = f" {self.noun}" if self.noun else ""
        return f"{what}from {self.low:f} to {high}{unit}"


_DECIMAL_RANGES = {
    "BROKER_TIMEOUT_SECONDS": _Range(Decimal(0), Decimal(MAX_BROKER_TIMEOUT_SECONDS), True,
                                     "seconds"),
    "LEDGER_POLL_INTERVAL_SECONDS": _Range(Decimal(0), Decimal(ONE_DAY), True, "seconds"),
    # A day at most: `commands run` takes at least one full snapshot a trading day.
    "LEDGER_RESYNC_INTERVAL_SECONDS": _Range(Decimal(0), Decimal(ONE_DAY), True, "seconds"),
    "ALPACA_RETRY_WAIT_SECONDS": _Range(Decimal(0), Decimal(MAX_RETRY_WAIT_SECONDS),
                                        noun="seconds"),
    "RECONCILE_RECENT_FILL_SECONDS": _Range(Decimal(0), Decimal(ONE_DAY), noun="seconds"),
    # No one order can be larger (ledger.domain.values.MAX_AMOUNT), nor sanely one run.
    "RECONCILE_MAX_ORDER_NOTIONAL": _Range(Decimal(0), MAX_AMOUNT, True, "amount"),
    "RECONCILE_MAX_RUN_NOTIONAL": _Range(Decimal(0), MAX_AMOUNT, True, "amount"),
    "RECONCILE_EXTENDED_HOURS_SLIPPAGE": _Range(Decimal(0), MAX_SLIPPAGE),
    # A day at most: a drift unreported for longer is the weeks-long silence this guards.
    "LEDGER_DRIFT_ALERT_SECONDS": _Range(Decimal(0), Decimal(ONE_DAY), True, "seconds"),
}
_WHOLE_NUMBER_BOUNDS = {
    "ALPACA_RETRY_ATTEMPTS": (0, MAX_RETRY_ATTEMPTS),
    "LEDGER_SYNC_LOOKBACK_DAYS": (1, 36500),
    "LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS": (1, 3600),
    # Longer than any one broker call plus a lookup; a day at most, so a dead run's lock
    # never outlives it by more.
    "RECONCILE_LOCK_LEASE_SECONDS": (5, ONE_DAY),
    # 0 asks the system for any free port (printed at start): handy for tests and a second run.
    "LEDGER_HEALTH_PORT": (0, 65535),
}


def _shown(value: Any) -> str:
    """The value as a refusal quotes it: a pasted blob must not become a page of output."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(str(value))} characters)"


def _in_range(name: str, value: Any) -> Decimal:
    """The setting as an exact Decimal within its range, or one line naming both."""
    bounds = _DECIMAL_RANGES[name]
    try:
        number = to_decimal(value, name)
    except InvalidInput:
        # Text, NaN or infinity: say what is wanted, not only what was wrong.
        raise ValueError(
            f"{name} must be {bounds.accepts(number=False)} (got {_shown(value)})"
        ) from None
    if not bounds.holds(number):
        raise ValueError(f"{name} must be {bounds.accepts(number=True)} (got {_shown(value)})")
    return number


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    broker_provider: Literal["paper", "alpaca"] = Field("paper", alias="BROKER_PROVIDER")
    alpaca_api_key: SecretStr | None = Field(None, alias="ALPACA_API_KEY")
    alpaca_secret_key: SecretStr | None = Field(None, alias="ALPACA_SECRET_KEY")
    alpaca_paper_mode: bool = Field(True, alias="ALPACA_PAPER_MODE")
    alpaca_base_url: str | None = Field(None, alias="ALPACA_BASE_URL")
    # Alpaca's market data API (latest trades: the price every planned order is capped at).
    alpaca_data_url: str | None = Field(None, alias="ALPACA_DATA_URL")
    database_url: SecretStr = Field(SecretStr("sqlite:///ledger.db"), alias="LEDGER_DATABASE_URL")
    timezone: str = Field("America/New_York", alias="LEDGER_TIMEZONE")
    broker_timeout_seconds: Decimal = Field(Decimal(10), alias="BROKER_TIMEOUT_SECONDS")
    poll_interval_seconds: Decimal = Field(Decimal(5), alias="LEDGER_POLL_INTERVAL_SECONDS")
    # alpaca-py retries 429 and 504 itself (POSTs too): how often, and how long it waits.
    alpaca_retry_attempts: int = Field(3, alias="ALPACA_RETRY_ATTEMPTS")
    alpaca_retry_wait_seconds: Decimal = Field(Decimal(3), alias="ALPACA_RETRY_WAIT_SECONDS")
    # How far back the very first sync reads fills; later syncs continue where the last stopped.
    sync_lookback_days: int = Field(30, alias="LEDGER_SYNC_LOOKBACK_DAYS")
    # How long a command waits for another process's SQLite write before it gives up with
    # "the event store is busy" (PostgreSQL has no such single write lock).
    sqlite_lock_timeout_seconds: int = Field(30, alias="LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS")
    # `commands run` polls orders and fills; a full sync (a new broker snapshot) this often.
    resync_interval_seconds: Decimal = Field(Decimal(900), alias="LEDGER_RESYNC_INTERVAL_SECONDS")
    # Alpaca's positions can lag its fills: no compensation this soon after a broker fill.
    recent_fill_seconds: Decimal = Field(Decimal(30), alias="RECONCILE_RECENT_FILL_SECONDS")
    # How long the reconciliation lock holds without being renewed: a running reconcile
    # renews it every third of this; a run that dies without releasing it blocks others
    # this long at most (less when its process is seen to be gone on this host).
    lock_lease_seconds: int = Field(600, alias="RECONCILE_LOCK_LEASE_SECONDS")
    # Caps on what one reconciliation may send, at the broker's last price (empty: no cap).
    max_order_notional: Decimal | None = Field(None, alias="RECONCILE_MAX_ORDER_NOTIONAL")
    max_run_notional: Decimal | None = Field(None, alias="RECONCILE_MAX_RUN_NOTIONAL")
    # How far past the last price an extended-hours limit order may trade (0.005 = 0.5%).
    extended_hours_slippage: Decimal = Field(
        Decimal("0.005"), alias="RECONCILE_EXTENDED_HOURS_SLIPPAGE"
    )
    # Alpaca's trade_updates WebSocket. Empty: derived from ALPACA_BASE_URL as Alpaca's own
    # is (https://paper-api.alpaca.markets -> wss://paper-api.alpaca.markets/stream), or
    # alpaca-py's default when no base URL is set either.
    alpaca_stream_url: str | None = Field(None, alias="ALPACA_STREAM_URL")
    # `commands run` listens to the stream (BROKER_PROVIDER=alpaca only); polling stays the
    # safety net either way.
    stream_enabled: bool = Field(True, alias="LEDGER_STREAM")
    # How long the books may differ (beyond in-flight orders and recent fills) before
    # `commands run` records a drift and alerts.
    drift_alert_seconds: Decimal = Field(Decimal(60), alias="LEDGER_DRIFT_ALERT_SECONDS")
    # A shell command run with the drift as JSON on stdin when one begins (empty: none).
    alert_command: str | None = Field(None, alias="LEDGER_ALERT_COMMAND")
    # Where `commands run` serves /healthz and /metrics: loopback unless set otherwise.
    health_host: str = Field("127.0.0.1", alias="LEDGER_HEALTH_HOST")
    health_port: int = Field(9464, alias="LEDGER_HEALTH_PORT")

    @field_validator("broker_provider", mode="before")
    @classmethod
    def _provider(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in ("paper", "alpaca"):
            raise ValueError(f"BROKER_PROVIDER must be one of: paper, alpaca (got {value!r})")
        return text

    @field_validator("alpaca_paper_mode", "stream_enabled", mode="before")
    @classmethod
    def _boolean(cls, value: Any, info: Any) -> bool:
        if isinstance(value, bool):
            return value
        name = cls.model_fields[info.field_name].alias
        text = str(value).strip().lower()
        if text not in _BOOLEANS:
            raise ValueError(f"{name} must be one of: true, false (got {_shown(value)})")
        return _BOOLEANS[text]

    @field_validator("alpaca_stream_url", mode="before")
    @classmethod
    def _stream_url(cls, value: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        text = str(value).strip()
        try:
            parts = urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if (parts is None or parts.scheme not in ("ws", "wss") or not parts.hostname
                or not port_ok or any(c.isspace() for c in text)):
            raise ValueError(
                "ALPACA_STREAM_URL must be a WebSocket URL such as "
                f"wss://paper-api.alpaca.markets/stream (got {_shown(value)})"
            )
        return text

    @field_validator("alert_command", mode="before")
    @classmethod
    def _alert_command(cls, value: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        return str(value).strip()

    @field_validator("health_host", mode="before")
    @classmethod
    def _health_host(cls, value: Any) -> str:
        text = str(value).strip()
        if not text or any(c.isspace() or c in "/[]" for c in text) or len(text) > 253:
            raise ValueError(
                "LEDGER_HEALTH_HOST must be a host name or address such as 127.0.0.1 "
                f"(got {_shown(value)})"
            )
        return text

    @model_validator(mode="after")
    def _derived_stream_url(self) -> Settings:
        # Alpaca serves the stream on the trading API's host: wss://paper-api.alpaca.markets/
        # stream beside https://paper-api.alpaca.markets, so the sandbox does the same.
        if self.alpaca_stream_url is None and self.alpaca_base_url is not None:
            scheme, rest = self.alpaca_base_url.split("://", 1)
            ws = "wss" if scheme == "https" else "ws"
            self.alpaca_stream_url = f"{ws}://{rest.rstrip('/')}/stream"
        return self

    @field_validator("alpaca_base_url", "alpaca_data_url", mode="before")
    @classmethod
    def _base_url(cls, value: Any, info: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        name = cls.model_fields[info.field_name].alias
        text = str(value).strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"{name} must start with http:// or https:// (got {value!r})")
        try:
            parts = urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is None or not parts.hostname or not port_ok or any(c.isspace() for c in text):
            example = ("https://data.alpaca.markets" if name == "ALPACA_DATA_URL"
                       else "https://paper-api.alpaca.markets")
            raise ValueError(f"{name} must be a URL such as {example} (got {value!r})")
        # alpaca-py appends the API version itself.
        return text.removesuffix("/v2")

    @field_validator("timezone", mode="before")
    @classmethod
    def _timezone(cls, value: Any) -> str:
        text = str(value).strip()
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"LEDGER_TIMEZONE must be an IANA time zone such as America/New_York "
                f"(got {value!r})"
            ) from None
        return text

    @field_validator(
        "broker_timeout_seconds",
        "poll_interval_seconds",
        "resync_interval_seconds",
        "alpaca_retry_wait_seconds",
        "recent_fill_seconds",
        "extended_hours_slippage",
        "drift_alert_seconds",
        mode="before",
    )
    @classmethod
    def _decimal_in_range(cls, value: Any, info: Any) -> Decimal:
        return _in_range(cls.model_fields[info.field_name].alias, value)

    @field_validator("max_order_notional", "max_run_notional", mode="before")
    @classmethod
    def _optional_cap(cls, value: Any, info: Any) -> Decimal | None:
        if value is None or not str(value).strip():
            return None
        return _in_range(cls.model_fields[info.field_name].alias, value)

    @field_validator(
        "alpaca_retry_attempts",
        "sync_lookback_days",
        "sqlite_lock_timeout_seconds",
        "lock_lease_seconds",
        "health_port",
        mode="before",
    )
    @classmethod
    def _whole_number(cls, value: Any, info: Any) -> int:
        name = cls.model_fields[info.field_name].alias
        lowest, highest = _WHOLE_NUMBER_BOUNDS[name]
        text = str(value).strip()
        # ASCII digits only: str.isdigit() takes "²" (which int() refuses) and other scripts'
        # digits; the length check keeps int() off a 5000-digit string it would refuse.
        digits = text.isascii() and text.isdigit() and len(text) <= 18
        if isinstance(value, bool) or not digits or not lowest <= int(text) <= highest:
            raise ValueError(
                f"{name} must be a whole number from {lowest} to {highest} (got {_shown(value)})"
            )
        return int(text)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def not_alpaca(self, purpose: str) -> str | None:
        """Why a command that needs Alpaca cannot run with these settings, or None."""
        if self.broker_provider == "alpaca":
            return None
        if "broker_provider" not in self.model_fields_set:
            return (
                f"BROKER_PROVIDER is not set, so the paper broker (the default) is in use, "
                f"not 'alpaca': {purpose}; set BROKER_PROVIDER=alpaca with ALPACA_API_KEY "
                "and ALPACA_SECRET_KEY (in the environment or .env)"
            )
        return f"BROKER_PROVIDER is set to '{self.broker_provider}', not 'alpaca': {purpose}"

    def require_alpaca_keys(self) -> tuple[str, str]:
        if self.alpaca_api_key is None or not self.alpaca_api_key.get_secret_value():
            raise ConfigurationError(
                "ALPACA_API_KEY is not set: put your key in .env or the environment"
            )
        if self.alpaca_secret_key is None or not self.alpaca_secret_key.get_secret_value():
            raise ConfigurationError(
                "ALPACA_SECRET_KEY is not set: put your secret in .env or the environment"
            )
        return self.alpaca_api_key.get_secret_value(), self.alpaca_secret_key.get_secret_value()


def load_settings(env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Read and check the configuration, or raise one ConfigurationError line."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{env_file} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}): save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"{env_file} cannot be read: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        if first.get("type") == "literal_error" or not message:
            field = ".".join(str(part) for part in first.get("loc", ()))
            message = f"{field}: {first.get('msg')}"
        raise ConfigurationError(message) from None
