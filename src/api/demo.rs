//! The built-in flow simulator, for the demo and the tests (see stan_demo_flows in sql/api.sql).

#[pgrx::pg_schema]
mod stan {
    use pgrx::prelude::*;
    use stan_core::codec::ip;

    #[allow(clippy::type_complexity)]
    #[pg_extern(name = "demo_flows_raw")]
    fn demo_flows_raw(
        hosts: i32,
        seconds: f64,
        seed: i64,
        start_epoch: f64,
    ) -> TableIterator<
        'static,
        (
            name!(te, f64),
            name!(td, f64),
            name!(sa, String),
            name!(da, String),
            name!(sp, i32),
            name!(dp, i32),
            name!(pr, String),
            name!(flg, String),
            name!(pkt, i64),
            name!(byt, i64),
        ),
    > {
        if !(1..=10_000).contains(&hosts) {
            pgrx::error!("stan: hosts must be in 1..10000, not {hosts}");
        }
        if !(seconds > 0.0 && seconds <= 31.0 * 86_400.0) {
            pgrx::error!("stan: span must be in (0, 31 days], not {seconds} s");
        }
        let flows = stan_core::sim::simulate(hosts as usize, seconds, seed as u64, start_epoch);
        TableIterator::new(flows.into_iter().map(|f| {
            (
                f.te,
                f.td,
                ip::format(f.sa),
                ip::format(f.da),
                f.sp as i32,
                f.dp as i32,
                f.pr.to_string(),
                f.flg.to_string(),
                f.pkt,
                f.byt,
            )
        }))
    }
}
