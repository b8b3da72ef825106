#!/usr/bin/env bash
# The tests run every storage-facing behaviour on a real PostgreSQL server. This makes
# sure the local one is there and up (installing Debian's postgresql package and starting
# its cluster if not) and that the database `test` exists on it. Nothing else on that
# server is changed: the tests that restart a server or need a password-only role start
# throwaway clusters of their own (tests/pg_cluster.py, with the binaries installed here).
# Skipped when LEDGER_TEST_DATABASE_URL points at a server of your own.
set -euo pipefail

if [ -n "${LEDGER_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "PostgreSQL is not installed: installing Debian's postgresql package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  echo "PostgreSQL is not running: starting the $version/main cluster" >&2
  # Another test run may be starting it at the same moment: its "already running" is fine.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done

psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
has_test_db() { [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'test'")" = 1 ]; }
if ! has_test_db; then
  echo "Creating the database test on the local PostgreSQL" >&2
  # Two runs at once may both try: the loser's "already exists" is fine.
  if ! out=$(psql_admin "CREATE DATABASE test" 2>&1) && ! has_test_db; then
    echo "$out" >&2
    exit 1
  fi
fi
