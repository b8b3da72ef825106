"""Configuration from the environment and `.env`, checked once at start.

Every refusal names the variable and what it accepts, so a typo in `.env` costs
one read of one line, not a stack trace.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.domain.values import InvalidInput, to_decimal


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


_BOOLEANS = {"true": True, "false": False}
# Bounds that catch a typo before it becomes an endless wait (a float of 1e400 seconds is
# infinity) or a broker hammered with retries.
MAX_SECONDS = Decimal(86400 * 7)
MAX_RETRY_WAIT_SECONDS = Decimal(30)
MAX_RETRY_ATTEMPTS = 10
_WHOLE_NUMBER_BOUNDS = {
    "ALPACA_RETRY_ATTEMPTS": (0, MAX_RETRY_ATTEMPTS),
    "LEDGER_SYNC_LOOKBACK_DAYS": (1, 36500),
    "LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS": (1, 3600),
    # Longer than any one broker call plus a lookup; a day at most, so a dead run's lock
    # never outlives it by more.
    "RECONCILE_LOCK_LEASE_SECONDS": (5, 86400),
}


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

    @field_validator("broker_provider", mode="before")
    @classmethod
    def _provider(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in ("paper", "alpaca"):
            raise ValueError(f"BROKER_PROVIDER must be one of: paper, alpaca (got {value!r})")
        return text

    @field_validator("alpaca_paper_mode", mode="before")
    @classmethod
    def _paper_mode(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _BOOLEANS:
            raise ValueError(f"ALPACA_PAPER_MODE must be one of: true, false (got {value!r})")
        return _BOOLEANS[text]

    @field_validator("alpaca_base_url", mode="before")
    @classmethod
    def _base_url(cls, value: Any) -> str | None:
        if value is None or not str(value).strip():
            return None
        text = str(value).strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"ALPACA_BASE_URL must start with http:// or https:// (got {value!r})")
        try:
            parts = urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is None or not parts.hostname or not port_ok or any(c.isspace() for c in text):
            raise ValueError(
                f"ALPACA_BASE_URL must be a URL such as https://paper-api.alpaca.markets "
                f"(got {value!r})"
            )
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
        "broker_timeout_seconds", "poll_interval_seconds", "resync_interval_seconds", mode="before"
    )
    @classmethod
    def _positive_seconds(cls, value: Any, info: Any) -> Decimal:
        name = cls.model_fields[info.field_name].alias
        try:
            number = to_decimal(value, name)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        if number <= 0 or number > MAX_SECONDS:
            raise ValueError(
                f"{name} must be a number of seconds above zero and at most {MAX_SECONDS} "
                f"(got {value!r})"
            )
        return number

    @field_validator("recent_fill_seconds", "extended_hours_slippage", mode="before")
    @classmethod
    def _not_negative(cls, value: Any, info: Any) -> Decimal:
        name = cls.model_fields[info.field_name].alias
        try:
            number = to_decimal(value, name)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        if number < 0:
            raise ValueError(f"{name} must be zero or more (got {value!r})")
        return number

    @field_validator("max_order_notional", "max_run_notional", mode="before")
    @classmethod
    def _optional_cap(cls, value: Any, info: Any) -> Decimal | None:
        if value is None or not str(value).strip():
            return None
        name = cls.model_fields[info.field_name].alias
        try:
            number = to_decimal(value, name)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        if number <= 0:
            raise ValueError(f"{name} must be an amount above zero, or empty (got {value!r})")
        return number

    @field_validator("alpaca_retry_wait_seconds", mode="before")
    @classmethod
    def _wait_seconds(cls, value: Any) -> Decimal:
        try:
            number = to_decimal(value, "ALPACA_RETRY_WAIT_SECONDS")
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        if number < 0 or number > MAX_RETRY_WAIT_SECONDS:
            raise ValueError(
                f"ALPACA_RETRY_WAIT_SECONDS must be from 0 to {MAX_RETRY_WAIT_SECONDS} "
                f"(got {value!r})"
            )
        return number

    @field_validator(
        "alpaca_retry_attempts",
        "sync_lookback_days",
        "sqlite_lock_timeout_seconds",
        "lock_lease_seconds",
        mode="before",
    )
    @classmethod
    def _whole_number(cls, value: Any, info: Any) -> int:
        name = cls.model_fields[info.field_name].alias
        lowest, highest = _WHOLE_NUMBER_BOUNDS[name]
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not lowest <= int(text) <= highest:
            raise ValueError(
                f"{name} must be a whole number from {lowest} to {highest} (got {value!r})"
            )
        return int(text)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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
