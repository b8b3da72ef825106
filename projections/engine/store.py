"""The view tables in the event store's own database: SQL for SQLite and PostgreSQL.

Transactions come from eventsourcing's datastore (the same connection pool the
events use), and the tracking position is written by eventsourcing's own tracking
recorder (`_insert_tracking`) on the same cursor as the view rows, so rows and
position commit together or not at all.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.rows import tuple_row

from ledger.application import Ledger
from projections.engine.tables import Row, Table

Dialect = Literal["sqlite", "postgres"]

META_TABLE = "view_meta"
PG_TRACKING_TABLE = "view_tracking"
# pg_advisory_xact_lock key that serialises creating the view tables ("tl" "views").
_SETUP_LOCK = 0x746C_7669_6577_73


class Tx:
    """One transaction on the view tables: `?` parameter markers on both databases."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw  # what eventsourcing's datastore yielded: its tracking recorder needs it
        self._dialect = dialect
        if dialect == "sqlite":
            self._cursor = raw.sqlite_cursor
            # Plain tuples, not sqlite3.Row: what PostgreSQL gives too, and cheaper.
            self._cursor.row_factory = None
        else:
            self._cursor = raw

    def _sql(self, statement: str) -> str:
        return statement if self._dialect == "sqlite" else statement.replace("?", "%s")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._sql(statement), params)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._sql(statement), params)
        return self._cursor.fetchall()

    def executemany(self, statement: str, rows: Sequence[Row]) -> None:
        if rows:
            self._cursor.executemany(self._sql(statement), rows)


class ViewStore:
    """Where the views live: the ledger's database (and PostgreSQL schema)."""

    def __init__(self, ledger: Ledger) -> None:
        datastore = ledger.factory.datastore  # type: ignore[attr-defined]
        self.tracking_key = f"{ledger.name}:views"
        self.tracking: SQLiteTrackingRecorder | PostgresTrackingRecorder
        if isinstance(datastore, SQLiteDatastore):
            self.dialect: Dialect = "sqlite"
            self.schema: str | None = None
            self.tracking = SQLiteTrackingRecorder(datastore)
            self._tracking_table = '"tracking"'
        elif isinstance(datastore, PostgresDatastore):
            self.dialect = "postgres"
            self.schema = datastore.schema
            self.tracking = PostgresTrackingRecorder(
                datastore, tracking_table_name=PG_TRACKING_TABLE
            )
            self._tracking_table = self.name(PG_TRACKING_TABLE)
        else:  # pragma: no cover - the ledger opens only these two
            raise TypeError(f"views need SQLite or PostgreSQL, not {type(datastore).__name__}")
        self.datastore = datastore
        self._tracking_ready = False

    # -- names ---------------------------------------------------------------------------

    def name(self, table: str) -> str:
        """A quoted, schema-qualified table name. Names are ours or a validated schema."""
        return f'"{self.schema}"."{table}"' if self.schema else f'"{table}"'

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, *, long: bool = False, durable: bool = True) -> Iterator[Tx]:
        """A write transaction. `durable=False` is for tables nobody reads yet (a rebuild's):
        SQLite then skips the fsync at commit, which an interrupted rebuild never needs."""
        if self.dialect == "sqlite" and not durable:
            with self._sqlite_fast_commits() as tx:
                yield tx
            return
        with self.datastore.transaction(commit=True) as raw:
            tx = self._tx(raw)
            if self.dialect == "postgres":
                if long:
                    # A rebuild's swap holds the transaction while it compares whole views
                    # in Python: the server must not take that for an abandoned session.
                    tx.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                if not durable:
                    tx.execute("SET LOCAL synchronous_commit = off")
            yield tx

    @contextlib.contextmanager
    def _sqlite_fast_commits(self) -> Iterator[Tx]:
        with self.datastore.get_connection(commit=True) as conn:  # type: ignore[call-arg]
            # The setting belongs to the pooled connection, which the event store reuses:
            # put back what it was, whatever happens.
            cursor = conn.cursor()
            cursor.execute("PRAGMA synchronous")
            before = int(cursor.fetchone()[0])
            cursor.execute("PRAGMA synchronous = NORMAL")
            try:
                with conn.transaction(commit=True) as raw:
                    yield self._tx(raw)
            finally:
                conn.cursor().execute(f"PRAGMA synchronous = {before}")

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self.datastore.transaction(commit=False) as raw:
            tx = self._tx(raw)
            if self.dialect == "postgres":
                # One snapshot for every table a reader reads: positions and account agree.
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield tx

    def _tx(self, raw: Any) -> Tx:
        if self.dialect == "postgres":
            raw.row_factory = tuple_row
        return Tx(raw, self.dialect)

    # -- tracking ------------------------------------------------------------------------

    def ensure_tracking_table(self) -> None:
        """eventsourcing's `create_table` is not safe to race (two processes both insert its
        migration marker): serialise it on PostgreSQL, and on SQLite take the loser's
        IntegrityError as "already made" and look again."""
        if self._tracking_ready:
            return
        with self._session_lock(_SETUP_LOCK + 2):
            try:
                self.tracking.create_table()
            except IntegrityError:
                self.tracking.create_table()
        self._tracking_ready = True

    @contextlib.contextmanager
    def _session_lock(self, key: int) -> Iterator[None]:
        """A PostgreSQL advisory lock held on its own connection; nothing on SQLite."""
        if self.dialect != "postgres":
            yield
            return
        with self.datastore.get_connection() as conn:  # type: ignore[union-attr]
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def lock_position(self, tx: Tx) -> int | None:
        """Take the views' write lock and read how far they are; None before the first run.

        Everyone who writes view rows takes this lock first, so two catch-ups (or a
        catch-up and a rebuild's swap) never interleave.
        """
        if self.dialect == "sqlite":
            # The first statement of the transaction is a write: SQLite takes its write
            # lock now, before anything is read, so what we read next cannot go stale.
            tx.execute(
                f"UPDATE {self._tracking_table} SET notification_id = notification_id "
                "WHERE application_name = ?",
                (self.tracking_key,),
            )
            rows = tx.query(
                f"SELECT notification_id FROM {self._tracking_table} WHERE application_name = ?",
                (self.tracking_key,),
            )
        else:
            rows = tx.query(
                f"SELECT notification_id FROM {self._tracking_table} "
                "WHERE application_name = ? FOR UPDATE",
                (self.tracking_key,),
            )
        return rows[0][0] if rows else None

    def read_position(self) -> int | None:
        return self.tracking.max_tracking_id(self.tracking_key)

    def write_position(self, tx: Tx, position: int) -> None:
        """Record the position in the same transaction as the rows (eventsourcing's own insert)."""
        self.tracking._insert_tracking(tx.raw, Tracking(self.tracking_key, position))

    def set_position(self, tx: Tx, position: int) -> None:
        """Move the position to a rebuilt view's, which may equal the current one."""
        tx.execute(
            f"UPDATE {self._tracking_table} SET notification_id = ? WHERE application_name = ?",
            (position, self.tracking_key),
        )

    def serialise_setup(self, tx: Tx) -> None:
        if self.dialect == "postgres":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_SETUP_LOCK,))

    # -- tables --------------------------------------------------------------------------

    def existing_tables(self, tx: Tx) -> set[str]:
        if self.dialect == "sqlite":
            rows = tx.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = tx.query("SELECT tablename FROM pg_tables WHERE schemaname = ?", (self.schema,))
        return {row[0] for row in rows}

    def _type(self, sql_type: str) -> str:
        return "BIGINT" if sql_type == "INTEGER" and self.dialect == "postgres" else sql_type

    def create(self, tx: Tx, table: Table, suffix: str = "", *, indexes: bool = True) -> None:
        name = table.name + suffix
        # Constraint and index names are schema-wide in PostgreSQL and survive a rename:
        # a random tag keeps a rebuilt table's names from colliding with the live one's.
        tag = secrets.token_hex(4)
        columns = ", ".join(f'"{column}" {self._type(kind)}' for column, kind in table.columns)
        key = ", ".join(f'"{column}"' for column in table.key)
        clustered = self.dialect == "sqlite" and table.clustered
        without_rowid = " WITHOUT ROWID" if clustered else ""
        tx.execute(
            f"CREATE TABLE {self.name(name)} ({columns}, "
            f'CONSTRAINT "{table.name}_pk_{tag}" PRIMARY KEY ({key})){without_rowid}'
        )
        if indexes:
            self.create_indexes(tx, table, suffix)

    def create_indexes(self, tx: Tx, table: Table, suffix: str = "") -> None:
        tag = secrets.token_hex(4)
        for columns in table.indexes:
            index = f"{table.name}_{'_'.join(columns)}_{tag}"
            listed = ", ".join(f'"{column}"' for column in columns)
            tx.execute(f'CREATE INDEX "{index}" ON {self.name(table.name + suffix)} ({listed})')

    def drop(self, tx: Tx, name: str) -> None:
        tx.execute(f"DROP TABLE IF EXISTS {self.name(name)}")

    def rename(self, tx: Tx, old: str, new: str) -> None:
        tx.execute(f'ALTER TABLE {self.name(old)} RENAME TO "{new}"')

    def ensure_meta(self, tx: Tx) -> None:
        without_rowid = " WITHOUT ROWID" if self.dialect == "sqlite" else ""
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {self.name(META_TABLE)} ("
            '"view" TEXT, "layout" TEXT, "setting" TEXT, '
            f'CONSTRAINT "{META_TABLE}_pk" PRIMARY KEY ("view")){without_rowid}'
        )

    def read_meta(self, tx: Tx) -> dict[str, tuple[str, str]]:
        rows = tx.query(f'SELECT "view", "layout", "setting" FROM {self.name(META_TABLE)}')
        return {row[0]: (row[1], row[2]) for row in rows}

    def write_meta(self, tx: Tx, view: str, layout: str, setting: str) -> None:
        tx.execute(
            f'INSERT INTO {self.name(META_TABLE)} ("view", "layout", "setting") VALUES (?, ?, ?) '
            'ON CONFLICT ("view") DO UPDATE SET "layout" = excluded."layout", '
            '"setting" = excluded."setting"',
            (view, layout, setting),
        )

    # -- rows ------------------------------------------------------------------------------

    def upsert(self, tx: Tx, table: Table, suffix: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        names = table.column_names
        columns = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join("?" for _ in names)
        key = ", ".join(f'"{c}"' for c in table.key)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in names if c not in table.key)
        tx.executemany(
            f"INSERT INTO {self.name(table.name + suffix)} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}",
            rows,
        )

    def insert(self, tx: Tx, table: Table, suffix: str, rows: Sequence[Row]) -> None:
        """Rows that are new to the table. PostgreSQL takes them by COPY, many times faster
        than one INSERT each, in the same transaction."""
        if not rows:
            return
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        target = self.name(table.name + suffix)
        if self.dialect == "postgres":
            with tx.raw.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" for _ in table.column_names)
        tx.executemany(f"INSERT INTO {target} ({columns}) VALUES ({marks})", rows)

    def delete(self, tx: Tx, table: Table, suffix: str, keys: Iterable[Row]) -> None:
        keys = list(keys)
        if not keys:
            return
        where = " AND ".join(f'"{c}" = ?' for c in table.key)
        tx.executemany(f"DELETE FROM {self.name(table.name + suffix)} WHERE {where}", keys)

    def select(
        self,
        tx: Tx,
        table: Table,
        suffix: str = "",
        *,
        columns: Sequence[str] | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        order: str = "",
    ) -> list[Row]:
        listed = ", ".join(f'"{c}"' for c in (columns or table.column_names))
        statement = f"SELECT {listed} FROM {self.name(table.name + suffix)}"
        if where:
            statement += f" WHERE {where}"
        if order:
            statement += f" ORDER BY {order}"
        return tx.query(statement, params)

    def count(self, tx: Tx, table: Table, suffix: str = "") -> int:
        return int(tx.query(f"SELECT COUNT(*) FROM {self.name(table.name + suffix)}")[0][0])

    def select_in_key_order(self, tx: Tx, table: Table, suffix: str = "") -> list[Row]:
        """Every row in key order, byte order for text (as Python and SQLite compare)."""
        if self.dialect == "sqlite" and not table.clustered:
            # A scan plus a sort in Python beats walking the key index row by row.
            positions = [table.column_names.index(k) for k in table.key]
            rows = self.select(tx, table, suffix)
            # itemgetter runs in C; one key column gives the value, which sorts as its 1-tuple.
            rows.sort(key=itemgetter(*positions))
            return rows
        kinds = dict(table.columns)
        # PostgreSQL sorts text by language rules unless told to compare bytes.
        collate = ' COLLATE "C"' if self.dialect == "postgres" else ""
        order = ", ".join(
            f'"{column}"{collate if kinds[column] == "TEXT" else ""}' for column in table.key
        )
        return self.select(tx, table, suffix, order=order)

    def select_in(
        self, tx: Tx, table: Table, suffix: str, column: str, values: Sequence[Any]
    ) -> list[Row]:
        rows: list[Row] = []
        # SQLite allows 32766 parameters; stay well below, in every version.
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows.extend(
                self.select(tx, table, suffix, where=f'"{column}" IN ({marks})', params=chunk)
            )
        return rows

    # -- one rebuild at a time ------------------------------------------------------------

    @contextlib.contextmanager
    def rebuild_mutex(self) -> Iterator[None]:
        """Held for a whole rebuild: two rebuilds would write the same tables beside the views."""
        if self.dialect == "postgres":
            with self._session_lock(_SETUP_LOCK + 1):
                yield
            return
        path = self._sqlite_file()
        if path is None:
            with _PROCESS_LOCK:
                yield
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: one process per store there
            with _PROCESS_LOCK:
                yield
            return
        with open(f"{path}.rebuild-lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def shared_between_processes(self) -> bool:
        """Whether another process can open this store: not an in-memory SQLite database."""
        return self.dialect == "postgres" or self._sqlite_file() is not None

    def _sqlite_file(self) -> Path | None:
        name = self.datastore.pool.db_name  # type: ignore[union-attr]
        if not name or ":memory:" in name or name.startswith("file:"):
            return None
        return Path(name)


_PROCESS_LOCK = threading.Lock()
