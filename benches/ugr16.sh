#!/usr/bin/env bash
# Train on the UGR'16 development day (../shared/data, never committed) with stream_by set to the
# internal endpoint, generate, and print training time, generation rows/s and a real-vs-synthetic
# summary. Skips, loudly, when the data is missing.
#   bash benches/ugr16.sh [train-until (default 18:00)] [options json]
set -euo pipefail
UNTIL=${1:-18:00}
OPTIONS=${2:-'{"epochs": 4, "seed": 1}'}
source "$(dirname "$0")/ugr16_data.sh"
stan_psql -d "$DB" -qc "DROP TABLE IF EXISTS flows_train"
ugr16_split "$UNTIL"
echo "== training on $(stan_psql -d "$DB" -tAc 'SELECT count(*) FROM flows_train') rows before $UNTIL, options $OPTIONS"
stan_psql -d "$DB" <<SQL
SET stan.threads = ${STAN_BENCH_THREADS:-2};
\\timing on
SELECT stan_train('flows_train', model => 'ugr16',
                  stream_by => \$\$$UGR16_HOST\$\$,
                  columns => '{"lable": "skip"}', options => '$OPTIONS');
CREATE TABLE fake (LIKE flows_train);
INSERT INTO fake SELECT * FROM stan_generate(NULL::flows_train, '6 hours', model => 'ugr16', seed => 1,
                                             start => '2016-04-11 $UNTIL+00');
\\timing off
SELECT 'rows' AS what, (SELECT count(*) FROM flows_test) AS real, (SELECT count(*) FROM fake) AS synthetic;
SELECT coalesce(r.pr, f.pr) AS protocol, round(100.0 * r.n / sum(r.n) OVER (), 2) AS "real %",
       round(100.0 * f.n / sum(f.n) OVER (), 2) AS "synthetic %"
  FROM (SELECT pr, count(*) n FROM flows_test GROUP BY pr) r
  FULL JOIN (SELECT pr, count(*) n FROM fake GROUP BY pr) f USING (pr) ORDER BY 2 DESC NULLS LAST;
SELECT 'real' AS data, percentile_disc(array[0.1, 0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY byt) AS bytes,
       percentile_disc(array[0.1, 0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY pkt) AS packets FROM flows_test
UNION ALL SELECT 'synthetic', percentile_disc(array[0.1, 0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY byt),
       percentile_disc(array[0.1, 0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY pkt) FROM fake;
SELECT 'TCP bytes >= 40 pkt' AS rule, round(100.0 * avg((byt >= 40 * pkt)::int) FILTER (WHERE pr = 'TCP'), 2) AS "real %",
       (SELECT round(100.0 * avg((byt >= 40 * pkt)::int) FILTER (WHERE pr = 'TCP'), 2) FROM fake) AS "synthetic %" FROM flows_test;
SELECT metrics->'training'->>'epochs_run' AS epochs, round(training_seconds::numeric, 1) AS training_s,
       metrics->'training'->>'train_windows' AS windows, device, weight_bytes FROM stan.models WHERE name = 'ugr16' ORDER BY version DESC LIMIT 1;
SQL
