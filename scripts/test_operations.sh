#!/usr/bin/env bash
# Operations tried as a DBA would, against the server env.sh describes (test.sh runs this after
# the SQL suite, for each PostgreSQL version):
#   1. upgrade: the previous release (built from its git commit, cached under target/previous)
#      is installed, a model is trained and granted under it, the current build is installed
#      back and ALTER EXTENSION stan UPDATE runs; the model generates the same rows as before,
#      by name, by row type and for its grantee, and the upgraded catalog equals a fresh one;
#   2. dump and restore: pg_dump of that database restored into another database, and into a
#      second cluster with and without the roles (--no-owner --no-acl);
#   3. a hot standby: pg_basebackup -R, and the grantee generates on the replica;
#   4. the install stands alone: with the build tree's venv moved away, a new session loads
#      stan, trains and generates (PostgreSQL 15; PostgreSQL 18 itself lives in that venv here).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
# The scripts below check results, not notices.
export PGOPTIONS="-c client_min_messages=warning"

PREVIOUS_RELEASE=0.1.0
PREVIOUS_COMMIT=ccef56fdbda738e10ff9ccde2cb3b9c78777aa4f   # tag v0.1.0
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"
PKGLIB=$("$PG_CONFIG" --pkglibdir)
WORK="$STAN_PGDIR/operations"
OTHER_PORT=$((STAN_PGPORT + 100))
REPLICA_PORT=$((STAN_PGPORT + 200))
OWNER=stan_ops_owner
ANALYST=stan_ops_analyst
DB=stan_ops_upgrade

say() { printf '\033[1m[operations pg%s]\033[0m %s\n' "$PG_MAJOR" "$*"; }
fail() { echo "operations test FAILED (PostgreSQL $PG_MAJOR): $*" >&2; exit 1; }
expect() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; }
# psql on the project cluster (or another port) as the superuser or a role.
q() { stan_psql -d "$1" -tAq -c "$2"; }
q_as() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STAN_PGPORT" -U "$2" -d "$1" -tAq -c "$3"; }
q_at() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "${3:-postgres}" -d "$2" -tAq -c "$4"; }
as_postgres() { sudo -u postgres "$@"; }
SAMPLE="SELECT md5(string_agg(g::text, ',' ORDER BY g::text)) FROM stan_generate(NULL::flows, '30 minutes', model => 'ops', seed => 7) g"
SAMPLE_BY_TYPE="SELECT md5(string_agg(g::text, ',' ORDER BY g::text)) FROM stan_generate(NULL::flows, '30 minutes', seed => 7) g"

rm -rf "$WORK" && mkdir -p "$WORK" && chown postgres: "$WORK"
stop_cluster() { [ -f "$1/PG_VERSION" ] && as_postgres "$PG_BIN/pg_ctl" -D "$1" -m immediate stop >/dev/null 2>&1 || true; }
CURRENT="$WORK/current"
restore_current() {
  if [ -f "$CURRENT/stan.so" ]; then
    rm -f "$PKGLIB/stan.so" && cp "$CURRENT/stan.so" "$PKGLIB/stan.so"
    cp "$CURRENT"/stan.control "$CURRENT"/stan--*.sql "$EXTDIR/"
  fi
  stop_cluster "$WORK/other"
  stop_cluster "$WORK/replica"
  if [ -d "$ROOT/.venv.moved-by-test" ] && [ ! -e "$ROOT/.venv" ]; then mv "$ROOT/.venv.moved-by-test" "$ROOT/.venv"; fi
}
trap restore_current EXIT

# The extension's installed files from a directory holding stan.so, stan.control, stan--*.sql.
# The library is replaced by a new file (never written over: running backends map the old one).
install_from() {
  rm -f "$PKGLIB/stan.so" && cp "$1/stan.so" "$PKGLIB/stan.so"
  rm -f "$EXTDIR"/stan--*.sql && cp "$1"/stan.control "$1"/stan--*.sql "$EXTDIR/"
}

# 0. The current install, kept aside, and the previous release's, built once.
mkdir -p "$CURRENT"
cp "$PKGLIB/stan.so" "$EXTDIR"/stan.control "$EXTDIR"/stan--*.sql "$CURRENT/"
PREVIOUS="$ROOT/target/previous/$PREVIOUS_RELEASE-pg$PG_MAJOR"
if [ ! -f "$PREVIOUS/stan.so" ]; then
  if ! git cat-file -e "$PREVIOUS_COMMIT^{commit}" 2>/dev/null; then
    fail "the previous release's commit $PREVIOUS_COMMIT (tag v$PREVIOUS_RELEASE) is not in this clone; fetch the full history"
  fi
  say "building the previous release $PREVIOUS_RELEASE ($PREVIOUS_COMMIT) once, into target/previous (minutes)"
  src="$ROOT/target/previous/src"
  rm -rf "$src" "$PREVIOUS" && mkdir -p "$src" "$PREVIOUS"
  git archive "$PREVIOUS_COMMIT" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$ROOT/target/previous/target" \
     cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$PREVIOUS/tree" >"$PREVIOUS/build.log" 2>&1) \
    || { tail -30 "$PREVIOUS/build.log"; fail "building the previous release"; }
  find "$PREVIOUS/tree" \( -name stan.so -o -name stan.control -o -name "stan--$PREVIOUS_RELEASE.sql" \) -exec cp {} "$PREVIOUS/" \;
  test -f "$PREVIOUS/stan.so" || fail "the previous release's package has no stan.so"
fi

# 1. Upgrade.
say "installing $PREVIOUS_RELEASE, training and granting a model under it"
for role in $OWNER $ANALYST; do
  q postgres "SELECT 1 FROM pg_roles WHERE rolname = '$role'" | grep -q 1 || q postgres "CREATE ROLE $role LOGIN"
done
install_from "$PREVIOUS"
for db in $DB stan_ops_fresh stan_ops_restored; do q postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
q postgres "CREATE DATABASE $DB"
q $DB "CREATE EXTENSION stan VERSION '$PREVIOUS_RELEASE';
       GRANT CREATE ON SCHEMA public TO $OWNER;"
q_as $DB $OWNER "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(4, '3 hours');
                 GRANT SELECT ON flows TO $ANALYST;
                 SELECT stan_train('flows', model => 'ops', options => '{\"epochs\": 1}');
                 SELECT stan_grant('ops', '$ANALYST');" >/dev/null
before=$(q $DB "$SAMPLE")
test -n "$before" || fail "no rows generated under $PREVIOUS_RELEASE"

say "installing the current build and running ALTER EXTENSION stan UPDATE"
install_from "$CURRENT"
q $DB "ALTER EXTENSION stan UPDATE"
current_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$CURRENT/stan.control")
expect "extension version after the update" "$(q $DB "SELECT extversion FROM pg_extension WHERE extname = 'stan'")" "$current_version"
expect "the model's format and owner after the update" \
  "$(q $DB "SELECT format || ' ' || owner || ' ' || source FROM stan.model_details WHERE name = 'ops'")" "1 $OWNER public.flows"
expect "generation from the $PREVIOUS_RELEASE model after the update" "$(q $DB "$SAMPLE")" "$before"
expect "generation by row type after the update" "$(q $DB "$SAMPLE_BY_TYPE")" "$before"
expect "generation by the grantee after the update" "$(q_as $DB $ANALYST "$SAMPLE")" "$before"
q_as $DB $OWNER "SELECT stan_train('flows', model => 'ops', options => '{\"epochs\": 1}')" >/dev/null
expect "versions after training again" "$(q $DB "SELECT string_agg(version || ':' || format, ' ' ORDER BY version) FROM stan.model_details WHERE name = 'ops'")" "1:1 2:2"
q $DB "SELECT stan_drop('ops', 2)" >/dev/null

say "comparing the upgraded catalog with a fresh install"
q postgres "CREATE DATABASE stan_ops_fresh"
q stan_ops_fresh "CREATE EXTENSION stan"
describe_extension() {
  q "$1" "
    WITH members AS (
      SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
       WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'stan'),
    tables AS (SELECT objid AS relid FROM members WHERE classid = 'pg_class'::regclass)
    SELECT pg_describe_object(m.classid, m.objid, 0) || ' | ' || COALESCE(
             CASE WHEN m.classid = 'pg_proc'::regclass THEN pg_get_functiondef(m.objid)
                  WHEN m.classid = 'pg_class'::regclass THEN
                    (SELECT c.relkind::text || ' ' || COALESCE(c.relacl::text, '') || ' '
                            || COALESCE(pg_get_viewdef(c.oid), '') || ' '
                            || COALESCE((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                                           || COALESCE(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                           ', ' ORDER BY a.attnum)
                                           FROM pg_attribute a
                                           LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
                       FROM pg_class c WHERE c.oid = m.objid)
                  WHEN m.classid = 'pg_namespace'::regclass THEN
                    (SELECT COALESCE(n.nspacl::text, '') FROM pg_namespace n WHERE n.oid = m.objid)
             END, '') || ' | ' || COALESCE(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)), '')
      FROM members m
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN tables ON t.tgrelid = tables.relid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN tables ON i.indrelid = tables.relid
    UNION ALL
    SELECT 'dumped ' || (SELECT string_agg(c::regclass::text, ', ' ORDER BY c::regclass::text) FROM unnest(e.extconfig) c)
      FROM pg_extension e WHERE e.extname = 'stan'
    ORDER BY 1"
}
describe_extension $DB > "$WORK/upgraded.txt"
describe_extension stan_ops_fresh > "$WORK/fresh.txt"
if ! diff -u "$WORK/fresh.txt" "$WORK/upgraded.txt" > "$WORK/catalog.diff"; then
  cat "$WORK/catalog.diff" >&2
  fail "the catalog after ALTER EXTENSION stan UPDATE differs from a fresh install (above: - fresh, + upgraded)"
fi
test "$(wc -l < "$WORK/fresh.txt")" -gt 20 || fail "the catalog description is too short to mean anything"

# 2. Dump and restore. One more model first, whose owner role is dropped before the dump: it
#    must stay an orphan wherever it is restored, also where a role of that name exists.
GONE=stan_ops_gone
q postgres "SELECT 1 FROM pg_roles WHERE rolname = '$GONE'" | grep -q 1 || q postgres "CREATE ROLE $GONE LOGIN"
q $DB "GRANT CREATE ON SCHEMA public TO $GONE"
q_as $DB $GONE "CREATE TABLE gone_flows AS SELECT * FROM stan_demo_flows(2, '2 hours');
                SELECT stan_train('gone_flows', model => 'gone', options => '{\"epochs\": 1}');" >/dev/null
q $DB "DROP OWNED BY $GONE"
q postgres "DROP ROLE $GONE"
q_as $DB $OWNER "SELECT stan_revoke('ops', '$ANALYST'); SELECT stan_grant('ops', '$ANALYST');" >/dev/null
expect "the dropped role's model" "$(q $DB "SELECT COALESCE(owner, 'none') FROM stan.model_details WHERE name = 'gone'")" "none"
say "pg_dump, and pg_restore into another database"
as_postgres "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$STAN_PGPORT" -U postgres -Fc -d $DB -f "$WORK/stan.dump"
q postgres "CREATE DATABASE stan_ops_restored"
as_postgres "$PG_BIN/pg_restore" -h 127.0.0.1 -p "$STAN_PGPORT" -U postgres -d stan_ops_restored "$WORK/stan.dump"
expect "generation by name after a restore" "$(q stan_ops_restored "$SAMPLE")" "$before"
expect "generation by row type after a restore" "$(q stan_ops_restored "$SAMPLE_BY_TYPE")" "$before"
expect "generation by the grantee after a restore" "$(q_as stan_ops_restored $ANALYST "$SAMPLE")" "$before"
expect "the owner after a restore" "$(q_as stan_ops_restored $OWNER "SELECT owner FROM stan.models WHERE name = 'ops'")" "$OWNER"

say "pg_restore into another cluster, without the roles (--no-owner --no-acl) and with them"
as_postgres "$PG_BIN/initdb" -D "$WORK/other" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$WORK/other" -l "$WORK/other.log" -w start \
  -o "-p $OTHER_PORT -k $STAN_PGSOCK -c listen_addresses=127.0.0.1" >/dev/null
q_at $OTHER_PORT postgres "" "CREATE DATABASE without_roles"
as_postgres "$PG_BIN/pg_restore" -h 127.0.0.1 -p $OTHER_PORT -U postgres --no-owner --no-acl -d without_roles "$WORK/stan.dump"
expect "generation by name in a cluster without the roles" "$(q_at $OTHER_PORT without_roles "" "$SAMPLE")" "$before"
expect "generation by row type in a cluster without the roles" "$(q_at $OTHER_PORT without_roles "" "$SAMPLE_BY_TYPE")" "$before"
expect "the owner in a cluster without the roles" \
  "$(q_at $OTHER_PORT without_roles "" "SELECT COALESCE(owner, 'none') || ' ' || trained_by FROM stan.model_details WHERE name = 'ops'")" "none $OWNER"
q_at $OTHER_PORT postgres "" "CREATE ROLE $OWNER LOGIN; CREATE ROLE $ANALYST LOGIN; CREATE ROLE $GONE LOGIN;"
q_at $OTHER_PORT postgres "" "CREATE DATABASE with_roles"
as_postgres "$PG_BIN/pg_restore" -h 127.0.0.1 -p $OTHER_PORT -U postgres -d with_roles "$WORK/stan.dump"
expect "generation by the grantee in another cluster with the roles" "$(q_at $OTHER_PORT with_roles $ANALYST "$SAMPLE")" "$before"
expect "the owner in another cluster with the roles" "$(q_at $OTHER_PORT with_roles $OWNER "SELECT owner FROM stan.models WHERE name = 'ops'")" "$OWNER"
expect "a dropped owner's model after a restore beside a new role of its name" \
  "$(q_at $OTHER_PORT with_roles "" "SELECT COALESCE(owner, 'none') FROM stan.model_details WHERE name = 'gone'")" "none"
expect "the models a new role under a dropped owner's name sees" "$(q_at $OTHER_PORT with_roles $GONE "SELECT count(*) FROM stan.models")" "0"

# 3. A hot standby, of that second cluster (small, so the copy is quick).
say "a streaming replica (pg_basebackup -R); the grantee generates on it"
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p $OTHER_PORT -U postgres -D "$WORK/replica" -R -X stream -c fast
as_postgres "$PG_BIN/pg_ctl" -D "$WORK/replica" -l "$WORK/replica.log" -w start \
  -o "-p $REPLICA_PORT -k $STAN_PGSOCK -c listen_addresses=127.0.0.1 -c hot_standby=on" >/dev/null
expect "the replica is in recovery" "$(q_at $REPLICA_PORT with_roles "" "SELECT pg_is_in_recovery()")" "t"
# A grant made on the primary after the copy reaches the replica by streaming.
q_at $OTHER_PORT with_roles $OWNER "SELECT stan_revoke('ops', '$ANALYST'); SELECT stan_grant('ops', '$ANALYST');" >/dev/null
lsn=$(q_at $OTHER_PORT postgres "" "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 100); do
  [ "$(q_at $REPLICA_PORT postgres "" "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
  sleep 0.2
done
expect "generation by the grantee on the standby" "$(q_at $REPLICA_PORT with_roles $ANALYST "$SAMPLE")" "$before"
expect "generation by row type on the standby" "$(q_at $REPLICA_PORT with_roles $ANALYST "$SAMPLE_BY_TYPE")" "$before"
expect "the models the grantee sees on the standby" "$(q_at $REPLICA_PORT with_roles $ANALYST "SELECT string_agg(name || ' ' || version, ',') FROM stan.models")" "ops 1"
stop_cluster "$WORK/replica"
stop_cluster "$WORK/other"

# 4. The install stands alone.
ALONE=""
if [[ "$PKGLIB" == "$ROOT"/* ]]; then
  say "skipping the stand-alone install check: this server itself is installed in the build tree ($PKGLIB)"
else
  say "moving the build tree's venv away and restarting the server; a new session loads stan, trains and generates"
  if readelf -d "$PKGLIB/stan.so" | grep -E "RPATH|RUNPATH" | grep -q "$ROOT"; then
    fail "the installed stan.so's RUNPATH names the build tree: $(readelf -d "$PKGLIB/stan.so" | grep -E 'RPATH|RUNPATH')"
  fi
  mv "$ROOT/.venv" "$ROOT/.venv.moved-by-test"
  # A restarted server, as after a reboot with the clone gone.
  as_postgres "$PG_BIN/pg_ctl" -D "$STAN_PGDATA" -l "$STAN_PGDIR/server.log" -w restart -m fast >/dev/null
  alone=$(q $DB "CREATE TABLE alone AS SELECT * FROM stan_demo_flows(2, '2 hours');
                 SELECT stan_train('alone', model => 'alone', options => '{\"epochs\": 1}');
                 SELECT count(*) > 0 FROM stan_generate(NULL::alone, '30 minutes', model => 'alone', seed => 1);" | tail -1)
  mv "$ROOT/.venv.moved-by-test" "$ROOT/.venv"
  expect "training and generating with the build tree's venv gone" "$alone" "t"
  ALONE=", and the install stands alone"
fi

for db in $DB stan_ops_fresh stan_ops_restored; do q postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
say "upgrade from $PREVIOUS_RELEASE, dump and restore (another database, another cluster with and without the roles) and a hot standby hold$ALONE"
