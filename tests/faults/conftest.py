"""Fixtures of the fault suite: the sandbox (one per session, reset per test) and the
fork server that runs commands as real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
from tests.faults.harness import Launcher


@pytest.fixture(scope="session")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    server = Launcher(tmp_path_factory.mktemp("launcher"))
    yield server
    server.close()
