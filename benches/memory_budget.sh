#!/usr/bin/env bash
# The memory budget's estimate beside the measured peak of the same call (docs/experiments/
# memory-budget.md): each training runs in a fresh backend, first with stan.max_memory_mb = 64 to
# read the estimate from the refusal, then with the budget raised, reading the backend's VmHWM.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
bash "$ROOT/scripts/setup.sh" >/dev/null
DB=stan_bench_memory
stan_psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
stan_psql -d "$DB" -q -c "CREATE EXTENSION stan" \
  -c "CREATE TABLE f8 AS SELECT * FROM stan_demo_flows(40, '8 hours')" \
  -c "CREATE TABLE f100 AS SELECT * FROM stan_demo_flows(40, '4 days')"
peak() { grep VmHWM "/proc/$1/status" | awk '{print int($2 / 1024)}'; }
run() {
  local table=$1 options=$2 estimate pid
  estimate=$(stan_psql -d "$DB" -tA -c "SET client_min_messages = warning" -c "SET stan.max_memory_mb = 64" \
    -c "SELECT stan_train('$table', model => 'm', options => '$options')" 2>&1 | grep -o "about [0-9]* MB" || true)
  coproc PSQL { stan_psql -q -d "$DB" -tA -c "SET client_min_messages = warning" -c "SELECT pg_backend_pid()" \
    -c "SELECT pg_sleep(1)" -c "SELECT stan_train('$table', model => 'm', options => '$options')" -c "SELECT pg_sleep(1)"; }
  local client=$PSQL_PID
  read -r pid <&"${PSQL[0]}"
  local before after=0
  sleep 0.5; before=$(peak "$pid")
  while kill -0 "$client" 2>/dev/null; do after=$(peak "$pid" 2>/dev/null || echo "$after"); sleep 0.2; done
  printf '| %s, `%s` | %s | %s MB (before: %s MB) |\n' "$table" "$options" "${estimate#about }" "$after" "$before"
}
echo "| table, options | estimate | measured peak (VmHWM) |"
echo "|---|---|---|"
for o in '{"epochs": 1}' '{"epochs": 1, "window": 64}' '{"epochs": 1, "window": 256}' \
         '{"epochs": 1, "hidden": 1024, "head_hidden": 1024}' '{"epochs": 1, "batch_size": 4096}' \
         '{"epochs": 1, "conv_channels": 64}'; do
  run f8 "$o"
done
run f100 '{"epochs": 1, "max_time": 20}'
run f100 '{"epochs": 1, "window": 128, "max_time": 20}'
stan_psql -d postgres -qc "DROP DATABASE $DB"
