# Sourced by the UGR'16 benchmarks: loads ../shared/data/ugr16_day1_dev.csv.gz (never committed)
# into database stan_ugr16 once, and splits it at $UNTIL into flows_train and flows_test.
# Exits 0 with a loud SKIPPED line when the data is missing.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
DATA=${STAN_UGR16:-$ROOT/../shared/data/ugr16_day1_dev.csv.gz}
if [ ! -f "$DATA" ]; then
  echo "SKIPPED: UGR'16 data not found at $DATA (set STAN_UGR16 to its path)" >&2
  exit 0
fi
DB=stan_ugr16
# The internal endpoint of a flow: one host of 42.219.0.0/16 is one stream, as in the paper.
UGR16_HOST="CASE WHEN sa << '42.219.0.0/16' THEN sa ELSE da END"
bash "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/env.sh"
stan_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 || stan_psql -d postgres -qc "CREATE DATABASE $DB"
stan_psql -d "$DB" -q <<SQL
CREATE EXTENSION IF NOT EXISTS stan;
DO \$\$ BEGIN
  IF to_regclass('ugr16') IS NULL THEN
    CREATE TABLE ugr16 (te timestamp, td float8, sa inet, da inet, sp int, dp int, pr text, flg text,
                        fwd int, stos int, pkt bigint, byt bigint, lable text);
  END IF;
END \$\$;
SQL
if [ "$(stan_psql -d "$DB" -tAc 'SELECT count(*) FROM ugr16')" = 0 ]; then
  echo "loading $DATA"
  stan_psql -d "$DB" -qc "\\copy ugr16 FROM PROGRAM 'gzip -dc $DATA' CSV HEADER"
fi
ugr16_split() {
  stan_psql -d "$DB" -q <<SQL
DROP TABLE IF EXISTS flows_test, fake;
CREATE TABLE IF NOT EXISTS flows_train AS SELECT * FROM ugr16 WHERE te < '2016-04-11 $1';
CREATE TABLE flows_test AS SELECT * FROM ugr16 WHERE te >= '2016-04-11 $1';
SQL
}
