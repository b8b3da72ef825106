"""Prices on the page read as the market quotes them, to the cent (4 decimals below $1);
quantities stay exact, and the JSON keeps every price exact (issue #16, item 3)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from commands.web import formatting
from ledger.application import Ledger
from ledger.brokers.paper import PaperBroker
from testing.clock import stamped_by
from tests.audit.history import Clock, utc
from tests.web.conftest import start_server, stop
from tests.web.http import fetch

D = Decimal
DAY = "2026-01-05"
# 4 @ 187.20 and 7 @ 188.40: 11 @ 2067.6 / 11, a division that never ends.
AVERAGE = D("2067.6") / D(11)


@pytest.fixture
def served(open_store: Callable[..., Ledger], database_url: str,
           tmp_path: Path) -> Iterator[str]:
    """Paper trades on one day, on the store under test, and the page over them."""
    clock = Clock()
    ledger = open_store(adapter=PaperBroker(clock))
    with stamped_by(clock):
        clock.set(utc(f"{DAY}T15:00:00"))
        ledger.trade(side="buy", symbol="AAPL", qty="4", price="187.20", reason="open")
        ledger.trade(side="buy", symbol="AAPL", qty="7", price="188.40", reason="add")
        ledger.trade(side="buy", symbol="PENNY", qty="1234.56789", price="0.123456",
                     reason="a sub-dollar stock, a fractional quantity")
    process, url, printed = start_server(database_url, tmp_path)
    try:
        assert url is not None, printed
        yield url
    finally:
        stop(process)


def squeezed(html: str) -> str:
    """The page's text, tags dropped and blanks folded: what a reader sees."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_page_shows_prices_to_the_cent_and_the_json_keeps_them_exact(served: str) -> None:
    assert str(AVERAGE) == "187.9636363636363636363636364"
    books = fetch(served + "/")
    assert books.status == 200
    # symbol, qty, avg price, last price (none here), value, realised P&L
    assert "AAPL 11 187.96 " in squeezed(books.body)
    assert "PENNY 1,234.56789 0.1235 " in squeezed(books.body)
    assert "187.963" not in books.body and "0.123456" not in books.body

    audit = fetch(served + f"/audit/{DAY}")
    assert audit.status == 200
    assert "11 @ 187.96" in squeezed(audit.body) and "187.963" not in audit.body
    assert "buy 1,234.56789 @ 0.1235, execution" in squeezed(audit.body)

    transactions = fetch(served + "/transactions")
    assert "1,234.56789 @ 0.1235" in squeezed(transactions.body)

    positions = fetch(served + "/api/positions?book=local").json()["positions"]
    exact = {row["symbol"]: (row["qty"], row["avg_price"]) for row in positions}
    assert exact == {"AAPL": ("11", str(AVERAGE)), "PENNY": ("1234.56789", "0.123456")}
    closing = fetch(served + f"/api/audit/{DAY}").json()["closing"]["local"]
    assert {row["symbol"]: row["avg_price"] for row in closing} == {
        "AAPL": str(AVERAGE), "PENNY": "0.123456"
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (AVERAGE, "187.96"),
        (D("187.2"), "187.20"),
        (D("187.205"), "187.21"),  # half up, as the ledger prices its own limit orders
        (D("1234567.891"), "1,234,567.89"),
        (D("0.123456"), "0.1235"),
        (D("0.5"), "0.5000"),
        (D("0.99996"), "1.00"),
        # Too small for 4 decimals (a crypto pair): 4 significant digits, no padding.
        (D("0.0000123456"), "0.00001235"),
        (D("0.000012"), "0.000012"),
        (D("0.0001"), "0.0001"),
        (D("-3.005"), "-3.01"),
        (D(0), "0.00"),
        (D("-0E-8"), "0.00"),
        (None, ""),
    ],
)
def test_a_price_is_shown_to_its_tick(value: Decimal | None, shown: str) -> None:
    assert formatting.price(value) == shown


def test_money_and_quantities_stay_exact() -> None:
    assert formatting.money(D("1234567.891")) == "1,234,567.891"
    assert formatting.number(D("1234.56789")) == "1,234.56789"
