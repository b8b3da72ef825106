"""`commands trade buy|sell SYMBOL QTY`: record a decision and execute it through the router."""

from __future__ import annotations

import click

from commands.errors import EXIT_ATTENTION, CommandError
from commands.interrupts import stop_on_signals
from commands.output import decimal_text, json_option, print_json, visible
from commands.session import Session
from ledger.domain import Order
from ledger.domain.order_status import FAILED_STATUSES, OUTCOME_UNKNOWN
from ledger.services.stopping import Interrupted


# Negative quantities must reach the validator (and its clear message), not click's option parser.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("side", type=click.Choice(["buy", "sell"], case_sensitive=False))
@click.argument("symbol")
@click.argument("qty")
@click.option("--price", help="Price the paper broker fills a market order at (required on paper).")
@click.option("--reason", default="", help="Why: stored with the decision as its rationale.")
@click.option("--limit", "limit_price", help="Place a limit order at this price instead of market.")
@click.option(
    "--time-in-force",
    default=None,
    help="Default: day; gtc for a crypto pair (BTC/USD), which Alpaca takes only as gtc or ioc.",
    type=click.Choice(["day", "gtc", "opg", "cls", "ioc", "fok"], case_sensitive=False),
)
@click.option(
    "--extended-hours", is_flag=True, help="Allow execution outside regular hours (limit, day)."
)
@click.option(
    "--confirm-live",
    is_flag=True,
    help="Required to trade a live account (ALPACA_PAPER_MODE=false): real money.",
)
@json_option
@click.pass_obj
def trade(
    session: Session,
    side: str,
    symbol: str,
    qty: str,
    price: str | None,
    reason: str,
    limit_price: str | None,
    time_in_force: str | None,
    extended_hours: bool,
    confirm_live: bool,
    as_json: bool,
) -> None:
    """Record a decision to buy or sell QTY of SYMBOL and execute it through the broker router.

    QTY may be fractional (0.5). Quantities and prices are exact decimals. With
    BROKER_PROVIDER=paper the order fills at --price; with alpaca it goes to Alpaca and
    the broker's answer is printed. Exit 1 when the order failed or was rejected.
    """
    with stop_on_signals() as stop:
        try:
            order = session.ledger.trade(
                side=side,
                symbol=symbol,
                qty=qty,
                price=price,
                reason=reason,
                order_type="limit" if limit_price is not None else "market",
                limit_price=limit_price,
                time_in_force=time_in_force or ("gtc" if "/" in symbol else "day"),
                extended_hours=extended_hours,
                confirm_live=confirm_live,
                may_send=stop.check,
            )
        except Interrupted as stopped:
            raise CommandError(
                f"{stopped}: 0 orders sent, 1 not sent, 0 of unknown outcome", EXIT_ATTENTION
            ) from None
    document = order_document(order)
    failed = order.status in FAILED_STATUSES | {OUTCOME_UNKNOWN}
    interrupted = (
        f"Error: {stop.reason}: the order in flight was finished and recorded"
        + (" (its outcome is unknown: the next sync or reconcile settles it)"
           if order.outcome_unknown else "")
        if stop.requested else None
    )
    if as_json:
        print_json(document)
        if interrupted:
            click.echo(interrupted, err=True)
        if failed or interrupted:
            raise click.exceptions.Exit(1)
        return
    line = (
        f"{order.side} {decimal_text(order.qty)} {order.symbol} {order.order_type}"
        f" -> {order.broker}: {order.status}"
    )
    if order.filled_qty:
        line += f" {decimal_text(order.filled_qty)} @ {decimal_text(order.avg_fill_price)}"
    if order.failures:
        failure = order.failures[-1]
        line += f" ({failure['code']}: {failure['message']})"
    # The broker's message and code are its words, not ours: no control character of theirs
    # reaches the terminal raw. The JSON above carries them exactly.
    click.echo(visible(line))
    click.echo(f"decision {order.decision_id}  client order id {order.client_order_id}")
    if order.broker_order_id is not None:
        click.echo(visible(f"broker order id {order.broker_order_id}"))
    if order.outcome_unknown:
        click.echo(
            "The broker may have this order although no answer said so: the next sync looks "
            "it up by its client order id."
        )
    if interrupted:
        click.echo(interrupted, err=True)
    if failed or interrupted:
        raise click.exceptions.Exit(1)


def order_document(order: Order) -> dict[str, object]:
    return {
        "order_id": order.id,
        "decision_id": order.decision_id,
        "client_order_id": order.client_order_id,
        "broker": order.broker,
        "broker_order_id": order.broker_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "qty": order.qty,
        "type": order.order_type,
        "status": order.status,
        "filled_qty": order.filled_qty,
        "avg_fill_price": order.avg_fill_price,
        "error": order.failures[-1] if order.failures else None,
    }
