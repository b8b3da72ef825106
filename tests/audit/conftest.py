"""The scripted history, written once per store for the whole package (about 3 s each)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.application import Ledger
from projections import Views, catch_up
from scripts.alpaca_sandbox import AlpacaSandbox
from tests.audit.history import ZONE, History, open_reader, write_history
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
from tests.conftest import PG_URL, STORES


def _schema_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


@pytest.fixture(scope="package", params=STORES)
def history(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: AlpacaSandbox,  # noqa: F811 - the shared fixture, by name
) -> Iterator[History]:
    schema = None
    if request.param == "sqlite":
        folder: Path = tmp_path_factory.mktemp("audit")
        url = f"sqlite:///{folder / 'ledger.db'}"
    else:
        schema = f"audit_{uuid.uuid4().hex[:12]}"
        url = _schema_url(schema)
    sandbox_server.reset()
    try:
        yield write_history(url, sandbox_server)
    finally:
        sandbox_server.reset()
        if schema is not None:
            with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


@pytest.fixture(scope="package")
def reader(history: History) -> Iterator[Ledger]:
    ledger = open_reader(history)
    yield ledger
    ledger.close()


@pytest.fixture(scope="package")
def views(reader: Ledger) -> Views:
    return catch_up(reader, timezone=ZONE)
