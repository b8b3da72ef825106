"""Configuration is checked at start; each refusal names the variable and what it accepts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.infrastructure.store import parse_database_url
from ledger.settings import ConfigurationError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("ALPACA_", "BROKER_", "LEDGER_")):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings(None)
    assert settings.broker_provider == "paper"
    assert settings.alpaca_paper_mode is True
    assert settings.database_url.get_secret_value() == "sqlite:///ledger.db"
    assert settings.timezone == "America/New_York"
    assert settings.broker_timeout_seconds == Decimal(10)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BROKER_PROVIDER", "foo", "BROKER_PROVIDER must be one of: paper, alpaca (got 'foo')"),
        ("ALPACA_PAPER_MODE", "maybe",
         "ALPACA_PAPER_MODE must be one of: true, false (got 'maybe')"),
        ("LEDGER_TIMEZONE", "Mars/Base", "LEDGER_TIMEZONE must be an IANA time zone"),
        ("ALPACA_BASE_URL", "ftp://x", "ALPACA_BASE_URL must start with http:// or https://"),
        ("BROKER_TIMEOUT_SECONDS", "-1", "BROKER_TIMEOUT_SECONDS must be a number of seconds"),
        ("BROKER_TIMEOUT_SECONDS", "soon", "BROKER_TIMEOUT_SECONDS must be a decimal number"),
        ("LEDGER_STREAM", "on", "LEDGER_STREAM must be one of: true, false (got 'on')"),
        ("ALPACA_STREAM_URL", "https://paper-api.alpaca.markets/stream",
         "ALPACA_STREAM_URL must be a WebSocket URL such as wss://"),
        ("ALPACA_STREAM_URL", "ws://", "ALPACA_STREAM_URL must be a WebSocket URL"),
        ("ALPACA_STREAM_URL", "ws://host:0/stream", "ALPACA_STREAM_URL must be a WebSocket URL"),
        ("LEDGER_HEALTH_HOST", "http://0.0.0.0/", "LEDGER_HEALTH_HOST must be a host name"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(None)
    assert message in str(refused.value)


def test_live_defaults_and_the_derived_stream_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(None)
    assert (settings.stream_enabled, settings.drift_alert_seconds) == (True, Decimal(60))
    assert (settings.health_host, settings.health_port) == ("127.0.0.1", 9464)
    assert settings.alert_command is None and settings.alpaca_stream_url is None
    # As Alpaca's: https://paper-api.alpaca.markets streams at wss://.../stream.
    monkeypatch.setenv("ALPACA_BASE_URL", "https://paper-api.alpaca.markets/v2")
    assert load_settings(None).alpaca_stream_url == "wss://paper-api.alpaca.markets/stream"
    monkeypatch.setenv("ALPACA_BASE_URL", "http://127.0.0.1:8765/")
    assert load_settings(None).alpaca_stream_url == "ws://127.0.0.1:8765/stream"
    monkeypatch.setenv("ALPACA_STREAM_URL", "wss://elsewhere.example/stream")
    monkeypatch.setenv("LEDGER_STREAM", "FALSE")
    settings = load_settings(None)
    assert (settings.alpaca_stream_url, settings.stream_enabled) == (
        "wss://elsewhere.example/stream", False)


def test_dotenv_file_is_read_and_validated(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BROKER_PROVIDER=alpaca\nALPACA_PAPER_MODE=false\nALPACA_API_KEY=k\n")
    settings = load_settings(env_file)
    assert (settings.broker_provider, settings.alpaca_paper_mode) == ("alpaca", False)
    env_file.write_text("ALPACA_PAPER_MODE=yes please\n")
    with pytest.raises(ConfigurationError, match="ALPACA_PAPER_MODE must be one of: true, false"):
        load_settings(env_file)


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_SECRET_KEY", "very-secret-value")
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://u:pw-secret@h:5432/db")
    settings = load_settings(None)
    assert "very-secret-value" not in repr(settings)
    assert "pw-secret" not in repr(settings)


def test_missing_keys_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="ALPACA_API_KEY is not set"):
        load_settings(None).require_alpaca_keys()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secretpw@h/db", "unsupported scheme 'mysql'"),
        ("ledger.db", "unsupported scheme"),
        ("sqlite://ledger.db", "is malformed"),
        ("postgresql://u:secretpw@/db", "is incomplete"),
        ("postgresql://u:secretpw@h:notaport/db", "has a port that is not a number"),
        ("sqlite:////no/such/folder/ledger.db", "which does not exist"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_database_url(url)
    assert message in str(refused.value)
    assert "secretpw" not in str(refused.value)


def test_postgres_url_maps_to_eventsourcing_persistence() -> None:
    config = parse_database_url("postgres://alice:s%40cret@db.example:6543/prod?schema=ledger")
    assert config.env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (config.env["POSTGRES_HOST"], config.env["POSTGRES_PORT"]) == ("db.example", "6543")
    assert (config.env["POSTGRES_USER"], config.env["POSTGRES_PASSWORD"]) == ("alice", "s@cret")
    assert (config.env["POSTGRES_DBNAME"], config.env["POSTGRES_SCHEMA"]) == ("prod", "ledger")
    assert "s%40cret" not in config.display and "***" in config.display
    assert "s@cret" not in repr(config)


def test_sqlite_url_maps_to_eventsourcing_persistence(tmp_path: Path) -> None:
    config = parse_database_url(f"sqlite:///{tmp_path}/x.db")
    assert config.env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert config.env["SQLITE_DBNAME"] == f"{tmp_path}/x.db"


# -- every numeric setting has a range ---------------------------------------------------------

# The range each numeric setting's refusal names, as it is worded there.
RANGES = {
    "BROKER_TIMEOUT_SECONDS": "seconds above zero and at most 600, to the millisecond",
    "LEDGER_POLL_INTERVAL_SECONDS": "seconds above zero and at most 86400, to the millisecond",
    "LEDGER_RESYNC_INTERVAL_SECONDS": "seconds above zero and at most 86400, to the millisecond",
    "ALPACA_RETRY_ATTEMPTS": "a whole number from 0 to 10",
    "ALPACA_RETRY_WAIT_SECONDS": "from 0 to 30 seconds",
    "LEDGER_SYNC_LOOKBACK_DAYS": "a whole number from 1 to 36500",
    "LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS": "a whole number from 1 to 3600",
    "RECONCILE_RECENT_FILL_SECONDS": "from 0 to 86400 seconds",
    "RECONCILE_LOCK_LEASE_SECONDS": "a whole number from 5 to 86400",
    "RECONCILE_MAX_ORDER_NOTIONAL": "above zero and at most 1000000000, or empty",
    "RECONCILE_MAX_RUN_NOTIONAL": "above zero and at most 1000000000, or empty",
    "RECONCILE_EXTENDED_HOURS_SLIPPAGE": "from 0 to 0.1",
    "LEDGER_DRIFT_ALERT_SECONDS": "seconds above zero and at most 86400, to the millisecond",
    "LEDGER_HEALTH_PORT": "a whole number from 0 to 65535",
}
NOT_NUMBERS = ["soon", "nan", "NaN", "inf", "-Infinity", "1e400x", ""]
REFUSED = [
    # Values the settings took, or crashed on, before each got a range.
    ("BROKER_TIMEOUT_SECONDS",
     ["0", "-1", "601", "86400", "1e12", "1e400", "1e-9", "0.0001", "1e-999999999"]),
    ("LEDGER_POLL_INTERVAL_SECONDS", ["0", "-0.5", "86401", "604800", "1e12", "1e-30"]),
    ("LEDGER_RESYNC_INTERVAL_SECONDS", ["0", "-900", "86401", "604800", "1e12"]),
    ("ALPACA_RETRY_ATTEMPTS", ["-1", "11", "1000", "1.5", "1e3", "²", "٣", "9" * 5000]),
    ("ALPACA_RETRY_WAIT_SECONDS", ["-1", "30.001", "1e12"]),
    ("LEDGER_SYNC_LOOKBACK_DAYS", ["0", "-1", "36501", "1.5", "1e3", "²", "9" * 5000]),
    ("LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS", ["0", "3601", "30.5", "²"]),
    ("RECONCILE_RECENT_FILL_SECONDS", ["-1", "-0.001", "86401", "1e12", "1e400"]),
    ("RECONCILE_LOCK_LEASE_SECONDS", ["4", "86401", "600.0", "²"]),
    ("RECONCILE_MAX_ORDER_NOTIONAL", ["0", "-5", "1000000000.01", "1e12", "1e400"]),
    ("RECONCILE_MAX_RUN_NOTIONAL", ["0", "-5", "1000000000.01", "1e12", "1e400"]),
    ("RECONCILE_EXTENDED_HOURS_SLIPPAGE", ["-0.001", "0.999", "0.1000001", "1", "5", "1e12"]),
    ("LEDGER_DRIFT_ALERT_SECONDS", ["0", "-60", "86401", "1e12", "0.0001"]),
    ("LEDGER_HEALTH_PORT", ["-1", "65536", "9464.0", "http", "²"]),
]
REFUSALS = [
    (name, value)
    for name, values in REFUSED
    # An empty cap means "no cap": every other setting refuses an empty value.
    for value in values + [v for v in NOT_NUMBERS if v or "NOTIONAL" not in name]
]


def test_every_numeric_setting_has_a_range() -> None:
    from ledger.settings import Settings

    numeric = {
        field.alias
        for field in Settings.model_fields.values()
        if {int, Decimal} & set(getattr(field.annotation, "__args__", (field.annotation,)))
    }
    assert numeric == set(RANGES) == {name for name, _ in REFUSED}


@pytest.mark.parametrize(
    ("name", "value"), REFUSALS, ids=[f"{n}={v[:12]!r}" for n, v in REFUSALS]
)
def test_a_value_outside_the_range_is_one_line_naming_the_variable_and_its_range(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(None)
    message = str(refused.value)
    assert message.startswith(f"{name} must be ") and RANGES[name] in message, message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("BROKER_TIMEOUT_SECONDS", "600", Decimal(600)),
        ("BROKER_TIMEOUT_SECONDS", "0.001", Decimal("0.001")),
        ("LEDGER_POLL_INTERVAL_SECONDS", "0.2", Decimal("0.2")),
        ("LEDGER_POLL_INTERVAL_SECONDS", "86400", Decimal(86400)),
        ("LEDGER_RESYNC_INTERVAL_SECONDS", "86400", Decimal(86400)),
        ("ALPACA_RETRY_ATTEMPTS", "10", 10),
        ("ALPACA_RETRY_WAIT_SECONDS", "0.01", Decimal("0.01")),
        ("ALPACA_RETRY_WAIT_SECONDS", "30", Decimal(30)),
        ("LEDGER_SYNC_LOOKBACK_DAYS", "36500", 36500),
        ("LEDGER_SQLITE_LOCK_TIMEOUT_SECONDS", "3600", 3600),
        ("RECONCILE_RECENT_FILL_SECONDS", "0", Decimal(0)),
        ("RECONCILE_RECENT_FILL_SECONDS", "86400", Decimal(86400)),
        ("RECONCILE_LOCK_LEASE_SECONDS", "5", 5),
        ("RECONCILE_MAX_ORDER_NOTIONAL", "1000000000", Decimal(1_000_000_000)),
        ("RECONCILE_MAX_ORDER_NOTIONAL", " ", None),
        ("RECONCILE_MAX_RUN_NOTIONAL", "0.01", Decimal("0.01")),
        ("RECONCILE_EXTENDED_HOURS_SLIPPAGE", "0", Decimal(0)),
        ("RECONCILE_EXTENDED_HOURS_SLIPPAGE", "0.1", Decimal("0.1")),
        ("LEDGER_DRIFT_ALERT_SECONDS", "0.001", Decimal("0.001")),
        ("LEDGER_DRIFT_ALERT_SECONDS", "86400", Decimal(86400)),
        ("LEDGER_HEALTH_PORT", "0", 0),
        ("LEDGER_HEALTH_PORT", "65535", 65535),
    ],
)
def test_the_ends_of_each_range_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: object
) -> None:
    from ledger.settings import Settings

    monkeypatch.setenv(name, value)
    settings = load_settings(None)
    field = next(f for f, info in Settings.model_fields.items() if info.alias == name)
    assert getattr(settings, field) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("RECONCILE_RECENT_FILL_SECONDS", "1e12"), ("RECONCILE_EXTENDED_HOURS_SLIPPAGE", "0.999"),
     ("LEDGER_RESYNC_INTERVAL_SECONDS", "1e12")],
)
def test_the_command_line_says_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    from click.testing import CliRunner

    from commands.cli import cli

    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["events"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {name} must be ") and RANGES[name] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
