"""Configuration is checked at start; each refusal names the variable and what it accepts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.settings import ConfigurationError, load_settings
from ledger.storage import parse_database_url


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
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(None)
    assert message in str(refused.value)


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
