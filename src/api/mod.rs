//! The SQL verbs. Public functions are thin SQL wrappers (sql/*.sql) with the contract's types
//! (regclass, interval, anyelement); they call the Rust functions here, in schema `stan`.

mod access;
mod catalog;
mod demo;
mod error;
mod evaluate;
mod generate;
mod pg_version;
mod progress;
mod relation;
mod spi;
mod train;

use pgrx::prelude::*;

extension_sql_file!("../../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!(
    "../../sql/progress.sql",
    name = "progress",
    requires = [progress_rows]
);
extension_sql_file!("../../sql/api.sql", name = "api", finalize);

/// Threads, memory budget and device for one call, from the settings.
pub(crate) fn prepare_torch(device_option: &str) -> tch::Device {
    tch::set_num_threads(crate::THREADS.get());
    stan_core::model::budget::set_budget((crate::MAX_MEMORY_MB.get().max(1) as u64) << 20);
    let name = if device_option.is_empty() {
        crate::DEVICE.get().as_str()
    } else {
        device_option
    };
    error::ok(stan_core::model::device::resolve(name))
}

#[pg_schema]
mod stan {
    use pgrx::prelude::*;

    /// The device `auto` resolves to in this backend: `cuda` or `cpu`.
    #[pg_extern]
    fn device() -> &'static str {
        stan_core::model::device::name(super::prepare_torch(""))
    }
}
