//! Device choice. rustc links with --as-needed, which drops libtorch_cuda.so because nothing
//! references it by symbol; without it libtorch never registers CUDA. We dlopen it on demand
//! instead of linking it, so a machine without the CUDA libraries still loads the extension.

use crate::error::{Error, Result};
use std::sync::OnceLock;
use tch::Device;

static CUDA_LOADED: OnceLock<bool> = OnceLock::new();

/// The directory the loaded libtorch_cpu.so came from: libtorch_cuda.so sits beside it, wherever
/// libtorch was installed (beside the extension, in a venv, on a GPU machine's own copy).
fn libtorch_dir() -> Option<String> {
    // SAFETY: RTLD_NOLOAD only finds an already loaded library; the handle is closed below.
    let handle = unsafe {
        libc::dlopen(
            c"libtorch_cpu.so".as_ptr(),
            libc::RTLD_LAZY | libc::RTLD_NOLOAD,
        )
    };
    if handle.is_null() {
        return None;
    }
    let mut origin = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: RTLD_DI_ORIGIN writes a NUL-terminated path of at most PATH_MAX bytes.
    let found =
        unsafe { libc::dlinfo(handle, libc::RTLD_DI_ORIGIN, origin.as_mut_ptr().cast()) } == 0;
    // SAFETY: the handle came from dlopen above; libtorch stays loaded (stan links it).
    unsafe { libc::dlclose(handle) };
    if !found {
        return None;
    }
    let end = origin.iter().position(|&b| b == 0)?;
    String::from_utf8(origin[..end].to_vec()).ok()
}

/// Loads libtorch's CUDA backend once; false when it cannot be loaded.
pub fn load_cuda_backend() -> bool {
    *CUDA_LOADED.get_or_init(|| {
        let Some(dir) = libtorch_dir() else {
            return false;
        };
        let Ok(path) = std::ffi::CString::new(format!("{dir}/libtorch_cuda.so")) else {
            return false;
        };
        // SAFETY: dlopen with a valid C string; the handle is kept for the process lifetime.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        !handle.is_null()
    })
}

/// `cpu`, `cuda` or `auto` (CUDA when libtorch sees a GPU, else CPU, quietly).
pub fn resolve(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if load_cuda_backend() && tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cuda" => {
            if load_cuda_backend() && tch::Cuda::is_available() {
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
