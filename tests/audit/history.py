"""A scripted multi-day history on a controlled clock, and what its audit must show.

Events are stamped by eventsourcing when they are created; the test clock replaces its
clock while the history is written (testing/clock.py), so each event lands on a chosen
day. The paper broker and the Alpaca sandbox read the same clock, so broker times and
ledger times tell one consistent story.

The days (America/New_York; US daylight saving time starts Sunday 2026-03-08 at 02:00):

- Fri 03-06 (EST, UTC-5): paper buy 10 AAPL @ 100; Alpaca buy 10 MSFT, partly filled
  4 @ 400 at once, 6 @ 402 an hour later at the broker, recorded by the evening's sync;
  23:59 paper sell 4 AAPL @ 110.
- Sat 03-07: 00:00:30 paper buy 2 AAPL @ 103 (a second after midnight: the next day).
- Sun 03-08 (EDT from 02:00): a reconciliation (with its sync) plans buy 8 AAPL, which
  Alpaca refuses for buying power; 23:30 EDT paper sell 3 MSFT @ 405.
- Mon 03-09: 00:30 EDT (04:30 UTC, which is still Sunday in EST) paper buy 1 NVDA @ 130;
  Alpaca sell 4 MSFT, 2 @ 410 filled, the rest left open.
- Tue 03-10: nothing happens.
- Wed 03-11: the broker fills the other 2 @ 412; a sync records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.brokers.paper import PaperBroker
from ledger.domain.order import Order
from ledger.services.reconciling import Reconciler, ReconcileRequest
from ledger.settings import Settings, load_settings
from projections import catch_up
from projections.queries.reconcile_books import ReconcileBooks
from sandbox import AlpacaSandbox
from testing import clock as test_clock
from testing.clock import stamped_by
from testing.doubles import alpaca_env

ZONE = "America/New_York"
# Each event the clock stamps is this much after the one before: a trade's five events
# take a few seconds, so a trade placed at 23:59:00 ends before midnight.
STEP = timedelta(milliseconds=250)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock(test_clock.Clock):
    """Now, as the test says: set to a moment, then `STEP` later at every reading."""

    def __init__(self) -> None:
        super().__init__(utc("2026-03-06T00:00:00"), STEP)


@dataclass
class History:
    """What the test needs to know about the history it wrote."""

    database_url: str
    settings: dict[str, str]
    orders: dict[str, Order] = field(default_factory=dict)  # by a name the test uses
    broker_order_ids: dict[str, str] = field(default_factory=dict)
    reconciliation: Any = None


def settings_for(database_url: str, **overrides: str) -> Settings:
    values = {"LEDGER_DATABASE_URL": database_url, "LEDGER_TIMEZONE": ZONE, **overrides}
    return load_settings(None, **values)


def write_history(database_url: str, sandbox: AlpacaSandbox) -> History:
    clock = Clock()
    alpaca_settings = {**alpaca_env(sandbox), "RECONCILE_RECENT_FILL_SECONDS": "0"}
    history = History(database_url, alpaca_settings)
    paper = open_ledger(settings_for(database_url, BROKER_PROVIDER="paper"),
                        adapter=PaperBroker(clock))
    alpaca = open_ledger(settings_for(database_url, **alpaca_settings))
    try:
        with stamped_by(clock):
            _write(history, clock, paper, alpaca, sandbox)
    finally:
        paper.close()
        alpaca.close()
    return history


def _write(
    history: History, clock: Clock, paper: Ledger, alpaca: Ledger, sandbox: AlpacaSandbox
) -> None:
    def at(text: str) -> None:
        moment = utc(text)
        clock.set(moment)
        sandbox.set_clock(timestamp=moment)

    def paper_trade(name: str, side: str, symbol: str, qty: str, price: str, why: str) -> None:
        history.orders[name] = paper.trade(side=side, symbol=symbol, qty=qty, price=price,
                                           reason=why, source="engine")

    def alpaca_trade(name: str, side: str, symbol: str, qty: str, why: str) -> None:
        order = alpaca.trade(side=side, symbol=symbol, qty=qty, reason=why, source="engine")
        history.orders[name] = order
        assert order.broker_order_id is not None
        history.broker_order_ids[name] = order.broker_order_id

    # Friday 2026-03-06, EST
    at("2026-03-06T14:45:00")
    paper_trade("buy_aapl", "buy", "AAPL", "10", "100", "momentum")
    at("2026-03-06T15:00:00")
    sandbox.set_symbol("MSFT", behavior="partial", partial_fraction="0.4", price="400")
    alpaca_trade("buy_msft", "buy", "MSFT", "10", "diversify")
    at("2026-03-06T16:00:00")
    sandbox.fill_order(history.broker_order_ids["buy_msft"], qty="6", price="402")
    at("2026-03-06T20:00:00")
    alpaca.sync()
    at("2026-03-07T04:59:00")  # 23:59:00 EST
    paper_trade("sell_aapl", "sell", "AAPL", "4", "110", "take profit")

    # Saturday 2026-03-07
    at("2026-03-07T05:00:30")  # 00:00:30 EST
    paper_trade("dip_aapl", "buy", "AAPL", "2", "103", "buy the dip")

    # Sunday 2026-03-08: EDT from 07:00 UTC
    at("2026-03-08T15:00:00")  # 11:00 EDT
    sandbox.set_symbol("AAPL", behavior="reject_buying_power")
    views = catch_up(alpaca, timezone=ZONE)
    settings = settings_for(history.database_url, **history.settings)
    reconciler = Reconciler(alpaca, ReconcileBooks(views, recent_fill_seconds=Decimal(0)),
                            settings, clock=clock)
    history.reconciliation = reconciler.run(ReconcileRequest())
    at("2026-03-09T03:30:00")  # 23:30 EDT Sunday
    paper_trade("trim_msft", "sell", "MSFT", "3", "405", "trim")

    # Monday 2026-03-09
    at("2026-03-09T04:30:00")  # 00:30 EDT Monday; 23:30 Sunday were it still EST
    paper_trade("buy_nvda", "buy", "NVDA", "1", "130", "starter")
    at("2026-03-09T14:00:00")
    sandbox.set_symbol("MSFT", behavior="partial", partial_fraction="0.5", price="410")
    alpaca_trade("sell_msft", "sell", "MSFT", "4", "reduce")

    # Tuesday 2026-03-10: nothing. Wednesday 2026-03-11:
    at("2026-03-11T15:00:00")
    sandbox.fill_order(history.broker_order_ids["sell_msft"], qty="2", price="412")
    at("2026-03-11T15:30:00")
    alpaca.sync()


def open_reader(history: History) -> Ledger:
    return open_ledger(settings_for(history.database_url, BROKER_PROVIDER="paper"))


Opener = Callable[[], Ledger]
