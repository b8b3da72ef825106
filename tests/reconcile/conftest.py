from tests.broker.conftest import sandbox, sandbox_server  # noqa: F401 - shared fixtures
