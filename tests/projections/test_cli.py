"""`commands positions` and `commands rebuild` through click's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

from click.testing import CliRunner

from commands.cli import cli
from ledger.application import Ledger


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_help_names_the_options():
    code, out, _ = invoke("positions", "--help")
    assert code == 0 and "--book [local|broker|diff]" in out and "--as-of ISO-8601" in out
    code, out, _ = invoke("rebuild", "--help")
    assert code == 0 and "--verify" in out and "local_book" in out


def test_positions_after_trades_through_the_cli(cli_env):
    assert invoke("trade", "buy", "AAPL", "10", "--price", "100")[0] == 0
    assert invoke("trade", "buy", "AAPL", "5", "--price", "110")[0] == 0
    assert invoke("trade", "sell", "AAPL", "15.5", "--price", "120")[0] == 0
    code, out, err = invoke("positions", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert set(document) == {"book", "as_of", "positions"} and document["book"] == "local"
    assert document["positions"] == [
        {"symbol": "AAPL", "qty": "-0.5", "avg_price": "120", "realised_pnl": "250"}
    ]
    code, out, _ = invoke("positions")
    assert code == 0 and "AAPL" in out and "-0.5" in out and "250" in out
    assert invoke("trade", "buy", "AAPL", "0.5", "--price", "100")[0] == 0
    assert json.loads(invoke("positions", "--json")[1])["positions"] == []
    closed = json.loads(invoke("positions", "--json", "--closed")[1])["positions"]
    assert closed == [{"symbol": "AAPL", "qty": "0", "avg_price": "0", "realised_pnl": "260"}]


def test_broker_book_and_diff(ledger: Ledger, script, cli_env):
    script.order("AAPL", "buy", "10", [(D(10), D(100))])
    open_order = script.order("AAPL", "buy", "6", purpose="compensation", broker="alpaca")
    script.snapshot(
        {"AAPL": ("4", "99.5")},
        broker_time=datetime(2020, 1, 1, tzinfo=UTC),
        open_orders=[
            {
                "client_order_id": open_order.client_order_id,
                "symbol": "AAPL",
                "side": "buy",
                "qty": D(5),
                "filled_qty": D(0),
            }
        ],
    )
    code, out, _ = invoke("positions", "--book", "broker", "--json")
    document = json.loads(out)
    assert code == 0 and document["book"] == "broker"
    assert document["positions"] == [
        {"symbol": "AAPL", "qty": "4", "avg_price": "99.5", "realised_pnl": "0"}
    ]
    assert document["account"]["cash"] == "1000" and document["account"]["broker"] == "alpaca"
    code, out, _ = invoke("positions", "--book", "diff", "--json")
    assert json.loads(out)["positions"] == [
        {"symbol": "AAPL", "local_qty": "10", "broker_qty": "4", "open_qty": "6", "delta": "0"}
    ]
    code, out, _ = invoke("positions", "--book", "broker")
    assert code == 0 and "cash 1000" in out and "99.5" in out
    code, out, _ = invoke("positions", "--book", "DIFF")
    assert code == 0 and "open orders" in out


def test_empty_books_say_so(cli_env):
    assert "No open positions in the local book." in invoke("positions")[1]
    assert "No broker sync yet" in invoke("positions", "--book", "broker")[1]
    assert "Neither book holds anything" in invoke("positions", "--book", "diff")[1]


def test_rebuild_json_report(ledger: Ledger, script, cli_env):
    script.order("AAPL", "buy", "1", [(D(1), D(100))])
    code, out, err = invoke("rebuild", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["events"] == ledger.last_notification_id() == report["position"]
    assert report["verified"] is False and report["differed"] is False
    assert [v["name"] for v in report["views"]] == [
        "orders",
        "local_book",
        "broker_book",
        "audit_index",
    ]
    # Without --verify nothing is hashed: that is an eighth of a rebuild.
    assert all(v["digest"] is None and v["identical"] is None for v in report["views"])
    assert [v["rows"] for v in report["views"]] == [1, 2, 0, 1]  # a paper order: no broker rows
    code, out, _ = invoke("rebuild", "--json", "--verify", "--projection", "broker_book")
    views = json.loads(out)["views"]
    assert code == 0 and [v["name"] for v in views] == [v["name"] for v in report["views"]]
    assert all(len(v["digest"]) == 64 for v in views)
    assert [v["rows"] for v in views] == [v["rows"] for v in report["views"]]
    assert all(v["identical"] and v["replaced_digest"] == v["digest"] for v in views)


def test_unknown_projection_is_bad_usage(cli_env):
    code, _, err = invoke("rebuild", "--projection", "positions")
    assert code == 2 and "positions" in err and "local_book" in err
