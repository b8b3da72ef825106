"""`commands rebuild`: fold views again from event 1 and swap them in; `--verify` shows changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from commands.errors import EXIT_ATTENTION
from commands.output import console, error_console, json_option, print_json
from commands.session import Session
from projections import VIEW_NAMES, RebuildReport, Views
from projections import rebuild as rebuild_views
from projections.engine.digest import RowDifference
from projections.engine.rebuilder import Progress as ProgressCallback


@click.command()
@click.option(
    "--projection",
    "names",
    multiple=True,
    type=click.Choice(VIEW_NAMES),
    help="Rebuild this view, the views computed from it and those folded with it (the audit "
    "index is folded with every view, so today that is all of them). Repeatable.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Hash every view and list every row that differs from the view it replaces; "
    "exit 1 if any does.",
)
@json_option
@click.pass_obj
def rebuild(session: Session, names: tuple[str, ...], verify: bool, as_json: bool) -> None:
    """Rebuild views from the events, beside the live ones, then swap them in at once.

    Readers keep reading the old views until the new ones are complete. Run it after a
    projection bug is fixed; --verify shows what the fix changed.
    """
    views = Views(session.ledger, timezone=session.settings.timezone)
    with _progress(enabled=not as_json) as progress:
        report = rebuild_views(views, names or None, verify=verify, progress=progress)
    if as_json:
        print_json(_document(report))
    else:
        _print(report)
    if verify and report.differed:
        raise click.exceptions.Exit(EXIT_ATTENTION)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise (logs, pipes, --json)."""
    if not enabled or not error_console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("rebuilding views"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=error_console, transient=True) as bar:
        task = bar.add_task("rebuild", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _document(report: RebuildReport) -> dict[str, Any]:
    return {
        "events": report.events,
        "seconds": round(report.seconds, 3),
        "events_per_second": round(report.events_per_second, 1),
        "position": report.position,
        "verified": report.verified,
        "differed": report.differed,
        "views": [
            {
                "name": view.name,
                "rows": view.rows,
                "digest": view.digest,
                "replaced_digest": view.replaced_digest,
                "identical": None if not report.verified else not view.differences,
                "differences": [dataclasses.asdict(d) for d in view.differences],
            }
            for view in report.views
        ],
    }


def _print(report: RebuildReport) -> None:
    console.print(
        f"Rebuilt {len(report.views)} view(s) from {report.events:,} events in "
        f"{report.seconds:.2f} s ({report.events_per_second:,.0f} events/s), "
        f"up to event {report.position}."
    )
    table = Table()
    table.add_column("view")
    table.add_column("rows", justify="right")
    if report.verified:
        table.add_column("sha256")
        table.add_column("compared with the view it replaced")
    for view in report.views:
        cells = [view.name, f"{view.rows:,}"]
        if report.verified:
            cells.append(view.digest or "")
            if view.replaced_digest is None:
                cells.append("nothing to compare: the view was new")
            elif view.differences:
                cells.append(f"[bold]{len(view.differences)} row(s) differ[/bold]")
            else:
                cells.append("identical")
        table.add_row(*cells)
    console.print(table)
    for view in report.views:
        if view.differences:
            _print_differences(view.name, view.differences)


def _print_differences(name: str, differences: tuple[RowDifference, ...]) -> None:
    """One line per row: which row, and each value before -> after. Lines, not a table, so
    long values (a day's closing books) stay readable at any terminal width."""
    console.print(
        f"{name}: {len(differences)} row(s) differ (before: the replaced view; after: rebuilt)",
        markup=False,
    )
    for difference in differences:
        key = " ".join(f"{k}={v}" for k, v in difference.key.items())
        if difference.change == "changed":
            assert difference.before is not None and difference.after is not None
            detail = ", ".join(
                f"{c} {difference.before[c]} -> {difference.after[c]}"
                for c in difference.changed_columns
            )
        else:
            row = difference.after if difference.change == "added" else difference.before
            assert row is not None
            detail = " ".join(f"{c}={v}" for c, v in row.items() if c not in difference.key)
        console.print(f"  {difference.table} {key} {difference.change}: {detail}", markup=False)
