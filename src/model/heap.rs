//! Keeping freed memory in the process while training.
//!
//! Every training step allocates and frees the same tensors (tens of MB each on a day of
//! flows). With glibc's defaults the top of the heap is handed back to the kernel after each
//! step, so the next step takes a page fault for every 4 kB page it touches again (see
//! benches/RESULTS.md). While a `RetainFreedMemory` lives, freed memory stays in the heap for
//! the next step. When it is dropped, the heap is trimmed, so a backend does not keep its
//! training peak after `stan_train` returns, and the thresholds become those glibc's own
//! adjustment settles on after freeing large blocks (any `mallopt` call turns it off).

/// While training, allocations up to this size come from the heap, not from mappings of their
/// own (on a day of flows, a validation chunk's tensors exceed glibc's usual 32 MB limit).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRAINING_MMAP_THRESHOLD: libc::c_int = 1 << 30;
/// While training, free memory at the top of the heap is given back only beyond this much.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRAINING_TRIM_THRESHOLD: libc::c_int = 1 << 30;
/// Afterwards: glibc's largest dynamic mmap threshold on 64-bit systems (32 MB), and twice that
/// for trimming, as its dynamic rule sets them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTLED_MMAP_THRESHOLD: libc::c_int = 32 * 1024 * 1024;

/// While any lives, freed memory is kept for reuse (see the module comment). Guards may overlap
/// (trainings on several threads of one process): the last one to go restores the settings.
#[must_use = "the setting lasts only while the guard lives"]
pub struct RetainFreedMemory(());

/// Guards alive in this process.
static GUARDS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl RetainFreedMemory {
    pub fn new() -> RetainFreedMemory {
        let mut guards = GUARDS.lock().unwrap_or_else(|e| e.into_inner());
        *guards += 1;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if *guards == 1 {
            // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, TRAINING_MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD);
            }
        }
        RetainFreedMemory(())
    }
}

impl Default for RetainFreedMemory {
    fn default() -> Self {
        RetainFreedMemory::new()
    }
}

impl Drop for RetainFreedMemory {
    fn drop(&mut self) {
        let mut guards = GUARDS.lock().unwrap_or_else(|e| e.into_inner());
        *guards -= 1;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if *guards == 0 {
            // SAFETY: as above; malloc_trim only returns free memory to the kernel.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, SETTLED_MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * SETTLED_MMAP_THRESHOLD);
                libc::malloc_trim(0);
            }
        }
    }
}
