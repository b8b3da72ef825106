"""The broker book's realised P&L in the audit comes from the broker's fills, also from those
a sync records after its positions already hold them (issue #16, item 2). Through Alpaca
(the sandbox), on both stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient

from commands.web import create_app
from commands.web.context import WebContext
from ledger.application import Ledger
from ledger.domain.order import Order
from projections import catch_up
from projections.queries.audit import audit_document
from sandbox import AlpacaSandbox
from testing.clock import stamped_by
from testing.doubles import alpaca_env
from tests.audit.history import ZONE, Clock

D = Decimal


@dataclass
class Desk:
    """A ledger trading NVDA through the sandbox, on the real clock: the sandbox's times and
    the ledger's sync cursors (which start from now) then tell one story."""

    ledger: Ledger
    sandbox: AlpacaSandbox
    orders: list[Order] = field(default_factory=list)

    def trade(self, side: str, qty: str, price: str) -> Order:
        self.sandbox.set_symbol("NVDA", price=price)
        order = self.ledger.trade(side=side, symbol="NVDA", qty=qty, reason=f"{side} NVDA",
                                  source="engine")
        assert order.broker_order_id is not None
        self.orders.append(order)
        return order

    def fill(self, order: Order) -> None:
        """The broker fills an order it accepted a moment ago."""
        self.sandbox.fill_order(str(order.broker_order_id))

    @property
    def day(self) -> date:
        """The trading day of the trades (a run across New York's midnight is refused)."""
        (day,) = {o.created_on.astimezone(ZoneInfo(ZONE)).date() for o in self.orders}
        return day


def desk(open_store: Callable[..., Ledger], sandbox: AlpacaSandbox) -> Desk:
    return Desk(open_store(**alpaca_env(sandbox), LEDGER_TIMEZONE=ZONE), sandbox)


def audit(ledger: Ledger, day: date) -> dict[str, Any]:
    return audit_document(catch_up(ledger, timezone=ZONE), day)


def pnl(document: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    return {row["symbol"]: (row["local"], row["broker"]) for row in document["pnl"]}


def page_client(ledger: Ledger) -> FlaskClient:
    app = cast(Flask, create_app(WebContext(ledger, timezone=ZONE), token=None,
                                 loopback_only=True).app)
    return app.test_client()


def test_fills_filled_at_once_with_a_sync_between(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    """Each trade's fill is recorded as the order is placed: after the sync before it."""
    d = desk(open_store, sandbox)
    d.trade("buy", "3", "120")
    d.ledger.sync()
    d.trade("sell", "3", "130")
    d.ledger.sync()
    document = audit(d.ledger, d.day)
    assert pnl(document) == {"NVDA": (D(30), D(30))}
    assert document["pnl_total"] == {"local": D(30), "broker": D(30)}
    assert document["pnl_notes"] == []


def test_fills_a_sync_records_after_its_positions_hold_them_still_realise(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    """As at Alpaca, where a market order is accepted first and filled a moment later:
    the next sync records the fill, after its own positions (which already hold it). The
    sell's 30 was realised at the broker, though the broker book went from 3 @ 120 at one
    sync straight to nothing at the next."""
    d = desk(open_store, sandbox)
    sandbox.set_symbol("NVDA", price="120", behavior="hold")
    buy = d.trade("buy", "3", "120")
    assert buy.status == "accepted"
    d.fill(buy)
    d.ledger.sync()
    sell = d.trade("sell", "3", "130")
    d.fill(sell)
    d.ledger.sync()
    document = audit(d.ledger, d.day)
    fills = [e for e in document["timeline"] if e["event"] == "OrderFilled"]
    synced = [e["seq"] for e in document["timeline"] if e["event"] == "BrokerSynced"]
    # Each fill is recorded by the sync right before it in the timeline.
    assert [(f["side"], f["price"], f["seq"] - 1 in synced) for f in fills] == [
        ("buy", D(120), True), ("sell", D(130), True)
    ]
    assert document["closing"]["broker"] == []
    assert pnl(document) == {"NVDA": (D(30), D(30))}
    assert document["pnl_total"] == {"local": D(30), "broker": D(30)}
    assert document["pnl_notes"] == []

    # The page and its JSON say the same.
    client = page_client(d.ledger)
    page = client.get(f"/audit/{d.day.isoformat()}").get_data(as_text=True)
    assert '<tr><td>NVDA</td><td class="num">30.00</td><td class="num">30.00</td></tr>' in page
    assert 'id="pnl-notes"' not in page
    body = client.get(f"/api/audit/{d.day.isoformat()}").get_json()
    assert body["pnl"] == [{"symbol": "NVDA", "local": "30", "broker": "30"}]
    assert body["pnl_notes"] == []


def test_a_fill_at_once_and_one_a_sync_records_add_up(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    """1 sold at once (+10, in the broker book after the sync), 2 sold and recorded by the
    next sync (+20, against the book as it stood before that sync)."""
    d = desk(open_store, sandbox)
    d.trade("buy", "3", "120")
    d.ledger.sync()
    d.trade("sell", "1", "130")
    sandbox.set_symbol("NVDA", behavior="hold")
    d.fill(d.trade("sell", "2", "130"))
    d.ledger.sync()
    document = audit(d.ledger, d.day)
    assert pnl(document) == {"NVDA": (D(30), D(30))}
    assert document["pnl_notes"] == []


def test_a_held_fill_taken_back_the_same_day_takes_its_pnl_back(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    d = desk(open_store, sandbox)
    sandbox.set_symbol("NVDA", price="120", behavior="hold")
    d.fill(d.trade("buy", "3", "120"))
    d.ledger.sync()
    sell = d.trade("sell", "3", "130")
    d.fill(sell)
    d.ledger.sync()
    order: Order = d.ledger.get_order(sell.id)
    (execution,) = order.executions
    order.reverse_fill(execution_id=execution, reason="busted by the exchange")
    d.ledger.save(order)
    document = audit(d.ledger, d.day)
    assert pnl(document) == {"NVDA": (D(0), D(0))}
    assert document["pnl_notes"] == []


def test_a_figure_left_out_says_why(
    open_store: Callable[..., Ledger], sandbox: AlpacaSandbox
) -> None:
    """A broker fill taken back the next day, after a sync restarted the broker book: the
    book cannot replay it, so the document says what its broker figure leaves out."""
    d = desk(open_store, sandbox)
    clock = Clock()
    # The ledger records the trades and the sync a day ago (the broker's clock plays no
    # part in which day an event is on), and the reversal today.
    clock.set(datetime.now(UTC) - timedelta(days=1))
    with stamped_by(clock):
        d.trade("buy", "3", "120")
        sale = d.trade("sell", "1", "130")
        d.ledger.sync()
    assert pnl(audit(d.ledger, d.day)) == {"NVDA": (D(10), D(10))}
    order: Order = d.ledger.get_order(sale.id)
    (execution,) = order.executions
    order.reverse_fill(execution_id=execution, reason="busted by the exchange")
    d.ledger.save(order)
    today = d.ledger.get_order(sale.id).modified_on.astimezone(ZoneInfo(ZONE)).date()
    assert today > d.day
    document = audit(d.ledger, today)
    assert pnl(document) == {"NVDA": (D(-10), D(0))}
    (note,) = document["pnl_notes"]
    assert (note["symbol"], note["book"], note["execution_id"]) == ("NVDA", "broker", execution)
    assert "left out of the broker figure" in note["text"]
    assert "restarted from a sync since that fill" in note["text"]

    page = page_client(d.ledger).get(f"/audit/{today.isoformat()}").get_data(as_text=True)
    assert 'id="pnl-notes"' in page and "NVDA, broker book: execution" in page
