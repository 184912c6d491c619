//! stan_evaluate and stan_report on the built-in simulator: every metric is there, the metrics
//! respond to what they measure, and the report is a well-formed page with a chart per column.

use stan_sql_tests::*;

struct Row {
    metric: String,
    column: String,
    synthetic: Option<f64>,
    real: Option<f64>,
    detail: String,
}

fn evaluate(c: &mut postgres::Client, args: &str) -> Vec<Row> {
    c.query(&format!("SELECT * FROM stan_evaluate({args})"), &[])
        .unwrap()
        .iter()
        .map(|r| Row {
            metric: r.get(0),
            column: r.get(1),
            synthetic: r.get(2),
            real: r.get(3),
            detail: r.get(4),
        })
        .collect()
}

fn get<'a>(rows: &'a [Row], metric: &str, column: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.metric == metric && r.column == column)
        .unwrap_or_else(|| panic!("no {metric} for {column}"))
}

const MODELLED: [&str; 9] = ["td", "sa", "da", "sp", "dp", "pr", "flg", "pkt", "byt"];

fn setup(test: &str) -> postgres::Client {
    let mut c = fresh_db(test);
    c.batch_execute(&format!(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(8, '12 hours');
         CREATE TABLE holdout AS SELECT * FROM stan_demo_flows(8, '6 hours', seed => 2, start => '2016-04-11 12:00');
         SELECT stan_train('flows', stream_by => $${SIM_HOST}$$, options => '{{\"epochs\": 4}}');"
    ))
    .unwrap();
    c
}

#[test]
fn evaluate_reports_every_metric_and_they_respond() {
    let mut c = setup("evaluate");
    let rows = evaluate(&mut c, "'postgres.flows', 'holdout'");
    let holdout_rows = one_i64(&mut c, "SELECT count(*) FROM holdout") as f64;
    let n = get(&rows, "rows", "");
    assert_eq!(n.real, Some(holdout_rows));
    assert!(
        n.synthetic.unwrap() > 0.3 * holdout_rows,
        "{:?}",
        n.synthetic
    );
    for col in MODELLED {
        let j = get(&rows, "jsd", col);
        let (s, r) = (j.synthetic.unwrap(), j.real.unwrap());
        assert!(
            (0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&r),
            "{col}: {s} {r}"
        );
    }
    for col in ["td", "pkt", "byt"] {
        assert!(get(&rows, "wasserstein", col).synthetic.unwrap() >= 0.0);
    }
    let mean = get(&rows, "mean_jsd", "*");
    assert!(
        mean.synthetic.unwrap() < 0.2,
        "mean JSD {:?}",
        mean.synthetic
    );
    let checks: Vec<&Row> = rows.iter().filter(|r| r.metric == "domain_check").collect();
    assert_eq!(
        checks.len(),
        5,
        "five domain checks apply to the simulator's columns"
    );
    for (i, check) in checks.iter().enumerate() {
        assert!(
            check.detail.starts_with(&format!("{} ", i + 1)),
            "{}",
            check.detail
        );
        // The simulator keeps every rule; the codecs keep the address and size rules too.
        assert_eq!(check.real, Some(1.0), "{}", check.detail);
    }
    for check in &checks[..3] {
        assert_eq!(check.synthetic, Some(1.0), "{}", check.detail);
    }
    assert!(rows
        .iter()
        .any(|r| r.metric == "top_dst_port" && r.detail.starts_with("TCP port 443")));
    for metric in ["gap_jsd", "gap_median_s", "gap_p90_s"] {
        assert!(get(&rows, metric, "te").synthetic.is_some(), "{metric}");
    }
    // Traffic over time: the held-out hours (12:00-18:00) each have their flows counted, the
    // synthetic sample's too, and no weekday figures for a span under a week.
    let hourly = get(&rows, "hourly_jsd", "te");
    assert!((0.0..=1.0).contains(&hourly.synthetic.unwrap()) && hourly.real.is_some());
    let per_hour: Vec<&Row> = rows
        .iter()
        .filter(|r| r.metric == "flows_per_hour")
        .collect();
    let held_out_in_hours: f64 = per_hour.iter().filter_map(|r| r.real).sum();
    assert_eq!(held_out_in_hours, holdout_rows);
    assert_eq!(
        per_hour.iter().filter_map(|r| r.synthetic).sum::<f64>(),
        n.synthetic.unwrap()
    );
    assert!(get(&rows, "flows_per_hour", "13:00").real.unwrap() > 0.0);
    assert!(!rows.iter().any(|r| r.metric == "weekday_jsd"));
    let lag = get(&rows, "lag1_autocorrelation", "byt");
    assert!(lag.synthetic.unwrap().abs() <= 1.0 && lag.real.unwrap().abs() <= 1.0);
    // The training rows' own value is given beside it, for how far the real traffic moved.
    assert!(lag.detail.contains("training rows: "), "{}", lag.detail);
    let exact = get(&rows, "exact_match_share", "*");
    assert!(exact.synthetic.is_some() && exact.real.is_some());
    for col in ["pr", "flg"] {
        assert_eq!(
            get(&rows, "rare_values_emitted", col).synthetic,
            Some(0.0),
            "{col}"
        );
    }

    // The held-out rows compared with themselves: no divergence, and the same exact-match share.
    let same = evaluate(
        &mut c,
        "'postgres.flows', 'holdout', synthetic => 'holdout'",
    );
    for col in MODELLED {
        assert!(get(&same, "jsd", col).synthetic.unwrap() < 1e-9, "{col}");
    }
    let e = get(&same, "exact_match_share", "*");
    assert_eq!(e.synthetic, e.real);
    assert!(get(&same, "gap_jsd", "te").synthetic.unwrap() < 1e-9);
    assert_eq!(
        get(&same, "lag1_autocorrelation", "byt").synthetic,
        get(&same, "lag1_autocorrelation", "byt").real
    );
    let held_out_bytes = one_i64(&mut c, "SELECT sum(byt)::bigint FROM holdout") as f64;
    for col in ["pkt", "byt"] {
        let t = get(&same, "total", col);
        assert_eq!(t.synthetic, t.real, "{col}");
    }
    assert_eq!(get(&same, "total", "byt").real, Some(held_out_bytes));
    assert!(get(&rows, "total", "byt").synthetic.unwrap() > 0.0);

    // A distorted copy: every flow UDP, with twice the bytes. The protocol's divergence jumps,
    // web ports over UDP fail check 5, and the byte volume doubles.
    c.batch_execute("CREATE TABLE distorted AS SELECT te, td, sa, da, sp, dp, 'UDP'::text AS pr, flg, pkt, 2 * byt AS byt FROM holdout")
        .unwrap();
    let bad = evaluate(
        &mut c,
        "'postgres.flows', 'holdout', synthetic => 'distorted'",
    );
    assert!(get(&bad, "jsd", "pr").synthetic.unwrap() > 0.3);
    let bytes = get(&bad, "total", "byt");
    assert_eq!(bytes.synthetic, Some(2.0 * held_out_bytes));
    assert_eq!(bytes.real, Some(held_out_bytes));
    assert_eq!(
        get(&bad, "total", "pkt").synthetic,
        get(&bad, "total", "pkt").real
    );
    let check5 = bad.iter().find(|r| r.detail.starts_with("5 ")).unwrap();
    assert!(check5.synthetic.unwrap() < 0.1, "{:?}", check5.synthetic);

    // Wrong shapes and unknown models are clear errors.
    c.batch_execute("CREATE TABLE narrow AS SELECT te, td, sa, da FROM holdout")
        .unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT * FROM stan_evaluate('postgres.flows', 'narrow')",
    );
    assert_eq!(code, "42804", "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    let (code, msg) = sql_error(&mut c, "SELECT * FROM stan_evaluate('nope', 'holdout')");
    assert_eq!(code, "42704", "{msg}");
    c.batch_execute("CREATE TABLE empty_holdout (LIKE holdout)")
        .unwrap();
    let (code, msg) = sql_error(
        &mut c,
        "SELECT * FROM stan_evaluate('postgres.flows', 'empty_holdout')",
    );
    assert_eq!(code, "22000", "{msg}");
    assert!(msg.contains("empty_holdout"), "{msg}");
}

#[test]
fn report_is_a_well_formed_page_with_a_chart_per_column() {
    let mut c = setup("report");
    let page: String = c
        .query_one("SELECT stan_report('postgres.flows', 'holdout')", &[])
        .unwrap()
        .get(0);
    assert!(page.starts_with("<!DOCTYPE html>"));
    for external in ["src=", "href=", "<script", "@import", "url("] {
        assert!(
            !page.contains(external),
            "the page must be self-contained: {external}"
        );
    }
    let body = page.trim_start_matches("<!DOCTYPE html>");
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    let charts: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("figure") && n.attribute("class") == Some("chart"))
        .collect();
    let mut columns: Vec<&str> = charts
        .iter()
        .filter_map(|n| n.attribute("data-column"))
        .collect();
    columns.sort_unstable();
    let mut want = MODELLED.to_vec();
    want.push("te");
    want.sort_unstable();
    assert_eq!(columns, want, "one chart per modelled column");
    for chart in &charts {
        let bars = chart
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .count();
        assert!(
            bars >= 2,
            "{:?} has {bars} bars",
            chart.attribute("data-column")
        );
    }
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("figure") && n.attribute("class") == Some("ports")));
    let over_time = doc
        .descendants()
        .find(|n| n.has_tag_name("figure") && n.attribute("class") == Some("over-time"))
        .expect("a traffic-over-time chart");
    assert!(
        over_time
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .count()
            >= 6
    );
    let text = doc
        .root_element()
        .descendants()
        .filter_map(|n| n.text())
        .collect::<String>();
    assert!(
        text.contains("Domain checks") && text.contains("Privacy"),
        "sections missing"
    );
}
