"""`LEDGER_DATABASE_URL` mapped onto eventsourcing's own persistence modules.

The ledger writes no store of its own: SQLite goes to `eventsourcing.sqlite`,
PostgreSQL to `eventsourcing.postgres` (psycopg 3 and its connection pool), whose
recorder the ledger subclasses only to send a save's rows with COPY.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.settings import ConfigurationError

Dialect = Literal["sqlite", "postgres"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class StoreUnavailable(Exception):
    """The event store cannot be opened; the message names the cause, never the password."""


@dataclass(frozen=True)
class StoreConfig:
    dialect: Dialect
    # Holds the password for PostgreSQL: never print or log it; use `display`.
    env: dict[str, str] = field(repr=False)
    display: str
    schema: str | None = None
    password: str = field(default="", repr=False)

    def scrub(self, text: str) -> str:
        """Remove the password from a driver's message before anyone sees it."""
        return text.replace(self.password, "***") if self.password else text


def mask_url(url: str) -> str:
    """The URL with its password replaced, for messages."""
    return re.sub(r"(?<=://)([^:/@]*):([^@]*)@", r"\1:***@", url)


def parse_database_url(url: str) -> StoreConfig:
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme == "sqlite":
        return _sqlite(text)
    if scheme in ("postgresql", "postgres"):
        return _postgres(text)
    raise ConfigurationError(
        f"LEDGER_DATABASE_URL has an unsupported scheme {scheme or text!r}: use "
        "sqlite:///path/ledger.db or postgresql://user:pass@host:port/db"
    )


def _sqlite(url: str) -> StoreConfig:
    if not url.lower().startswith("sqlite:///"):
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL {url!r} is malformed: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = url[len("sqlite:///") :]
    if not path:
        raise ConfigurationError("LEDGER_DATABASE_URL names no SQLite file: use sqlite:///ledger.db")
    if path != ":memory:" and not path.startswith("file:"):
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigurationError(
                f"LEDGER_DATABASE_URL points into {parent}, which does not exist: "
                "create the folder or choose another path"
            )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        # Several processes (service loop, CLI, reconciler) share one file: wait for
        # the writer instead of failing at once with "database is locked".
        "SQLITE_LOCK_TIMEOUT": "30",
    }
    return StoreConfig(dialect="sqlite", env=env, display=url)


def _postgres(url: str) -> StoreConfig:
    display = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as error:  # "Invalid IPv6 URL": an unclosed [ in the host
        raise ConfigurationError(f"LEDGER_DATABASE_URL {display} is malformed: {error}") from None
    password = unquote(parts.password or "")
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL {display} is incomplete: use postgresql://user:pass@host:port/db"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL {display} has a port that is not a number from 0 to 65535"
        ) from None
    query = parse_qs(parts.query)
    schema = (query.get("schema") or [""])[0] or None
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL schema {schema!r} must be lower-case letters, digits and _"
        )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": password,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
        # A restarted server leaves dead connections in the pool: check before use.
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        # eventsourcing's recorder, loading bulk saves with COPY (infrastructure/recording.py).
        "APPLICATION_RECORDER_TOPIC": "ledger.infrastructure.recording:CopyingPostgresRecorder",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    return StoreConfig(
        dialect="postgres", env=env, display=display, schema=schema, password=password
    )


# pg_advisory_lock(key, hashtext(schema)) is held while a process creates the event tables
# of one schema; "tlst" as a 32-bit key.
_STORE_SETUP_LOCK = 0x746C_7374


@contextmanager
def prepare_postgres(config: StoreConfig) -> Iterator[None]:
    """Connect once, directly, before the pool does, and hold the store's setup lock
    while the body opens the event store.

    A pool hides the cause of a failed connection behind a timeout; this first
    connection fails at once with the server's own words (wrong password, unknown
    role or database, nothing listening), and creates the schema the URL names.
    eventsourcing creates its tables, types and functions on every start (CREATE OR
    REPLACE FUNCTION among them), and two processes doing so at once fail with "tuple
    concurrently updated": the advisory lock makes starting processes take turns.
    """
    import psycopg
    from psycopg import sql

    env = config.env
    lock = (_STORE_SETUP_LOCK, config.schema or "public")
    try:
        conn = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            connect_timeout=5,
            autocommit=True,
        )
    except psycopg.Error as error:
        raise _unavailable(config, error) from None
    with conn:
        try:
            conn.execute("SET lock_timeout = '30s'")
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", lock)
            if config.schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(config.schema))
                )
        except psycopg.Error as error:
            raise _unavailable(config, error) from None
        yield
        # Closing the connection releases the lock too; unlocking says so explicitly.
        with suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock)


def _unavailable(config: StoreConfig, error: Exception) -> StoreUnavailable:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = config.scrub("; ".join(lines) if lines else type(error).__name__)
    return StoreUnavailable(f"Cannot open the event store at {config.display}: {cause}")
