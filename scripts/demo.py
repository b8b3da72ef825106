"""The story of DESIGN.md section 1, told by running the real `commands` program.

Everything happens in a fresh folder (demo-output/ by default) with its own SQLite
event store, so the demo never touches your ledger.db.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(step: str, argv: list[str], env: dict[str, str], cwd: Path) -> int:
    print(f"\n## {step}\n$ commands {shlex.join(argv)}", flush=True)
    program = [sys.executable, "-m", "commands", *argv]
    done = subprocess.run(program, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        print(f"(exit code {done.returncode})", flush=True)
    return done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(ROOT / "demo-output"),
                        help="folder for the demo's event store (emptied first)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALPACA_", "BROKER_", "LEDGER_"))}
    env.update({
        "LEDGER_DATABASE_URL": f"sqlite:///{workdir / 'ledger.db'}",
        "BROKER_PROVIDER": "paper",
        "COLUMNS": env.get("COLUMNS", "120"),
    })
    steps = [
        ("A decision engine buys 10 AAPL (paper broker fills at the given price)",
         ["trade", "buy", "AAPL", "10", "--price", "187.20", "--reason", "momentum signal"]),
        ("... and trims 2.5 shares of it",
         ["trade", "sell", "AAPL", "2.5", "--price", "190.05", "--reason", "take profit"]),
        ("Every decision, request and fill is an appended event",
         ["events", "--limit", "10"]),
    ]
    failures = sum(run(step, argv, env, workdir) != 0 for step, argv in steps)
    print(f"\nDemo finished: {len(steps) - failures} of {len(steps)} steps succeeded; "
          f"event store in {workdir / 'ledger.db'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
