#!/usr/bin/env bash
# Installs tradeledger into .venv and runs the end-to-end demo (SQLite, no Alpaca account).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .

exec "$VENV/bin/python" scripts/demo.py "$@"
