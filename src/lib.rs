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
    GucRegistry::define_int_guc(
        c"stan.threads",
        c"libtorch intra-op threads per backend.",
        c"Keep it low when several sessions train or generate at once.",
        &THREADS,
        1,
        256,
        GucContext::Userset,
        GucFlags::default(),
    );
}
