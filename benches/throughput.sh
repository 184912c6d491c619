#!/usr/bin/env bash
# Throughput of stan inside PostgreSQL, in one run: default stan_train on 100k rows and on the
# UGR'16 development day (../shared/data, never committed; the built-in simulator when it is
# missing), generation rows/s end to end through INSERT ... SELECT stan_generate with 1, 16 and
# all streams, peak backend memory, model size, and the model's floating-point operations per
# generated row beside this machine's own matrix-multiply rate.
#   bash benches/throughput.sh                # STAN_BENCH_THREADS (default 2) = stan.threads
# A quick check of the script itself: STAN_BENCH_DAY_ROWS=20000 STAN_BENCH_SMALL_ROWS=5000
#   STAN_BENCH_SPAN='1 hour' STAN_BENCH_LONG_SPAN='1 day' bash benches/throughput.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
THREADS=${STAN_BENCH_THREADS:-2}
OUT=$ROOT/target/throughput
mkdir -p "$OUT"
: > "$OUT/results.txt"
say() { echo "$*" | tee -a "$OUT/results.txt"; }

DATA=${STAN_UGR16:-$ROOT/../shared/data/ugr16_day1_dev.csv.gz}
if [ -f "$DATA" ]; then
  source "$ROOT/benches/ugr16_data.sh"
  SOURCE="UGR'16 development day ($DATA)"
  STREAM_BY=$UGR16_HOST
  SKIP='{"lable": "skip"}'
  stan_psql -d "$DB" -q <<SQL
DROP TABLE IF EXISTS bench_day, bench_100k;
CREATE TABLE bench_day AS SELECT * FROM ugr16 ORDER BY te LIMIT ${STAN_BENCH_DAY_ROWS:-1000000000};
-- The first 100,000 flows of the day.
CREATE TABLE bench_100k AS SELECT * FROM ugr16 ORDER BY te LIMIT ${STAN_BENCH_SMALL_ROWS:-100000};
SQL
else
  echo "NOTE: UGR'16 data not found at $DATA: using the built-in simulator (set STAN_UGR16)" >&2
  bash "$ROOT/scripts/setup.sh" >/dev/null
  source "$ROOT/scripts/env.sh"
  DB=stan_bench
  SOURCE="built-in simulator (stan_demo_flows)"
  STREAM_BY="CASE WHEN sa << '10.1.0.0/16' THEN sa ELSE da END"
  SKIP='{}'
  stan_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || stan_psql -d postgres -qc "CREATE DATABASE $DB"
  stan_psql -d "$DB" -q <<SQL
CREATE EXTENSION IF NOT EXISTS stan;
DROP TABLE IF EXISTS bench_day, bench_100k;
-- About 850k and 100k simulated flows over three days.
CREATE TABLE bench_day AS SELECT * FROM stan_demo_flows(250, '3 days') ORDER BY te LIMIT ${STAN_BENCH_DAY_ROWS:-1000000000};
CREATE TABLE bench_100k AS SELECT * FROM stan_demo_flows(30, '3 days') ORDER BY te LIMIT ${STAN_BENCH_SMALL_ROWS:-1000000000};
SQL
fi

say "# stan throughput: $SOURCE"
say "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), stan.threads = $THREADS, $(date -u +%F)"

# Runs one statement in a session of its own with stan.threads set, into log $1, then the
# backend's peak resident memory (VmHWM, read from /proc while the session is still open).
run_measured() {
  stan_psql -d "$DB" -qtA > "$1" 2>&1 <<SQL
SET stan.threads = $THREADS;
SELECT pg_backend_pid() AS pid \\gset
$2;
\\setenv STAN_BACKEND :pid
\\! grep VmHWM /proc/\$STAN_BACKEND/status
SQL
}
peak_kb() { grep -o 'VmHWM:.*' "$1" | tr -s ' ' | cut -d' ' -f2; }

train() {
  local table=$1 model=$2
  stan_psql -d "$DB" -qtAc "SELECT stan_drop('$model') FROM stan.models WHERE name = '$model' LIMIT 1" >/dev/null
  local start end
  start=$(date +%s.%N)
  run_measured "$OUT/$model.train.log" \
    "SELECT stan_train('$table', model => '$model', stream_by => \$\$$STREAM_BY\$\$, columns => '$SKIP')"
  end=$(date +%s.%N)
  local wall hwm
  wall=$(echo "$end - $start" | bc)
  hwm=$(peak_kb "$OUT/$model.train.log")
  stan_psql -d "$DB" -qtA -F ' | ' <<SQL | while read -r line; do say "$line"; done
SELECT '| train ' || '$table' || ' | ' || rows || ' rows, ' || streams || ' streams | '
       || round($wall::numeric, 1) || ' s wall (' || round(training_seconds::numeric, 1) || ' s in stan_train), '
       || (metrics->'training'->>'epochs_run') || ' epochs, stopped by ' || (metrics->'training'->>'stopped_by')
       || ' | windows/s per epoch: '
       || (SELECT string_agg(round((e->>'windows_per_s')::numeric)::text, ', ')
             FROM jsonb_array_elements(metrics->'training'->'history') e)
       || ' | peak backend memory ' || round($hwm / 1024.0) || ' MB | model ' || weight_bytes || ' bytes |'
  FROM stan.models WHERE name = '$model' ORDER BY version DESC LIMIT 1;
SQL
}

say ""
say "| step | data | time | rate | memory / size |"
say "|---|---|---|---|---|"
train bench_100k bench_100k
train bench_day bench_day

generate() {
  local streams=$1 span=$2
  local arg=""
  [ "$streams" != all ] && arg=", streams => $streams"
  stan_psql -d "$DB" -qc "DROP TABLE IF EXISTS bench_fake; CREATE TABLE bench_fake (LIKE bench_day)"
  local start end
  start=$(date +%s.%N)
  run_measured "$OUT/generate.log" \
    "INSERT INTO bench_fake SELECT * FROM stan_generate(NULL::bench_day, '$span', model => 'bench_day', seed => 1$arg)"
  end=$(date +%s.%N)
  local rows wall hwm
  wall=$(echo "$end - $start" | bc)
  rows=$(stan_psql -d "$DB" -qtAc "SELECT count(*) FROM bench_fake")
  hwm=$(peak_kb "$OUT/generate.log")
  say "| generate, $streams streams, $span | $rows rows | $(printf %.2f "$wall") s | $(echo "$rows / $wall" | bc) rows/s | peak backend memory $(echo "$hwm / 1024" | bc) MB |"
  echo "$rows $wall" > "$OUT/generate_$streams.txt"
}
generate all "${STAN_BENCH_SPAN:-1 day}"
generate 16 "${STAN_BENCH_SPAN:-1 day}"
generate 1 "${STAN_BENCH_LONG_SPAN:-7 days}"

# Work per generated row (from the stored network's shape) against this machine's own matrix
# product rate, measured now with numpy's BLAS on the same number of threads.
"$ROOT/.venv/bin/python" -c "import numpy" 2>/dev/null || "$ROOT/.venv/bin/python" -m pip install -q numpy
config=$(stan_psql -d "$DB" -qtAc "SELECT config FROM stan.model_store WHERE name = 'bench_day' ORDER BY version DESC LIMIT 1")
read -r rows wall < "$OUT/generate_all.txt"
OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS \
  "$ROOT/.venv/bin/python" - "$config" "$rows" "$wall" "$THREADS" <<'PY' | tee -a "$OUT/results.txt"
import json, sys, time
import numpy as np
config, rows, wall, threads = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def emb(classes): return min(max(classes, 2), 8)
features, heads, outputs, slots = 0, 0, 0, 0
for attr in config["attributes"]:
    for head in attr["heads"]:
        heads += 1
        slots += 1
        if head == "mdn":
            features += 1; outputs += 3 * config["mixtures"]
        else:
            classes = head["softmax"]["classes"]
            features += emb(classes); outputs += classes
    features += attr["extra_inputs"]; slots += attr["extra_inputs"]
k, c, layers = config["window"], config["conv_channels"], config["conv_layers"]
hidden, hh = config["hidden"], config["head_hidden"]
conv = sum(2 * 9 * (1 if l == 0 else c) * c * k * features for l in range(layers))
flat = (c if layers else 1) * (k // 2) * (features // 2)
context = 2 * flat * hidden
head_context = 2 * (hidden + features) * heads * hh
head_outputs = 2 * hh * outputs
# Each sampled slot adds its row to the later heads' accumulators: at most slots x heads x hh adds.
contributions = slots * heads * hh
total = conv + context + head_context + head_outputs + contributions
n = 1024
rng = np.random.default_rng(0)
a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
for _ in range(3): a @ b
t = time.perf_counter(); reps = 30
for _ in range(reps): a @ b
gflops = 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
achieved = total * rows / wall / 1e9
print(f"| model work per generated row | {total/1e6:.2f} MFLOP (conv {conv/1e6:.2f}, window summary {context/1e6:.2f}, "
      f"heads' context {head_context/1e6:.2f}, head outputs {head_outputs/1e6:.2f} over {outputs} outputs, "
      f"current-row terms {contributions/1e6:.2f}) | | | |")
print(f"| achieved at {rows/wall:.0f} rows/s (all streams) | {achieved:.1f} GFLOP/s | | "
      f"machine's {n}x{n} float32 matmul (numpy BLAS) on {threads} threads: {gflops:.1f} GFLOP/s | {100*achieved/gflops:.0f} % of it |")
PY
echo "results: $OUT/results.txt"
