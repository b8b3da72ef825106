"""Benchmarks of issue #18 (live): fill latency streaming vs polling, and how soon
`commands serve` answers on a long history. Prints figures; asserts nothing.

    python scripts/bench_live.py                              # both parts
    python scripts/bench_live.py --part latency --fills 1000 --json
    python scripts/bench_live.py --part serve --serve-store sqlite:////tmp/big.db \\
        --compare-code /tmp/tradeledger-before

Fill latency (`--part latency`): the local Alpaca sandbox in this process, `commands run`
as a subprocess against it (BROKER_PROVIDER=alpaca, on a fresh SQLite store per mode), once
with LEDGER_STREAM=true and once with LEDGER_STREAM=false, in one run. Fills happen at the
sandbox as orders placed outside the ledger that fill at once (`create_external_order`),
`--rate` a second, `--fills` of them per mode. A fill's latency is from the sandbox
emitting its trade update (`stream_emitted()`'s `at_ns`, taken when the update is handed
to the stream connections; emitted whether or not anyone listens) to the fill event's
time in the store (its `timestamp`, stamped as the service records it, in the transaction
that stores it). Matched by execution id. p50, p99 and max per mode.

Time to first answer (`--part serve`): `commands serve --port 0` as a subprocess on a
1,000,000-event SQLite store (written here with `scripts/bench.py`'s history, or an
existing one: `--serve-store URL`, kept with `--keep FILE`), its views caught up first
(timed apart: the server catches up before listening, as it must). From the start of the
process: when it listens, when `GET /` is first answered, and when the books page holds
every cause (no difference still "working out the cause"). `--compare-code DIR` starts
another checkout's `commands serve` on the same store too (the code before, say: `git
archive <commit> | tar -x -C DIR`), so before and after come from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.utils import get_topic

from ledger.bootstrap import open_ledger
from ledger.domain import Order
from ledger.settings import load_settings
from sandbox import AlpacaSandbox

ROOT = Path(__file__).resolve().parents[1]
ZONE = "America/New_York"
_FILL_TOPICS = {get_topic(Order.Filled), get_topic(Order.PartiallyFilled)}
_LISTENING = re.compile(r"tradeledger page at (http://\S+?)/? ")
_EXPLAINING = "working out the cause"
# Stocks the sandbox prices, bought one share at a time.
_SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "META", "SPY")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    # Nearest rank: p99 of 1,000 values is the 990th, a value that happened.
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_"))
    }
    env.update(LEDGER_TIMEZONE=ZONE, **extra)
    return env


def get_json(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return None
    with contextlib.suppress(ValueError):
        found = json.loads(body)
        return found if isinstance(found, dict) else None
    return None


# -- fill latency ---------------------------------------------------------------------------


@contextlib.contextmanager
def service(database_url: str, sandbox: AlpacaSandbox, stream: bool, health_port: int,
            workdir: Path) -> Iterator[subprocess.Popen[str]]:
    """`commands run` against the sandbox; stopped with SIGINT (as Ctrl-C) at the end."""
    env = clean_env(
        LEDGER_DATABASE_URL=database_url,
        BROKER_PROVIDER="alpaca",
        ALPACA_API_KEY=sandbox.key,
        ALPACA_SECRET_KEY=sandbox.secret,
        ALPACA_BASE_URL=sandbox.base_url,
        ALPACA_DATA_URL=sandbox.base_url,
        LEDGER_STREAM="true" if stream else "false",
        LEDGER_HEALTH_PORT=str(health_port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "commands", "run"], cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    printed: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: printed.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=5)
        if process.returncode not in (0, -signal.SIGINT):
            log("".join(printed[-20:]))


def await_ready(process: subprocess.Popen[str], health: str, stream: bool,
                timeout: float = 60) -> None:
    """Until the service has synced (and, streaming, its stream is connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"commands run exited with {process.returncode} at start-up")
        status = get_json(health, timeout=0.5)
        if status and status.get("last_sync_at") and (
                not stream or status.get("stream_connected")):
            return
        time.sleep(0.1)
    raise SystemExit(f"commands run was not ready within {timeout:g} s ({health})")


def stored_fills(database_url: str) -> dict[str, int]:
    """Execution id -> when its fill event was stamped (ns since the epoch)."""
    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=database_url,
                                       BROKER_PROVIDER="paper", LEDGER_TIMEZONE=ZONE))
    found: dict[str, int] = {}
    try:
        start = 1
        while True:
            page = ledger.recorder.select_notifications(start=start, limit=1000,
                                                        topics=sorted(_FILL_TOPICS))
            if not page:
                break
            for notification in page:
                event = ledger.mapper.to_domain_event(notification)
                execution = str(event.execution_id).rpartition("::")[2]
                stamp = event.timestamp
                found[execution] = int(stamp.timestamp() * 1_000_000) * 1000
            start = page[-1].id + 1
    finally:
        ledger.close()
    return found


def measure_mode(sandbox: AlpacaSandbox, stream: bool, args: argparse.Namespace,
                 folder: Path) -> dict[str, Any]:
    mode = "stream" if stream else "poll"
    sandbox.reset(cash=10_000_000)
    database_url = f"sqlite:///{folder / f'latency-{mode}.db'}"
    port = free_port()
    health = f"http://127.0.0.1:{port}/healthz"
    workdir = folder / mode
    workdir.mkdir()
    log(f"[latency/{mode}] {args.fills} fills at {args.rate:g}/s")
    with service(database_url, sandbox, stream, port, workdir) as process:
        await_ready(process, health, stream)
        gap = 1 / args.rate
        started = time.monotonic()
        for n in range(args.fills):
            due = started + n * gap
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sandbox.create_external_order(_SYMBOLS[n % len(_SYMBOLS)], "buy", 1)
        # Every fill recorded, or a poll interval and a margin past the last.
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            status = get_json(health, timeout=0.5) or {}
            if int(status.get("fills_recorded") or 0) >= args.fills:
                break
            time.sleep(0.2)
    emitted = {
        str(entry["execution_id"]): int(entry["at_ns"])
        for entry in sandbox.stream_emitted()
        if entry.get("execution_id")
    }
    stored = stored_fills(database_url)
    # In the order the fills happened: a latency that grows with the fills says a poll's
    # cost grows with the history, not with the transport.
    latencies = [
        (stored[execution] - at) / 1e6
        for execution, at in sorted(emitted.items(), key=lambda item: item[1])
        if execution in stored
    ]
    tenth = max(1, len(latencies) // 10)
    return {
        "first_tenth_p50_ms": quantile(latencies[:tenth], 0.50),
        "last_tenth_p50_ms": quantile(latencies[-tenth:], 0.50),
        "fills_emitted": len(emitted),
        "fills_matched": len(latencies),
        "p50_ms": quantile(latencies, 0.50),
        "p99_ms": quantile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


def measure_latency(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"fills_per_mode": args.fills, "rate_per_s": args.rate}
    with AlpacaSandbox() as sandbox:
        for stream in (True, False):
            figures["stream" if stream else "poll"] = measure_mode(sandbox, stream, args, folder)
    return figures


# -- time to first answer -------------------------------------------------------------------


def write_store(args: argparse.Namespace, folder: Path) -> str:
    """A history of `--serve-events` events (scripts/bench.py's), views caught up."""
    from scripts import bench

    path = Path(args.keep) if args.keep else folder / "serve.db"
    url = f"sqlite:///{path}"
    if path.exists():
        log(f"[serve] using the kept store {path}")
        return url
    days = bench.trading_days(args.days, date.today() - timedelta(days=7))
    per_day = max(4, -(-args.serve_events // args.days))
    symbols = bench.symbol_universe(args.symbols)
    settings = load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper",
                             LEDGER_TIMEZONE=ZONE)
    ledger = open_ledger(settings)
    try:
        log(f"[serve] writing {args.serve_events:,} events to {path}")
        started = time.perf_counter()
        history = bench.History(ledger, days, per_day, symbols, seed=args.seed)
        written = history.write(args.serve_events)
        log(f"[serve] wrote {written:,} events in {time.perf_counter() - started:.0f} s")
    finally:
        ledger.close()
    return url


def catch_up(url: str) -> tuple[int, float]:
    from projections import Views

    ledger = open_ledger(load_settings(None, LEDGER_DATABASE_URL=url, BROKER_PROVIDER="paper",
                                       LEDGER_TIMEZONE=ZONE))
    try:
        started = time.perf_counter()
        position = Views(ledger, timezone=ZONE).catch_up()
        return position, time.perf_counter() - started
    finally:
        ledger.close()


def fetch(url: str, timeout: float = 300) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def time_serve(url: str, code: Path, folder: Path, ready_timeout: float) -> dict[str, Any]:
    """Seconds from starting `commands serve` (of the checkout at `code`) until it listens,
    answers `GET /`, and shows every cause."""
    workdir = Path(tempfile.mkdtemp(prefix="serve-", dir=folder))
    env = clean_env(LEDGER_DATABASE_URL=url, PYTHONPATH=str(code))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "commands", "serve", "--port", "0"], cwd=workdir, env=env,
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    figures: dict[str, Any] = {"code": str(code)}
    try:
        assert process.stdout is not None
        page = None
        for line in process.stdout:
            found = _LISTENING.search(line)
            if found:
                page = found.group(1)
                break
        if page is None:
            raise SystemExit(f"commands serve ({code}) never listened")
        figures["listening_s"] = time.perf_counter() - started
        threading.Thread(target=process.stdout.read, daemon=True).start()
        status, body = fetch(page + "/")
        figures["first_answer_s"] = time.perf_counter() - started
        figures["first_answer_status"] = status
        figures["first_answer_complete"] = _EXPLAINING not in body
        deadline = time.monotonic() + ready_timeout
        while _EXPLAINING in body and time.monotonic() < deadline:
            time.sleep(0.1)
            status, body = fetch(page + "/")
        figures["every_cause_s"] = time.perf_counter() - started
        repeat = time.perf_counter()
        fetch(page + "/")
        figures["repeat_answer_s"] = time.perf_counter() - repeat
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    return figures


def measure_serve(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    url = args.serve_store or write_store(args, folder)
    position, seconds = catch_up(url)
    log(f"[serve] views at event {position:,} (catch-up {seconds:.1f} s)")
    figures: dict[str, Any] = {"events": position, "catch_up_s": seconds}
    codes = [("this", ROOT)]
    if args.compare_code:
        codes.append(("compared", Path(args.compare_code).resolve()))
    for name, code in codes:
        log(f"[serve] {name}: {code}")
        figures[name] = time_serve(url, code, folder, args.ready_timeout)
    return figures


# -- output ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "python": platform.python_version(),
            "load_1m": os.getloadavg()[0]}


def show(document: dict[str, Any]) -> None:
    latency = document.get("latency")
    if latency:
        print(f"fill latency, {latency['fills_per_mode']} fills per mode at "
              f"{latency['rate_per_s']:g}/s (sandbox emit -> fill event stored):")
        for mode in ("stream", "poll"):
            row = latency[mode]
            print(f"  {mode:6}  p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  "
                  f"max {row['max_ms']:8.1f} ms  ({row['fills_matched']}/{row['fills_emitted']}"
                  f" matched; p50 of the first tenth {row['first_tenth_p50_ms']:.1f} ms, of "
                  f"the last {row['last_tenth_p50_ms']:.1f} ms)")
    serve = document.get("serve")
    if serve:
        print(f"commands serve on {serve['events']:,} events (views caught up first, "
              f"{serve['catch_up_s']:.1f} s):")
        for name in ("this", "compared"):
            row = serve.get(name)
            if row:
                print(f"  {name:8}  listening {row['listening_s']:6.2f} s  first answer "
                      f"{row['first_answer_s']:6.2f} s (status {row['first_answer_status']}, "
                      f"{'every cause' if row['first_answer_complete'] else 'causes to come'})"
                      f"  every cause {row['every_cause_s']:6.2f} s  repeat "
                      f"{row['repeat_answer_s']:5.2f} s  [{row['code']}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["latency", "serve", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--fills", type=int, default=1000, help="fills per mode")
    parser.add_argument("--rate", type=float, default=20.0, help="fills a second")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to wait for the last fills to be recorded")
    parser.add_argument("--serve-store", help="an existing store's URL (else one is written)")
    parser.add_argument("--serve-events", type=int, default=1_000_000)
    parser.add_argument("--keep", help="SQLite file to write the store to and reuse")
    parser.add_argument("--compare-code", help="another checkout whose `commands serve` is "
                        "timed on the same store (before/after)")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--days", type=int, default=252)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    document: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="tradeledger-bench-live-") as temp:
        folder = Path(temp)
        if args.part in ("latency", "both"):
            document["latency"] = measure_latency(args, folder)
        if args.part in ("serve", "both"):
            document["serve"] = measure_serve(args, folder)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        show(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
