//! Bad input gets a clear error (SQLSTATE, and a message naming the culprit) and changes
//! nothing. Each case runs in its own transaction, which is rolled back.

use stan_sql_tests::*;

/// (what, setup, statement, SQLSTATE, culprit named in the message)
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    ("empty table", "CREATE TABLE t (LIKE flows)", "SELECT stan_train('t')", "22000", "0 row"),
    ("a table with no columns", "CREATE TABLE t ()", "SELECT stan_train('t')", "42P01", "\"public.t\""),
    ("one row", "CREATE TABLE t AS SELECT * FROM flows LIMIT 1", "SELECT stan_train('t')", "22000", "1 row"),
    ("a column that is all NULL", "CREATE TABLE t AS SELECT *, NULL::text AS note FROM flows", "SELECT stan_train('t')", "22000", "\"note\""),
    ("jsonb column", "CREATE TABLE t AS SELECT *, '{}'::jsonb AS doc FROM flows", "SELECT stan_train('t')", "0A000", "\"doc\""),
    ("array column", "CREATE TABLE t AS SELECT *, ARRAY[1] AS arr FROM flows", "SELECT stan_train('t')", "0A000", "\"arr\""),
    ("bytea column", "CREATE TABLE t AS SELECT *, '\\x00'::bytea AS raw FROM flows", "SELECT stan_train('t')", "0A000", "\"raw\""),
    ("IPv6 in an inet column", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET sa = '::1' WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"sa\""),
    ("NaN", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET td = 'NaN' WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"td\""),
    ("Infinity", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET td = 'Infinity' WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"td\""),
    ("-Infinity", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET td = '-Infinity' WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"td\""),
    ("negative count", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET byt = -byt", "SELECT stan_train('t')", "22000", "\"byt\""),
    ("port out of range", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET dp = 70000 WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"dp\""),
    ("NULL in the order column", "CREATE TABLE t AS SELECT * FROM flows; UPDATE t SET te = NULL WHERE sp = (SELECT min(sp) FROM t)", "SELECT stan_train('t')", "22000", "\"te\""),
    ("no time column", "CREATE TABLE t AS SELECT sa, pkt FROM flows", "SELECT stan_train('t')", "22023", "order_by"),
    ("order_by naming a non-time column", "", "SELECT stan_train('flows', order_by => 'pkt')", "22023", "\"pkt\""),
    ("order_by naming nothing", "", "SELECT stan_train('flows', order_by => 'nope')", "22023", "\"nope\""),
    ("stream_by naming nothing", "", "SELECT stan_train('flows', stream_by => 'nope')", "42703", "nope"),
    ("unknown option", "", "SELECT stan_train('flows', options => '{\"windw\": 3}')", "22023", "\"windw\""),
    ("ill-typed option", "", "SELECT stan_train('flows', options => '{\"epochs\": \"many\"}')", "22023", "\"epochs\""),
    ("option out of range", "", "SELECT stan_train('flows', options => '{\"window\": 0}')", "22023", "\"window\""),
    ("bad mask", "", "SELECT stan_train('flows', options => '{\"mask\": \"C\"}')", "22023", "\"mask\""),
    ("options not an object", "", "SELECT stan_train('flows', options => '[1]')", "22023", "\"options\""),
    ("column override of an unknown column", "", "SELECT stan_train('flows', columns => '{\"nope\": \"skip\"}')", "22023", "\"nope\""),
    ("unknown column kind", "", "SELECT stan_train('flows', columns => '{\"sp\": \"zip\"}')", "22023", "\"zip\""),
    ("kind that does not fit the type", "", "SELECT stan_train('flows', columns => '{\"pr\": \"port\"}')", "22023", "\"pr\""),
    ("model name too long", "", "SELECT stan_train('flows', model => repeat('m', 64))", "42602", "mmmm"),
    ("relation that does not exist", "", "SELECT stan_train('nope')", "42P01", "nope"),
    ("empty partition", "CREATE TABLE p (LIKE flows) PARTITION BY RANGE (te); CREATE TABLE p0 PARTITION OF p FOR VALUES FROM ('2000-01-01') TO ('2001-01-01')", "SELECT stan_train('p0')", "22000", "0 row"),
    ("span zero", "", "SELECT * FROM stan_generate(NULL::flows, '0 seconds')", "22023", "span"),
    ("span negative", "", "SELECT * FROM stan_generate(NULL::flows, '-1 hour')", "22023", "span"),
    ("span absurdly large", "", "SELECT * FROM stan_generate(NULL::flows, '1000 years')", "22023", "span"),
    ("streams zero", "", "SELECT * FROM stan_generate(NULL::flows, '1 hour', streams => 0)", "22023", "streams"),
    ("warmup negative", "", "SELECT * FROM stan_generate(NULL::flows, '1 hour', warmup => '-1 hour')", "22023", "warmup"),
    ("unknown model", "", "SELECT * FROM stan_generate(NULL::flows, '1 hour', model => 'nope')", "42704", "\"nope\""),
    ("no model for the row type", "CREATE TABLE t (LIKE flows)", "SELECT * FROM stan_generate(NULL::t, '1 hour')", "42704", "t;"),
    ("not a row type", "", "SELECT * FROM stan_generate(NULL::int, '1 hour', model => 'postgres.flows')", "42804", "row type"),
    ("column added after training", "ALTER TABLE flows ADD COLUMN extra int", "SELECT * FROM stan_generate(NULL::flows, '1 hour')", "42804", "extra"),
    ("column dropped after training", "ALTER TABLE flows DROP COLUMN flg", "SELECT * FROM stan_generate(NULL::flows, '1 hour', model => 'postgres.flows')", "42804", "flg"),
    ("column retyped after training", "ALTER TABLE flows ALTER COLUMN pkt TYPE int", "SELECT * FROM stan_generate(NULL::flows, '1 hour')", "42804", "pkt"),
    ("drop of an unknown model", "", "SELECT stan_drop('nope')", "42704", "\"nope\""),
    ("balance_by naming a non-category column", "", "SELECT stan_train('flows', options => '{\"balance_by\": \"pkt\"}')", "22023", "\"pkt\" is not a category column"),
    ("balance_by not a name", "", "SELECT stan_train('flows', options => '{\"balance_by\": 3}')", "22023", "\"balance_by\""),
    ("max_rows too small", "", "SELECT stan_train('flows', options => '{\"max_rows\": 10}')", "22023", "\"max_rows\""),
    ("grant on an unknown model", "", "SELECT stan_grant('nope', current_user::regrole)", "42704", "\"nope\""),
    ("grant to a role that does not exist", "", "SELECT stan_grant('postgres.flows', 'no_such_role')", "42704", "no_such_role"),
    ("revoke on an unknown model", "", "SELECT stan_revoke('nope', current_user::regrole)", "42704", "\"nope\""),
    ("evaluate an unknown model", "", "SELECT * FROM stan_evaluate('nope', 'flows')", "42704", "\"nope\""),
    ("evaluate against a holdout of another shape", "CREATE TABLE t AS SELECT te, sa FROM flows", "SELECT * FROM stan_evaluate('postgres.flows', 't')", "42804", "missing"),
    ("evaluate against an empty holdout", "CREATE TABLE t (LIKE flows)", "SELECT * FROM stan_evaluate('postgres.flows', 't')", "22000", "public.t"),
    ("evaluate with span zero", "", "SELECT * FROM stan_evaluate('postgres.flows', 'flows', span => '0 s')", "22023", "span"),
];

#[test]
fn every_bad_input_has_a_clear_error_and_changes_nothing() {
    let mut c = fresh_db("corpus");
    c.batch_execute(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(2, '2 hours');
         SELECT stan_train('flows', options => '{\"epochs\": 1}');",
    )
    .unwrap();
    let models = |c: &mut postgres::Client| one_i64(c, "SELECT count(*) FROM stan.model_store");
    let before = models(&mut c);
    let mut failures = Vec::new();
    for (what, setup, sql, state, culprit) in CASES {
        c.batch_execute("BEGIN").unwrap();
        if !setup.is_empty() {
            c.batch_execute(setup)
                .unwrap_or_else(|e| panic!("{what}: setup failed: {e}"));
        }
        match c.batch_execute(sql) {
            Ok(()) => failures.push(format!("{what}: no error from {sql}")),
            Err(e) => {
                let db = e.as_db_error().expect("a database error");
                let (code, msg) = (db.code().code(), db.message());
                if code != *state || !msg.contains(culprit) {
                    failures.push(format!(
                        "{what}: got {code} \"{msg}\", want {state} naming {culprit}"
                    ));
                }
            }
        }
        c.batch_execute("ROLLBACK").unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert_eq!(models(&mut c), before, "a failed call stored a model");
}

#[test]
fn views_partitions_and_unordered_rows_are_fine_sources() {
    let mut c = fresh_db("sources");
    c.batch_execute(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(2, '2 hours');
         CREATE VIEW tcp AS SELECT * FROM flows WHERE pr = 'TCP';
         CREATE TABLE p (LIKE flows) PARTITION BY LIST (pr);
         CREATE TABLE p_tcp PARTITION OF p FOR VALUES IN ('TCP');
         CREATE TABLE p_other PARTITION OF p DEFAULT;
         INSERT INTO p SELECT * FROM flows;
         -- Duplicate and out-of-order timestamps: flows end in the same second all the time.
         CREATE TABLE shuffled AS SELECT * FROM (SELECT * FROM flows UNION ALL SELECT * FROM flows) s ORDER BY random();
         SELECT stan_train('tcp', options => '{\"epochs\": 1}');
         SELECT stan_train('p', options => '{\"epochs\": 1}');
         SELECT stan_train('p_tcp', options => '{\"epochs\": 1}');
         SELECT stan_train('shuffled', options => '{\"epochs\": 1}');",
    )
    .unwrap();
    for t in ["tcp", "p", "p_tcp", "shuffled"] {
        let n = one_i64(
            &mut c,
            &format!("SELECT count(*) FROM stan_generate(NULL::{t}, '1 hour', seed => 1)"),
        );
        assert!(n > 0, "{t}: no rows");
    }
    let source_rows = one_i64(
        &mut c,
        "SELECT rows FROM stan.models WHERE name = 'postgres.tcp'",
    );
    assert_eq!(
        source_rows,
        one_i64(&mut c, "SELECT count(*) FROM flows WHERE pr = 'TCP'")
    );
}
