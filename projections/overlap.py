"""A rebuild's writes on a thread of their own, so they overlap the folding of later pages.

The writing is mostly waiting on the database (SQLite releases the GIL while it runs a
statement; PostgreSQL inserts in its own process), so on a machine with a second core it
costs the fold little. Batches are written in the order given, one transaction each, on
the thread's own connection. An error stops the writing: later batches are dropped, and
the error is raised in the caller's thread at its next call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

from projections.runner import Statement
from projections.store import Tx, ViewStore

# One batch waits while another is written: the fold runs at most one batch ahead, so the
# rows in memory stay those of two batches.
_WAITING = 1


class BackgroundWriter:
    """Use as a context manager: leaving it waits for the thread, whatever happened."""

    def __init__(
        self,
        store: ViewStore,
        execute: Callable[[Tx, Sequence[Statement]], None],
        begin: Callable[[Tx], None],
    ) -> None:
        self._store = store
        self._execute = execute
        self._begin = begin  # run first in each transaction (SQLite: take the write lock)
        self._batches: queue.Queue[list[Statement] | None] = queue.Queue(maxsize=_WAITING)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rebuild-writer", daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._batches.put(None)
        self._thread.join()
        if kind is None:
            self._raise()

    def submit(self, batch: list[Statement]) -> None:
        """Queue a batch; waits while another batch is already waiting."""
        self._raise()
        self._batches.put(batch)

    def wait(self) -> None:
        """Return once every batch submitted is committed (or raise what stopped them)."""
        self._batches.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            batch = self._batches.get()
            try:
                if batch is None:
                    return
                if self._error is None:
                    with self._store.write(durable=False) as tx:
                        self._begin(tx)
                        self._execute(tx, batch)
            except BaseException as error:  # raised in the caller's thread
                self._error = error
            finally:
                self._batches.task_done()
