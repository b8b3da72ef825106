"""Secrets: distinctive fake Alpaca keys, a distinctive PostgreSQL password (for a role
that must give it) and a web token go through every command, the failing ones included,
with `-v` debug logging on. None of them appears in any output, log or stored event, on
either store.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sandbox import AlpacaSandbox
from tests.conftest import RUN_ID
from tests.faults.harness import Launcher, base_env
from tests.pg_cluster import ThrowawayCluster

pytestmark = pytest.mark.faults

API_KEY = "PKLEAKCHECK7Q2X9ZLMNV"
SECRET_KEY = "sk-leakcheck-9f3b1c7e5a2d4f60b8e1"
WRONG_SECRET = "sk-leakcheck-WRONG-71c0de55aa"
PG_PASSWORD = "pg-leakcheck-4e8a1f93c6"
WRONG_PG_PASSWORD = "pg-leakcheck-WRONG-0b7d2e"
WEB_TOKEN = "web-leakcheck-5d2c8a71f0e94b36a1c7"
SECRETS = (API_KEY, SECRET_KEY, WRONG_SECRET, PG_PASSWORD, WRONG_PG_PASSWORD, WEB_TOKEN)
PG_ROLE = "tradeledger_leakcheck"


@pytest.fixture(scope="module")
def keyed_sandbox() -> Iterator[AlpacaSandbox]:
    """A sandbox that takes only the distinctive keys."""
    with AlpacaSandbox(API_KEY, SECRET_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def pg_secret_url(password_pg: ThrowawayCluster) -> str:
    """PG_ROLE on a throwaway cluster whose pg_hba.conf makes it give its password (the
    shared server's is not ours to edit); its store in a schema of its own."""
    with password_pg.connect() as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_ROLE,)).fetchone()
    if not exists:
        password_pg.create_password_role(PG_ROLE, PG_PASSWORD)
    return f"{password_pg.url(PG_ROLE, PG_PASSWORD)}?schema=leak_{RUN_ID}"


def secret_env(sandbox: AlpacaSandbox, url: str) -> dict[str, str]:
    return base_env(
        BROKER_PROVIDER="alpaca",
        ALPACA_BASE_URL=sandbox.base_url,
        ALPACA_DATA_URL=sandbox.base_url,
        LEDGER_DATABASE_URL=url,
        ALPACA_RETRY_ATTEMPTS="1",
        ALPACA_RETRY_WAIT_SECONDS="0.01",
        BROKER_TIMEOUT_SECONDS="1",
        RECONCILE_RECENT_FILL_SECONDS="0",
        LEDGER_WEB_TOKEN=WEB_TOKEN,
    )


def store_text(url: str) -> str:
    """Everything stored, as text: every row of every table of the store."""
    if url.startswith("sqlite"):
        path = url[len("sqlite:///"):]
        files = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())
        with sqlite3.connect(path) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")]
            rows = [repr(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables]
        return files.decode("latin-1") + "\n".join(rows)
    schema = url.rsplit("schema=", 1)[1]
    # The store's own role reads it: the schema is on whichever server the URL names.
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))]
        rows = []
        for table in tables:
            query = sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema),
                                                          sql.Identifier(table))
            for row in conn.execute(query):
                rows.append(" ".join(v.decode("latin-1") if isinstance(v, bytes) else repr(v)
                                     for v in row))
    return "\n".join(rows)


def serve_briefly(env: dict[str, str], cwd: Path) -> str:
    """`commands -v serve` on a free port: two pages fetched, then SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "commands", "-v", "serve", "--port", "0"], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    out = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            out.append(line)
            found = re.search(r"http://[\d.]+:(\d+)/", line)
            if found:
                for path in ("/", "/api/positions?book=diff"):
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{found[1]}{path}",
                        headers={"Authorization": f"Bearer {WEB_TOKEN}"})
                    with urllib.request.urlopen(request, timeout=30) as reply:
                        out.append(reply.read().decode())
                break
            if not line and process.poll() is not None:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=30)
    return "".join(out) + rest + err


def run_everything(
    launcher: Launcher, sandbox: AlpacaSandbox, url: str, workdir: Path
) -> list[tuple[str, int, str]]:
    """Every command, good and failing, with -v; half the settings come from .env."""
    env = secret_env(sandbox, url)
    (workdir / ".env").write_text(f"ALPACA_API_KEY={API_KEY}\nALPACA_SECRET_KEY={SECRET_KEY}\n")
    sandbox.set_symbol("AAPL", price="190")
    ran: list[tuple[str, int, str]] = []

    def run(*args: str, label: str = "", **extra: str) -> None:
        result, _ = launcher.run(["-v", *args], {**env, **extra}, cwd=workdir)
        ran.append((label or " ".join(args), result.returncode, result.output))

    run("trade", "buy", "AAPL", "4", "--reason", "secret check")
    run("trade", "buy", "AAPL", "6", "--price", "190", BROKER_PROVIDER="paper")
    sandbox.add_fault("500", method="POST", path="/v2/orders")
    run("trade", "buy", "AAPL", "1", label="failed order")  # its error is stored
    run("sync")
    run("sync", "--json")
    run("positions", "--book", "diff")
    run("positions", "--book", "broker", "--json")
    run("positions", "--as-of", "2026-01-05")
    run("reconcile", "--dry-run", "--json")
    sandbox.add_fault("503", method="POST", path="/v2/orders")
    run("reconcile")  # a failed compensation
    run("reconcile", "--json")
    run("reconciliations")
    run("audit", time.strftime("%Y-%m-%d"))
    run("events", "--json", "--limit", "1000")
    run("rebuild", "--verify", "--json")
    # Failing configurations: wrong secret, unreachable broker, wrong database password.
    run("sync", ALPACA_SECRET_KEY=WRONG_SECRET, label="wrong secret")
    run("reconcile", ALPACA_SECRET_KEY=WRONG_SECRET)
    run("trade", "buy", "AAPL", "1", ALPACA_SECRET_KEY=WRONG_SECRET)
    run("sync", ALPACA_BASE_URL="http://127.0.0.1:9")
    run("trade", "buy", "AAPL", "1", ALPACA_BASE_URL="http://127.0.0.1:9")
    if url.startswith("postgresql"):
        run("events", LEDGER_DATABASE_URL=url.replace(PG_PASSWORD, WRONG_PG_PASSWORD),
            label="wrong password")
        run("sync", LEDGER_DATABASE_URL=url.replace("127.0.0.1", "127.0.0.1:1", 1))
    run("trade", "buy", "AAPL", "0", "--price", "1")
    run("reconcile", "--since", "1969-01-01")
    # The long-running ones: the service for a moment, then the web page.
    service = subprocess.Popen(
        [sys.executable, "-m", "commands", "-v", "run"], cwd=workdir,
        env={**env, "LEDGER_POLL_INTERVAL_SECONDS": "0.2"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(4)
    service.send_signal(signal.SIGTERM)
    out, err = service.communicate(timeout=30)
    ran.append(("run", service.returncode, out + err))
    ran.append(("serve", 0, serve_briefly(env, workdir)))
    return ran


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_no_secret_in_any_output_log_or_stored_event(
    kind: str, keyed_sandbox: AlpacaSandbox, launcher: Launcher, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    keyed_sandbox.reset()
    url = (f"sqlite:///{tmp_path / 'ledger.db'}" if kind == "sqlite"
           else request.getfixturevalue("pg_secret_url"))
    ran = run_everything(launcher, keyed_sandbox, url, tmp_path)
    outputs = {command: (code, output) for command, code, output in ran}  # the last of each
    # The runs did happen, good and bad: a silent no-op would prove nothing.
    assert outputs["trade buy AAPL 4 --reason secret check"][0] == 0, ran[0]
    assert outputs["failed order"][0] == 1
    assert "Check your API keys" in outputs["wrong secret"][1]
    if kind == "postgres":
        assert "password authentication failed" in outputs["wrong password"][1]
    assert "synced:" in outputs["run"][1] and "tradeledger page at" in outputs["serve"][1]
    assert '"book": "diff"' in outputs["serve"][1]  # a page was served with the token
    assert "DEBUG" in "".join(output for _, _, output in ran)
    assert keyed_sandbox.requests(method="POST", path="/v2/orders")
    leaks = [
        (command, secret)
        for command, _, output in ran
        for secret in SECRETS
        if secret in output
    ]
    stored = store_text(url)
    assert "secret check" in stored  # the search reads what the events hold
    leaks += [("the event store", secret) for secret in SECRETS if secret in stored]
    logs = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".env"
            and not p.name.startswith("ledger.db")]
    leaks += [(str(p), s) for p in logs for s in SECRETS if s in p.read_text(errors="replace")]
    assert not leaks, leaks
    print(f"\nsecrets on {kind}: {len(ran)} commands ({sum(1 for _, c, _ in ran if c)} "
          f"failing), {sum(len(o) for _, _, o in ran)} characters of output, "
          f"{len(stored)} characters stored: no secret found")
