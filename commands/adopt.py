"""`commands adopt SYMBOL... --reason TEXT`: take the broker's quantity into the local book."""

from __future__ import annotations

import getpass
from decimal import Decimal
from typing import Any

import click
from rich.table import Table

from commands.errors import EXIT_USAGE, CommandError
from commands.output import console, decimal_text, json_option, print_json
from commands.session import Session
from commands.sync import run_sync
from ledger.domain.values import InvalidInput, parse_symbols
from projections.queries.reconcile_books import snapshot_positions


@click.command()
@click.argument("symbols", nargs=-1, required=True)
@click.option("--reason", required=True,
              help="Why the broker's quantity is right (stored with the adjustment).")
@json_option
@click.pass_obj
def adopt(session: Session, symbols: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Adopt positions the ledger never made: bring the local book to the broker's quantity
    for each SYMBOL, as an adjustment event (who and why; shown in the audit as an
    adjustment, never as a trade). Syncs with the broker first; sends nothing.

    For positions opened by hand, by another program, or held before the ledger existed:
    reconcile leaves such differences alone until you adopt them here, or trade them away
    with `commands reconcile --include-external`.
    """
    refusal = session.settings.not_alpaca(
        "adopt takes an Alpaca account's positions into the local book"
    )
    if refusal is not None:
        raise CommandError(refusal, EXIT_USAGE)
    try:
        wanted = parse_symbols(",".join(symbols))
    except InvalidInput as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    from projections import catch_up

    run_sync(session.ledger, session.settings)
    views = catch_up(session.ledger, timezone=session.settings.timezone)
    local = {row.symbol: row for row in views.local_book()}
    held = {str(p["symbol"]): p for p in snapshot_positions(views)}
    rows: list[dict[str, Any]] = []
    adjustments: list[tuple[str, Decimal, Decimal]] = []
    for symbol in wanted:
        mine = local[symbol].qty if symbol in local else Decimal(0)
        position = held.get(symbol)
        theirs = Decimal(str(position["qty"])) if position else Decimal(0)
        # The broker's cost for what it holds; taking a position down to flat at the local
        # book's own average realises nothing.
        price = (Decimal(str(position["avg_entry_price"])) if position
                 else local[symbol].avg_price if symbol in local else Decimal(0))
        adjustments.append((symbol, theirs - mine, price))
        rows.append({"symbol": symbol, "local_qty": mine, "broker_qty": theirs,
                     "adjustment": theirs - mine, "price": price})
    who = _who()
    recorded = session.ledger.adopt(adjustments, who=who, why=reason)
    document = {"who": who, "reason": reason, "adopted": rows,
                "adjustments": [a.id for a in recorded]}
    if as_json:
        print_json(document)
        return
    table = Table(title="Adopted into the local book (adjustments, not trades)")
    for column in ("symbol", "local was", "broker", "adjustment", "at price"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for row in rows:
        table.add_row(row["symbol"], decimal_text(row["local_qty"]),
                      decimal_text(row["broker_qty"]), decimal_text(row["adjustment"]),
                      decimal_text(row["price"]))
    console.print(table)
    same = [r["symbol"] for r in rows if not r["adjustment"]]
    if same:
        console.print(f"Already equal, nothing recorded: {', '.join(same)}", markup=False)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
