#!/usr/bin/env bash
# The tests run every storage-facing behaviour on a real PostgreSQL server. This makes
# sure the local one is up, that the database `test` exists, and that one role
# (tradeledger_pw) must give a password, so the "wrong password" error path is tested
# for real. Skipped when LEDGER_TEST_DATABASE_URL points at a server of your own.
set -euo pipefail

if [ -n "${LEDGER_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi

as_postgres() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    su postgres -c "$*"
  else
    sh -c "$*"
  fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "PostgreSQL is not installed: installing Debian's postgresql package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done

psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'test'")" = 1 ] \
  || psql_admin "CREATE DATABASE test"
[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'tradeledger_pw'")" = 1 ] \
  || psql_admin "CREATE ROLE tradeledger_pw LOGIN PASSWORD 'right-password'"

hba=/etc/postgresql/$version/main/pg_hba.conf
rule="host all tradeledger_pw 127.0.0.1/32 scram-sha-256"
if [ -w "$hba" ] && ! grep -qF "$rule" "$hba"; then
  # First match wins in pg_hba.conf: the rule must come before the trust lines.
  { echo "$rule"; cat "$hba"; } > "$hba.new" && cat "$hba.new" > "$hba" && rm -f "$hba.new"
  psql_admin "SELECT pg_reload_conf()" >/dev/null
fi
