"""`commands events`: the newest events, a plain look into the store."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from commands.output import json_option, jsonable, literal_console, print_json
from commands.session import Session
from ledger.domain import event_name
from ledger.infrastructure.event_log import StoredEvent

_ENVELOPE = {"originator_id", "originator_version", "originator_topic", "timestamp"}


def event_document(stored: StoredEvent) -> dict[str, Any]:
    event = stored.event
    return {
        "id": stored.notification_id,
        "type": event_name(event),
        "aggregate_id": event.originator_id,
        "version": event.originator_version,
        "timestamp": event.timestamp,
        "data": {k: v for k, v in vars(event).items() if k not in _ENVELOPE},
    }


def _summary(data: dict[str, Any]) -> str:
    parts = []
    for key, value in data.items():
        if value is None or value == [] or value == {}:
            continue
        text = str(jsonable(value))
        parts.append(f"{key}={text if len(text) <= 40 else text[:37] + '...'}")
    return " ".join(parts)


# Far more than anyone reads in a terminal, and within the database's integers (a larger
# number overflowed SQLite's).
MAX_LIMIT = 1_000_000


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1, max=MAX_LIMIT))
@json_option
@click.pass_obj
def events(session: Session, limit: int, as_json: bool) -> None:
    """Show the newest LIMIT events, oldest first."""
    documents = [event_document(e) for e in session.ledger.newest_events(limit)]
    if as_json:
        print_json({"events": documents})
        return
    if not documents:
        click.echo("The event store is empty.")
        return
    table = Table(title=f"Newest {len(documents)} events")
    for column in ("#", "time (UTC)", "event", "aggregate", "v", "details"):
        table.add_column(column, overflow="fold")
    for doc in documents:
        table.add_row(
            str(doc["id"]),
            doc["timestamp"].strftime("%Y-%m-%d %H:%M:%S"),
            doc["type"],
            str(doc["aggregate_id"])[:8],
            str(doc["version"]),
            _summary(doc["data"]),
        )
    literal_console.print(table)
