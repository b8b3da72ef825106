"""`commands positions`: the local book, the broker book, or their difference, now or as of then."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from commands.errors import EXIT_USAGE, CommandError
from commands.output import (
    decimal_text,
    json_option,
    literal,
    literal_console,
    price_text,
    print_json,
)
from commands.session import Session
from projections import books_at, catch_up
from projections.model.positions import DiffRow
from projections.model.records import BrokerAccountState
from projections.queries.positions import book_document, diff_document
from projections.queries.views import PositionRow

BOOKS = ("local", "broker", "diff")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_as_of(text: str, zone: ZoneInfo) -> datetime:
    """An instant from ISO 8601. A date means the end of that trading day; a time without
    an offset is in the ledger's time zone."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            instant = datetime.combine(day, time.max, tzinfo=zone)
        else:
            instant = datetime.fromisoformat(value)
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=zone)
        # Every event time is UTC: an instant that has no UTC value cannot be compared.
        utc = instant.astimezone(UTC)
    except ValueError:
        raise CommandError(
            f"--as-of {text!r} is not an ISO-8601 date or time: use for example 2026-01-05 "
            "or 2026-01-05T16:00:00-05:00",
            EXIT_USAGE,
        ) from None
    except OverflowError:
        raise CommandError(f"--as-of {text!r} is out of range", EXIT_USAGE) from None
    if instant.year < 1970 or utc < EPOCH:
        # Nothing in a ledger is that old: most likely a typo in the year.
        raise CommandError(f"--as-of {text!r} is before 1970: check the year", EXIT_USAGE)
    return instant


@click.command()
@click.option(
    "--book",
    type=click.Choice(BOOKS, case_sensitive=False),
    default="local",
    show_default=True,
    help="local: what the ledger decided; broker: what the broker holds; diff: both, side by side.",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="ISO-8601",
    help="The books as the ledger knew them then (2026-01-05 means that day's close).",
)
@click.option(
    "--closed",
    is_flag=True,
    help="Also list symbols with nothing open, for the P&L they realised.",
)
@json_option
@click.pass_obj
def positions(session: Session, book: str, as_of: str | None, closed: bool, as_json: bool) -> None:
    """Show positions per symbol: quantity, average price and realised P&L.

    The views catch up with the newest events first. With --as-of they are not used at
    all: the books are folded from the events recorded up to that instant.
    """
    book = book.lower()
    # Check the input before opening anything: bad usage writes nothing.
    instant = None if as_of is None else parse_as_of(as_of, session.settings.zone)
    if book == "diff":
        rows, synced = _diff(session, instant)
        _show_diff(rows, instant or datetime.now(UTC), as_json, synced, instant is not None)
        return
    rows, account = _book(session, book, instant, closed)
    _show_book(book, rows, instant or datetime.now(UTC), as_json, account)


def _book(
    session: Session, book: str, instant: datetime | None, closed: bool
) -> tuple[list[PositionRow], BrokerAccountState | None]:
    if instant is not None:
        past = books_at(session.ledger, instant, session.settings.zone)
        if book == "broker":
            return past.broker_book(include_flat=closed), past.broker_account
        return past.local_book(include_flat=closed), None
    views = catch_up(session.ledger, timezone=session.settings.timezone)
    if book == "broker":
        broker = views.broker_book(include_flat=closed)
        return broker.positions, broker.account
    return views.local_book(include_flat=closed), None


def _diff(session: Session, instant: datetime | None) -> tuple[list[DiffRow], bool]:
    """The rows, and whether the broker was ever read (by then): without a sync its column
    is not a broker that holds nothing but one nobody asked."""
    if instant is not None:
        past = books_at(session.ledger, instant, session.settings.zone)
        return past.diff(), past.broker_account is not None
    views = catch_up(session.ledger, timezone=session.settings.timezone)
    # Read after the rows: a sync landing in between can only make the note go missing
    # for a book it already fills, never claim "no sync" over a filled broker column.
    rows = views.diff()
    return rows, views.broker_account() is not None


def _show_book(
    book: str,
    rows: list[PositionRow],
    moment: datetime,
    as_json: bool,
    account: BrokerAccountState | None = None,
) -> None:
    if as_json:
        print_json(book_document(book, moment, rows, account))
        return
    if book == "broker":
        if account is None:
            literal_console.print(
                "No broker sync yet: run `commands sync` to read the broker's account."
            )
        else:
            literal_console.print(
                f"{account.broker} account {account.account_id}"
                f"{' (paper)' if account.paper else ''} as of {account.broker_time.isoformat()}: "
                f"cash {decimal_text(account.cash)}, equity {decimal_text(account.equity)}, "
                f"buying power {decimal_text(account.buying_power)}"
            )
    if not rows:
        literal_console.print(f"No open positions in the {book} book.")
        return
    table = Table(title=f"{book.capitalize()} book as of {moment.isoformat(timespec='seconds')}")
    for column in ("symbol", "qty", "avg price", "realised P&L"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for row in rows:
        table.add_row(
            row.symbol,
            decimal_text(row.qty),
            price_text(row.avg_price),
            decimal_text(row.realised_pnl),
        )
    literal_console.print(table)


def _show_diff(
    rows: list[DiffRow], moment: datetime, as_json: bool, synced: bool, as_of: bool
) -> None:
    if as_json:
        print_json(diff_document(moment, rows))
        return
    if not synced:
        when = f" as of {moment.isoformat(timespec='seconds')}" if as_of else ""
        literal_console.print(
            f"No broker sync yet{when}: the broker column is empty until `commands sync`."
        )
    if not rows:
        literal_console.print("Neither book holds anything, and nothing is on order.")
        return
    table = Table(title=f"Local vs broker as of {moment.isoformat(timespec='seconds')}")
    for column in ("symbol", "local", "broker", "open orders", "delta"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for row in rows:
        delta = decimal_text(row.delta)
        table.add_row(
            row.symbol,
            decimal_text(row.local_qty),
            decimal_text(row.broker_qty),
            decimal_text(row.open_qty),
            literal(delta, "bold") if row.delta else delta,
        )
    literal_console.print(table)
    literal_console.print(
        "delta = local - broker - open orders: what the broker still needs to match."
    )
