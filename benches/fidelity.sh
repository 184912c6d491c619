#!/usr/bin/env bash
# Fidelity on real flows (UGR'16 development day, ../shared/data, never committed): train on the
# flows before 18:00 with stream_by = the internal endpoint, generate 18:00-24:00, run
# stan_evaluate against the real flows after 18:00, and the paper's two machine-learning tasks
# (protocol random forest, next-flow bytes regression) trained on real and on synthetic rows.
# Prints one table with the paper's numbers and the targets; skips loudly without the data.
#   bash benches/fidelity.sh [training options json]
#   STAN_FIDELITY_REUSE=1 bash benches/fidelity.sh   # keep the trained model, redo the rest
# Rows generated elsewhere (benches/fidelity_core.rs, e.g. on a GPU machine) are evaluated instead
# of a new sample with STAN_FIDELITY_SYNTHETIC=rows.csv (and STAN_FIDELITY_TRAINED="how they were
# trained" for the table); the model named fidelity then only supplies the columns and streams.
set -euo pipefail
OPTIONS=${1:-'{"seed": 1}'}
SYNTHETIC=${STAN_FIDELITY_SYNTHETIC:-}
source "$(dirname "$0")/ugr16_data.sh"
OUT=$ROOT/target/fidelity
mkdir -p "$OUT"
trained=$(stan_psql -d "$DB" -tAc "SELECT count(*) FROM stan.models WHERE name = 'fidelity'")
if [ -n "$SYNTHETIC" ] && [ "$trained" = 0 ]; then
  echo "STAN_FIDELITY_SYNTHETIC needs a model named fidelity for its columns: run bash benches/fidelity.sh once" >&2
  exit 1
fi
if { [ "${STAN_FIDELITY_REUSE:-0}" = 1 ] || [ -n "$SYNTHETIC" ]; } && [ "$trained" != 0 ]; then
  echo "== reusing model fidelity"
  ugr16_split 18:00
else
  [ "$trained" != 0 ] && stan_psql -d "$DB" -qtAc "SELECT stan_drop('fidelity')" >/dev/null
  stan_psql -d "$DB" -qc "DROP TABLE IF EXISTS flows_train"
  ugr16_split 18:00
  echo "== training on flows before 18:00, options $OPTIONS"
  stan_psql -d "$DB" <<SQL
SET stan.threads = ${STAN_BENCH_THREADS:-2};
\\timing on
SELECT stan_train('flows_train', model => 'fidelity', stream_by => \$\$$UGR16_HOST\$\$,
                  columns => '{"lable": "skip"}', options => '$OPTIONS');
SQL
fi
MODEL_ROW="SELECT metrics->'training'->>'epochs_run' AS epochs, round(training_seconds::numeric, 1) AS training_s,
       rows, streams, weight_bytes FROM stan.models WHERE name = 'fidelity' ORDER BY version DESC LIMIT 1;"
if [ -n "$SYNTHETIC" ]; then
  echo "== evaluating the rows of $SYNTHETIC"
  FILL="\\copy fake FROM '$SYNTHETIC' CSV HEADER"
  MODEL_ROW=""
else
  echo "== generating 18:00-24:00 and evaluating"
  FILL="INSERT INTO fake SELECT * FROM stan_generate(NULL::flows_train, '6 hours', model => 'fidelity', seed => 1,
                                             start => '2016-04-11 18:00+00');"
fi
stan_psql -d "$DB" <<SQL
SET stan.threads = ${STAN_BENCH_THREADS:-2};
\\timing on
CREATE TABLE fake (LIKE flows_train);
$FILL
\\timing off
DROP TABLE IF EXISTS evaluation;
CREATE TABLE evaluation AS SELECT * FROM stan_evaluate('fidelity', 'flows_test', synthetic => 'fake');
\\copy evaluation TO '$OUT/evaluate.csv' CSV HEADER
SELECT metric, column_name, round(synthetic::numeric, 4) AS synthetic, round("real"::numeric, 4) AS "real", detail
  FROM evaluation;
$MODEL_ROW
SQL
for t in flows_train flows_test fake; do
  stan_psql -d "$DB" -qc "\\copy (SELECT te, td, sa, da, sp, dp, pr, flg, pkt, byt, ($UGR16_HOST)::text AS stream FROM $t) TO '$OUT/$t.csv' CSV HEADER"
done
"$ROOT/.venv/bin/python" -c "import sklearn, pandas" 2>/dev/null || "$ROOT/.venv/bin/python" -m pip install -q scikit-learn pandas
echo "== machine-learning tasks (trained on real / on synthetic, tested on the real flows after 18:00)"
"$ROOT/.venv/bin/python" "$ROOT/benches/fidelity_ml.py" --train "$OUT/flows_train.csv" \
  --synthetic "$OUT/fake.csv" --test "$OUT/flows_test.csv" --json "$OUT/ml.json"
training=${STAN_FIDELITY_TRAINED:-}
[ -n "$training" ] || training=$(stan_psql -d "$DB" -tAc "SELECT metrics->'training'->>'epochs_run' || ' epochs, ' || round(training_seconds) || ' s' FROM stan.models WHERE name = 'fidelity' ORDER BY version DESC LIMIT 1")
"$ROOT/.venv/bin/python" "$ROOT/benches/fidelity_table.py" "$OUT/evaluate.csv" "$OUT/ml.json" "$training"
