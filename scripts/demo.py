"""The story of docs/design.md ("The story"), told by running the real `commands` program.

No Alpaca account is needed: a local Alpaca-compatible sandbox (`python -m sandbox`)
answers the real alpaca-py SDK over HTTP. Everything happens in a fresh folder
(demo-output/ by default) with its own SQLite event store, so the demo never touches
your ledger.db.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "demo-key-not-a-secret", "demo-secret-not-a-secret"


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.base_env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_", "RECONCILE_"))
        }
        self.base_env.update({
            "LEDGER_DATABASE_URL": f"sqlite:///{workdir / 'ledger.db'}",
            "ALPACA_API_KEY": KEY,
            "ALPACA_SECRET_KEY": SECRET,
            "COLUMNS": os.environ.get("COLUMNS", "130"),
        })
        self.failures = 0
        self.steps = 0

    def run(self, step: str, argv: list[str], provider: str, expect: int = 0) -> str:
        self.steps += 1
        print(f"\n## {self.steps}. {step}\n$ BROKER_PROVIDER={provider} commands "
              f"{shlex.join(argv)}", flush=True)
        env = {**self.base_env, "BROKER_PROVIDER": provider}
        done = subprocess.run([sys.executable, "-m", "commands", *argv], env=env,
                              cwd=self.workdir, check=False, capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        sys.stdout.write(done.stderr)
        if done.returncode != expect:
            print(f"(exit code {done.returncode}, expected {expect})", flush=True)
            self.failures += 1
        return done.stdout


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    log = (workdir / "sandbox.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--key", KEY, "--secret", SECRET],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}; see {workdir / 'sandbox.log'}")
    return process, line.rsplit(" ", 1)[-1]


def control(base_url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{base_url}/_sandbox/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(ROOT / "demo-output"),
                        help="folder for the demo's event store (emptied first)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    sandbox, base_url = start_sandbox(workdir)
    print(f"Started the local Alpaca sandbox at {base_url} (stands in for Alpaca's paper API)")
    demo = Demo(workdir)
    demo.base_env["ALPACA_BASE_URL"] = base_url
    demo.base_env["ALPACA_DATA_URL"] = base_url  # the sandbox serves market data too
    # Alpaca's positions can lag its fills; the demo's fills are seconds old.
    demo.base_env["RECONCILE_RECENT_FILL_SECONDS"] = "0"
    try:
        control(base_url, "symbols/AAPL", {"price": "187.20"})
        demo.run("The decision engine buys 4 AAPL; the router sends it to Alpaca",
                 ["trade", "buy", "AAPL", "4", "--reason", "momentum signal"], "alpaca")
        demo.run("For weeks a bug routes everything to paper: 6 more AAPL never reach Alpaca",
                 ["trade", "buy", "AAPL", "6", "--price", "187.20",
                  "--reason", "momentum signal, day 2"], "paper")
        demo.run("Pull Alpaca's account, positions, orders and fills as events",
                 ["sync"], "alpaca")
        demo.run("The local book says 10, Alpaca says 4",
                 ["positions", "--book", "diff"], "alpaca")
        demo.run("Plan the correction; nothing is sent", ["reconcile", "--dry-run"], "alpaca")
        demo.run("Send the compensating order through the one router",
                 ["reconcile"], "alpaca")
        demo.run("Run it again: nothing new is sent", ["reconcile"], "alpaca")
        demo.run("Both books now agree", ["positions", "--book", "diff"], "alpaca")
        today = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
        demo.run("Replay today (a trading day in New York) from the events",
                 ["audit", today], "alpaca")
        demo.run("Rebuild every view from the events and verify nothing changed",
                 ["rebuild", "--verify"], "alpaca")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        print("\nStopped the sandbox.")
    print(f"Demo finished: {demo.steps - demo.failures} of {demo.steps} steps as expected; "
          f"event store in {workdir / 'ledger.db'}")
    return 1 if demo.failures else 0


if __name__ == "__main__":
    sys.exit(main())
