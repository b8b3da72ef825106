"""The write path's hot loop: eventsourcing's transcoder and PostgreSQL recorder, with
less Python per event.

A sync that brings thousands of fills maps every event to JSON in one save. The JSON
encoder is C, but each Decimal, datetime and UUID in an event goes back to Python twice
(`JSONTranscoder._encode_obj`, then the transcoding's `encode`), and the encoder keeps a
table of every container it enters to catch cycles that event state cannot have. The
subclass here writes exactly the bytes eventsourcing's own transcoder writes, so stores
written by either read with either. On PostgreSQL the save's rows then go in with COPY
rather than as one array of a composite type (`CopyingPostgresRecorder`), and a large
save runs with the cycle collector paused (`ledger.infrastructure.collector`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.utils import retry
from psycopg.sql import SQL, Composable, Composed, Identifier

# What eventsourcing's own transcodings compute, as the C functions they call. Only
# these exact classes are short-cut: a subclass may encode differently.
_SAME_AS: dict[type[Transcoding], Callable[[Any], Any]] = {
    UUIDAsHex: attrgetter("hex"),
    DecimalAsStr: Decimal.__str__,
    DatetimeAsISO: datetime.isoformat,
}

class DateAsISO(Transcoding):
    """Calendar dates (a split's effective date) as ISO strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class LedgerTranscoder(JSONTranscoder):
    """`JSONTranscoder` whose encoding of a registered type is one Python call, not two."""

    def __init__(self) -> None:
        super().__init__()
        # An event's state is a tree of plain values, never a cycle: the encoder's check
        # for one (a dict entry per container) changes nothing it writes.
        self.encoder = json.JSONEncoder(
            default=self._encode_obj,
            separators=(",", ":"),
            ensure_ascii=False,
            check_circular=False,
        )
        self._encoders: dict[type, tuple[str, Callable[[Any], Any]]] = {}

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        encode = _SAME_AS.get(type(transcoding), transcoding.encode)
        self._encoders[transcoding.type] = (transcoding.name, encode)

    def _encode_obj(self, o: Any) -> dict[str, Any]:
        try:
            name, encode = self._encoders[type(o)]
        except KeyError:
            # Not registered: the library's own error.
            return super()._encode_obj(o)
        return {"_type_": name, "_data_": encode(o)}


class CopyingPostgresRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, loading a large save's events with COPY.

    The library sends a save as one array of its composite type: psycopg builds every
    row of it in Python and the server takes the array apart again. COPY in binary
    streams the same four columns into the same table, each row formatted in C, under
    the same EXCLUSIVE lock and with the same NOTIFY: the rows it writes are the rows the
    library writes.

    COPY cannot return the notification ids it was given, so they are read back: while
    the lock is held no other transaction inserts, the sequence only grows, and COPY
    takes one id per row in row order, so the new rows are exactly those above the
    highest id before the COPY, in the order they were sent.
    """

    # Below this many events the library's one pipelined INSERT wins: COPY needs more
    # round trips (begin, lock, copy, ids, commit). The figures: docs/performance.md,
    # "Bulk saves on PostgreSQL go in by COPY, from 500 events".
    COPY_FROM = 500

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        self.copy_events_statement = SQL(
            "COPY {table} (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(table=table)
        self.copy_column_types = [self.datastore.originator_id_type, "int8", "text", "bytea"]
        self.ids_after_statement = SQL(
            "SELECT notification_id FROM {table} WHERE notification_id > %s "
            "ORDER BY notification_id"
        ).format(table=table)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.datastore.enable_db_functions or len(stored_events) < self.COPY_FROM:
            return super().insert_events(stored_events, **kwargs)
        return self._copy_events(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _copy_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            with conn.pipeline():
                self._insert_events(curs, stored_events, **kwargs)
                self._lock_table(curs)
                self._notify_channel(curs)
                curs.execute(self.max_notification_id_statement)
            # Leaving the pipeline synced it: the lock is held from here on.
            row = curs.fetchone()
            before = (row["max"] if row else None) or 0
            with curs.copy(self.copy_events_statement) as copy:
                copy.set_types(self.copy_column_types)
                for event in stored_events:
                    copy.write_row(
                        (event.originator_id, event.originator_version, event.topic, event.state)
                    )
            curs.execute(self.ids_after_statement, (before,), prepare=True)
            notification_ids = [row["notification_id"] for row in curs.fetchall()]
            if len(notification_ids) != len(stored_events):
                msg = (
                    f"COPY stored {len(notification_ids)} events where "
                    f"{len(stored_events)} were sent"
                )
                raise ProgrammingError(msg)
        return notification_ids


def insert_in_binary(recorder: Any) -> None:
    """PostgreSQL: send new events as a binary array of eventsourcing's composite type.

    eventsourcing inserts `unnest(%s::stored_event[])`, so psycopg dumps the array as text,
    escaping every byte of every event's state with regular expressions in Python: most of
    a bulk save's time. `%b` picks the binary dumper that the same `register_composite`
    registered on every connection: the same rows, sent without escaping. (A save too
    small for COPY still goes this way, and so does any PostgreSQL recorder.)"""
    if not isinstance(recorder, PostgresAggregateRecorder):
        return

    def binary(part: Composable) -> Composable:
        if isinstance(part, Composed):
            return Composed([binary(p) for p in part])
        if isinstance(part, SQL):
            return SQL(part.as_string().replace("%s", "%b"))
        return part

    recorder.insert_events_statement = binary(recorder.insert_events_statement)
