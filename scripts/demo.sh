#!/usr/bin/env bash
# README command (a): set everything up, then the main job on the project cluster: sample flows,
# stan_train, stan_generate one hour, and a side-by-side summary of real vs synthetic flows.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/setup.sh"
# Again: the set-up may just have created the venv that LIBTORCH points into.
source "$ROOT/scripts/env.sh"
DB=${STAN_DEMO_DB:-stan_demo}
# The demo's own database, kept between runs: a database made by an earlier release is updated
# (ALTER EXTENSION stan UPDATE), its models with it, and each run adds a model version.
if [ "$(stan_psql -d postgres -tAc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
  stan_psql -d postgres -qc "CREATE DATABASE $DB"
fi
echo "== training on simulated flows (database $DB)"
stan_psql -d "$DB" -q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS stan;
ALTER EXTENSION stan UPDATE;
DROP TABLE IF EXISTS flows, fake;
-- One day of 24 simulated hosts; each internal host is one stream.
CREATE TABLE flows AS SELECT * FROM stan_demo_flows(hosts => 24, span => '1 day');
SET client_min_messages = notice;
SET stan.threads = 2;
\echo (progress: one NOTICE per epoch)
SELECT stan_train('flows',
                  stream_by => $$CASE WHEN sa << '10.1.0.0/16' THEN sa ELSE da END$$,
                  options => '{"seed": 1}');
CREATE TABLE fake (LIKE flows);
\timing on
INSERT INTO fake SELECT * FROM stan_generate(NULL::flows, '1 hour', seed => 1);
\timing off
SQL
echo
echo "== real vs synthetic: the first hour of the training day vs one generated hour (generation starts where the data starts)"
stan_psql -d "$DB" <<'SQL'
\pset footer off
CREATE TEMP VIEW real_hour AS SELECT * FROM flows WHERE te < (SELECT min(te) FROM flows) + interval '1 hour';
SELECT (SELECT count(*) FROM real_hour) AS "real rows", (SELECT count(*) FROM fake) AS "synthetic rows",
       (SELECT count(*) FROM flows) AS "training rows (whole day)";
SELECT coalesce(r.pr, f.pr) AS protocol,
       round(100.0 * r.n / sum(r.n) OVER (), 1) AS "real %",
       round(100.0 * f.n / sum(f.n) OVER (), 1) AS "synthetic %"
  FROM (SELECT pr, count(*) n FROM real_hour GROUP BY pr) r
  FULL JOIN (SELECT pr, count(*) n FROM fake GROUP BY pr) f USING (pr) ORDER BY 1;
SELECT r.rank, r.dp AS "real dport", r.n AS "real n", f.dp AS "synthetic dport", f.n AS "synthetic n"
  FROM (SELECT dp, count(*) n, row_number() OVER (ORDER BY count(*) DESC, dp) rank FROM real_hour GROUP BY dp) r
  JOIN (SELECT dp, count(*) n, row_number() OVER (ORDER BY count(*) DESC, dp) rank FROM fake GROUP BY dp) f USING (rank)
 WHERE rank <= 5 ORDER BY rank;
SELECT 'bytes' AS column, 'real' AS data, percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) WITHIN GROUP (ORDER BY byt) AS "p10 p25 p50 p75 p90 p99" FROM real_hour
UNION ALL SELECT 'bytes', 'synthetic', percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) WITHIN GROUP (ORDER BY byt) FROM fake
UNION ALL SELECT 'packets', 'real', percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) WITHIN GROUP (ORDER BY pkt) FROM real_hour
UNION ALL SELECT 'packets', 'synthetic', percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) WITHIN GROUP (ORDER BY pkt) FROM fake;
SELECT name, version, rows, streams, round(training_seconds::numeric, 1) AS training_s, device, weight_bytes FROM stan.models;
SQL
cat <<EOF

Done. Open psql on the demo cluster:
  $PG_BIN/psql -h 127.0.0.1 -p $STAN_PGPORT -U postgres $DB
Stop the cluster:
  sudo -u postgres $PG_BIN/pg_ctl -D $STAN_PGDATA stop
EOF
