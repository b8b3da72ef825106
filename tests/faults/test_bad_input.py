"""Bad input, one table: every command with malformed arguments, malformed settings,
unknown symbols, impossible quantities and dates, wrong URLs, and a broker answering with
values nobody told us about.

Each row is refused with one clear `Error:` line on stderr, exit 2 and the event count
unchanged, or it is a broker's answer, recorded as events (exit 0, or 1 when the order
failed). No row may print a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox import AlpacaSandbox
from tests.faults.harness import (
    Launcher,
    alpaca_env,
    assert_one_clear_line,
    event_names,
    paper_env,
)

pytestmark = pytest.mark.faults


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    says: str
    code: int = 2
    env: dict[str, str | None] = field(default_factory=dict)  # None removes a variable
    dotenv: bytes | None = None
    alpaca: bool = False
    fault: dict[str, Any] | None = None  # a sandbox fault before the command
    writes: tuple[str, ...] = ()  # events a recorded broker answer appends


def case(id_: str, *args: str, marks: Any = (), **kw: Any) -> Any:
    return pytest.param(Case(args=args, **kw), id=id_, marks=marks)


TRADE = ("trade", "buy", "AAPL")
NO_STORE_URL: dict[str, str | None] = {"LEDGER_DATABASE_URL": None}

CASES = [
    # -- malformed arguments, every command ---------------------------------------------
    case("no-such-command", "dance", says="No such command 'dance'"),
    case("no-such-option", "--bogus", says="No such option '--bogus'"),
    case("trade-no-args", "trade", says="Missing argument '{buy|sell}'"),
    case("trade-side", "trade", "hold", "AAPL", "1", says="'hold' is not one of 'buy', 'sell'"),
    case("trade-extra", *TRADE, "1", "--price", "1", "again", says="unexpected extra argument"),
    case("trade-tif", *TRADE, "1", "--price", "1", "--time-in-force", "week",
         says="Invalid value for '--time-in-force'"),
    case("events-limit-0", "events", "--limit", "0", says="0 is not in the range"),
    case("events-limit-text", "events", "--limit", "ten", says="'ten' is not a valid integer"),
    case("events-limit-huge", "events", "--limit", "1" + "0" * 22, says="is not in the range"),
    case("positions-book", "positions", "--book", "mine", says="'mine' is not one of"),
    case("rebuild-projection", "rebuild", "--projection", "all", says="'all' is not one of"),
    case("reconcile-symbols", "reconcile", "--dry-run", "--symbols", "AAPL,AA PL",
         says="--symbols: symbol 'AA PL' is malformed", alpaca=True),
    case("reconcile-option", "reconcile", "--force", says="No such option '--force'"),
    case("sync-argument", "sync", "now", says="unexpected extra argument"),
    case("run-option", "run", "--once", says="No such option '--once'"),
    case("audit-day", "audit", "yesterday", says="'yesterday' is not a date"),
    case("serve-port", "serve", "--port", "99999", says="99999 is not in the range"),
    # -- quantities and prices --------------------------------------------------------------
    case("qty-zero", *TRADE, "0", "--price", "1", says="qty must be greater than zero, got 0"),
    case("qty-negative", *TRADE, "-5", "--price", "1", says="qty must be greater than zero"),
    case("qty-nan", *TRADE, "NaN", "--price", "1", says="qty must be a finite number"),
    case("qty-infinity", *TRADE, "Infinity", "--price", "1", says="qty must be a finite number"),
    case("qty-huge", *TRADE, "1e400", "--price", "1", says="qty must be at most 1000000000"),
    case("qty-billions", *TRADE, "99999999999", "--price", "1", says="qty must be at most"),
    case("qty-too-fine", *TRADE, "0.0000000001", "--price", "1",
         says="qty must have at most 9 decimal places"),
    case("qty-comma", *TRADE, "1,5", "--price", "1", says="qty must be a decimal number"),
    case("qty-empty", *TRADE, "", "--price", "1", says="qty must be a decimal number"),
    case("price-zero", *TRADE, "1", "--price", "0", says="price must be greater than zero"),
    case("price-nan", *TRADE, "1", "--price", "nan", says="price must be a finite number"),
    case("price-huge", *TRADE, "1", "--price", "1e12", says="price must be at most"),
    case("limit-negative", *TRADE, "1", "--price", "1", "--limit", "-2",
         says="price must be greater than zero"),
    case("qty-alpaca-nan", *TRADE, "NaN", says="qty must be a finite number", alpaca=True),
    # -- symbols ------------------------------------------------------------------------------
    case("symbol-empty", "trade", "buy", "", "1", "--price", "1", says="symbol must not be empty"),
    case("symbol-space", "trade", "buy", "AA PL", "1", "--price", "1", says="is malformed"),
    case("symbol-path", "trade", "buy", "../etc", "1", "--price", "1", says="is malformed"),
    case("symbol-long", "trade", "buy", "ABCDEFGHIJKL", "1", "--price", "1", says="is malformed"),
    # A well-formed symbol Alpaca does not list: the broker's refusal is recorded (exit 1).
    case("symbol-unknown-at-alpaca", "trade", "buy", "ZZZZ", "1", says='asset "ZZZZ" not found',
         code=1, alpaca=True,
         writes=("DecisionRecorded", "OrderRequested", "OrderSendStarted",
                 "OrderSubmissionFailed")),
    # -- dates ----------------------------------------------------------------------------------
    case("as-of-1969", "positions", "--as-of", "1969-12-31", says="is before 1970"),
    case("as-of-1900-time", "positions", "--as-of", "1900-01-01T09:30:00", says="before 1970"),
    case("as-of-unparsable", "positions", "--as-of", "31/12/2025", says="is not an ISO-8601"),
    case("as-of-feb-30", "positions", "--as-of", "2026-02-30", says="is not an ISO-8601"),
    case("as-of-year-9999", "positions", "--as-of", "9999-12-31", says="is out of range"),
    case("since-1969", "reconcile", "--dry-run", "--since", "1969-07-20", says="before 1970",
         alpaca=True),
    case("since-unparsable", "reconcile", "--dry-run", "--since", "2026-13-01",
         says="is not a date", alpaca=True),
    case("since-future", "reconcile", "--dry-run", "--since", "2999-01-01",
         says="is in the future", alpaca=True),
    case("audit-1969", "audit", "1969-12-31", says="before 1970"),
    case("audit-feb-30", "audit", "2026-02-30", says="is not a date"),
    # -- malformed .env values ------------------------------------------------------------------
    case("env-provider", "events", dotenv=b"BROKER_PROVIDER=ibkr\n", env={"BROKER_PROVIDER": None},
         says="BROKER_PROVIDER must be one of: paper, alpaca (got 'ibkr')"),
    case("env-paper-mode", "events", dotenv=b"ALPACA_PAPER_MODE=maybe\n",
         says="ALPACA_PAPER_MODE must be one of: true, false"),
    case("env-timeout-text", "events", dotenv=b"BROKER_TIMEOUT_SECONDS=ten\n",
         says="BROKER_TIMEOUT_SECONDS must be a decimal number"),
    case("env-timeout-infinite", "events", dotenv=b"BROKER_TIMEOUT_SECONDS=1e400\n",
         says="BROKER_TIMEOUT_SECONDS must be a number of seconds above zero and at most"),
    case("env-poll-zero", "events", dotenv=b"LEDGER_POLL_INTERVAL_SECONDS=0\n",
         says="LEDGER_POLL_INTERVAL_SECONDS must be a number of seconds above zero"),
    case("env-retries", "events", dotenv=b"ALPACA_RETRY_ATTEMPTS=1000\n",
         says="ALPACA_RETRY_ATTEMPTS must be a whole number from 0 to 10"),
    case("env-retry-wait", "events", dotenv=b"ALPACA_RETRY_WAIT_SECONDS=-1\n",
         says="ALPACA_RETRY_WAIT_SECONDS must be from 0 to 30"),
    case("env-timezone", "events", dotenv=b"LEDGER_TIMEZONE=Mars/Olympus\n",
         says="LEDGER_TIMEZONE must be an IANA time zone"),
    case("env-lookback", "events", dotenv=b"LEDGER_SYNC_LOOKBACK_DAYS=1.5\n",
         says="LEDGER_SYNC_LOOKBACK_DAYS must be a whole number"),
    case("env-cap", "events", dotenv=b"RECONCILE_MAX_ORDER_NOTIONAL=-5\n",
         says="RECONCILE_MAX_ORDER_NOTIONAL must be an amount above zero"),
    case("env-not-utf8", "events", dotenv=b"BROKER_PROVIDER=paper\n\xff\xfeoops\n",
         says=".env is not UTF-8 text"),
    case("env-keys-missing", "sync", dotenv=b"BROKER_PROVIDER=alpaca\n",
         env={"BROKER_PROVIDER": None}, says="ALPACA_API_KEY is not set"),
    # -- URLs with a wrong scheme or shape ---------------------------------------------------
    case("base-url-ftp", "sync", env={"ALPACA_BASE_URL": "ftp://paper-api.alpaca.markets"},
         alpaca=True, says="ALPACA_BASE_URL must start with http:// or https://"),
    case("base-url-no-scheme", "sync", env={"ALPACA_BASE_URL": "localhost:8765"}, alpaca=True,
         says="ALPACA_BASE_URL must start with http:// or https://"),
    case("base-url-space", *TRADE, "1", env={"ALPACA_BASE_URL": "http://paper api.example"},
         alpaca=True, says="ALPACA_BASE_URL must be a URL"),
    case("base-url-ipv6", "sync", env={"ALPACA_BASE_URL": "http://[::1"}, alpaca=True,
         says="ALPACA_BASE_URL must be a URL"),
    # Seen: "the disk holding /proc is full".
    case("store-in-proc", "events", env={"LEDGER_DATABASE_URL": "sqlite:////proc/x.db"},
         says="/proc is on a virtual file system, not a disk"),
    case("store-url-mysql", "events", env={"LEDGER_DATABASE_URL": "mysql://u@h/db"},
         says="unsupported scheme 'mysql'"),
    case("store-url-http", "events", env={"LEDGER_DATABASE_URL": "https://example.com/ledger"},
         says="unsupported scheme 'https'"),
    case("store-url-two-slashes", "events", env={"LEDGER_DATABASE_URL": "sqlite://ledger.db"},
         says="is malformed: use sqlite:///relative/path.db"),
    case("store-url-ipv6", "events", env={"LEDGER_DATABASE_URL": "postgresql://u@[::1/test"},
         says="is malformed"),
    case("store-url-port", "events",
         env={"LEDGER_DATABASE_URL": "postgresql://u@127.0.0.1:99999/test"},
         says="has a port that is not a number"),
    case("store-url-in-dotenv", "events", env=NO_STORE_URL,
         dotenv=b"LEDGER_DATABASE_URL=sqlite:/ledger.db\n", says="is malformed"),
    # -- a broker answering with values the ledger has never seen ------------------------------
    # An account status Alpaca may add one day is recorded, and is no leave to trade.
    case("broker-unknown-order-status", "sync", alpaca=True, code=1,
         says="not ACTIVE: it cannot trade",
         fault={"kind": "unknown_enum", "method": "GET", "path": "/v2/account"},
         writes=("BrokerSynced",)),
    case("broker-unknown-enum-on-order", *TRADE, "1", alpaca=True, code=0, says="",
         fault={"kind": "unknown_enum", "method": "POST", "path": "/v2/orders"},
         writes=("DecisionRecorded", "OrderRequested", "OrderSendStarted", "OrderSubmitted",
                 "OrderAccepted", "OrderFilled")),
    case("broker-extra-fields-only", "sync", alpaca=True, code=0, says="",
         fault={"kind": "unknown_enum", "path": "/v2/*", "count": 20, "field": None},
         writes=("BrokerSynced",)),
    case("broker-unknown-side", "sync", alpaca=True, code=0, says="",
         fault={"kind": "unknown_enum", "method": "GET", "path": "/v2/positions",
                "field": "side", "value": "sideways"},
         writes=("BrokerSynced",)),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'ledger.db'}"


@pytest.mark.parametrize("row", CASES)
def test_bad_input(
    row: Case, store: str, launcher: Launcher, sandbox: AlpacaSandbox, tmp_path: Path
) -> None:
    if row.alpaca:
        sandbox.set_symbol("AAPL", price="190")
        env = alpaca_env(sandbox, store)
    else:
        env = paper_env(store)
    if row.fault is not None:
        if row.fault.get("field") == "side":
            sandbox.set_position("AAPL", "3", avg_entry_price="180")
        sandbox.add_fault(**row.fault)
    for name, value in row.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if row.dotenv is not None:
        (tmp_path / ".env").write_bytes(row.dotenv)
    before = event_names(store)
    run, _ = launcher.run(list(row.args), env, cwd=tmp_path)
    added = event_names(store)[len(before):]
    if row.code == 2:
        assert_one_clear_line(run, exit_code=2, contains=row.says)
        assert run.stdout == "", run.why()
    else:
        assert run.returncode == row.code and "Traceback" not in run.output, run.why()
        assert row.says in run.output, run.why()
    assert added == list(row.writes), run.why()
    if row.code == 2:
        assert sandbox.requests(method="POST", path="/v2/orders") == []
