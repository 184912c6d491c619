//! pgrx glue only: the module, its settings, and the SQL verbs in `api/`. Everything that learns
//! or generates lives in the pgrx-free `stan-core` crate (src/core.rs and the modules under it).

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

mod api;

::pgrx::pg_module_magic!();

/// Where models train and generate.
#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceSetting {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceSetting::Auto => "auto",
            DeviceSetting::Cpu => "cpu",
            DeviceSetting::Cuda => "cuda",
        }
    }
}

pub static DEVICE: GucSetting<DeviceSetting> =
    GucSetting::<DeviceSetting>::new(DeviceSetting::Auto);
/// libtorch's intra-op threads per backend. One by default: every backend would otherwise start
/// one OpenMP thread per core, and concurrent sessions would thrash.
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
/// The most streams one stan_generate call runs (each holds its window and activations).
pub static MAX_STREAMS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// The most rows one stan_generate call returns.
pub static MAX_ROWS_PER_CALL: GucSetting<i32> = GucSetting::<i32>::new(20_000_000);
/// The memory one training or generation may plan to hold, in MB (model::budget's estimate).
pub static MAX_MEMORY_MB: GucSetting<i32> = GucSetting::<i32>::new(4096);
/// The most rows stan_train reads into memory (after a `max_rows` sample).
pub static MAX_TRAINING_ROWS: GucSetting<i32> = GucSetting::<i32>::new(5_000_000);

fn check_for_interrupts() {
    pgrx::check_for_interrupts!();
}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    GucRegistry::define_enum_guc(
        c"stan.device",
        c"Device for training and generation: auto, cpu or cuda.",
        c"auto uses CUDA when libtorch sees a GPU and falls back to the CPU quietly.",
        &DEVICE,
        GucContext::Userset,
        GucFlags::default(),
    );
    // Resource settings are superuser-only (SUSET): a DBA sets them per cluster, database or
    // role (ALTER ROLE ... SET), and no role raises its own.
    GucRegistry::define_int_guc(
        c"stan.threads",
        c"libtorch intra-op threads per backend.",
        c"Keep it low when several sessions train or generate at once.",
        &THREADS,
        1,
        256,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"stan.max_streams",
        c"The most streams one stan_generate call runs.",
        c"Each stream holds its window of rows and activations in the backend.",
        &MAX_STREAMS,
        1,
        stan_core::pipeline::MAX_STREAMS as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"stan.max_rows_per_call",
        c"The most rows one stan_generate call returns.",
        c"A call that would return more stops with an error; generate the span in parts.",
        &MAX_ROWS_PER_CALL,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"stan.max_memory_mb",
        c"The memory one stan_train or stan_generate call may plan to hold, in MB.",
        c"Estimated from the network's shape, the rows and the batch (training) or the streams (generation) before anything large is allocated.",
        &MAX_MEMORY_MB,
        64,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"stan.max_training_rows",
        c"The most rows stan_train reads into memory.",
        c"Larger tables need options => '{\"max_rows\": n}', which samples whole streams.",
        &MAX_TRAINING_ROWS,
        100,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    stan_core::interrupt::install(check_for_interrupts);
}
