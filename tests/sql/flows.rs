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
