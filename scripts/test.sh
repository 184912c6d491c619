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
cargo test --release -p stan-sql-tests -q -- --test-threads="${STAN_TEST_THREADS:-2}"
echo "== all tests passed"
