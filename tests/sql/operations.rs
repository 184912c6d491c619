//! What a DBA meets running stan: versions pinned and dropped one at a time, compact listings,
//! default names that keep schemas apart, roles dropped under models and grants, generation
//! that assigns no transaction id (so it runs on a hot standby), models of the older format.
//! Upgrades, dump and restore, and a real standby are in scripts/test_operations.sh.

use stan_sql_tests::*;

fn flows(c: &mut postgres::Client, table: &str, seed: i64) {
    c.batch_execute(&format!(
        "CREATE TABLE {table} AS SELECT * FROM stan_demo_flows(4, '3 hours', seed => {seed})"
    ))
    .unwrap();
}

fn sample(c: &mut postgres::Client, call: &str) -> Vec<String> {
    c.query(&format!("SELECT g::text FROM {call} g"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn versions_are_listed_in_one_line_pinned_and_dropped_one_at_a_time() {
    let mut c = fresh_db("ops_versions");
    flows(&mut c, "flows", 1);
    c.batch_execute(
        "SELECT stan_train('flows', model => 'v', options => '{\"epochs\": 1, \"seed\": 1}');
         SELECT stan_train('flows', model => 'v', options => '{\"epochs\": 1, \"seed\": 2}');",
    )
    .unwrap();
    let columns: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'stan.models'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        columns,
        [
            "name",
            "version",
            "owner",
            "source",
            "trained_at",
            "rows",
            "streams",
            "epochs",
            "validation_loss",
            "training_seconds",
            "device",
            "weight_bytes"
        ]
    );
    let widest = one_i64(
        &mut c,
        "SELECT max(length(m::text))::int8 FROM stan.models m",
    );
    assert!(widest < 200, "a line of stan.models is {widest} characters");
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM stan.model_details WHERE name = 'v' AND format = 2 AND codecs IS NOT NULL AND owner = 'postgres' AND source = 'public.flows'"),
        2
    );
    let call =
        |v: &str| format!("stan_generate(NULL::flows, '20 minutes', model => 'v', seed => 5{v})");
    let latest = sample(&mut c, &call(""));
    assert!(!latest.is_empty());
    assert_eq!(sample(&mut c, &call(", version => 2")), latest);
    let first = sample(&mut c, &call(", version => 1"));
    assert_ne!(first, latest, "version 1 generated what version 2 does");
    assert_eq!(sample(&mut c, &call(", version => 1")), first);
    let (code, message) = sql_error(&mut c, &format!("SELECT * FROM {}", call(", version => 3")));
    assert_eq!(code, "42704");
    assert!(message.contains("no version 3"), "{message}");

    // A version that comes out NULL is an error, never "every version".
    let (code, _) = sql_error(
        &mut c,
        "SELECT stan_drop('v', (SELECT max(version) FROM stan.models WHERE name = 'typo'))",
    );
    assert_eq!(code, "22004");
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM stan.models WHERE name = 'v'"),
        2
    );
    assert_eq!(one_i64(&mut c, "SELECT stan_drop('v', 1)"), 1);
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM stan.models WHERE name = 'v'"),
        1
    );
    let (code, _) = sql_error(&mut c, &format!("SELECT * FROM {}", call(", version => 1")));
    assert_eq!(code, "42704");
    assert_eq!(
        sample(&mut c, &call("")),
        latest,
        "the remaining version changed"
    );
    let (code, message) = sql_error(&mut c, "SELECT stan_drop('v', 7)");
    assert_eq!(
        (code.as_str(), message.contains("no version 7")),
        ("42704", true),
        "{message}"
    );
    assert_eq!(one_i64(&mut c, "SELECT stan_drop('v')"), 1);
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM stan.model_store"), 0);
}

#[test]
fn default_names_keep_schemas_apart_and_the_default_model_is_never_a_guess() {
    let mut c = fresh_db("ops_defaults");
    c.batch_execute("CREATE SCHEMA s1; CREATE SCHEMA s2;")
        .unwrap();
    flows(&mut c, "flows", 1);
    flows(&mut c, "s1.flows", 2);
    flows(&mut c, "s2.flows", 3);
    for (table, expected) in [
        ("flows", "postgres.flows"),
        ("s1.flows", "postgres.s1.flows"),
        ("s2.flows", "postgres.s2.flows"),
    ] {
        let name: String = c
            .query_one(
                &format!("SELECT stan_train('{table}', options => '{{\"epochs\": 1}}')"),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(name, expected);
    }
    let source: String = c
        .query_one(
            "SELECT source FROM stan.model_details WHERE name = 'postgres.s1.flows'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(source, "s1.flows");
    // Each row type generates from its own table's model: the same seed gives other rows.
    let a = sample(
        &mut c,
        "stan_generate(NULL::s1.flows, '20 minutes', seed => 1)",
    );
    let b = sample(
        &mut c,
        "stan_generate(NULL::s2.flows, '20 minutes', seed => 1)",
    );
    let pinned = sample(
        &mut c,
        "stan_generate(NULL::s1.flows, '20 minutes', model => 'postgres.s1.flows', seed => 1)",
    );
    assert_eq!(a, pinned);
    assert_ne!(a, b);
    // A second own model of public.flows does not displace the one named after the table...
    c.batch_execute("SELECT stan_train('flows', model => 'x', options => '{\"epochs\": 1}')")
        .unwrap();
    let named = sample(
        &mut c,
        "stan_generate(NULL::flows, '20 minutes', model => 'postgres.flows', seed => 1)",
    );
    assert_eq!(
        sample(
            &mut c,
            "stan_generate(NULL::flows, '20 minutes', seed => 1)"
        ),
        named
    );
    // ...and without it, two candidates are an error that names both.
    c.batch_execute("SELECT stan_drop('postgres.flows'); SELECT stan_train('flows', model => 'y', options => '{\"epochs\": 1}')")
        .unwrap();
    let (code, message) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '20 minutes')",
    );
    assert_eq!(code, "42725");
    assert!(
        message.contains("\"x\"") && message.contains("\"y\""),
        "{message}"
    );
}

/// One name trained on two tables of the same columns: chosen by row type, only the versions
/// trained on that table count, not the name's latest.
#[test]
fn a_row_type_takes_the_versions_of_its_own_table() {
    let mut c = fresh_db("ops_sources");
    c.batch_execute("CREATE SCHEMA a; CREATE SCHEMA b;")
        .unwrap();
    flows(&mut c, "a.t", 1);
    flows(&mut c, "b.t", 2);
    c.batch_execute(
        "SELECT stan_train('a.t', model => 'both', options => '{\"epochs\": 1}');
         SELECT stan_train('b.t', model => 'both', options => '{\"epochs\": 1}');",
    )
    .unwrap();
    let by_type = sample(&mut c, "stan_generate(NULL::a.t, '20 minutes', seed => 1)");
    let first = sample(
        &mut c,
        "stan_generate(NULL::a.t, '20 minutes', model => 'both', version => 1, seed => 1)",
    );
    let latest = sample(
        &mut c,
        "stan_generate(NULL::a.t, '20 minutes', model => 'both', seed => 1)",
    );
    assert_eq!(
        by_type, first,
        "NULL::a.t did not take the version trained on a.t"
    );
    assert_ne!(by_type, latest);
    let (code, message) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::b.t, '20 minutes', version => 1)",
    );
    assert_eq!(code, "42704");
    assert!(message.contains("no version 1 trained on b.t"), "{message}");
}

#[test]
fn a_dropped_role_owns_nothing_and_its_name_passes_nothing_on() {
    let db = "stan_test_ops_roles";
    let (owner, analyst) = ("stan_ops_roles_owner", "stan_ops_roles_analyst");
    let mut c = fresh_db("ops_roles");
    // A run stopped half-way may have left the analyst renamed.
    c.batch_execute(&format!("DROP ROLE IF EXISTS {analyst}_renamed"))
        .unwrap();
    for role in [owner, analyst] {
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;"
        ))
        .unwrap();
    }
    c.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {owner};"))
        .unwrap();
    {
        let mut o = connect_as(db, owner);
        flows(&mut o, "flows", 1);
        o.batch_execute(&format!(
            "SELECT stan_train('flows', model => 'm', options => '{{\"epochs\": 1}}');
             SELECT stan_grant('m', '{analyst}');"
        ))
        .unwrap();
    }
    assert_eq!(
        sample(
            &mut connect_as(db, analyst),
            "stan_generate(NULL::flows, '10 minutes', model => 'm', seed => 1)"
        )
        .len(),
        sample(
            &mut c,
            "stan_generate(NULL::flows, '10 minutes', model => 'm', seed => 1)"
        )
        .len()
    );
    // Both roles go (their objects first, as PostgreSQL requires) and come back under the
    // same names: new roles, which inherit nothing.
    c.batch_execute(&format!(
        "DROP OWNED BY {owner}; DROP ROLE {owner}; DROP ROLE {analyst};"
    ))
    .unwrap();
    let row = c
        .query_one(
            "SELECT owner IS NULL, trained_by FROM stan.model_details WHERE name = 'm'",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "a dropped role still owns the model");
    assert_eq!(row.get::<_, String>(1), owner);
    flows(&mut c, "flows", 1);
    c.batch_execute(&format!(
        "CREATE ROLE {owner} LOGIN; CREATE ROLE {analyst} LOGIN; GRANT SELECT ON flows TO {owner}, {analyst};"
    ))
    .unwrap();
    for role in [owner, analyst] {
        let mut r = connect_as(db, role);
        assert_eq!(one_i64(&mut r, "SELECT count(*) FROM stan.models"), 0);
        let (code, _) = sql_error(
            &mut r,
            "SELECT count(*) FROM stan_generate(NULL::flows, '10 minutes', model => 'm')",
        );
        assert_eq!(
            code, "42501",
            "{role} generated from a model of a dropped namesake"
        );
    }
    let (code, message) = sql_error(
        &mut connect_as(db, owner),
        "SELECT stan_train('flows', model => 'm', options => '{\"epochs\": 1}')",
    );
    assert_eq!(code, "42501", "{message}");
    // A superuser may still use the model and give it to a role; then the grant is made anew.
    assert!(!sample(
        &mut c,
        "stan_generate(NULL::flows, '10 minutes', model => 'm', seed => 1)"
    )
    .is_empty());
    assert_eq!(
        one_i64(&mut c, &format!("SELECT stan_reassign('m', '{owner}')")),
        1
    );
    let mut o = connect_as(db, owner);
    assert_eq!(
        one_i64(&mut o, "SELECT count(*) FROM stan.models WHERE name = 'm'"),
        1
    );
    let granted: bool = o
        .query_one(&format!("SELECT stan_grant('m', '{analyst}')"), &[])
        .unwrap()
        .get(0);
    assert!(granted, "the dropped analyst's grant still held the name");
    assert!(!sample(
        &mut connect_as(db, analyst),
        "stan_generate(NULL::flows, '10 minutes', model => 'm', seed => 1)"
    )
    .is_empty());
    // Reassigning needs membership in the new owner, as ALTER ... OWNER TO does.
    let (code, _) = sql_error(&mut o, &format!("SELECT stan_reassign('m', '{analyst}')"));
    assert_eq!(code, "42501");
    // A renamed role keeps its grant (rights follow the OID), and a revoke by the new name ends it.
    let renamed = format!("{analyst}_renamed");
    c.batch_execute(&format!("ALTER ROLE {analyst} RENAME TO {renamed}"))
        .unwrap();
    let call =
        "SELECT count(*) FROM stan_generate(NULL::flows, '10 minutes', model => 'm', seed => 1)";
    assert!(one_i64(&mut connect_as(db, &renamed), call) > 0);
    let revoked: bool = o
        .query_one(&format!("SELECT stan_revoke('m', '{renamed}')"), &[])
        .unwrap()
        .get(0);
    assert!(revoked, "the revoke by the new name found no grant");
    let (code, _) = sql_error(&mut connect_as(db, &renamed), call);
    assert_eq!(code, "42501", "a revoked, renamed role still generated");
    // A new role under the old name is a new grantee: its grant is made, and revoking it
    // leaves the renamed role's grant alone.
    assert!(o
        .query_one(&format!("SELECT stan_grant('m', '{renamed}')"), &[])
        .unwrap()
        .get::<_, bool>(0));
    c.batch_execute(&format!(
        "CREATE ROLE {analyst} LOGIN; GRANT SELECT ON flows TO {analyst}"
    ))
    .unwrap();
    assert!(o
        .query_one(&format!("SELECT stan_grant('m', '{analyst}')"), &[])
        .unwrap()
        .get::<_, bool>(0));
    assert!(o
        .query_one(&format!("SELECT stan_revoke('m', '{analyst}')"), &[])
        .unwrap()
        .get::<_, bool>(0));
    assert!(
        one_i64(&mut connect_as(db, &renamed), call) > 0,
        "revoking the new role ended the renamed one's grant"
    );
    let granted: Vec<String> = c
        .query_one(
            "SELECT granted_to::text[] FROM stan.model_details WHERE name = 'm'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(granted, std::slice::from_ref(&renamed));
    c.batch_execute(&format!(
        "REVOKE ALL ON flows FROM {analyst}; DROP ROLE {analyst}; ALTER ROLE {renamed} RENAME TO {analyst}"
    ))
    .unwrap();
}

#[test]
fn generation_assigns_no_transaction_id() {
    let db = "stan_test_ops_readonly";
    let analyst = "stan_ops_readonly_analyst";
    let mut c = fresh_db("ops_readonly");
    c.batch_execute(&format!(
        "DROP ROLE IF EXISTS {analyst}; CREATE ROLE {analyst} LOGIN;"
    ))
    .unwrap();
    flows(&mut c, "flows", 1);
    c.batch_execute(&format!(
        "SELECT stan_train('flows', options => '{{\"epochs\": 1}}');
         SELECT stan_grant('postgres.flows', '{analyst}');"
    ))
    .unwrap();
    for (who, mut client) in [
        ("superuser", connect(db)),
        ("grantee", connect_as(db, analyst)),
    ] {
        let mut t = client.transaction().unwrap();
        for sql in [
            "SELECT count(*) FROM stan_generate(NULL::flows, '10 minutes', model => 'postgres.flows', seed => 1)",
            "SELECT count(*) FROM stan_generate(NULL::flows, '10 minutes', seed => 1, version => 1)",
            "SELECT count(*) FROM stan.models",
            "SELECT count(*) FROM stan.model_details",
        ] {
            t.query_one(sql, &[]).unwrap();
            let xid: Option<i64> = t
                .query_one("SELECT txid_current_if_assigned()", &[])
                .unwrap()
                .get(0);
            assert_eq!(xid, None, "{who}: {sql} assigned a transaction id");
        }
        t.rollback().unwrap();
    }
    // The same holds in a read-only transaction, as on a standby.
    let mut t = c.build_transaction().read_only(true).start().unwrap();
    t.query_one(
        "SELECT count(*) FROM stan_generate(NULL::flows, '10 minutes', seed => 1)",
        &[],
    )
    .unwrap();
    t.rollback().unwrap();
}

#[test]
fn models_of_the_older_format_load_and_unknown_formats_are_refused() {
    let mut c = fresh_db("ops_formats");
    flows(&mut c, "flows", 1);
    c.batch_execute("SELECT stan_train('flows', model => 'f', options => '{\"epochs\": 1}')")
        .unwrap();
    let call = "stan_generate(NULL::flows, '20 minutes', model => 'f', seed => 3)";
    let current = sample(&mut c, call);
    // What stan 0.1.0 wrote for a model without the later fields: format 1 fills them in as
    // 0.1.0 read them; the current format refuses the same JSON rather than guess.
    c.batch_execute(
        "UPDATE stan.model_store SET format = 1, codecs = codecs - 'value_ranges' - 'stream_max_gaps',
                config = config - 'stream_rate'",
    )
    .unwrap();
    assert!(!sample(&mut c, call).is_empty());
    c.batch_execute("UPDATE stan.model_store SET format = 2")
        .unwrap();
    let (code, message) = sql_error(&mut c, &format!("SELECT count(*) FROM {call}"));
    assert_eq!(code, "XX001", "{message}");
    c.batch_execute("UPDATE stan.model_store SET format = 99")
        .unwrap();
    let (code, message) = sql_error(&mut c, &format!("SELECT count(*) FROM {call}"));
    assert_eq!(code, "XX001");
    assert!(
        message.contains("format 99") && message.contains("retrain"),
        "{message}"
    );
    assert!(!current.is_empty());
}

/// Another session, of a role that may see the trainer's, watches a training's phase, epoch
/// and loss in stan.progress while it runs; a role that may not sees nothing; the row goes when
/// the training ends, also when it is cancelled.
#[test]
fn another_session_watches_a_training_in_stan_progress() {
    let db = "stan_test_ops_progress";
    let (trainer, outsider) = ("stan_ops_progress_trainer", "stan_ops_progress_outsider");
    let mut c = fresh_db("ops_progress");
    for role in [trainer, outsider] {
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;"
        ))
        .unwrap();
    }
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(8, '12 hours');
         GRANT SELECT ON flows TO {trainer};"
    ))
    .unwrap();
    let mut t = connect_as(db, trainer);
    let pid: i32 = t.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let training = std::thread::spawn(move || {
        t.batch_execute(
            "SELECT stan_train('flows', model => 'watched', options => '{\"epochs\": 400, \"max_time\": 600, \"patience\": 400}')",
        )
    });
    let mut watcher = connect(db);
    let mut outsider_client = connect_as(db, outsider);
    let mut seen: Option<(String, String, i64, f64)> = None;
    let mut phases = std::collections::BTreeSet::new();
    for _ in 0..600 {
        let rows = watcher
            .query(
                "SELECT model, owner, phase, COALESCE(epoch, 0), COALESCE(loss, 'NaN'), rows FROM stan.progress WHERE pid = $1",
                &[&pid],
            )
            .unwrap();
        if let Some(r) = rows.first() {
            phases.insert(r.get::<_, String>(2));
            if r.get::<_, i64>(3) >= 2 {
                seen = Some((r.get(0), r.get(1), r.get(3), r.get(4)));
                assert!(r.get::<_, Option<i64>>(5).unwrap_or(0) > 0, "no row count");
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (model, owner, epoch, loss) =
        seen.expect("the training never showed two epochs in stan.progress");
    assert_eq!((model.as_str(), owner.as_str()), ("watched", trainer));
    assert!(epoch >= 2 && loss.is_finite(), "epoch {epoch}, loss {loss}");
    assert!(phases.contains("training"), "{phases:?}");
    assert_eq!(
        one_i64(&mut outsider_client, "SELECT count(*) FROM stan.progress"),
        0,
        "a role without the trainer's privileges saw its training"
    );
    let cancelled: bool = watcher
        .query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(cancelled);
    let outcome = training.join().unwrap();
    assert_eq!(
        outcome
            .unwrap_err()
            .as_db_error()
            .map(|e| e.code().code().to_string()),
        Some("57014".to_string())
    );
    // A new transaction takes a new snapshot of the statuses.
    let left = one_i64(
        &mut watcher,
        &format!("SELECT count(*) FROM stan.progress WHERE pid = {pid}"),
    );
    assert_eq!(left, 0, "a cancelled training stayed in stan.progress");
    assert_eq!(
        one_i64(&mut watcher, "SELECT count(*) FROM stan.model_store"),
        0
    );
}
