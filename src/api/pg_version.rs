//! The differences between the PostgreSQL major versions stan builds for, in one place. pgrx's
//! bindings absorb the rest; a cargo feature (pg15 ... pg18) picks the server.

use pgrx::pg_sys;

/// The `index`th (1-based) entry of this transaction's snapshot of the backend statuses, or null
/// past the end. PostgreSQL 16 renamed the function; nothing else here differs by version.
#[cfg(feature = "pg15")]
pub fn backend_status_snapshot_entry(index: std::ffi::c_int) -> *mut pg_sys::LocalPgBackendStatus {
    // SAFETY: takes the snapshot if this transaction has none yet; returns null out of range.
    unsafe { pg_sys::pgstat_fetch_stat_local_beentry(index) }
}

#[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
pub fn backend_status_snapshot_entry(index: std::ffi::c_int) -> *mut pg_sys::LocalPgBackendStatus {
    // SAFETY: takes the snapshot if this transaction has none yet; returns null out of range.
    unsafe { pg_sys::pgstat_get_local_beentry_by_index(index) }
}
