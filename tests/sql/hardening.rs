//! Tried as an attacker would: a non-superuser trainer plants code where stan reads or builds
//! rows (a view, a cast, a domain check, a stream expression) and waits for a superuser to
//! evaluate or generate; any role tries to exhaust memory, pin a backend, squat a name or hold
//! a lock; bad arguments get clean errors. Each route must leave the trainer with nothing.

use stan_sql_tests::*;
use std::time::{Duration, Instant};

/// Roles are per test: tests run in parallel and roles are the cluster's.
fn trainer(test: &str) -> String {
    format!("stan_{test}_trainer")
}
fn squatter(test: &str) -> String {
    format!("stan_{test}_squatter")
}

/// A fresh database with a trainer that owns `flows` and a trap: `public.grab()` tries to make
/// the trainer a superuser (first RESET ROLE, then ALTER ROLE) and logs who it ran as.
fn setup(test: &str) -> postgres::Client {
    let db = format!("stan_test_{test}");
    let (t, sq) = (trainer(test), squatter(test));
    let mut c = fresh_db(test);
    for role in [&t, &sq] {
        // The database of an earlier run, and everything the role owned there, is gone.
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;"
        ))
        .unwrap_or_else(|e| panic!("{role}: {e}"));
    }
    c.batch_execute(&format!(
        "GRANT CREATE ON DATABASE {db} TO {t}, {sq};
         GRANT CREATE ON SCHEMA public TO {t}, {sq};
         CREATE TABLE public.loot (who text, how text);
         GRANT INSERT, SELECT ON public.loot TO PUBLIC;
         SET ROLE {t};
         CREATE TABLE flows AS SELECT * FROM stan_demo_flows(4, '4 hours');
         CREATE TABLE holdout AS SELECT * FROM stan_demo_flows(4, '1 hour', seed => 2, start => '2016-04-11 04:00');
         CREATE FUNCTION public.grab(how text) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN
             BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN others THEN NULL; END;
             BEGIN EXECUTE 'ALTER ROLE {t} SUPERUSER'; EXCEPTION WHEN others THEN NULL; END;
             INSERT INTO public.loot VALUES (current_user, how);
             RETURN true;
         END $f$;
         RESET ROLE;"
    ))
    .unwrap();
    c
}

/// The trainer gained nothing, and the superuser's session is still the superuser's.
fn nothing_gained(c: &mut postgres::Client, t: &str) {
    let row = c
        .query_one(
            &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{t}'"),
            &[],
        )
        .unwrap();
    assert!(!row.get::<_, bool>(0), "the trainer became a superuser");
    let row = c
        .query_one("SELECT current_user::text, session_user::text", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("postgres".to_string(), "postgres".to_string())
    );
    let ran_as_other: i64 = one_i64(
        c,
        &format!("SELECT count(*) FROM public.loot WHERE who <> '{t}'"),
    );
    assert_eq!(ran_as_other, 0, "the trainer's code ran as another role");
}

#[test]
fn a_view_over_the_training_rows_runs_as_its_trainer_when_a_superuser_evaluates() {
    let mut c = setup("h_view");
    let t = trainer("h_view");
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE VIEW flows_v AS SELECT * FROM flows WHERE public.grab('view');
         SELECT stan_train('flows_v', model => 'v', options => '{{\"epochs\": 1}}');
         RESET ROLE;"
    ))
    .unwrap();
    let ran = one_i64(
        &mut c,
        "SELECT count(*) FROM public.loot WHERE how = 'view'",
    );
    assert!(
        ran > 0,
        "the view's function never ran: the test proves nothing"
    );
    c.batch_execute("TRUNCATE public.loot").unwrap();
    // The superuser evaluates against a holdout of its own: the training rows are re-read.
    c.batch_execute("CREATE TABLE su_holdout AS SELECT * FROM holdout")
        .unwrap();
    let baseline: Option<f64> = c
        .query_one(
            "SELECT \"real\" FROM stan_evaluate('v', 'su_holdout') WHERE metric = 'mean_jsd'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(baseline.is_some(), "the training rows were not read back");
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'view'"
        ) > 0,
        "the view was not read"
    );
    nothing_gained(&mut c, &t);
}

#[test]
fn a_cast_to_text_the_trainer_created_never_runs() {
    let mut c = setup("h_cast");
    let t = trainer("h_cast");
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE TYPE public.proto AS ENUM ('TCP', 'UDP', 'ICMP');
         CREATE FUNCTION public.proto_text(p public.proto) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN PERFORM public.grab('cast'); RETURN 'X' || p::name; END $f$;
         CREATE CAST (public.proto AS text) WITH FUNCTION public.proto_text(public.proto);
         CREATE TABLE typed AS SELECT te, td, sa, da, sp, dp, pr::public.proto AS pr, flg, pkt, byt FROM flows;
         SELECT stan_train('typed', model => 'typed', options => '{{\"epochs\": 1}}');
         RESET ROLE;"
    ))
    .unwrap();
    // The cast is real: any ::text of the type would run it.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM pg_cast WHERE castsource = 'public.proto'::regtype AND casttarget = 'text'::regtype"
        ),
        1
    );
    c.batch_execute("TRUNCATE public.loot").unwrap();
    c.batch_execute(
        "CREATE TABLE su_holdout (LIKE typed);
         INSERT INTO su_holdout SELECT te, td, sa, da, sp, dp, pr::public.proto, flg, pkt, byt FROM holdout;",
    )
    .unwrap();
    let rows = one_i64(
        &mut c,
        "SELECT count(*) FROM stan_evaluate('typed', 'su_holdout')",
    );
    assert!(rows > 0);
    let protocols = one_i64(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::typed, '1 hour', seed => 1) WHERE pr::name NOT IN ('TCP', 'UDP', 'ICMP')",
    );
    assert_eq!(protocols, 0, "values came back through the user's cast");
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM public.loot"), 0);
    nothing_gained(&mut c, &t);
}

#[test]
fn row_types_with_checked_domains_are_refused() {
    let mut c = setup("h_domain");
    let t = trainer("h_domain");
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE DOMAIN public.note AS text;
         CREATE TABLE noted AS SELECT f.*, NULL::public.note AS remark FROM flows f;
         SELECT stan_train('noted', model => 'noted', columns => '{{\"remark\": \"skip\"}}', options => '{{\"epochs\": 1}}');
         RESET ROLE;"
    ))
    .unwrap();
    // Planted after training, by the trainer's own session (under the superuser's SET ROLE,
    // validating the constraint would run it with the superuser's rights): generation must
    // not run it.
    connect_as("stan_test_h_domain", &t)
        .batch_execute("ALTER DOMAIN public.note ADD CONSTRAINT trap CHECK (public.grab('domain'))")
        .unwrap();
    c.batch_execute("TRUNCATE public.loot").unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::noted, '1 hour', seed => 1)",
    );
    assert_eq!(code, "0A000", "{msg}");
    assert!(msg.contains("\"remark\"") && msg.contains("note"), "{msg}");
    // An array of a checked domain inside a composite type is found too, at training.
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE TYPE public.wrapper AS (notes public.note[]);
         CREATE TABLE wrapped AS SELECT f.*, NULL::public.wrapper AS w FROM flows f;
         RESET ROLE;"
    ))
    .unwrap();
    c.batch_execute(&format!("SET ROLE {t}")).unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT stan_train('wrapped', model => 'wrapped', columns => '{\"w\": \"skip\"}')",
    );
    c.batch_execute("RESET ROLE").unwrap();
    assert_eq!(code, "0A000", "{msg}");
    assert!(msg.contains("\"w\""), "{msg}");
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM public.loot"), 0);
    nothing_gained(&mut c, &t);
}

#[test]
fn a_stream_expression_cannot_reset_role_after_a_superusers_set_role() {
    let mut c = setup("h_stream");
    let t = trainer("h_stream");
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE FUNCTION public.host_of(a inet, b inet) RETURNS inet LANGUAGE plpgsql AS $f$
         BEGIN PERFORM public.grab('stream_by'); RETURN CASE WHEN a << '10.1.0.0/16' THEN a ELSE b END; END $f$;
         SELECT stan_train('flows', model => 's', stream_by => 'public.host_of(sa, da)', options => '{{\"epochs\": 1}}');
         RESET ROLE;
         TRUNCATE public.loot;"
    ))
    .unwrap();
    // As the superuser itself: the expression runs only on the training rows, as the trainer.
    assert!(one_i64(&mut c, "SELECT count(*) FROM stan_evaluate('s', 'holdout')") > 0);
    nothing_gained(&mut c, &t);
    // After SET ROLE to the trainer: it also runs on the holdout, and still cannot get out.
    c.batch_execute(&format!("SET ROLE {t}")).unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM stan_evaluate('s', 'holdout')", &[])
        .unwrap()
        .get(0);
    assert!(rows > 0);
    assert_eq!(
        c.query_one("SELECT current_user::text", &[])
            .unwrap()
            .get::<_, String>(0),
        t
    );
    c.batch_execute("RESET ROLE").unwrap();
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'stream_by'"
        ) > 0,
        "the stream expression never ran: the test proves nothing"
    );
    nothing_gained(&mut c, &t);
}

/// Peak resident memory of a backend, from /proc (the server runs on this machine).
fn peak_rss_mb(c: &mut postgres::Client) -> f64 {
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[test]
fn memory_is_bounded_and_long_calls_answer_cancel() {
    let mut c = setup("h_bounds");
    let t = trainer("h_bounds");
    // The simulator streams host by host: 200 hosts over 3 days stay near a small one's peak
    // (PostgreSQL sorts and stores the rows within work_mem, spilling the rest to disk). Held
    // in memory at once, their 660k flows alone would take over 60 MB.
    one_i64(&mut c, "SELECT count(*) FROM stan_demo_flows(2, '1 hour')");
    let small = peak_rss_mb(&mut c);
    let rows = one_i64(
        &mut c,
        "SELECT count(*) FROM stan_demo_flows(200, '3 days')",
    );
    let large = peak_rss_mb(&mut c);
    assert!(rows > 600_000, "{rows} rows");
    assert!(
        large - small < 40.0,
        "peak memory grew from {small:.0} MB to {large:.0} MB for {rows} rows"
    );
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_demo_flows(10000, '31 days')",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("host-days"), "{msg}");

    // Wide tables are refused before any fitting.
    let cols: Vec<String> = (0..70)
        .map(|i| format!("(random() * 1000)::int AS c{i}"))
        .collect();
    c.batch_execute(&format!(
        "CREATE TABLE wide AS SELECT now() - g * interval '1 s' AS t, {} FROM generate_series(1, 300) g",
        cols.join(", ")
    ))
    .unwrap();
    let (code, msg) = sql_error(&mut c, "SELECT stan_train('wide', model => 'wide')");
    assert_eq!(code, "54000", "{msg}");
    assert!(
        msg.contains("71 columns") || msg.contains("70 columns"),
        "{msg}"
    );

    // Streams and rows per call are bounded by superuser-only settings.
    c.batch_execute("SELECT stan_train('flows', model => 'b', options => '{\"epochs\": 1}')")
        .unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'b', streams => 100000)",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("stan.max_streams"), "{msg}");
    c.batch_execute("SET stan.max_rows_per_call = 50").unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'b', seed => 1)",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("stan.max_rows_per_call"), "{msg}");
    c.batch_execute("RESET stan.max_rows_per_call; SET stan.max_training_rows = 100")
        .unwrap();
    let (code, msg) = sql_error(&mut c, "SELECT stan_train('flows', model => 'b2')");
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("max_rows"), "{msg}");
    c.batch_execute("RESET stan.max_training_rows").unwrap();
    for setting in [
        "stan.threads = 4",
        "stan.max_streams = 100000",
        "stan.max_rows_per_call = 2000000000",
        "stan.max_training_rows = 2000000000",
    ] {
        c.batch_execute(&format!("SET ROLE {t}")).unwrap();
        let (code, msg) = sql_error(&mut c, &format!("SET {setting}"));
        c.batch_execute("RESET ROLE").unwrap();
        assert_eq!(code, "42501", "{setting}: {msg}");
    }

    // A long warm-up answers statement_timeout and pg_cancel_backend.
    let warmup = "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'b', warmup => '300 days', streams => 50)";
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let started = Instant::now();
    let (code, msg) = sql_error(&mut c, warmup);
    let took = started.elapsed();
    c.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(code, "57014", "{msg}");
    assert!(
        took < Duration::from_secs(3),
        "warm-up stopped after {took:?}"
    );
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let canceller = std::thread::spawn(move || {
        let mut other = connect("stan_test_h_bounds");
        std::thread::sleep(Duration::from_millis(1000));
        let sent = Instant::now();
        other
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .unwrap();
        sent
    });
    let (code, msg) = sql_error(&mut c, warmup);
    let stopped = Instant::now();
    let sent = canceller.join().unwrap();
    assert_eq!(code, "57014", "{msg}");
    assert!(
        stopped.duration_since(sent) < Duration::from_secs(2),
        "stopped {:?} after the cancel",
        stopped.duration_since(sent)
    );
    // The same session still works.
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'b', seed => 1)"
        ) > 0
    );
}

#[test]
fn bad_arguments_get_clean_errors_and_change_nothing() {
    let mut c = setup("h_args");

    c.batch_execute("SELECT stan_train('flows', model => 'a', options => '{\"epochs\": 1}')")
        .unwrap();
    for (sql, code, culprit) in [
        ("SELECT stan_grant('a', '-')", "42704", "role"),
        ("SELECT stan_grant('a', 987654321::oid::regrole)", "42704", "987654321"),
        (
            "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'a', start => 'infinity')",
            "22023",
            "start",
        ),
        (
            "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'a', start => '9999-12-31 23:30')",
            "22023",
            "start",
        ),
        (
            "SELECT count(*) FROM stan_demo_flows(2, '1 hour', start => 'infinity')",
            "22023",
            "start",
        ),
        ("SELECT stan_train('pg_class_oid_index', model => 'x')", "42809", "pg_class_oid_index"),
    ] {
        let (got, msg) = sql_error(&mut c, sql);
        assert_eq!(got, code, "{sql}: {msg}");
        assert!(msg.contains(culprit), "{sql}: {msg}");
        assert!(!msg.contains("panicked") && !msg.contains("backtrace"), "{sql}: {msg}");
    }
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM stan.model_grants"), 0);
    // A float column that holds ±1e308 is refused, naming the column, and nothing is stored.
    c.batch_execute(
        "CREATE TABLE huge AS SELECT te, CASE WHEN pkt % 2 = 0 THEN 1e308 ELSE -1e308 END::float8 AS x FROM flows",
    )
    .unwrap();
    let (got, msg) = sql_error(
        &mut c,
        "SELECT stan_train('huge', model => 'huge', options => '{\"epochs\": 1}')",
    );
    assert_eq!(got, "22000", "{msg}");
    assert!(msg.contains("\"x\""), "{msg}");
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM stan.models WHERE name = 'huge'"
        ),
        0
    );
}

#[test]
fn no_role_can_squat_a_default_model_name_or_hold_its_lock() {
    let mut c = setup("h_squat");
    let (t, sq) = (trainer("h_squat"), squatter("h_squat"));
    // The squatter tries the name the trainer's stan_train('flows') will use.
    c.batch_execute(&format!(
        "SET ROLE {sq};
         CREATE TABLE mine AS SELECT * FROM stan_demo_flows(2, '2 hours');
         RESET ROLE;"
    ))
    .unwrap();
    c.batch_execute(&format!("SET ROLE {sq}")).unwrap();
    let (code, msg) = sql_error(
        &mut c,
        &format!("SELECT stan_train('mine', model => '{t}.flows')"),
    );
    c.batch_execute("RESET ROLE").unwrap();
    assert_eq!(code, "42501", "{msg}");
    // And holds every SQL advisory lock the name could map to.
    let mut squatting = connect_as("stan_test_h_squat", &sq);
    squatting
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('stan.model:{t}.flows'));
             SELECT pg_advisory_xact_lock(hashtext('stan.model:flows'));"
        ))
        .unwrap();
    let mut training = connect_as("stan_test_h_squat", &t);
    let name: String = training
        .query_one(
            "SELECT stan_train('flows', options => '{\"epochs\": 1}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(name, format!("{t}.flows"));
    squatting.batch_execute("ROLLBACK").unwrap();
}

/// A setting the trainer's code changes inside a restricted read (even with set_config(...,
/// false), which outlives a function's SET) is undone when the read ends: the evaluating
/// superuser's search_path, and so which functions its next queries call, stay its own.
#[test]
fn settings_changed_inside_a_read_do_not_outlive_it() {
    let mut c = setup("h_settings");
    let t = trainer("h_settings");
    c.batch_execute(&format!(
        "SET ROLE {t};
         CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN PERFORM public.grab('shadow'); RETURN pg_catalog.upper($1); END $f$;
         CREATE FUNCTION public.redirect(int) RETURNS int LANGUAGE sql AS
           $f$ SELECT pg_catalog.length(pg_catalog.set_config('search_path', 'public, pg_catalog', false)) * 0 + $1 $f$;
         CREATE VIEW flows_v AS SELECT * FROM flows WHERE public.redirect(1) = 1;
         SELECT stan_train('flows_v', model => 'sv', options => '{{\"epochs\": 1}}');
         SELECT stan_train('flows', model => 'ss', options => '{{\"epochs\": 1}}',
             stream_by => $s$pg_catalog.set_config('search_path', 'public, pg_catalog', false) OPERATOR(pg_catalog.||) sa::pg_catalog.text$s$);
         RESET ROLE;"
    ))
    .unwrap();
    let before: String = c.query_one("SHOW search_path", &[]).unwrap().get(0);
    for model in ["sv", "ss"] {
        assert!(
            one_i64(
                &mut c,
                &format!("SELECT count(*) FROM stan_evaluate('{model}', 'holdout')")
            ) > 0
        );
        let after: String = c.query_one("SHOW search_path", &[]).unwrap().get(0);
        assert_eq!(
            after, before,
            "{model}: the trainer's set_config outlived the read"
        );
        c.batch_execute("SELECT upper('x')").unwrap();
    }
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'shadow'"
        ),
        0
    );
    nothing_gained(&mut c, &t);
}

/// Options whose product would take more memory than the budget are refused before training,
/// at once, whatever each is on its own.
#[test]
fn trainings_beyond_the_memory_budget_are_refused_before_they_allocate() {
    let mut c = setup("h_budget");
    let t = trainer("h_budget");
    c.batch_execute(&format!("SET ROLE {t}")).unwrap();
    for options in [
        r#"{"window": 512, "batch_size": 65536}"#,
        r#"{"hidden": 4096, "head_hidden": 4096}"#,
        r#"{"window": 512}"#,
    ] {
        let started = Instant::now();
        let (code, msg) = sql_error(
            &mut c,
            &format!("SELECT stan_train('flows', model => 'big', options => '{options}')"),
        );
        assert_eq!(code, "54000", "{options}: {msg}");
        assert!(msg.contains("stan.max_memory_mb"), "{options}: {msg}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{options}: {:?}",
            started.elapsed()
        );
    }
    let (code, _) = sql_error(&mut c, "SET stan.max_memory_mb = 100000");
    assert_eq!(code, "42501");
    c.batch_execute("RESET ROLE; SET stan.max_memory_mb = 64")
        .unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'x', streams => 10000)",
    );
    // No model x: the name is checked first; then a real one over the budget.
    assert_eq!(code, "42704", "{msg}");
    c.batch_execute("RESET stan.max_memory_mb; SELECT stan_train('flows', model => 'g', options => '{\"epochs\": 1}'); SET stan.max_memory_mb = 64").unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', model => 'g', streams => 10000)",
    );
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("fewer streams"), "{msg}");
}

/// Without model =>, a caller's own model wins over one someone else trained and granted later,
/// and a choice among others' models is refused with the candidates named.
#[test]
fn the_default_model_for_a_row_type_is_never_someone_elses_by_surprise() {
    let mut c = setup("h_default");
    let (t, sq) = (trainer("h_default"), squatter("h_default"));
    c.batch_execute(&format!(
        "GRANT SELECT ON flows TO {sq};
         SET ROLE {t};
         SELECT stan_train('flows', options => '{{\"epochs\": 1}}');
         SET ROLE {sq};
         SELECT stan_train('flows', model => 'poison', columns => '{{\"pr\": \"skip\"}}', options => '{{\"epochs\": 1}}');
         SELECT stan_grant('poison', '{t}');
         SET ROLE {t};"
    ))
    .unwrap();
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', seed => 1) WHERE pr IS NULL"
        ),
        0,
        "the trainer got the poisoned model"
    );
    c.batch_execute("RESET ROLE").unwrap();
    // The superuser owns neither: two candidates, so it must choose.
    let (code, msg) = sql_error(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour')",
    );
    assert_eq!(code, "42725", "{msg}");
    assert!(
        msg.contains("poison") && msg.contains(&format!("{t}.flows")),
        "{msg}"
    );
}

#[test]
fn null_arguments_temp_tables_and_dotted_names() {
    let mut c = setup("h_misc");
    let t = trainer("h_misc");
    c.batch_execute(&format!(
        "SET ROLE {t}; SELECT stan_train('flows', options => '{{\"epochs\": 1}}'); RESET ROLE;"
    ))
    .unwrap();
    let model = format!("{t}.flows");
    for (sql, argument) in [
        ("SELECT stan_train(NULL)".to_string(), "relation"),
        (
            "SELECT count(*) FROM stan_generate(NULL::flows, NULL)".to_string(),
            "span",
        ),
        (
            "SELECT count(*) FROM stan_evaluate(NULL, 'holdout')".to_string(),
            "model",
        ),
        (
            format!("SELECT count(*) FROM stan_evaluate('{model}', NULL)"),
            "holdout",
        ),
        ("SELECT stan_report(NULL, NULL)".to_string(), "model"),
        (
            "SELECT count(*) FROM stan_demo_flows(NULL)".to_string(),
            "hosts",
        ),
    ] {
        let (code, msg) = sql_error(&mut c, &sql);
        assert_eq!(code, "22004", "{sql}: {msg}");
        assert!(msg.contains(argument), "{sql}: {msg}");
    }
    // The caller's own temporary table of the name evaluation once used is left alone.
    c.batch_execute(
        "CREATE TEMP TABLE stan_evaluate_sample AS SELECT 'mine'::text AS note;
         CREATE TEMP TABLE stan_evaluate_sample_1 AS SELECT 'mine too'::text AS note;",
    )
    .unwrap();
    assert!(
        one_i64(
            &mut c,
            &format!("SELECT count(*) FROM stan_evaluate('{model}', 'holdout')")
        ) > 0
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM stan_evaluate_sample"),
        1
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM stan_evaluate_sample_1"),
        1
    );
    // A dotted name must start with a role the trainer belongs to: no taking a future role's
    // default name, nor any other role's.
    c.batch_execute(&format!("SET ROLE {t}")).unwrap();
    for name in ["stan_h_misc_future.flows", "postgres.flows", "plain.dotted"] {
        let (code, msg) = sql_error(
            &mut c,
            &format!(
                "SELECT stan_train('flows', model => '{name}', options => '{{\"epochs\": 1}}')"
            ),
        );
        assert!(code == "42501" || code == "42602", "{name}: {code} {msg}");
    }
    c.batch_execute("RESET ROLE").unwrap();
}

/// Rows are read in batches sized to the budget and refused once their values pass it, before
/// fitting: a table of wide text values cannot fill the backend's memory through stan_train.
#[test]
fn wide_rows_are_refused_within_the_memory_budget() {
    let mut c = setup("h_wide");
    c.batch_execute(
        "CREATE TABLE fat AS SELECT te, pg_catalog.repeat(pg_catalog.md5(te::text), 31250) AS blob FROM flows",
    )
    .unwrap();
    one_i64(&mut c, "SELECT count(*) FROM (SELECT stan.device()) d");
    let before = peak_rss_mb(&mut c);
    c.batch_execute("SET stan.max_memory_mb = 64").unwrap();
    let (code, msg) = sql_error(&mut c, "SELECT stan_train('fat', model => 'fat')");
    let grew = peak_rss_mb(&mut c) - before;
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("64 MB") && msg.contains("public.fat"), "{msg}");
    // About 1 MB a row, 347 rows: batches of 10,000 rows held all of them twice (over 600 MB).
    assert!(grew < 250.0, "peak memory grew by {grew:.0} MB");
}

/// A member of the owning role (or a superuser) who trains a new version adds it in the
/// owner's name: the owner keeps its model, its grants and the right to drop it.
#[test]
fn new_versions_keep_the_models_owner() {
    let mut c = setup("h_versions");
    let t = trainer("h_versions");
    c.batch_execute(&format!(
        "SET ROLE {t}; SELECT stan_train('flows', options => '{{\"epochs\": 1}}'); RESET ROLE;
         SELECT stan_train('flows', model => '{t}.flows', options => '{{\"epochs\": 1}}');"
    ))
    .unwrap();
    let owners: Vec<String> = c
        .query(
            &format!(
                "SELECT owner::text FROM stan.models WHERE name = '{t}.flows' ORDER BY version"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec![t.clone(), t.clone()]);
    c.batch_execute(&format!("SET ROLE {t}")).unwrap();
    assert_eq!(
        one_i64(&mut c, &format!("SELECT stan_drop('{t}.flows')")),
        2
    );
    c.batch_execute("RESET ROLE").unwrap();
}

/// The catalog keeps the training relation's name: a relation another role puts under that name
/// after the trainer renamed its table is never read as the owner when the owner evaluates.
#[test]
fn a_relation_put_under_a_models_training_name_is_not_read_as_its_owner() {
    let db = "stan_test_h_swap";
    let mut c = setup("h_swap");
    let (t, sq) = (trainer("h_swap"), squatter("h_swap"));
    c.batch_execute(&format!("GRANT SELECT ON holdout TO {sq}"))
        .unwrap();
    let mut owner = connect_as(db, &t);
    owner
        .batch_execute(
            "CREATE TABLE swapped AS SELECT * FROM flows;
             SELECT stan_train('swapped', model => 'sw', options => '{\"epochs\": 1}');
             ALTER TABLE swapped RENAME TO swapped_2016;",
        )
        .unwrap();
    let mut squatter_client = connect_as(db, &sq);
    squatter_client
        .batch_execute(
            "CREATE VIEW public.swapped AS SELECT * FROM stan_demo_flows(4, '4 hours') WHERE public.grab('swap');
             GRANT SELECT ON public.swapped TO PUBLIC;
             SELECT count(*) FROM public.swapped;",
        )
        .unwrap();
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'swap'"
        ) > 0,
        "the squatter's view never ran: the test proves nothing"
    );
    c.batch_execute("TRUNCATE public.loot").unwrap();
    owner
        .query("SELECT * FROM stan_evaluate('sw', 'holdout')", &[])
        .unwrap();
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'swap'"
        ),
        0,
        "the squatter's view was read when the owner evaluated"
    );
    nothing_gained(&mut c, &t);
}

/// A model given to another role keeps no stream expression of its former owner's: it never
/// runs with the new owner's rights.
#[test]
fn a_reassigned_model_runs_none_of_its_former_owners_sql() {
    let db = "stan_test_h_handover";
    let mut c = setup("h_handover");
    let (t, sq) = (trainer("h_handover"), squatter("h_handover"));
    c.batch_execute(&format!("GRANT SELECT ON holdout TO {sq}"))
        .unwrap();
    let mut former = connect_as(db, &sq);
    former
        .batch_execute(
            "CREATE TABLE sq_flows AS SELECT * FROM stan_demo_flows(4, '4 hours');
             SELECT stan_train('sq_flows', model => 'handover',
                               stream_by => $$CASE WHEN public.grab('stream') THEN sa END$$,
                               options => '{\"epochs\": 1}');",
        )
        .unwrap();
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'stream'"
        ) > 0,
        "the stream expression never ran: the test proves nothing"
    );
    c.batch_execute(&format!(
        "TRUNCATE public.loot; SELECT stan_reassign('handover', '{t}'); GRANT SELECT ON sq_flows TO {t};"
    ))
    .unwrap();
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM stan.model_details WHERE name = 'handover' AND stream_by IS NULL"
        ),
        1
    );
    connect_as(db, &t)
        .query("SELECT * FROM stan_evaluate('handover', 'holdout')", &[])
        .unwrap();
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM public.loot WHERE how = 'stream'"
        ),
        0,
        "the former owner's stream expression ran for the new owner"
    );
    nothing_gained(&mut c, &t);
}
