//! Synthetic-only access with real roles: a trainer under row-level security, an analyst with a
//! grant who can generate and do nothing else, a hijack attempt through search_path, revocation,
//! and the max_rows sample.

use stan_sql_tests::*;

const TRAINER: &str = "stan_t_trainer";
const ANALYST: &str = "stan_t_analyst";
const OTHER: &str = "stan_t_other";

fn roles(c: &mut postgres::Client, db: &str) {
    for role in [TRAINER, ANALYST, OTHER] {
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;"
        ))
        .unwrap();
    }
    c.batch_execute(&format!(
        "GRANT CREATE ON DATABASE {db} TO {ANALYST}, {OTHER}"
    ))
    .unwrap();
}

/// Runs `sql` as `role` (SET ROLE on the superuser's connection) and expects `code`, with a
/// message that contains `culprit`.
fn denied(c: &mut postgres::Client, role: &str, sql: &str, code: &str, culprit: &str) {
    c.batch_execute(&format!("SET ROLE {role}")).unwrap();
    let (got, msg) = sql_error(c, sql);
    c.batch_execute("RESET ROLE").unwrap();
    assert_eq!(got, code, "{role}: {sql}: {msg}");
    assert!(msg.contains(culprit), "{role}: {sql}: {msg}");
}

fn as_role<T>(
    c: &mut postgres::Client,
    role: &str,
    f: impl FnOnce(&mut postgres::Client) -> T,
) -> T {
    c.batch_execute(&format!("SET ROLE {role}")).unwrap();
    let out = f(c);
    c.batch_execute("RESET ROLE").unwrap();
    out
}

#[test]
fn synthetic_only_access_with_real_roles() {
    let db = "stan_test_access";
    let mut c = fresh_db("access");
    roles(&mut c, db);
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(8, '8 hours');
         GRANT SELECT ON flows TO {TRAINER};
         ALTER TABLE flows ENABLE ROW LEVEL SECURITY;
         CREATE POLICY trainer_sees_no_tcp ON flows FOR SELECT TO {TRAINER} USING (pr <> 'TCP');
         CREATE TABLE other_flows AS SELECT * FROM flows;
         ALTER TABLE other_flows OWNER TO {OTHER};"
    ))
    .unwrap();
    let visible = one_i64(&mut c, "SELECT count(*) FROM flows WHERE pr <> 'TCP'");
    assert!(visible < one_i64(&mut c, "SELECT count(*) FROM flows"));

    // The RLS-restricted trainer gets a model of only the rows it sees.
    as_role(&mut c, TRAINER, |c| {
        c.batch_execute(&format!(
            "SELECT stan_train('flows', model => 'f', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 2}}')"
        ))
        .unwrap();
        let (rows, owner, has_codecs): (i64, String, bool) = {
            let r = c
                .query_one("SELECT rows, owner::text, codecs IS NOT NULL FROM stan.model_details WHERE name = 'f'", &[])
                .unwrap();
            (r.get(0), r.get(1), r.get(2))
        };
        assert_eq!((rows, owner.as_str(), has_codecs), (visible, TRAINER, true));
        let tcp = one_i64(
            c,
            "SELECT count(*) FROM stan_generate(NULL::flows, '4 hours', model => 'f', seed => 1) WHERE pr = 'TCP'",
        );
        assert_eq!(tcp, 0, "a model of rows without TCP generated TCP");
    });
    as_role(&mut c, OTHER, |c| {
        c.batch_execute(
            "SELECT stan_train('other_flows', model => 'g', options => '{\"epochs\": 1}')",
        )
        .unwrap()
    });

    // Before a grant the analyst sees no model and can generate nothing.
    let generate_f =
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'f', seed => 1)";
    denied(&mut c, ANALYST, generate_f, "42501", "\"f\"");
    assert_eq!(
        as_role(&mut c, ANALYST, |c| one_i64(
            c,
            "SELECT count(*) FROM stan.models"
        )),
        0
    );
    let grant = format!("SELECT stan_grant('f', '{ANALYST}')");
    assert!(as_role(&mut c, TRAINER, |c| c
        .query_one(grant.as_str(), &[])
        .unwrap()
        .get::<_, bool>(0)));
    assert!(
        !as_role(&mut c, TRAINER, |c| c
            .query_one(grant.as_str(), &[])
            .unwrap()
            .get::<_, bool>(0)),
        "a second grant reports that nothing changed"
    );

    // With the grant: generation by name and by row type, and the model without its codecs.
    as_role(&mut c, ANALYST, |c| {
        assert!(one_i64(c, generate_f) > 0);
        assert!(
            one_i64(
                c,
                "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', seed => 1)"
            ) > 0
        );
        let r = c
            .query_one("SELECT count(*), bool_and(codecs IS NULL), bool_and(granted_to IS NULL), min(owner::text) FROM stan.model_details", &[])
            .unwrap();
        assert_eq!(
            (
                r.get::<_, i64>(0),
                r.get::<_, bool>(1),
                r.get::<_, bool>(2),
                r.get::<_, String>(3)
            ),
            (1, true, true, TRAINER.to_string())
        );
    });
    // ... and nothing else.
    for (sql, code, culprit) in [
        ("SELECT weights FROM stan.model_store", "42501", "model_store"),
        ("SELECT codecs FROM stan.model_store", "42501", "model_store"),
        ("SELECT * FROM stan.model_grants", "42501", "model_grants"),
        ("UPDATE stan.model_store SET owner = current_user::regrole", "42501", "model_store"),
        ("DELETE FROM stan.model_grants", "42501", "model_grants"),
        ("SELECT count(*) FROM flows", "42501", "flows"),
        ("SELECT stan_train('flows', model => 'mine')", "42501", "flows"),
        ("SELECT stan_drop('f')", "42501", "owner of model \"f\""),
        // Evaluation reads the training rows: owner only.
        ("SELECT * FROM stan_evaluate('f', 'flows')", "42501", "owner of model \"f\""),
        ("SELECT stan_report('f', 'flows')", "42501", "owner of model \"f\""),
        ("SELECT stan_grant('f', current_user::regrole)", "42501", "owner of model \"f\""),
        ("SELECT stan_revoke('f', current_user::regrole)", "42501", "owner of model \"f\""),
        ("SELECT count(*) FROM stan_generate(NULL::other_flows, '1 hour', model => 'g')", "42501", "\"g\""),
        // The owner's name is taken: no one else adds versions to it.
        (
            "CREATE SCHEMA IF NOT EXISTS own; CREATE TABLE IF NOT EXISTS own.mine AS SELECT * FROM stan_demo_flows(2, '2 hours');
             SELECT stan_train('own.mine', model => 'f')",
            "42501",
            "\"f\" belongs to",
        ),
    ] {
        denied(&mut c, ANALYST, sql, code, culprit);
    }
    denied(&mut c, OTHER, "SELECT stan_drop('f')", "42501", TRAINER);
    let (code, msg) = sql_error(
        &mut c,
        &format!("SELECT stan_grant('f', 'no_such_role_{ANALYST}')"),
    );
    assert_eq!(code, "42704", "{msg}");
    assert!(msg.contains("no_such_role"), "{msg}");

    // A hijack attempt: the analyst puts its own operators and functions first on search_path
    // (its own, and the trainer's); none of them may run inside stan's functions.
    c.batch_execute(&format!(
        "SET ROLE {ANALYST};
         CREATE SCHEMA evil;
         CREATE TABLE evil.log (what text);
         CREATE FUNCTION evil.hit(what text) RETURNS boolean LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.log VALUES (what || ' as ' || current_user); RETURN true; END $$;
         CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.hit('text = text') $$;
         CREATE FUNCTION evil.int_eq(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.hit('int = int') $$;
         CREATE FUNCTION evil.oid_eq(oid, oid) RETURNS boolean LANGUAGE sql AS $$ SELECT evil.hit('oid = oid') $$;
         CREATE FUNCTION evil.minus(inet, inet) RETURNS bigint LANGUAGE sql AS $$ SELECT evil.hit('inet - inet')::int::bigint $$;
         CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
         CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.int_eq);
         CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oid_eq);
         CREATE OPERATOR evil.- (LEFTARG = inet, RIGHTARG = inet, FUNCTION = evil.minus);
         CREATE FUNCTION evil.pg_has_role(oid, oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
         CREATE FUNCTION evil.jsonb_populate_record(anyelement, jsonb) RETURNS anyelement
           LANGUAGE plpgsql AS $$ BEGIN INSERT INTO evil.log VALUES ('populate'); RETURN $1; END $$;
         GRANT USAGE ON SCHEMA evil TO PUBLIC;
         GRANT INSERT ON evil.log TO PUBLIC;
         RESET ROLE;
         ALTER ROLE {ANALYST} SET search_path = evil, pg_catalog, public;
         ALTER ROLE {TRAINER} SET search_path = evil, pg_catalog, public;"
    ))
    .unwrap();
    let mut analyst = connect_as(db, ANALYST);
    // The hijack is live: the analyst's unqualified SQL does run its operator ...
    analyst
        .batch_execute("SELECT 1 WHERE 'a'::text = 'b'::text")
        .unwrap();
    assert!(one_i64(&mut c, "SELECT count(*) FROM evil.log") > 0);
    c.batch_execute("TRUNCATE evil.log").unwrap();
    // ... but not inside stan's functions.
    assert!(one_i64(&mut analyst, generate_f) > 0);
    for sql in [
        "SELECT count(*) FROM stan_generate(NULL::other_flows, '1 hour', model => 'g')",
        "SELECT stan_drop('f')",
        "SELECT stan_grant('g', current_user::regrole)",
    ] {
        let (code, msg) = sql_error(&mut analyst, sql);
        assert_eq!(code, "42501", "{sql} through a hijacked search_path: {msg}");
    }
    let mut trainer = connect_as(db, TRAINER);
    trainer
        .batch_execute(&format!(
            "SELECT stan_train('flows', model => 'f', stream_by => 'sa', options => '{{\"epochs\": 1}}');
             SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'f', seed => 2);
             SELECT stan_grant('f', '{OTHER}'); SELECT stan_revoke('f', '{OTHER}');"
        ))
        .unwrap();
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM evil.log"),
        0,
        "a user's operator or function ran inside stan"
    );

    // Revocation applies to the analyst's next call, in its open session.
    assert!(trainer
        .query_one(
            format!("SELECT stan_revoke('f', '{ANALYST}')").as_str(),
            &[]
        )
        .unwrap()
        .get::<_, bool>(0));
    let (code, msg) = sql_error(&mut analyst, generate_f);
    assert_eq!(code, "42501", "{msg}");
    let (code, msg) = sql_error(
        &mut analyst,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour')",
    );
    assert_eq!(code, "42704", "{msg}");
    assert_eq!(one_i64(&mut analyst, "SELECT count(*) FROM stan.models"), 0);

    // A trainer's stream_by expression runs with the trainer's rights only: a superuser who
    // evaluates the model does not run it (per-stream figures then see one stream).
    c.batch_execute(&format!(
        "GRANT CREATE ON DATABASE {db} TO {TRAINER};
         SET ROLE {TRAINER};
         CREATE SCHEMA tr;
         CREATE TABLE tr.log (who text);
         CREATE FUNCTION tr.key(inet) RETURNS text LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO tr.log VALUES (current_user); RETURN host($1); END $$;
         SELECT stan_train('flows', model => 'k', stream_by => 'tr.key(sa)', options => '{{\"epochs\": 1}}');
         RESET ROLE;"
    ))
    .unwrap();
    assert!(one_i64(&mut c, "SELECT count(*) FROM stan_evaluate('k', 'flows')") > 0);
    let ran_as = |c: &mut postgres::Client, who: &str| {
        one_i64(
            c,
            &format!("SELECT count(*) FROM tr.log WHERE who = '{who}'"),
        )
    };
    assert!(
        ran_as(&mut c, TRAINER) > 0,
        "the expression ran while training"
    );
    assert_eq!(
        ran_as(&mut c, "postgres"),
        0,
        "a trainer's SQL ran as the superuser"
    );
    c.batch_execute(&format!(
        "SET ROLE {TRAINER}; SELECT count(*) FROM stan_evaluate('k', 'flows'); RESET ROLE;"
    ))
    .unwrap();
    assert_eq!(ran_as(&mut c, "postgres"), 0);
    assert_eq!(one_i64(&mut c, "SELECT stan_drop('k')"), 1);

    // The owner drops its model and the model's grants go with it; a superuser may drop any.
    c.batch_execute(&format!(
        "SET ROLE {TRAINER}; SELECT stan_grant('f', '{ANALYST}'); RESET ROLE;"
    ))
    .unwrap();
    assert_eq!(
        trainer
            .query_one("SELECT stan_drop('f')", &[])
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM stan.model_grants"), 0);
    assert_eq!(one_i64(&mut c, "SELECT stan_drop('g')"), 1);
    drop((analyst, trainer));
    c.batch_execute(&format!(
        "ALTER ROLE {ANALYST} RESET search_path; ALTER ROLE {TRAINER} RESET search_path;"
    ))
    .unwrap();
}

#[test]
fn max_rows_reads_a_sample_of_whole_streams() {
    let mut c = fresh_db("max_rows");
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(12, '6 hours');
         SELECT stan_train('flows', model => 'sampled', stream_by => $${SIM_HOST}$$,
                           options => '{{\"epochs\": 1, \"max_rows\": 800}}');
         SELECT stan_train('flows', model => 'one_stream', options => '{{\"epochs\": 1, \"max_rows\": 300}}');"
    ))
    .unwrap();
    let total = one_i64(&mut c, "SELECT count(*) FROM flows");
    let r = c
        .query_one(
            "SELECT rows, streams FROM stan.models WHERE name = 'sampled'",
            &[],
        )
        .unwrap();
    let (rows, streams): (i64, i32) = (r.get(0), r.get(1));
    let all_streams = one_i64(
        &mut c,
        &format!("SELECT count(DISTINCT {SIM_HOST}) FROM flows"),
    );
    assert!(
        total > 800 && rows <= 800 && rows > 400,
        "{rows} of {total} rows"
    );
    assert!(
        (streams as i64) < all_streams && streams > 0,
        "{streams} of {all_streams} streams"
    );
    // Whole streams: the rows read are exactly those of the chosen streams, so some stream has
    // all of its rows in the model (checked through the row count being a sum of stream sizes).
    let sums_of_streams = one_i64(
        &mut c,
        &format!(
            "WITH RECURSIVE s AS (SELECT count(*) AS n FROM flows GROUP BY {SIM_HOST}),
                  sums AS (SELECT 0::bigint AS total UNION SELECT sums.total + s.n FROM sums, s
                           WHERE sums.total + s.n <= 800)
             SELECT count(*) FROM sums WHERE total = {rows}"
        ),
    );
    assert_eq!(
        sums_of_streams, 1,
        "{rows} rows is not a sum of whole streams"
    );
    // One stream larger than max_rows: its first max_rows rows in time.
    let first = one_i64(
        &mut c,
        "SELECT rows FROM stan.models WHERE name = 'one_stream'",
    );
    assert!(
        (250..=300).contains(&first),
        "{first} rows for max_rows 300"
    );
    // exact_high_ports: ICMP echo (dp 2048) gets a class of its own and comes back exactly.
    c.batch_execute(
        "SELECT stan_train('flows', model => 'ports', options => '{\"epochs\": 1, \"exact_high_ports\": true}');
         CREATE TABLE fake AS SELECT * FROM stan_generate(NULL::flows, '6 hours', model => 'ports', seed => 1);",
    )
    .unwrap();
    let frequent = one_i64(&mut c, "SELECT count(*) FROM stan.model_details, jsonb_array_elements(codecs->'columns') col WHERE name = 'ports' AND col->>'name' = 'dp' AND col->'frequent' @> '[2048]'");
    assert_eq!(frequent, 1, "dp 2048 is a frequent port");
    let off_by_bin = one_i64(
        &mut c,
        "SELECT count(*) FROM fake WHERE dp BETWEEN 2000 AND 2099 AND dp <> 2048",
    );
    assert_eq!(
        off_by_bin, 0,
        "ports of the 2000-2099 bin come back as 2048 exactly"
    );
    assert!(one_i64(&mut c, "SELECT count(*) FROM fake WHERE dp = 2048") > 0);
    // The simulator's ICMP flows are all echo requests; a port is drawn among those seen with
    // the protocol already drawn, so after one epoch too no ICMP flow has another port.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM fake WHERE pr = 'ICMP' AND dp <> 2048"
        ),
        0
    );
    // stream_max_gap (a default): each stream's gaps are capped at the longest of the training
    // stream it follows. Every host but training stream 0's falls silent for two hours, so the
    // table's longest gap (which caps every gap anyway) is far above stream 0's; a generated
    // stream 0 never waits longer than stream 0 did.
    c.batch_execute(&format!(
        "SELECT stan_train('flows', model => 'probe', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 1}}');
         CREATE TABLE gappy AS SELECT * FROM flows;
         DELETE FROM gappy
          WHERE ({SIM_HOST}) <> '0.0.0.0'::inet + (SELECT (codecs->'stream_addresses'->>0)::int8 FROM stan.model_details WHERE name = 'probe')
            AND te >= (SELECT min(te) FROM flows) + interval '1 hour'
            AND te < (SELECT min(te) FROM flows) + interval '3 hours';
         SELECT stan_train('gappy', model => 'gappy', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 1}}');"
    ))
    .unwrap();
    let longest = |c: &mut postgres::Client, which: &str| {
        one_f64(c, &format!("SELECT {which} FROM stan.model_details, jsonb_array_elements_text(codecs->'stream_max_gaps') WITH ORDINALITY g(gap, i) WHERE name = 'gappy'"))
    };
    let first = longest(&mut c, "max(gap::float8) FILTER (WHERE i = 1)");
    assert!(
        longest(&mut c, "max(gap::float8)") > 3_600.0 && first < 3_600.0,
        "stream 0 waited {first} s at most, the others two hours"
    );
    let generated = one_f64(
        &mut c,
        "SELECT max(g) FROM (SELECT extract(epoch FROM te - lag(te) OVER (ORDER BY te))::float8 AS g
           FROM stan_generate(NULL::gappy, '1 day', model => 'gappy', seed => 1, streams => 1)) s",
    );
    assert!(
        generated <= first + 1.0,
        "a generated gap of {generated} s, the stream's longest in training {first} s"
    );
    // two_day_clock: six hours of rows leave most of the day unseen, so the time of day cycles
    // over two days; the model stores that clock and generates with it. Without it: daily.
    c.batch_execute(
        "SELECT stan_train('flows', model => 'clocked', options => '{\"epochs\": 1, \"two_day_clock\": true}');
         CREATE TABLE fake_clocked AS SELECT * FROM stan_generate(NULL::flows, '6 hours', model => 'clocked', seed => 1);",
    )
    .unwrap();
    let period = |c: &mut postgres::Client, model: &str| {
        one_f64(c, &format!("SELECT (codecs->'columns'->0->'clock'->>'period')::float8 FROM stan.model_details WHERE name = '{model}'"))
    };
    assert_eq!(period(&mut c, "clocked"), 172_800.0);
    assert_eq!(period(&mut c, "ports"), 86_400.0);
    assert!(one_i64(&mut c, "SELECT count(*) FROM fake_clocked") > 0);
    let (code, msg) = sql_error(
        &mut c,
        "SELECT stan_train('flows', options => '{\"max_rows\": 10}')",
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("max_rows"), "{msg}");
}
