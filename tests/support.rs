//! Helpers for the SQL integration tests: each test gets a fresh database with the extension,
//! on the server that `scripts/test.sh` starts (STAN_TEST_PG overrides the connection string).

use postgres::{Client, NoTls};

pub fn base_config() -> String {
    std::env::var("STAN_TEST_PG").unwrap_or_else(|_| {
        let port = std::env::var("STAN_PGPORT").unwrap_or_else(|_| "28815".into());
        format!("host=127.0.0.1 port={port} user=postgres")
    })
}

/// A fresh database named after the test, with `CREATE EXTENSION stan` done.
pub fn fresh_db(test: &str) -> Client {
    let db = format!("stan_test_{test}");
    let mut admin = Client::connect(&format!("{} dbname=postgres", base_config()), NoTls)
        .expect("connect to the test server: run scripts/test.sh, or set STAN_TEST_PG");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut client = connect(&db);
    client.batch_execute("CREATE EXTENSION stan").unwrap();
    client
}

pub fn connect(db: &str) -> Client {
    Client::connect(&format!("{} dbname={db}", base_config()), NoTls).expect("connect")
}

/// Runs `sql`, expecting an error; returns (SQLSTATE, message).
pub fn sql_error(client: &mut Client, sql: &str) -> (String, String) {
    match client.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a database error: {e}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

pub fn one_f64(client: &mut Client, sql: &str) -> f64 {
    client.query_one(sql, &[]).unwrap().get::<_, f64>(0)
}

pub fn one_i64(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get::<_, i64>(0)
}

/// Share of rows per protocol, as (protocol, fraction) sorted by protocol.
pub fn protocol_mix(client: &mut Client, table: &str) -> Vec<(String, f64)> {
    client
        .query(&format!("SELECT pr, count(*)::float8 / sum(count(*)) OVER () FROM {table} GROUP BY pr ORDER BY pr"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

pub fn share(mix: &[(String, f64)], protocol: &str) -> f64 {
    mix.iter()
        .find(|(p, _)| p == protocol)
        .map_or(0.0, |(_, f)| *f)
}

/// The internal endpoint of a simulated flow: the 10.1.0.0/16 side.
pub const SIM_HOST: &str = "CASE WHEN sa << '10.1.0.0/16' THEN sa ELSE da END";

/// A connection to `db` as another role (the test server trusts local TCP connections).
pub fn connect_as(db: &str, role: &str) -> Client {
    Client::connect(&format!("{} dbname={db} user={role}", base_config()), NoTls)
        .expect("connect as a role")
}
