"""The old one-off sync script's name and habits, over `commands reconcile`.

    python scripts/sync_alpaca_trades.py [--dry-run] [--since YYYY-MM-DD]
                                         [--include-external] [--json] [--yes] [--help]

It is the same reconciliation as `commands reconcile` (same code, same safety rules, the
same default: it never trades what the ledger did not originate), kept so that people and
cron jobs that ran the old script keep working. It answers under its own name, and a
failed sync says what the old script said ("Failed to sync Alpaca account. Check your
API keys"), which is what its users search for.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAME = "sync_alpaca_trades.py"
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    # Run from a checkout without `pip install -e .`: the packages sit beside scripts/.
    sys.path.insert(0, str(ROOT))
    try:
        from commands.cli import ledger_command
        from commands.reconcile import reconcile
    except ModuleNotFoundError as missing:
        print(
            f"Error: {NAME} needs tradeledger's packages ({missing.name} is missing): run it "
            f"with the project's virtual environment, `{ROOT / '.venv' / 'bin' / 'python'} "
            f"scripts/{NAME}` (./scripts/demo.sh or ./scripts/test.sh creates it), or "
            "install the project with `pip install -e .`",
            file=sys.stderr,
        )
        sys.exit(2)
    ledger_command(reconcile, name=NAME)(args=sys.argv[1:], prog_name=NAME)


if __name__ == "__main__":
    main()
