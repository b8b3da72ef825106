"""The views on both stores: what they hold after a scripted story, and that they agree with a
rebuild and with the plain in-memory fold byte for byte."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import psycopg

from ledger.application import Ledger
from projections import rebuild
from projections.engine.tables import VIEWS
from projections.model.positions import Position
from tests.conftest import PG_URL
from tests.projections.compare import memory_digests, order_facts, reference_books
from tests.projections.script import Script

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def nonflat(book: dict[str, Position]) -> dict[str, Position]:
    return {s: p for s, p in book.items() if p.qty or p.realised_pnl}


def story(script: Script, clock) -> dict[str, object]:
    """Decisions on paper and at the broker, partial fills, a short, a compensating order, a
    trade the ledger did not originate, a sync, a late fill, a split, a rename, a bust."""
    clock.set(T0)
    made: dict[str, object] = {}
    made["paper"] = script.order("AAPL", "buy", "10", [(D(4), D(100)), (D(6), D(101))])
    made["short"] = script.order("MSFT", "sell", "2.5", [(D("2.5"), D("400.10"))])
    made["comp"] = script.order(
        "AAPL", "buy", "6", [(D(6), D(102))], purpose="compensation", broker="alpaca"
    )
    made["ext"] = script.order(
        "TSLA", "buy", "3", [(D(3), D(200))], purpose="external", broker="alpaca"
    )
    script.snapshot(
        {"AAPL": ("6", "102"), "TSLA": ("3", "200")}, broker_time=T0 + timedelta(seconds=1)
    )
    clock.set(T0 + timedelta(minutes=5))
    # An alpaca decision order: one fill the snapshot already counted, one after it.
    made["alpaca"] = script.order(
        "NVDA", "buy", "10", [(D(4), D(50))], broker="alpaca", filled_at=T0
    )
    script.fill(made["alpaca"].id, "6", "55", filled_at=T0 + timedelta(minutes=5))
    made["busted"] = script.order("AAPL", "buy", "5", [(D(5), D(110))])
    script.reverse(made["busted"].id)
    script.corporate_action("NVDA", ratio="4", effective=date(2026, 1, 6))
    script.corporate_action("TSLA", new_symbol="TSLX")
    script.adjust("GOOG", "2", "150")
    return made


def test_story_books_orders_and_their_agreement(ledger: Ledger, script, clock, make_views):
    made = story(script, clock)
    views = make_views(page_size=3)
    views.catch_up()

    local = {row.symbol: (row.qty, row.avg_price, row.realised_pnl) for row in views.local_book()}
    assert local == {
        "AAPL": (D(10), D("100.6"), D(0)),
        "MSFT": (D("-2.5"), D("400.1"), D(0)),
        "NVDA": (D(40), D("13.25"), D(0)),  # 4 @ 50 and 6 @ 55, split 4-for-1
        "GOOG": (D(2), D(150), D(0)),
    }
    broker = views.broker_book()
    assert {row.symbol: (row.qty, row.avg_price) for row in broker.positions} == {
        "AAPL": (D(6), D(102)),
        "NVDA": (D(24), D("13.75")),  # only the fill after the sync, then the split
        "TSLX": (D(3), D(200)),  # renamed after the sync (no effective date: recorded after)
    }
    assert broker.account is not None and broker.account.cash == D(1000)

    for order in made.values():
        record = views.order(order.id)
        assert record is not None
        assert order_facts(script.ledger.get_order(order.id)) == (
            record.status,
            record.filled_qty,
            record.avg_fill_price,
            record.broker,
            record.broker_order_id,
            record.purpose,
            record.symbol,
            record.side,
            record.qty,
            record.client_order_id,
        )
    assert views.order_by_client_order_id(made["busted"].client_order_id).status == "accepted"

    reference_local, reference_broker = reference_books(ledger)
    assert {s: (p.qty, p.cost, p.realised_pnl) for s, p in nonflat(reference_local).items()} == {
        r.symbol: (r.qty, r.cost_basis, r.realised_pnl) for r in views.local_book()
    }
    assert {s: (p.qty, p.cost) for s, p in nonflat(reference_broker).items()} == {
        r.symbol: (r.qty, r.cost_basis) for r in broker.positions
    }

    incremental = views.digests()
    assert incremental == memory_digests(ledger)
    report = rebuild(views, verify=True)
    assert {v.name: v.digest for v in report.views} == incremental
    assert views.digests() == incremental


def test_digest_is_the_same_whatever_the_page_size(ledger: Ledger, script, clock, make_views):
    story(script, clock)
    make_views(page_size=1).catch_up()
    one_by_one = make_views().digests()
    for size in (2, 7, 10_000):
        views = make_views(page_size=size)
        assert {v.name: v.digest for v in rebuild(views, verify=True).views} == one_by_one


def test_views_follow_new_events_and_a_second_reader(
    ledger: Ledger, open_store, script, make_views
):
    views = make_views(page_size=4)
    other = make_views(target=open_store())
    for step in range(6):
        script.order("AAPL", "buy" if step % 3 else "sell", "1.5", [(D("1.5"), D(100 + step))])
        (views if step % 2 else other).catch_up()
    views.catch_up()
    other.catch_up()
    assert views.digests() == other.digests() == memory_digests(ledger)
    assert [row.qty for row in other.local_book()] == [D("3")]


def test_empty_store_and_idempotent_catch_up(ledger: Ledger, make_views):
    views = make_views()
    assert views.catch_up() == 0
    assert views.catch_up() == 0
    assert views.local_book() == [] and views.broker_book().account is None
    assert views.diff() == [] and views.audit_days() == []


def test_diff_nets_open_orders(ledger: Ledger, script, make_views):
    script.order("AAPL", "buy", "10", [(D(10), D(100))])
    open_order = script.order("AAPL", "buy", "6", purpose="compensation", broker="alpaca")
    script.snapshot(
        {"AAPL": ("4", "100")},
        broker_time=datetime(2020, 1, 1, tzinfo=UTC),
        open_orders=[
            {
                "client_order_id": open_order.client_order_id,
                "symbol": "AAPL",
                "side": "buy",
                "qty": D(6),
                "filled_qty": D(0),
            }
        ],
    )
    views = make_views()
    views.catch_up()
    [row] = views.diff()
    assert (row.symbol, row.local_qty, row.broker_qty, row.open_qty, row.delta) == (
        "AAPL",
        D(10),
        D(4),
        D(6),
        D(0),
    )
    assert [o.order_id for o in views.orders(open_only=True)] == [open_order.id]


def public_view_tables() -> set[str]:
    with psycopg.connect(PG_URL) as conn:
        return {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename LIKE 'view\\_%%'")}


def test_view_tables_live_in_the_store_schema(ledger: Ledger, store_kind, database_url, make_views):
    # Other programs may have left view tables in the shared database's public schema:
    # what counts is that this catch-up added none there.
    public_before = public_view_tables() if store_kind == "postgres" else set()
    make_views().catch_up()
    if store_kind == "sqlite":
        return
    schema = database_url.split("schema=")[1]
    with psycopg.connect(PG_URL) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
            )
        }
    assert {t.name for view in VIEWS for t in view.tables} <= tables
    added_to_public = public_view_tables() - public_before
    assert "view_tracking" in tables and not added_to_public & tables - {"view_tracking"}


def test_a_changed_layout_or_time_zone_is_rebuilt_before_use(
    ledger: Ledger, script, clock, make_views
):
    story(script, clock)
    views = make_views()
    views.catch_up()
    expected = views.digests()
    with views.store.write() as tx:
        views.store.write_meta(tx, "local_book", "an-older-layout", "")
    fresh = make_views()
    fresh.catch_up()
    assert fresh.digests() == expected

    tokyo = type(views)(ledger, timezone="Asia/Tokyo")
    tokyo.catch_up()
    assert [d.day for d in tokyo.audit_days()] == [date(2026, 1, 6)]
    assert tokyo.digests()["local_book"] == expected["local_book"]
