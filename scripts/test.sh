#!/usr/bin/env bash
# README command (b), and what CI runs: set everything up, then the whole test suite against a
# real PostgreSQL with the extension and real libtorch.
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
echo "== SQL tests against PostgreSQL on 127.0.0.1:$STAN_PGPORT"
# No test may crash a backend. A crash makes the postmaster end every session and reinitialise
# (a restart of the cluster in all but the start time, which PostgreSQL keeps); the server log
# says so, and a restart proper changes pg_postmaster_start_time().
SERVER_LOG="$ROOT/.pg/server.log"
log_offset=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
server_started=$(stan_psql -d postgres -tAc "SELECT pg_postmaster_start_time()")
cargo test --release -p stan-sql-tests -q -- --test-threads="${STAN_TEST_THREADS:-2}"
crashes=$(tail -c +"$((log_offset + 1))" "$SERVER_LOG" 2>/dev/null \
  | grep -E "was terminated by signal|terminating any other active server processes|all server processes terminated; reinitializing" || true)
if [ -n "$crashes" ] || [ "$(stan_psql -d postgres -tAc "SELECT pg_postmaster_start_time()")" != "$server_started" ]; then
  echo "the server crashed or restarted during the SQL tests:" >&2
  echo "$crashes" >&2
  exit 1
fi
echo "== no backend crashed and the server did not restart during the SQL tests (up since $server_started)"
echo "== all tests passed"
