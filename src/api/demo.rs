//! The built-in flow simulator, for the demo and the tests (see stan_demo_flows in sql/api.sql).
//! Rows are made one host at a time as they are asked for (value per call), so memory holds one
//! host's flows whatever the size; sql/api.sql orders them by time.

#[pgrx::pg_schema]
mod stan {
    use pgrx::prelude::*;
    use stan_core::codec::ip;

    #[allow(clippy::type_complexity)]
    #[pg_extern(name = "demo_flows_raw")]
    fn demo_flows_raw(
        hosts: Option<i32>,
        seconds: Option<f64>,
        seed: Option<i64>,
        start_epoch: Option<f64>,
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
        use crate::api::error::required;
        let (hosts, seconds) = (required(hosts, "hosts"), required(seconds, "span"));
        let (seed, start_epoch) = (required(seed, "seed"), required(start_epoch, "start"));
        crate::api::error::ok(stan_core::sim::check_size(hosts as i64, seconds));
        if !start_epoch.is_finite() {
            crate::api::error::ok::<()>(Err(stan_core::Error::option(
                "start",
                "must be a finite time",
            )));
        }
        let flows =
            stan_core::sim::simulate_by_host(hosts as usize, seconds, seed as u64, start_epoch);
        TableIterator::new(flows.map(|f| {
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
