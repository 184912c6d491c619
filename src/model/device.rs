//! Device choice. rustc links with --as-needed, which drops libtorch_cuda.so because nothing
//! references it by symbol; without it libtorch never registers CUDA. We dlopen it on demand
//! instead of linking it, so a machine without the CUDA libraries still loads the extension.

use crate::error::{Error, Result};
use std::sync::OnceLock;
use tch::Device;

static CUDA_LOADED: OnceLock<bool> = OnceLock::new();

/// Loads libtorch's CUDA backend from `libtorch_lib` once; false when it cannot be loaded.
pub fn load_cuda_backend(libtorch_lib: &str) -> bool {
    *CUDA_LOADED.get_or_init(|| {
        let path =
            std::ffi::CString::new(format!("{libtorch_lib}/libtorch_cuda.so")).expect("path");
        // SAFETY: dlopen with a valid C string; the handle is kept for the process lifetime.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        !handle.is_null()
    })
}

/// `cpu`, `cuda` or `auto` (CUDA when libtorch sees a GPU, else CPU, quietly).
pub fn resolve(name: &str, libtorch_lib: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if load_cuda_backend(libtorch_lib) && tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cuda" => {
            if load_cuda_backend(libtorch_lib) && tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(Error::option(
                    "device",
                    "cuda was asked for but libtorch sees no CUDA device",
                ))
            }
        }
        other => Err(Error::option(
            "device",
            format!("\"{other}\" is not one of auto, cpu, cuda"),
        )),
    }
}

pub fn name(device: Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        _ => "cuda",
    }
}
