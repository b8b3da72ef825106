"""Prices on screen are shown to their tick; storage and JSON keep them exact.

Seen: `AAPL 11 @ 187.9636363636363636363636364` in `positions` and the audit."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from commands.cli import cli

EXACT = "187.9636363636363636363636364"  # (4 x 187.20 + 7 x 188.40) / 11


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def test_an_average_price_reads_to_the_cent_and_stays_exact_in_json(
    cli_env: dict[str, str],
) -> None:
    for qty, price in (("4", "187.20"), ("7", "188.40")):
        code, _ = invoke("trade", "buy", "AAPL", qty, "--price", price)
        assert code == 0
    code, out = invoke("positions")
    assert code == 0 and "187.96" in out and EXACT not in out, out
    code, out = invoke("positions", "--json")
    (row,) = json.loads(out)["positions"]
    assert row["avg_price"] == EXACT
    day = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    code, out = invoke("audit", day)
    assert code == 0 and "11 @ 187.96" in out and EXACT not in out, out
    code, out = invoke("audit", day, "--json")
    local = json.loads(out)["closing"]["local"]
    assert [r["avg_price"] for r in local] == [EXACT]
