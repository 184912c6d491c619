//! Cancellation from inside the core's long loops. The core knows nothing of PostgreSQL, so the
//! extension installs a check (`check_for_interrupts!`) once per backend; loops that can run for
//! more than a fraction of a second call [`check`], which raises the pending cancel or timeout
//! there. Without an installed check (plain `cargo test`, the benchmarks) it does nothing.

use std::sync::OnceLock;
use std::thread::ThreadId;

static CHECK: OnceLock<(ThreadId, fn())> = OnceLock::new();

/// Installs the check; only the installing thread (a backend's one thread) ever runs it, so a
/// worker thread of the sampler never calls into PostgreSQL.
pub fn install(check: fn()) {
    let _ = CHECK.set((std::thread::current().id(), check));
}

/// Runs the installed check on the installing thread; a no-op anywhere else.
pub fn check() {
    if let Some((thread, check)) = CHECK.get() {
        if *thread == std::thread::current().id() {
            check();
        }
    }
}
