"""Shared fixtures: every storage-facing test runs on SQLite and on a real PostgreSQL server.

PostgreSQL is found through LEDGER_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test). Each test gets a schema of its own, named
after this run, so two runs (or two tests) never see each other's data.

That server is shared (a developer's other databases, another test run): no test stops,
restarts or reconfigures it, and the session checks so at its end. Tests that must do
such things to a server use a throwaway cluster of their own (`throwaway_pg`,
`password_pg`, tests/pg_cluster.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.brokers.port import BrokerAdapter
from ledger.settings import Settings, load_settings
from sandbox import AlpacaSandbox
from tests.pg_cluster import ClusterUnavailable, ThrowawayCluster

PG_URL = os.environ.get("LEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:8]
STORES = ["sqlite", "postgres"]


def _pg_connect() -> psycopg.Connection:
    return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)


def with_query(url: str, **params: str) -> str:
    joiner = "&" if "?" in url else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in params.items())


def _shared_server_times() -> tuple[object, object] | None:
    """When the shared server started and last read its configuration, or None when there
    is no server to reach."""
    try:
        with _pg_connect() as conn:
            row = conn.execute("SELECT pg_postmaster_start_time(), pg_conf_load_time()"
                               ).fetchone()
    except psycopg.Error:
        return None
    assert row is not None
    return row[0], row[1]


@pytest.fixture(scope="session", autouse=True)
def shared_server_left_alone() -> Iterator[None]:
    """The shared PostgreSQL server is never restarted nor made to reload its configuration
    by the tests: compared at the end of the session with what it was at its start. (A
    failure here shows as an error at the teardown of the last test.)"""
    before = _shared_server_times()
    yield
    if before is None:
        return  # no server at the start: the storage tests skipped or failed on their own
    after = _shared_server_times()
    assert after is not None, f"the shared PostgreSQL server ({PG_URL}) is gone"
    # Another program may have done it too; the message says what to look for in tests.
    assert after[0] == before[0], (
        f"the shared PostgreSQL server ({PG_URL}) was restarted while the tests ran: started "
        f"at {before[0]}, now at {after[0]} (a test may restart only a throwaway_pg)")
    assert after[1] == before[1], (
        f"the shared PostgreSQL server ({PG_URL}) reloaded its configuration while the tests "
        f"ran: at {before[1]}, now at {after[1]} (a test may reconfigure only a throwaway_pg "
        "or password_pg)")


def _throwaway_cluster(**kwargs: dict[str, str]) -> ThrowawayCluster:
    try:
        return ThrowawayCluster.create(**kwargs)
    except ClusterUnavailable as why:
        pytest.skip(f"no throwaway PostgreSQL cluster: {why}")


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL cluster of this test's own (temporary folder, free port), for tests that
    stop, restart or reconfigure a server; removed afterwards. Its database `test` is
    `throwaway_pg.url()`."""
    cluster = _throwaway_cluster()
    yield cluster
    cluster.close()


PASSWORD_ROLE = "tradeledger_pw"
PASSWORD = "right-password"


@pytest.fixture(scope="session")
def password_pg() -> Iterator[ThrowawayCluster]:
    """A throwaway cluster, one per session, where every role but the superuser must give
    its password (scram-sha-256), so "wrong password" is tested for real without editing
    the shared server's pg_hba.conf. PASSWORD_ROLE logs in with PASSWORD
    (`password_pg.url(PASSWORD_ROLE, PASSWORD)`); `create_password_role` adds others.
    Tests must not stop or restart it: they share it."""
    cluster = _throwaway_cluster(password_roles={PASSWORD_ROLE: PASSWORD})
    yield cluster
    cluster.close()


def drop_schema(name: str) -> None:
    with _pg_connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    yield name
    drop_schema(name)


@contextmanager
def fresh_store(kind: str, folder: Path, broker: AlpacaSandbox, prefix: str) -> Iterator[str]:
    """The URL of an empty store of `kind` (a SQLite file in `folder`, or a PostgreSQL schema
    named after `prefix`) for a package's story, with `broker` reset before and after; the
    store is dropped afterwards."""
    schema = None
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'ledger.db'}"
    else:
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        url = with_query(PG_URL, schema=schema)
    broker.reset()
    try:
        yield url
    finally:
        broker.reset()
        if schema is not None:
            drop_schema(schema)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty event store of the kind under test."""
    if store_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    schema = request.getfixturevalue("pg_schema")
    return with_query(PG_URL, schema=schema)


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
