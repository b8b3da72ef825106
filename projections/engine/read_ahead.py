"""Reading a rebuild's pages in a second process while this one folds them.

A rebuild is two halves of about equal cost: reading events (select, JSON) and folding
them into rows and writing those. A process runs one at a time (under the GIL a reading
thread only takes turns with the fold), so on a machine with two cores a long rebuild reads
ahead in a child process and hands each page over, one page ahead of the fold.

The split follows what crosses cheaply. The child selects notifications with the
library's recorder and scans their JSON, the larger part of decoding; the tagged values
(`{"_type_": "decimal_str", "_data_": "2.5"}`) cross as `marshal` data, with the
notification's id, originator and version; this process turns them into values with the
transcoder's own transcodings and builds the events as eventsourcing's mapper does (the
class, its `__dict__` set to the decoded state). Events whose state nests tagged values
(a broker snapshot's positions), and stores with a cipher or compression, are decoded
by the mapper in the child and pickled whole. Events the fold takes as a Stamp cross as
one: their class, id, version and timestamp.
"""

from __future__ import annotations

import contextlib
import gc
import json
import marshal
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID, SafeUUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic

from ledger.application import Ledger
from projections.engine.runner import FOLD_STAMPED_TOPICS, Page, stored_timestamp
from projections.model.catalogue import Stamp

# Below this many events a rebuild reads in-process: starting the reader (a fresh
# interpreter importing the ledger) costs as much as reading tens of thousands of events
# in-process (docs/performance.md, "The rebuild reads ahead in a second process").
READ_AHEAD_FROM = 100_000

# How a shape's records are laid out.
_STAMP, _PLAIN, _PICKLED = 0, 1, 2
_SCALARS = frozenset({str, int, bool, float, type(None)})
_END, _FAILED = b"", b"!"


def cores() -> int:
    """Cores this process may run on (a container's share, where the OS says it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ReaderFailed(RuntimeError):
    """The reading process stopped with an error: its traceback is the message."""


# -- the child's half -------------------------------------------------------------------


class PageEncoder:
    """Notifications into bytes. A shape (a topic, its layout and attribute names) is
    sent once, the first time a page holds it."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self._mapper = mapper
        self._plain = mapper.cipher is None and mapper.compressor is None
        self._shapes: dict[tuple[str, int, tuple[str, ...] | None], int] = {}
        self._upcast: dict[str, bool] = {}

    def _shape(self, topic: str, layout: int, names: tuple[str, ...] | None, new: list[Any]) -> int:
        key = (topic, layout, names)
        index = self._shapes.get(key)
        if index is None:
            index = self._shapes[key] = len(self._shapes)
            new.append((index, topic, layout, names))
        return index

    def _upcasts(self, topic: str) -> bool:
        """Whether events of `topic` may need the mapper's upcasting."""
        upcasts = self._upcast.get(topic)
        if upcasts is None:
            upcasts = self._upcast[topic] = getattr(resolve_topic(topic), "class_version", 1) != 1
        return upcasts

    def encode(self, notifications: Sequence[Notification]) -> bytes:
        new: list[Any] = []
        records: list[tuple[Any, ...]] = []
        loads, scalars = json.loads, _SCALARS
        for n in notifications:
            topic, state = n.topic, n.state
            # As `read_page` decides, a status or decision event is folded as a Stamp.
            stamped = self._plain and topic in FOLD_STAMPED_TOPICS
            timestamp = stored_timestamp(state) if stamped else None
            if timestamp is not None:
                index = self._shape(topic, _STAMP, None, new)
                records.append(
                    (n.id, index, n.originator_id.int, n.originator_version, timestamp)
                )
                continue
            document = loads(state.decode()) if self._plain and not self._upcasts(topic) else None
            record = None if document is None else _plain_record(document, scalars)
            if record is None:
                index = self._shape(topic, _PICKLED, None, new)
                records.append((n.id, index, pickle.dumps(self._mapper.to_domain_event(n))))
                continue
            tagged, values = record
            index = self._shape(topic, _PLAIN, tuple(document), new)
            records.append((n.id, index, tagged, n.originator_id.int, n.originator_version,
                            *values))
        return marshal.dumps((new, records))


def _plain_record(
    document: dict[str, Any], scalars: frozenset[type]
) -> tuple[int, list[Any]] | None:
    """(a bit per tagged value, the values) of a state with no nested values, else None."""
    if "class_version" in document:
        return None
    values: list[Any] = []
    tagged = 0
    for position, value in enumerate(document.values()):
        if type(value) in scalars:
            values.append(value)
            continue
        if type(value) is not dict or len(value) != 2 or "_type_" not in value:
            return None
        data = value.get("_data_")
        if type(data) not in scalars:
            return None
        tagged |= 1 << position
        values.append((value["_type_"], data))
    return tagged, values


# -- this process's half ---------------------------------------------------------------


def _uuid(value: int, new: Callable[..., Any] = object.__new__) -> UUID:
    """`UUID(int=value)` without its constructor's checks (the value is the `int` of a
    UUID the recorder made): what `UUID.__init__` ends with, at half the cost."""
    uuid = new(UUID)
    _set_attribute(uuid, "int", value)
    _set_attribute(uuid, "is_safe", SafeUUID.unknown)
    return uuid


def _uuid_from_hex(data: str) -> UUID:
    return _uuid(int(data, 16))


_set_attribute = object.__setattr__

# eventsourcing's own transcodings, as the C functions they call (their `decode` methods
# do exactly this); any other transcoding decodes with its own method.
_SAME_AS: dict[type, Callable[[Any], Any]] = {
    UUIDAsHex: _uuid_from_hex,
    DecimalAsStr: Decimal,
    DatetimeAsISO: datetime.fromisoformat,
}


class PageDecoder:
    """Bytes from a `PageEncoder` back into a page of (notification id, event)."""

    def __init__(self, transcoder: JSONTranscoder) -> None:
        self._decoders: dict[str, Callable[[Any], Any]] = {
            name: _SAME_AS.get(type(transcoding), transcoding.decode)
            for name, transcoding in transcoder.names.items()
        }
        self._shapes: list[tuple[type, int, tuple[str, ...] | None]] = []
        self._positions: dict[int, tuple[int, ...]] = {}

    def _tagged(self, mask: int) -> tuple[int, ...]:
        positions = self._positions.get(mask)
        if positions is None:
            positions = self._positions[mask] = tuple(
                bit for bit in range(mask.bit_length()) if mask >> bit & 1
            )
        return positions

    def decode(self, data: bytes) -> Page:
        new, records = marshal.loads(data)
        for index, topic, layout, names in new:
            assert index == len(self._shapes)
            cls = FOLD_STAMPED_TOPICS[topic] if layout == _STAMP else resolve_topic(topic)
            self._shapes.append((cls, layout, names))
        shapes, decoders, tagged = self._shapes, self._decoders, self._tagged
        new_object, set_attribute, make_tuple = object.__new__, _set_attribute, tuple.__new__
        fromisoformat, make_uuid = datetime.fromisoformat, _uuid
        # An order's events follow one another closely: one UUID object per originator
        # in a page (an int hashes in C, a UUID in Python).
        uuids: dict[int, UUID] = {}

        def uuid(value: int) -> UUID:
            made = uuids.get(value)
            if made is None:
                made = uuids[value] = make_uuid(value)
            return made

        page: Page = []
        append = page.append
        for record in records:
            cls, layout, names = shapes[record[1]]
            if layout == _STAMP:
                append((record[0], make_tuple(Stamp, (
                    uuid(record[2]), record[3], fromisoformat(record[4]), cls
                ))))
                continue
            if layout == _PICKLED:
                append((record[0], pickle.loads(record[2])))
                continue
            state = dict(zip(names, record[5:], strict=True))  # type: ignore[arg-type]
            for position in tagged(record[2]):
                name = names[position]  # type: ignore[index]
                kind, payload = state[name]
                state[name] = decoders[kind](payload)
            # The mapper's last steps: the originator from the notification, then the class.
            state["originator_id"] = uuid(record[3])
            state["originator_version"] = record[4]
            event = new_object(cls)
            set_attribute(event, "__dict__", state)
            append((record[0], event))
        return page


# -- the two processes ----------------------------------------------------------------
# The reader is a plain `python -c`, not a multiprocessing child: those import the
# parent's main module again, and `python -m commands` (like any script without a main
# guard) would run the whole command a second time. Its arguments (the store's settings,
# secrets included) arrive on stdin, never in argv; pages leave on stdout as frames.

_FRAME = struct.Struct("<Q")


def _write_frame(out: BinaryIO, data: bytes) -> None:
    out.write(_FRAME.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(source: BinaryIO) -> bytes | None:
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = source.read(size)
    return data if len(data) == size else None


def serve() -> None:
    """The reading process: every page after `after`, encoded, then an empty frame; on an
    error, the error itself (when it pickles) and its traceback."""
    source, out = sys.stdin.buffer, sys.stdout.buffer
    # Its pages are dropped once sent: nothing it allocates forms a cycle worth finding.
    gc.disable()
    try:
        env, after, limit = pickle.loads(source.read())
        ledger = Ledger(env=env)
        try:
            encoder = PageEncoder(ledger.mapper)
            while True:
                notifications = ledger.recorder.select_notifications(
                    start=after, limit=limit, inclusive_of_start=False
                )
                if not notifications:
                    break
                _write_frame(out, encoder.encode(notifications))
                after = notifications[-1].id
            _write_frame(out, _END)
        finally:
            ledger.close()
    except BrokenPipeError:
        pass  # the rebuild stopped reading: nobody to tell
    except BaseException as error:
        told = traceback.format_exc()
        try:
            report = pickle.dumps((error, told))
        except Exception:
            report = pickle.dumps((None, told))
        with contextlib.suppress(OSError):
            _write_frame(out, _FAILED + report)


def _failure(data: bytes) -> BaseException:
    """The reader's error as this process would have raised it reading in-process (so a
    store that went away is reported as such), with the reader's traceback as its cause."""
    try:
        error, told = pickle.loads(data)
    except Exception:
        return ReaderFailed(data.decode(errors="replace"))
    cause = ReaderFailed(f"in the process reading events:\n{told}")
    if isinstance(error, Exception):
        error.__cause__ = cause
        return error
    return cause


@contextlib.contextmanager
def read_ahead(ledger: Ledger, after: int, limit: int) -> Iterator[Iterator[Page]]:
    """The pages `pages(ledger, after, limit, full=False, statuses=True)` gives, read by a
    child process one page ahead of the caller."""
    # The child imports this very code, wherever it was imported from here.
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    transcoder = ledger.mapper.transcoder
    assert isinstance(transcoder, JSONTranscoder)
    with tempfile.TemporaryFile() as errors:
        reader = subprocess.Popen(
            [sys.executable, "-c", "from projections.engine.read_ahead import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert reader.stdin is not None and reader.stdout is not None
        output = reader.stdout

        def received() -> Iterator[Page]:
            decoder = PageDecoder(transcoder)
            while True:
                data = _read_frame(output)
                if data is None:
                    code = reader.wait()
                    errors.seek(0)
                    said = errors.read().decode(errors="replace").strip().splitlines()
                    raise ReaderFailed(
                        f"the process reading events ended (exit {code}) mid-page"
                        + (f": {said[-1]}" if said else "")
                    )
                if data == _END:
                    return
                if data.startswith(_FAILED):
                    raise _failure(data[len(_FAILED):])
                yield decoder.decode(data)

        try:
            reader.stdin.write(pickle.dumps((dict(ledger.env), after, limit)))
            reader.stdin.close()
            yield received()
        finally:
            output.close()
            try:
                reader.wait(timeout=5)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait()
