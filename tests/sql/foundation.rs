//! The foundation: train and generate through SQL, the catalog, reproducibility, first errors.

use stan_sql_tests::*;

const SMALL: &str = r#"'{"epochs": 2}'"#;

#[test]
fn generated_data_follows_the_training_table() {
    let mut c = fresh_db("follows");
    // Two differently shaped tables: web-heavy, and UDP/ICMP-heavy with 20x the bytes.
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(12, '12 hours', 1, '2016-04-11 06:00');
         CREATE TABLE other (LIKE flows);
         INSERT INTO other SELECT te, td, sa, da, sp, dp, pr, flg, pkt, byt * 20 FROM flows
          WHERE pr <> 'TCP' OR extract(epoch FROM te)::bigint % 6 = 0;
         SELECT stan_train('flows', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 30, \"seed\": 1}}');
         SELECT stan_train('other', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 30, \"seed\": 1}}');
         CREATE TABLE fake_flows AS SELECT * FROM stan_generate(NULL::flows, '12 hours', seed => 1);
         CREATE TABLE fake_other AS SELECT * FROM stan_generate(NULL::other, '12 hours', seed => 1);"
    ))
    .unwrap();
    let (real_a, fake_a) = (
        protocol_mix(&mut c, "flows"),
        protocol_mix(&mut c, "fake_flows"),
    );
    let (real_b, fake_b) = (
        protocol_mix(&mut c, "other"),
        protocol_mix(&mut c, "fake_other"),
    );
    for (real, fake) in [(&real_a, &fake_a), (&real_b, &fake_b)] {
        for p in ["TCP", "UDP", "ICMP"] {
            assert!(
                (share(real, p) - share(fake, p)).abs() < 0.08,
                "{p}: real {real:?} vs synthetic {fake:?}"
            );
        }
    }
    assert!(
        share(&fake_a, "TCP") > share(&fake_b, "TCP") + 0.1,
        "{fake_a:?} vs {fake_b:?}"
    );
    let median = |c: &mut postgres::Client, t: &str| {
        one_f64(
            c,
            &format!("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY byt) FROM {t}"),
        )
    };
    let (ma, mb) = (median(&mut c, "fake_flows"), median(&mut c, "fake_other"));
    let (ra, rb) = (median(&mut c, "flows"), median(&mut c, "other"));
    assert!(
        ma > ra / 2.0 && ma < ra * 2.0,
        "bytes median: real {ra}, synthetic {ma}"
    );
    assert!(
        mb > rb / 2.0 && mb < rb * 2.0,
        "bytes median: real {rb}, synthetic {mb}"
    );
    assert!(
        mb > 5.0 * ma,
        "the 20x table must generate larger flows: {mb} vs {ma}"
    );
    // Generation covers the span from the training data's start, as many streams as in
    // training, at the training table's rate.
    let hours = one_f64(
        &mut c,
        "SELECT extract(epoch FROM max(te) - min(te))::float8 / 3600 FROM fake_flows",
    );
    assert!(hours > 10.0 && hours <= 12.0, "generated span {hours} h");
    let first = one_f64(&mut c, "SELECT extract(epoch FROM (SELECT min(te) FROM fake_flows) - (SELECT min(te) FROM flows))::float8 / 3600");
    assert!(
        (0.0..1.0).contains(&first),
        "generation starts {first} h after the data"
    );
    let ratio = one_f64(
        &mut c,
        "SELECT (SELECT count(*) FROM fake_flows)::float8 / (SELECT count(*) FROM flows)",
    );
    assert!(
        ratio > 0.6 && ratio < 1.5,
        "synthetic/real rows over the same span: {ratio}"
    );
    // The simulator records durations in milliseconds, and so does the model; zero-length flows
    // come back as exactly zero, about as often.
    let finer = one_f64(
        &mut c,
        "SELECT count(*)::float8 FROM fake_flows WHERE td::numeric <> round(td::numeric, 3)",
    );
    assert_eq!(finer, 0.0, "durations finer than a millisecond");
    let zero = |c: &mut postgres::Client, t: &str| {
        one_f64(c, &format!("SELECT avg((td = 0)::int)::float8 FROM {t}"))
    };
    let (real_zero, fake_zero) = (zero(&mut c, "flows"), zero(&mut c, "fake_flows"));
    assert!(
        (real_zero - fake_zero).abs() < 0.05,
        "zero durations: real {real_zero}, synthetic {fake_zero}"
    );

    // On a sample large enough to average out bursts (4x the streams), the protocol mix is
    // within 2 points of the training table's, and TCP flows keep bytes >= 40 * packets at the
    // simulator's own rate.
    c.batch_execute("CREATE TABLE big AS SELECT * FROM stan_generate(NULL::flows, '12 hours', seed => 2, streams => 48)")
        .unwrap();
    let big = protocol_mix(&mut c, "big");
    for p in ["TCP", "UDP", "ICMP"] {
        assert!(
            (share(&real_a, p) - share(&big, p)).abs() <= 0.02,
            "{p}: real {real_a:?} vs synthetic {big:?}"
        );
    }
    let rule = |c: &mut postgres::Client, t: &str| {
        one_f64(
            c,
            &format!("SELECT avg((byt >= 40 * pkt)::int)::float8 FROM {t} WHERE pr = 'TCP'"),
        )
    };
    let (real_rule, synthetic_rule) = (rule(&mut c, "flows"), rule(&mut c, "big"));
    assert!(
        synthetic_rule >= real_rule,
        "TCP bytes >= 40 * packets: real {real_rule}, synthetic {synthetic_rule}"
    );
}

#[test]
fn insert_select_catalog_and_drop() {
    let mut c = fresh_db("catalog");
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(4, '3 hours');
         SELECT stan_train('flows', options => {SMALL});
         SELECT stan_train('flows', options => {SMALL});
         CREATE TABLE fake (LIKE flows);
         INSERT INTO fake SELECT * FROM stan_generate(NULL::flows, '1 hour');
         INSERT INTO fake SELECT * FROM stan_generate(NULL::flows, '1 hour', model => 'postgres.flows', seed => 3);"
    ))
    .unwrap();
    assert!(one_i64(&mut c, "SELECT count(*) FROM fake") > 0);
    let row = c
        .query_one("SELECT count(*), max(version), bool_and(weight_bytes > 0), min(source), min(rows) FROM stan.models", &[])
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, i32>(1), 2);
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, String>(3), "public.flows");
    assert_eq!(
        row.get::<_, i64>(4),
        one_i64(&mut c, "SELECT count(*) FROM flows")
    );
    let weights_in_view =
        one_i64(&mut c, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'stan' AND table_name = 'models' AND column_name = 'weights'");
    assert_eq!(weights_in_view, 0, "the view never shows weights");
    assert_eq!(one_i64(&mut c, "SELECT stan_drop('postgres.flows')"), 2);
    let (code, msg) = sql_error(&mut c, "SELECT * FROM stan_generate(NULL::flows, '1 hour')");
    assert_eq!(code, "42704", "{msg}");
    assert!(msg.contains("flows"), "{msg}");
    let (code, msg) = sql_error(&mut c, "SELECT stan_drop('postgres.flows')");
    assert_eq!(
        (code.as_str(), msg.contains("\"postgres.flows\"")),
        ("42704", true),
        "{msg}"
    );
}

#[test]
fn the_same_seed_gives_the_same_rows() {
    let mut c = fresh_db("seed");
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(3, '2 hours');
         SELECT stan_train('flows', options => {SMALL});"
    ))
    .unwrap();
    let digest = |c: &mut postgres::Client, seed: i64| -> String {
        c.query_one(
            "SELECT md5(string_agg(f::text, ',' ORDER BY f::text)) FROM stan_generate(NULL::flows, '2 hours', seed => $1) f",
            &[&seed],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(digest(&mut c, 7), digest(&mut c, 7));
    assert_ne!(digest(&mut c, 7), digest(&mut c, 8));

    // `start` moves generated time; `streams` sets how many sequences run; a LIMIT stops the
    // lazy generation early.
    let row = c
        .query_one(
            "SELECT min(te) >= '2030-01-01', max(te) <= '2030-01-01 02:00', count(*)
               FROM stan_generate(NULL::flows, '2 hours', seed => 1, start => '2030-01-01 00:00+00')",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    let one = row.get::<_, i64>(2);
    // The default warm-up hour runs before `start` and none of its rows come out; without it
    // (the paper's cold start) the streams begin elsewhere, so the rows differ.
    let cold = "SELECT min(te) >= '2030-01-01', string_agg(te::text || byt, ',' ORDER BY te, byt)
                  FROM stan_generate(NULL::flows, '2 hours', seed => 1, start => '2030-01-01 00:00+00',
                                     warmup => '0')";
    let warm = cold.replace("warmup => '0'", "warmup => '1 hour'");
    let default = cold.replace("warmup => '0'", "warmup => NULL");
    let (cold, warm, default) = (
        c.query_one(cold, &[]).unwrap(),
        c.query_one(&warm, &[]).unwrap(),
        c.query_one(&default, &[]).unwrap(),
    );
    assert!(cold.get::<_, bool>(0));
    assert_eq!(warm.get::<_, String>(1), default.get::<_, String>(1));
    assert_ne!(cold.get::<_, String>(1), default.get::<_, String>(1));
    let many = one_i64(
        &mut c,
        "SELECT count(*) FROM stan_generate(NULL::flows, '2 hours', seed => 1, streams => 10)",
    );
    assert!(
        many > 3 * one,
        "10 streams gave {many} rows, the default gave {one}"
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT * FROM stan_generate(NULL::flows, '30 days') LIMIT 5) s"
        ),
        5
    );
    let (code, msg) = sql_error(
        &mut c,
        "SELECT * FROM stan_generate(NULL::flows, '0 seconds')",
    );
    assert_eq!(code, "22023", "{msg}");
    let (code, msg) = sql_error(
        &mut c,
        "SELECT * FROM stan_generate(NULL::flows, '1 hour', streams => 0)",
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("streams"), "{msg}");
}

#[test]
fn first_bad_inputs_get_clear_errors() {
    let mut c = fresh_db("errors");
    c.batch_execute(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(2, '1 hour');
         CREATE TABLE empty (LIKE flows);
         CREATE TABLE blobs (te timestamp, payload jsonb);
         INSERT INTO blobs SELECT te, '{}' FROM flows;",
    )
    .unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "SELECT stan_train('flows', options => '{\"windw\": 3}')",
            "22023",
            "windw",
        ),
        (
            "SELECT stan_train('flows', options => '{\"epochs\": 0}')",
            "22023",
            "epochs",
        ),
        ("SELECT stan_train('blobs')", "0A000", "payload"),
        ("SELECT stan_train('empty')", "22000", "0 row"),
        (
            "SELECT stan_train('flows', order_by => 'pkt')",
            "22023",
            "order_by",
        ),
        (
            "SELECT stan_train('flows', columns => '{\"nope\": \"skip\"}')",
            "22023",
            "nope",
        ),
        (
            "SELECT * FROM stan_generate(NULL::flows, '1 hour', model => 'missing')",
            "42704",
            "missing",
        ),
    ];
    for (sql, state, culprit) in cases {
        let (code, msg) = sql_error(&mut c, sql);
        assert_eq!(&code, state, "{sql}: {msg}");
        assert!(
            msg.contains(culprit),
            "{sql}: message does not name {culprit}: {msg}"
        );
    }
    // A row type that no longer matches the model.
    c.batch_execute(&format!(
        "SELECT stan_train('flows', options => {SMALL}); ALTER TABLE flows ADD COLUMN extra int;"
    ))
    .unwrap();
    let (code, msg) = sql_error(&mut c, "SELECT * FROM stan_generate(NULL::flows, '1 hour')");
    assert_eq!(code, "42804", "{msg}");
    assert!(msg.contains("extra"), "{msg}");
    // Nothing was stored by the failed calls.
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM stan.models"), 1);
}

#[test]
fn settings_and_device_fallback() {
    let mut c = fresh_db("device");
    c.batch_execute("SET stan.device = 'cpu'").unwrap();
    let device: String = c.query_one("SELECT stan.device()", &[]).unwrap().get(0);
    assert_eq!(device, "cpu");
    let threads: String = c.query_one("SHOW stan.threads", &[]).unwrap().get(0);
    assert_eq!(threads, "1");
    c.batch_execute("SET stan.device = 'auto'").unwrap();
    let device: String = c.query_one("SELECT stan.device()", &[]).unwrap().get(0);
    let gpu = std::path::Path::new("/dev/nvidia0").exists();
    assert_eq!(device, if gpu { "cuda" } else { "cpu" });
    if !gpu {
        c.batch_execute("SET stan.device = 'cuda'").unwrap();
        let (code, msg) = sql_error(&mut c, "SELECT stan.device()");
        assert_eq!(code, "22023", "{msg}");
        assert!(msg.contains("cuda"), "{msg}");
    }
}
