//! Flow tables as collectors write them (issue 28): what a real exporter's schema needs.

use stan_sql_tests::*;

/// A flow's end timestamp follows its start in every generated row, at the default start and
/// with generated time moved a year on, and flow lengths keep their training spread.
#[test]
fn flow_ends_never_precede_their_starts() {
    let mut c = fresh_db("flow_ends");
    c.batch_execute(
        "CREATE TABLE flows AS
           SELECT te AS t_start, te + td * interval '1 second' AS t_end, sa, da, sp, dp, pr, pkt, byt
             FROM stan_demo_flows(6, '6 hours');
         SELECT stan_train('flows', model => 'ends', options => '{\"epochs\": 2}');",
    )
    .unwrap();
    let real_share_long = one_f64(
        &mut c,
        "SELECT avg((t_end - t_start > interval '1 second')::int)::float8 FROM flows",
    );
    for start in ["NULL", "'2017-06-01 12:00+00'"] {
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE t_end < t_start),
                            avg((t_end - t_start > interval '1 second')::int)::float8
                       FROM stan_generate(NULL::flows, '3 hours', model => 'ends', seed => 1, start => {start})"
                ),
                &[],
            )
            .unwrap();
        let (rows, backwards, share_long): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
        assert!(rows > 100, "start {start}: {rows} rows");
        assert_eq!(
            backwards, 0,
            "start {start}: {backwards} of {rows} rows end before they start"
        );
        assert!(
            (share_long - real_share_long).abs() < 0.25,
            "start {start}: {share_long:.2} of flows last over a second, {real_share_long:.2} in training"
        );
    }
}

/// A Zeek conn log as loaded into PostgreSQL: `id.orig_p`/`id.resp_p` are ports (not counts),
/// and the unique `uid` does not stop training: it comes back NULL, with a NOTICE.
#[test]
fn a_zeek_conn_log_trains_with_its_ports_and_without_its_ids() {
    let mut c = fresh_db("zeek_conn");
    c.batch_execute(
        r#"CREATE TABLE conn AS
             SELECT te AS ts, 'C' || md5(row_number() OVER ()::text) AS uid,
                    sa AS "id.orig_h", sp AS "id.orig_p", da AS "id.resp_h", dp AS "id.resp_p",
                    lower(pr) AS proto, td AS duration, byt AS orig_bytes, pkt AS orig_pkts
               FROM stan_demo_flows(4, '4 hours');"#,
    )
    .unwrap();
    c.batch_execute("SET client_min_messages = notice").unwrap();
    c.batch_execute("SELECT stan_train('conn', model => 'zeek', options => '{\"epochs\": 1}')")
        .unwrap();
    let kinds: Vec<(String, String)> = c
        .query(
            "SELECT col->>'name', col->>'codec' FROM stan.model_details, jsonb_array_elements(codecs->'columns') col
              WHERE name = 'zeek' AND col->>'name' IN ('uid', 'id.orig_p', 'id.resp_p') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("id.orig_p".to_string(), "port".to_string()),
            ("id.resp_p".to_string(), "port".to_string()),
            ("uid".to_string(), "skip".to_string())
        ]
    );
    let row = c
        .query_one(
            r#"SELECT count(*), count(uid), count(*) FILTER (WHERE "id.resp_p" BETWEEN 0 AND 65535)
                 FROM stan_generate(NULL::conn, '1 hour', model => 'zeek', seed => 1)"#,
            &[],
        )
        .unwrap();
    let (rows, uids, ports): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(rows > 0);
    assert_eq!(uids, 0, "an id column came back with values");
    assert_eq!(ports, rows);
}
