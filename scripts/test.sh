#!/usr/bin/env bash
# Installs tradeledger with its test extras into .venv, makes sure the PostgreSQL the
# tests need is running and has a database `test` (scripts/ensure_postgres.sh: installs
# and starts it if absent, changes nothing else on it), then runs the whole test suite.
# Tests that restart a server start throwaway clusters in temporary folders instead of
# touching that one (tests/pg_cluster.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"

bash scripts/ensure_postgres.sh

# tests/web drive Debian's Chromium through Playwright (no browser download is possible).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi

exec "$VENV/bin/python" -m pytest "$@"
