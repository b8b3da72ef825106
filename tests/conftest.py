"""Shared fixtures: every storage-facing test runs on SQLite and on a real PostgreSQL server.

PostgreSQL is found through LEDGER_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test). Each test gets a schema of its own, named
after this run, so two runs (or two tests) never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.brokers.port import BrokerAdapter
from ledger.settings import Settings, load_settings

PG_URL = os.environ.get("LEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:8]
STORES = ["sqlite", "postgres"]


def _pg_connect() -> psycopg.Connection:
    return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)


def _with_query(url: str, **params: str) -> str:
    joiner = "&" if "?" in url else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    yield name
    with _pg_connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty event store of the kind under test."""
    if store_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    schema = request.getfixturevalue("pg_schema")
    return _with_query(PG_URL, schema=schema)


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        values = {"LEDGER_DATABASE_URL": database_url, "BROKER_PROVIDER": "paper"}
        values.update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture
def open_store(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Ledger]]:
    """Opens ledgers on the store under test; each one is closed after the test."""
    opened: list[Ledger] = []

    def open_(adapter: BrokerAdapter | None = None, **overrides: str) -> Ledger:
        ledger = open_ledger(make_settings(**overrides), adapter=adapter)
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_store: Callable[..., Ledger]) -> Ledger:
    return open_store()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running the CLI against the store under test, from an empty folder."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in list(os.environ):
        ours = name.startswith(("ALPACA_", "BROKER_", "LEDGER_"))
        if ours and name != "LEDGER_TEST_DATABASE_URL":
            monkeypatch.delenv(name, raising=False)
    env = {"LEDGER_DATABASE_URL": database_url, "BROKER_PROVIDER": "paper"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
