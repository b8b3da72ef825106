"""The old one-off sync script's name and habits, over `commands reconcile`.

    python scripts/sync_alpaca_trades.py [--dry-run] [--since YYYY-MM-DD] [--help]

It is the same reconciliation as `commands reconcile` (same code, same safety rules),
kept so that people and cron jobs that ran the old script keep working.
"""

from __future__ import annotations

import sys

from commands.cli import cli

if __name__ == "__main__":
    cli(["reconcile", *sys.argv[1:]], prog_name="sync_alpaca_trades.py")
