//! Nothing hangs the backend: cancellation stops training and generation promptly, leaves no
//! partial model, and the same session keeps working; sessions can share a model.

use stan_sql_tests::*;
use std::time::{Duration, Instant};

const LONG_TRAINING: &str =
    "SELECT stan_train('flows', model => 'slow', options => '{\"epochs\": 10000}')";

fn setup(test: &str) -> postgres::Client {
    let mut c = fresh_db(test);
    c.batch_execute(
        "CREATE TABLE flows AS SELECT * FROM stan_demo_flows(6, '6 hours');
         SELECT stan_train('flows', options => '{\"epochs\": 1}');",
    )
    .unwrap();
    c
}

/// After a cancelled call: no partial model, and the same session trains and generates.
fn nothing_stored_and_backend_still_works(c: &mut postgres::Client) {
    assert_eq!(
        one_i64(c, "SELECT count(*) FROM stan.models WHERE name = 'slow'"),
        0
    );
    assert!(
        one_i64(
            c,
            "SELECT count(*) FROM stan_generate(NULL::flows, '1 hour', seed => 1)"
        ) > 0
    );
}

#[test]
fn statement_timeout_stops_training_and_generation() {
    let mut c = setup("timeout");
    c.batch_execute("SET statement_timeout = '1500ms'").unwrap();
    for sql in [
        LONG_TRAINING,
        "SELECT count(*) FROM stan_generate(NULL::flows, '300 days', streams => 50)",
    ] {
        let started = Instant::now();
        let (code, msg) = sql_error(&mut c, sql);
        let took = started.elapsed();
        assert_eq!(code, "57014", "{sql}: {msg}");
        assert!(
            took < Duration::from_millis(1500 + 2000),
            "{sql}: stopped after {took:?}"
        );
    }
    c.batch_execute("RESET statement_timeout").unwrap();
    nothing_stored_and_backend_still_works(&mut c);
}

#[test]
fn pg_cancel_backend_stops_training() {
    let mut c = setup("cancel");
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let canceller = std::thread::spawn(move || {
        let mut other = connect("stan_test_cancel");
        std::thread::sleep(Duration::from_millis(1500));
        let sent = Instant::now();
        let ok: bool = other
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .unwrap()
            .get(0);
        (ok, sent)
    });
    let (code, msg) = sql_error(&mut c, LONG_TRAINING);
    let stopped = Instant::now();
    let (ok, sent) = canceller.join().unwrap();
    assert!(ok);
    assert_eq!(code, "57014", "{msg}");
    assert!(
        stopped.duration_since(sent) < Duration::from_secs(2),
        "stopped {:?} after the cancel",
        stopped.duration_since(sent)
    );
    nothing_stored_and_backend_still_works(&mut c);
}

#[test]
fn sessions_generate_from_one_model_while_another_trains() {
    let _ = setup("concurrent");
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect("stan_test_concurrent");
                if i == 0 {
                    c.batch_execute("SELECT stan_train('flows', model => 'second', options => '{\"epochs\": 2}')").unwrap();
                    one_i64(&mut c, "SELECT count(*) FROM stan.models WHERE name = 'second'")
                } else {
                    one_i64(&mut c, &format!("SELECT count(*) FROM stan_generate(NULL::flows, '3 hours', model => 'postgres.flows', seed => {i})"))
                }
            })
        })
        .collect();
    let results: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results[0], 1, "the concurrent training stored its model");
    assert!(results[1] > 0 && results[2] > 0, "{results:?}");
}

#[test]
fn training_one_model_name_twice_at_once_is_refused() {
    let _ = setup("samename");
    let mut holder = connect("stan_test_samename");
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let training = std::thread::spawn(move || sql_error(&mut holder, LONG_TRAINING));
    // The holder's lock is taken before its first epoch, well within this.
    std::thread::sleep(Duration::from_millis(2000));
    let mut c = connect("stan_test_samename");
    let (code, msg) = sql_error(
        &mut c,
        "SELECT stan_train('flows', model => 'slow', options => '{\"epochs\": 1}')",
    );
    assert_eq!(code, "55P03", "{msg}");
    assert!(
        msg.contains("\"slow\"") && msg.contains("being trained"),
        "{msg}"
    );
    c.query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .unwrap();
    let (code, _) = training.join().unwrap();
    assert_eq!(code, "57014");
}
