"""One process of the concurrency test: runs one command in a loop until a deadline.

    python -m tests.faults.workers ROLE SEED

ROLE is trader-paper, trader-alpaca, reconciler or syncer. It prints READY once imported,
then reads its deadline (a time.time() value) from stdin: every process starts together,
however long seven interpreters take to import on two cores.
Each iteration is the real CLI (`commands.cli.cli`) invoked in this process, exactly as
`python -m commands ...` runs it but without paying the imports each time, so the store
sees many more writes per second. Every line printed is one outcome:

    DECISION <decision id> <client order id> <exit code>   a trade whose decision is stored
    EXIT <command> <exit code> <first stderr line>           anything else that did not exit 0
    TRACEBACK <command> <exception>                          a crash: the test fails on it
    DONE <role> <iterations> <seconds>
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import time
import traceback

from commands.cli import cli

SYMBOLS = ("AAPL", "MSFT", "NVDA")
PRICES = {"AAPL": "190", "MSFT": "410", "NVDA": "130"}


def invoke(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args=args, prog_name="commands", standalone_mode=False)
    return (code if isinstance(code, int) else 0), out.getvalue(), err.getvalue()


def command(role: str, rng: random.Random) -> list[str]:
    if role.startswith("trader"):
        symbol = rng.choice(SYMBOLS)
        args = ["trade", "buy", symbol, str(rng.randint(1, 3)), "--json", "--reason", role]
        return [*args, "--price", PRICES[symbol]] if role == "trader-paper" else args
    if role == "reconciler":
        return ["reconcile", "--json"]
    return ["sync"]


def main() -> None:
    role, seed = sys.argv[1], int(sys.argv[2])
    print("READY", flush=True)
    deadline = float(sys.stdin.readline())
    rng = random.Random(seed)
    started, iterations = time.monotonic(), 0
    while time.time() < deadline:
        iterations += 1
        args = command(role, rng)
        try:
            code, out, err = invoke(args)
        except Exception as error:  # a crash is what this reports
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            print(f"TRACEBACK {args[0]} {detail}", flush=True)
            continue
        first = next((line for line in err.splitlines() if line.strip()), "")
        if "Traceback" in err:
            print(f"TRACEBACK {args[0]} {first}", flush=True)
        if args[0] == "trade" and out.strip():
            document = json.loads(out)
            print(f"DECISION {document['decision_id']} {document['client_order_id']} {code}",
                  flush=True)
        if code != 0:
            print(f"EXIT {args[0]} {code} {first}", flush=True)
    print(f"DONE {role} {iterations} {time.monotonic() - started:.1f}", flush=True)


if __name__ == "__main__":
    main()
