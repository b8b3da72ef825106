"""The scripted history, written once per store for the whole package (about 3 s each)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.application import Ledger
from projections import Views, catch_up
from sandbox import AlpacaSandbox
from tests.audit.history import ZONE, History, open_reader, write_history
from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
from tests.conftest import STORES, fresh_store


@pytest.fixture(scope="package", params=STORES)
def history(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: AlpacaSandbox,  # noqa: F811 - the shared fixture, by name
) -> Iterator[History]:
    folder = tmp_path_factory.mktemp("audit")
    with fresh_store(request.param, folder, sandbox_server, "audit") as url:
        yield write_history(url, sandbox_server)


@pytest.fixture(scope="package")
def reader(history: History) -> Iterator[Ledger]:
    ledger = open_reader(history)
    yield ledger
    ledger.close()


@pytest.fixture(scope="package")
def views(reader: Ledger) -> Views:
    return catch_up(reader, timezone=ZONE)
