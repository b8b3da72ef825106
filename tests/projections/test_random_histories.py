"""Property: on both stores, views kept current step by step == views rebuilt from event 1 ==
the plain in-memory fold, over random histories (partial fills, shorts, fractional
quantities, busted fills, syncs, splits, symbol changes, adjustments)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from ledger.application import Ledger
from ledger.bootstrap import open_ledger
from ledger.settings import load_settings
from projections import Views, rebuild
from tests.conftest import PG_URL
from tests.projections.compare import memory_digests, order_facts, reference_books
from tests.projections.script import Script
from tests.projections.test_views import nonflat

SYMBOLS = ["AAPL", "MSFT", "BRK.B"]
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)

quantities = st.decimals(min_value="0.001", max_value=50, places=3, allow_nan=False)
prices = st.decimals(min_value="0.01", max_value=500, places=2, allow_nan=False)

order_steps = st.fixed_dictionaries(
    {
        "kind": st.just("order"),
        "symbol": st.sampled_from(SYMBOLS),
        "side": st.sampled_from(["buy", "sell"]),
        "parts": st.lists(st.tuples(quantities, prices), min_size=0, max_size=3),
        "unfilled": st.booleans(),
        "purpose": st.sampled_from(
            ["decision", "decision", "decision", "compensation", "external"]
        ),
        "broker": st.sampled_from(["paper", "alpaca"]),
        "late": st.booleans(),  # filled before the latest sync's broker time
    }
)
steps = st.one_of(
    order_steps,
    order_steps,
    order_steps,
    st.fixed_dictionaries({"kind": st.just("reverse"), "pick": st.integers(0, 10**6)}),
    st.fixed_dictionaries(
        {
            "kind": st.just("snapshot"),
            "positions": st.dictionaries(
                st.sampled_from(SYMBOLS), st.tuples(quantities, prices), max_size=3
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("split"),
            "symbol": st.sampled_from(SYMBOLS),
            "ratio": st.sampled_from(["2", "3", "0.5"]),
            "dated": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("rename"),
            "symbol": st.sampled_from(SYMBOLS),
            "to": st.sampled_from([*SYMBOLS, "NEWCO"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("adjust"),
            "symbol": st.sampled_from(SYMBOLS),
            "qty": st.decimals(min_value=-20, max_value=20, places=2, allow_nan=False).filter(bool),
            "price": prices,
            "book": st.sampled_from(["local", "broker"]),
        }
    ),
)


@contextmanager
def fresh_ledger(store_kind: str, folder: Path) -> Iterator[Ledger]:
    schema = f"h_{uuid.uuid4().hex[:12]}"
    if store_kind == "sqlite":
        url = f"sqlite:///{folder / f'{schema}.db'}"
    else:
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper"))
    try:
        yield ledger
    finally:
        ledger.close()
        if store_kind == "postgres":
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def play(script: Script, history: list[dict], views: Views) -> list[uuid.UUID]:
    """Write the history, catching the views up after every step; returns the order ids."""
    fills: list[tuple[uuid.UUID, str]] = []
    orders: list[uuid.UUID] = []
    now = T0
    last_sync = T0 - timedelta(days=1)
    for step in history:
        now += timedelta(seconds=1)
        kind = step["kind"]
        if kind == "order":
            parts = step["parts"]
            qty = sum((q for q, _ in parts), D(0)) + (
                D(1) if step["unfilled"] or not parts else D(0)
            )
            filled_at = last_sync - timedelta(seconds=1) if step["late"] else now
            order = script.order(
                step["symbol"],
                step["side"],
                qty,
                parts,
                purpose=step["purpose"],
                broker=step["broker"],
                filled_at=filled_at,
            )
            orders.append(order.id)
            fills.extend((order.id, e) for e in order.executions)
        elif kind == "reverse" and fills:
            order_id, execution = fills.pop(step["pick"] % len(fills))
            script.reverse(order_id, execution)
        elif kind == "snapshot":
            script.snapshot(
                {s: (str(q), str(p)) for s, (q, p) in step["positions"].items()}, broker_time=now
            )
            last_sync = now
        elif kind == "split":
            script.corporate_action(
                step["symbol"],
                ratio=step["ratio"],
                effective=date(2026, 1, 7) if step["dated"] else None,
            )
        elif kind == "rename" and step["to"] != step["symbol"]:
            script.corporate_action(step["symbol"], new_symbol=step["to"])
        elif kind == "adjust":
            script.adjust(step["symbol"], step["qty"], step["price"], step["book"])
        views.catch_up()
    return orders


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
@settings(
    max_examples=int(__import__("os").environ.get("HX", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(steps, min_size=1, max_size=25), page_size=st.sampled_from([1, 3, 500]))
def test_incremental_equals_rebuilt_equals_plain_fold(store_kind, tmp_path, history, page_size):
    with fresh_ledger(store_kind, tmp_path) as ledger:
        script = Script(ledger)
        views = Views(ledger, page_size=page_size)
        orders = play(script, history, views)

        incremental = views.digests()
        assert incremental == memory_digests(ledger)
        assert {v.name: v.digest for v in rebuild(views, verify=True).views} == incremental

        local, broker = reference_books(ledger)
        assert nonflat(local) == {
            r.symbol: (r.qty, r.cost_basis, r.realised_pnl)
            for r in views.local_book(include_flat=True)
            if r.qty or r.realised_pnl
        }
        assert {s: (p.qty, p.cost) for s, p in nonflat(broker).items() if p.qty} == {
            r.symbol: (r.qty, r.cost_basis) for r in views.broker_book().positions
        }
        for order_id in orders:
            record = views.order(order_id)
            assert order_facts(ledger.get_order(order_id)) == (
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
