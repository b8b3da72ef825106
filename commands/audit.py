"""`commands audit YYYY-MM-DD`: replay one trading day from the events alone."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from commands.errors import CommandError
from commands.output import (
    decimal_text,
    json_option,
    jsonable,
    literal_console,
    price_text,
    print_json,
)
from commands.session import Session
from ledger.domain.values import InvalidInput, normalise_symbol
from projections.queries.audit import TIMELINE_FIELDS, audit_document, parse_day


@click.command()
@click.argument("day", metavar="YYYY-MM-DD")
@json_option
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the timeline to FILE as CSV, one row per event. A text cell "
              "that starts with =, +, -, @, a tab or a carriage return is written with a "
              "leading ' so a spreadsheet shows it instead of running it as a formula; "
              "numbers, negative ones too, are written as they are.")
@click.option("--symbol", help="Only what concerns this symbol (account-wide events stay).")
@click.pass_obj
def audit(session: Session, day: str, as_json: bool, csv_file: Path | None,
          symbol: str | None) -> None:
    """Replay one trading day (in LEDGER_TIMEZONE): every decision, order, broker answer,
    fill, sync and reconciliation in order, both books at the day's open and close, the
    day's realised P&L, and what was left unresolved at its end."""
    settings = session.settings
    try:
        wanted = parse_day(day, settings.zone)
        symbol = None if symbol is None else normalise_symbol(symbol)
    except InvalidInput as error:
        raise CommandError(str(error)) from None
    if csv_file is not None and not csv_file.parent.is_dir():
        raise CommandError(f"--csv {csv_file}: the folder {csv_file.parent} does not exist")
    from projections import catch_up

    views = catch_up(session.ledger, timezone=settings.timezone)
    document = audit_document(views, wanted, symbol)
    if csv_file is not None:
        write_csv(csv_file, document["timeline"])
    if as_json:
        print_json(document)
        return
    show(document)
    if csv_file is not None:
        literal_console.print(
            f"Timeline written to {csv_file} ({len(document['timeline'])} rows)."
        )


# -- CSV -----------------------------------------------------------------------------------------


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV
# Injection"): a reason "=HYPERLINK(...)" would become a link, "@SUM(...)" a call.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What `decimal_text` writes: a cell like this is a number, and a negative one (a sell's
# qty, a loss) must stay one.
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: Any) -> str:
    """Exact text a spreadsheet will not mangle or run: decimals in full, times in ISO
    8601, and text that would start a formula behind a single quote."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(jsonable(value), sort_keys=True)
    plain = jsonable(value)
    return defused(plain if isinstance(plain, str) else str(plain))


def defused(cell: str) -> str:
    """OWASP's advice: a leading ' makes a spreadsheet show the cell as text. A plain
    decimal number is left alone, whether it came from a Decimal or from text: as a number
    it runs nothing."""
    if cell.startswith(FORMULA_PREFIXES) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def write_csv(path: Path, timeline: Sequence[dict[str, Any]]) -> None:
    columns = [*TIMELINE_FIELDS, "details"]
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for entry in timeline:
                writer.writerow([csv_cell(entry.get(column)) for column in columns])
    except OSError as error:
        raise CommandError(f"cannot write --csv {path}: {error.strerror or error}") from None


# -- tables --------------------------------------------------------------------------------------


def _local_clock(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%H:%M:%S %Z")


def _broker_clock(moment: datetime | None, zone_of: datetime) -> str:
    """The broker's time in the ledger's zone, so the two columns compare at a glance."""
    if moment is None:
        return ""
    local = moment.astimezone(zone_of.tzinfo)
    return f"{local:%H:%M:%S}.{local.microsecond // 1000:03d} {local:%Z}"


def show(document: dict[str, Any]) -> None:
    day = document["day"].isoformat()
    scope = f", {document['symbol']} only" if document["symbol"] else ""
    literal_console.print(
        f"Audit of {day} in {document['timezone']} "
        f"({document['starts_at']:%Y-%m-%d %H:%M %Z} to {document['ends_at']:%Y-%m-%d %H:%M %Z})"
        f": {document['events']} event(s){scope}"
    )
    if not document["events"]:
        literal_console.print(f"No events on {day}: the books carried through it unchanged.")
    elif not document["timeline"]:
        literal_console.print(f"No events about {document['symbol']} on {day}.")
    else:
        literal_console.print(_timeline_table(document["timeline"], document["starts_at"]))
    literal_console.print(_positions_table(document))
    _show_pnl(document)
    _show_unresolved(document["unresolved"])
    _show_drift(document.get("drift_windows") or [])


def _short(client_order_id: str | None) -> str:
    """Enough of an id to tell orders apart in a table; JSON and CSV carry it whole."""
    if not client_order_id:
        return ""
    return client_order_id if len(client_order_id) <= 12 else client_order_id[:11] + "…"


def _what(entry: dict[str, Any], starts_at: datetime) -> str:
    """One cell that says what the event did; a fill names its execution and broker time."""
    if entry["execution_id"] is None:
        return entry["text"] or ""
    trade = f"{entry['side']} {decimal_text(entry['qty'])} @ {price_text(entry['price'])}"
    broker_time = _broker_clock(entry["broker_time"], starts_at)
    stamped = f", broker time {broker_time}" if broker_time else ""
    return f"{trade}, execution {entry['execution_id']}{stamped}; {entry['text']}"


def _timeline_table(timeline: Sequence[dict[str, Any]], starts_at: datetime) -> Table:
    table = Table(title="What happened, in order")
    for column in ("#", "ledger time", "event", "symbol", "order", "status", "what"):
        table.add_column(column, overflow="fold", justify="right" if column == "#" else "left")
    for entry in timeline:
        table.add_row(
            str(entry["seq"]),
            _local_clock(entry["local_time"]),
            entry["event"],
            entry["symbol"] or "",
            _short(entry["client_order_id"]),
            entry["status"] or "",
            _what(entry, starts_at),
        )
    return table


def _holding(rows: Sequence[dict[str, Any]], symbol: str) -> str:
    for row in rows:
        if row["symbol"] == symbol:
            return f"{decimal_text(row['qty'])} @ {price_text(row['avg_price'])}"
    return "-"


def _positions_table(document: dict[str, Any]) -> Table:
    opening, closing = document["opening"], document["closing"]
    symbols = sorted({row["symbol"] for book in (opening, closing)
                      for rows in book.values() for row in rows})
    table = Table(title="Positions (qty @ average price)")
    for column in ("symbol", "local open", "local close", "broker open", "broker close"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for symbol in symbols:
        table.add_row(
            symbol,
            *(_holding(moment[book], symbol) for book in ("local", "broker")
              for moment in (opening, closing)),
        )
    if not symbols:
        table.add_row("(none)", "-", "-", "-", "-")
    return table


def _show_pnl(document: dict[str, Any]) -> None:
    if not document["pnl"]:
        literal_console.print("Realised P&L: none (no trades on this day).")
        return
    table = Table(title="Realised P&L of the day")
    for column in ("symbol", "local book", "broker book"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for row in document["pnl"]:
        table.add_row(row["symbol"], decimal_text(row["local"]), decimal_text(row["broker"]))
    total = document["pnl_total"]
    table.add_row("total", decimal_text(total["local"]), decimal_text(total["broker"]))
    literal_console.print(table)


def _show_unresolved(unresolved: dict[str, list[dict[str, Any]]]) -> None:
    orders, differences = unresolved["open_orders"], unresolved["differences"]
    if not orders and not differences:
        literal_console.print(
            "Nothing unresolved at the end of the day: no open orders, books agree."
        )
        return
    if orders:
        table = Table(title="Orders still open at the end of the day")
        for column in ("order", "purpose", "symbol", "side", "qty", "filled", "status", "broker"):
            table.add_column(column, overflow="fold")
        for order in orders:
            table.add_row(
                order["client_order_id"], order["purpose"], order["symbol"], order["side"],
                decimal_text(order["qty"]), decimal_text(order["filled_qty"]), order["status"],
                order["broker"] or "",
            )
        literal_console.print(table)
    if differences:
        table = Table(title="Local book vs broker book at the end of the day")
        for column in ("symbol", "local", "broker", "open", "delta"):
            table.add_column(column, justify="left" if column == "symbol" else "right")
        for row in differences:
            table.add_row(
                row["symbol"],
                *(decimal_text(row[key])
                  for key in ("local_qty", "broker_qty", "open_qty", "delta")),
            )
        literal_console.print(table)


def _show_drift(windows: Sequence[dict[str, Any]]) -> None:
    """When `commands run`'s watchdog found the books apart (drifts begun or ended that day)."""
    if not windows:
        return
    table = Table(title="Drift windows (books apart, found by `commands run`)")
    for column in ("began", "ended", "symbols (delta, cause)"):
        table.add_column(column, overflow="fold")
    for window in windows:
        symbols = ", ".join(
            f"{item['symbol']} {item['delta']} ({item['cause']})" for item in window["symbols"]
        )
        ended = window["ended_at"]
        table.add_row(f"{window['began_at']:%Y-%m-%d %H:%M:%S %Z}",
                      "still open" if ended is None else f"{ended:%Y-%m-%d %H:%M:%S %Z}",
                      symbols)
    literal_console.print(table)
