"""The page in a real headless Chromium, against `commands serve` run as a subprocess."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.web.conftest import Server, SettlingServer

pytestmark = pytest.mark.browser

CAUSE = "a local decision the broker never executed"


def cells(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def table_rows(page: Any, table: str) -> dict[str, list[str]]:
    """The rows of a table by their first cell (the symbol)."""
    found = {}
    for row in page.locator(f"#{table} tbody tr").all():
        values = cells(row)
        found[values[0]] = values[1:]
    return found


def test_books_page_shows_both_books_and_the_difference_with_its_cause(
    page: Any, server: Server
) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_title("Books · tradeledger")
    expect(page.locator(".banner.alert").first).to_contain_text(
        "The books differ on 1 symbol(s): MSFT +3"
    )
    local, broker = table_rows(page, "local-book"), table_rows(page, "broker-book")
    assert local["AAPL"][0] == "10" and local["MSFT"][0] == "3"
    assert broker["AAPL"][0] == "10" and "MSFT" not in broker
    differences = table_rows(page, "differences")
    # local, broker, open orders, delta, delta value, cause
    assert differences["MSFT"][:4] == ["3", "0", "0", "+3"]
    assert differences["MSFT"][5].startswith(CAUSE)
    assert differences["AAPL"][3] == "0" and differences["AAPL"][5] == "books agree"
    expect(page.locator("#differences tr.differs")).to_have_count(1)
    # Portfolio values and the sync time are shown, and the chart draws both books.
    expect(page.locator("#broker-value")).not_to_have_text("unknown")
    expect(page.locator("#last-sync")).not_to_have_text("never")
    expect(page.locator("figure.chart svg path")).to_have_count(2)


def test_transactions_filter_by_symbol(page: Any, server: Server) -> None:
    page.goto(server.url + "/transactions")
    expect(page.locator("#orders tbody.order")).to_have_count(4)
    page.fill("input[name=symbol]", "msft")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/transactions?day=&symbol=msft&purpose=&status=&id=")
    orders = page.locator("#orders tbody.order")
    expect(orders).to_have_count(1)
    first = cells(orders.locator("tr").first)
    assert first[1:4] == ["decision", "MSFT", "buy"]
    assert first[-1] == "rebalance into MSFT"
    expect(orders.locator("tr.fill")).to_contain_text("fill")

    page.fill("input[name=symbol]", "AAPL")
    page.select_option("select[name=purpose]", "compensation")
    page.click("button[type=submit]")
    (compensation,) = page.locator("#orders tbody.order").all()
    assert server.story.compensation_client_order_id in compensation.inner_text()
    assert "reconciliation: " + CAUSE in compensation.inner_text()


def test_audit_page_lists_the_decision_and_the_compensating_order(
    page: Any, server: Server
) -> None:
    day = server.story.day.isoformat()
    page.goto(server.url + "/audit")
    page.fill("input[name=day]", day)
    page.click("button[type=submit]")
    expect(page.locator("h2").first).to_contain_text(day)
    timeline = page.locator("#timeline")
    decisions = timeline.locator("tr.DecisionRecorded")
    expect(decisions).to_have_count(3)
    expect(decisions.first).to_contain_text("momentum")
    compensation = timeline.locator(
        f"tr.OrderRequested:has(td[title='{server.story.compensation_client_order_id}'])"
    )
    expect(compensation).to_have_count(1)
    expect(compensation).to_contain_text("compensation")
    expect(compensation).to_contain_text("buy 6 AAPL market")
    # Opening and closing positions of both books.
    closing = table_rows(page, "positions")
    assert closing["MSFT"] == ["—", "3 @ 401.50", "—", "—"]


def test_a_screenshot_is_not_blank(page: Any, server: Server, tmp_path: Path) -> None:
    page.goto(server.url + "/")
    png = page.screenshot(full_page=True)
    (tmp_path / "books.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    assert width >= 1280 and height >= 900
    colours = image.getcolors(maxcolors=width * height)
    assert colours is not None and len(colours) > 50, "a blank page has a handful of colours"
    background = max(colours)[1]
    busy = sum(count for count, colour in colours if colour != background)
    assert busy / (width * height) > 0.1, "most of the page is one colour"


def test_an_order_settled_by_a_later_run_links_to_it(
    page: Any, settling_server: SettlingServer
) -> None:
    history = settling_server.history
    page.goto(settling_server.url + "/reconciliations")
    interrupted = page.locator(f"#run-{history.interrupted_run}")
    expect(interrupted.locator("p.interrupted")).to_contain_text(
        "Interrupted: interrupted by SIGINT (Ctrl-C).")
    expect(interrupted.locator("table.orders .settled-by")).to_have_text(
        f"settled by run {history.settling_run}: at the broker as {history.broker_order_id}")
    interrupted.locator(".settled-by a").click()
    expect(page).to_have_url(f"{settling_server.url}/reconciliations#run-{history.settling_run}")
    settled = page.locator(f"#run-{history.settling_run} table.settled tbody tr")
    expect(settled).to_have_count(1)
    expect(settled).to_contain_text(history.client_order_id)
