"""Rebuild views from event 1 beside the live ones, then swap them in, in one transaction.

Phase one folds every event into new tables (`view_x__new`) a page per transaction,
without holding the views' lock, so commands keep reading (and the service keeps
writing) the live views meanwhile. Phase two takes the lock, applies whatever arrived
since, compares the new tables with the live ones if asked, and renames new over live.
Readers see the old view or the new one, never a half-built one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.infrastructure.collector import CollectorPaused
from projections.engine import read_ahead
from projections.engine.digest import RowDifference, differences, digest, dump, row_count
from projections.engine.runner import Page, pages, read_page
from projections.engine.store import Tx, ViewStore
from projections.engine.tables import VIEW_NAMES, VIEWS, VIEWS_BY_NAME, View, rebuilt_together
from projections.engine.tracked_fold import TrackedFold
from projections.engine.writer import ViewWriter

if TYPE_CHECKING:
    from projections.queries.views import Views

NEW = "__new"
OLD = "__old"

# Phase one folds a few pages per transaction and writes their changes once: a symbol's
# position row, a day's closing books and the commit (which writes out every table page
# the transaction dirtied, the orders' key index of random UUIDs all over) then cost one
# write per transaction, not one per page. On SQLite the events share the file, so a
# transaction also holds up the ledger's appends: it ends after COMMIT_SECONDS whatever it
# folded. The batch is written on the fold's own thread: binding rows for sqlite3 and
# psycopg's COPY hold the GIL, and building the rows, the larger part, has to stay with
# the fold, so a writer thread would only take turns with it (docs/performance.md,
# "Rebuild transactions hold up to five pages, and end after a second").
PAGES_PER_COMMIT = 5
COMMIT_SECONDS = 1.0

Progress = Callable[[int, int], None]  # (events read so far, newest notification id)


class UnknownProjection(ValueError):
    """A projection name that is not one of the views."""


@dataclass(frozen=True)
class ViewReport:
    name: str
    rows: int
    digest: str | None  # None when not verifying: hashing every row is a large part of a rebuild
    replaced_digest: str | None  # None when not verifying, or nothing was replaced
    differences: tuple[RowDifference, ...] = ()


@dataclass(frozen=True)
class RebuildReport:
    views: tuple[ViewReport, ...]
    events: int
    seconds: float
    position: int
    verified: bool
    requested: tuple[str, ...] = field(default=())

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def differed(self) -> bool:
        return any(view.differences for view in self.views)


def resolve(names: Sequence[str] | None) -> tuple[str, ...]:
    if not names:
        return VIEW_NAMES
    unknown = [n for n in names if n not in VIEWS_BY_NAME]
    if unknown:
        raise UnknownProjection(
            f"no projection named {', '.join(unknown)}: choose from {', '.join(VIEW_NAMES)}"
        )
    return rebuilt_together(names)


def rebuild(
    views: Views,
    names: Sequence[str] | None = None,
    *,
    verify: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild `names` (and the views computed from them) from event 1 and swap them in."""
    requested = resolve(names)
    store = views.store
    started = time.perf_counter()
    with store.rebuild_mutex(), CollectorPaused():
        stale = views.set_up()
        targets = rebuilt_together([*requested, *stale])
        if not stale:
            # Compare like with like: the live views as of the newest event.
            views.catch_up_live(VIEW_NAMES)
        _drop_leftovers(views)
        with store.write() as tx:
            for name in targets:
                for table in VIEWS_BY_NAME[name].tables:
                    store.create(tx, table, NEW, indexes=False)

        writer = ViewWriter(store, views.zone, targets, NEW)
        state = writer.fresh_state()
        head = views.ledger.recorder.max_notification_id() or 0
        events, last = 0, 0
        with _pages(views, head) as source:
            page = next(source, None)
            while page is not None:
                with store.write(durable=False) as tx:
                    _take_write_lock(views, tx)
                    began, folded = time.perf_counter(), 0
                    while page is not None and folded < PAGES_PER_COMMIT:
                        writer.fold(tx, state, page)
                        events += len(page)
                        last = page[-1][0]
                        folded += 1
                        page = next(source, None)
                        if time.perf_counter() - began >= COMMIT_SECONDS:
                            break
                    touched = writer.flush(tx, state)
                state.forget_orders_except(touched)
                if progress is not None:
                    progress(events, max(head, last))

        with store.write() as tx:
            for name in targets:
                for table in VIEWS_BY_NAME[name].tables:
                    store.create_indexes(tx, table, NEW)

        reports, position, more = _swap(views, writer, state, targets, verify)
        events += more
        views._ready = True
    return RebuildReport(
        views=tuple(reports),
        events=events,
        seconds=time.perf_counter() - started,
        position=position,
        verified=verify,
        requested=requested,
    )


def _pages(views: Views, head: int) -> contextlib.AbstractContextManager[Iterator[Page]]:
    """Every event from the first, as pages: read ahead by a second process when there are
    enough of them to repay starting it, a second core to run it on, and it can open the
    same store."""
    if (
        head >= read_ahead.READ_AHEAD_FROM
        and read_ahead.cores() >= 2
        and views.store.shared_between_processes()
    ):
        return read_ahead.read_ahead(views.ledger, 0, views.page_size)
    return contextlib.nullcontext(
        pages(views.ledger, 0, views.page_size, full=False, statuses=True)
    )


def _take_write_lock(views: Views, tx: Tx) -> None:
    """SQLite upgrades a read transaction to a write one only if nothing was written since it
    began; starting with a write takes the lock first and waits for it instead of failing."""
    if views.store.dialect == "sqlite":
        views.store.lock_position(tx)


def _drop_leftovers(views: Views) -> None:
    """Tables an interrupted rebuild left behind: never read, safe to drop."""
    store = views.store
    with store.write() as tx:
        _take_write_lock(views, tx)
        existing = store.existing_tables(tx)
        for view in VIEWS:
            for table in view.tables:
                for suffix in (NEW, OLD):
                    if table.name + suffix in existing:
                        store.drop(tx, table.name + suffix)


def _swap(
    views: Views, writer: ViewWriter, state: TrackedFold, targets: Sequence[str], verify: bool
) -> tuple[list[ViewReport], int, int]:
    store, ledger = views.store, views.ledger
    others = [name for name in VIEW_NAMES if name not in targets]
    with store.write(long=True) as tx:
        live_position = store.lock_position(tx) or 0
        head = max(ledger.recorder.max_notification_id() or 0, live_position)
        # Events that arrived while we rebuilt: into the new tables, and into the live
        # tables we keep, so that after the swap every view stands at the same event.
        more = _apply_until(views, tx, writer, state, head)
        if others and live_position < head:
            live = ViewWriter(store, views.zone, others)
            _apply_until(views, tx, live, live.load_state(tx), head, start=live_position)
        existing = store.existing_tables(tx)
        reports = []
        for name in targets:
            view = VIEWS_BY_NAME[name]
            reports.append(_report(store, tx, view, existing) if verify else ViewReport(
                name=name,
                rows=sum(store.count(tx, table, NEW) for table in view.tables),
                digest=None,
                replaced_digest=None,
            ))
            for table in view.tables:
                if table.name in existing:
                    store.rename(tx, table.name, table.name + OLD)
                store.rename(tx, table.name + NEW, table.name)
                store.drop(tx, table.name + OLD)
            store.write_meta(tx, name, view.layout, views.setting(view))
        store.set_position(tx, head)
    return reports, head, more


def _report(store: ViewStore, tx: Tx, view: View, existing: set[str]) -> ViewReport:
    """The rebuilt view's digest, and every row that differs from the view it replaces."""
    rebuilt = dump(store, tx, view, NEW)
    replaced = dump(store, tx, view) if all(t.name in existing for t in view.tables) else None
    return ViewReport(
        name=view.name,
        rows=row_count(rebuilt),
        digest=digest(view, rebuilt),
        replaced_digest=None if replaced is None else digest(view, replaced),
        differences=tuple(differences(view, replaced, rebuilt)) if replaced else (),
    )


def _apply_until(
    views: Views,
    tx: Tx,
    writer: ViewWriter,
    state: TrackedFold,
    head: int,
    start: int | None = None,
) -> int:
    position = state.position if start is None else start
    applied = 0
    while position < head:
        page = read_page(
            views.ledger, position, views.page_size, stop=head, full=False, statuses=True
        )
        if not page:
            break
        writer.apply(tx, state, page)
        position = page[-1][0]
        applied += len(page)
    return applied
