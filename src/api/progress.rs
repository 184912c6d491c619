//! Training progress that any session can read (`stan.progress`, sql/progress.sql), like the
//! built-in pg_stat_progress_* views and without shared_preload_libraries.
//!
//! Every backend already has a slot in shared memory, its PgBackendStatus (what
//! pg_stat_activity reads), with 20 int64 progress parameters. The training backend writes its
//! record there with `pgstat_progress_update_multi_param`, which only checks the indexes, not
//! the command; `st_progress_command` stays PROGRESS_COMMAND_INVALID, so the built-in views,
//! which select by command, never show it. Parameter 0 holds [`MAGIC`] to tell stan's record
//! from another command's leftovers; other sessions read it from their snapshot of the status
//! array, as pg_stat_activity does.
//!
//! Layout (one int64 each; floats as their bits, NaN for "not yet", counts -1 for "not yet"):
//! [0] magic, [1] phase, [2] epoch, [3] epochs, [4] rows, [5] rows/s, [6] loss,
//! [7] validation loss, [8] when the last epoch was reported (TimestampTz), [9] the remaining
//! seconds estimated then, [10] the model owner's OID, [11] the start (TimestampTz),
//! [12..20] the model name (at most 63 bytes, NUL-padded). Storing the report time rather than
//! an elapsed time lets a reader age the estimate to its own clock.

use pgrx::prelude::*;
use stan_core::model::train::EpochReport;
use std::cell::Cell;
use std::marker::PhantomData;

/// "STAN" and the layout's version: a reader skips records of any other layout.
const MAGIC: i64 = 0x5354_414E_0000_0001;

const PARAMS: usize = pg_sys::PGSTAT_NUM_PROGRESS_PARAM as usize;
const MAGIC_AT: usize = 0;
const PHASE_AT: usize = 1;
const EPOCH_AT: usize = 2;
const EPOCHS_AT: usize = 3;
const ROWS_AT: usize = 4;
const ROWS_PER_S_AT: usize = 5;
const LOSS_AT: usize = 6;
const VALIDATION_LOSS_AT: usize = 7;
const REPORTED_AT: usize = 8;
const ETA_AT: usize = 9;
const OWNER_AT: usize = 10;
const STARTED_AT: usize = 11;
const NAME_AT: usize = 12;
const NAME_BYTES: usize = (PARAMS - NAME_AT) * 8;

type Record = [i64; PARAMS];

/// What a training is doing; the code is what the record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Reading = 1,
    Fitting = 2,
    Training = 3,
    Storing = 4,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Reading => "reading",
            Phase::Fitting => "fitting",
            Phase::Training => "training",
            Phase::Storing => "storing",
        }
    }

    fn from_code(code: i64) -> Option<Phase> {
        [
            Phase::Reading,
            Phase::Fitting,
            Phase::Training,
            Phase::Storing,
        ]
        .into_iter()
        .find(|phase| *phase as i64 == code)
    }
}

/// This backend's published training record, cleared when dropped.
///
/// Every update publishes the whole record in one write, so a reader never sees half of one,
/// and a record wiped by a built-in command that ran meanwhile (its start zeroes the
/// parameters) comes back at the next update. Not `Send`: only the backend's own thread may
/// write its status entry.
pub struct TrainingProgress {
    record: Cell<Record>,
    backend_thread_only: PhantomData<*const ()>,
}

impl TrainingProgress {
    /// Publishes a new record in phase `reading`. `owner` is the model's owner.
    pub fn start(model: &str, owner: pg_sys::Oid) -> Self {
        let mut record: Record = [0; PARAMS];
        record[MAGIC_AT] = MAGIC;
        record[PHASE_AT] = Phase::Reading as i64;
        for at in [EPOCH_AT, EPOCHS_AT, ROWS_AT] {
            record[at] = -1;
        }
        for at in [ROWS_PER_S_AT, LOSS_AT, VALIDATION_LOSS_AT, ETA_AT] {
            record[at] = f64::NAN.to_bits() as i64;
        }
        record[OWNER_AT] = i64::from(owner.to_u32());
        record[STARTED_AT] = now();
        record[NAME_AT..].copy_from_slice(&encode_name(model));
        // Drop does not run when the backend exits (FATAL, pg_terminate_backend); the abort
        // does. The callback lasts for this transaction only, and clearing twice is harmless.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, clear_own_record);
        let progress = TrainingProgress {
            record: Cell::new(record),
            backend_thread_only: PhantomData,
        };
        progress.publish();
        progress
    }

    pub fn phase(&self, phase: Phase) {
        self.update(|record| record[PHASE_AT] = phase as i64);
    }

    /// The number of training rows, known once they are read.
    pub fn rows(&self, rows: usize) {
        self.update(|record| record[ROWS_AT] = i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// An epoch's end, as the trainer reports it (its windows per second are rows per second).
    pub fn epoch(&self, report: &EpochReport) {
        let reported_at = now();
        self.update(|record| {
            record[PHASE_AT] = Phase::Training as i64;
            record[EPOCH_AT] = i64::try_from(report.epoch).unwrap_or(i64::MAX);
            record[EPOCHS_AT] = i64::try_from(report.epochs).unwrap_or(i64::MAX);
            record[ROWS_PER_S_AT] = report.windows_per_s.to_bits() as i64;
            record[LOSS_AT] = report.train_loss.to_bits() as i64;
            record[VALIDATION_LOSS_AT] = report.validation_loss.to_bits() as i64;
            record[REPORTED_AT] = reported_at;
            record[ETA_AT] = report.remaining_s.to_bits() as i64;
        });
    }

    fn update(&self, change: impl FnOnce(&mut Record)) {
        let mut record = self.record.get();
        change(&mut record);
        self.record.set(record);
        self.publish();
    }

    fn publish(&self) {
        let entry = own_status_entry();
        // SAFETY: a non-null MyBEEntry is this backend's own slot, written only by this thread.
        if entry.is_null() || unsafe { (*entry).st_progress_command } != NO_COMMAND {
            // A built-in command reporting progress here (COPY (SELECT stan_train(...)) TO ...)
            // owns the parameters: stan's record waits rather than corrupting its view.
            return;
        }
        let indexes: [std::ffi::c_int; PARAMS] = std::array::from_fn(|i| i as std::ffi::c_int);
        let record = self.record.get();
        // SAFETY: both arrays hold PARAMS (PGSTAT_NUM_PROGRESS_PARAM) elements and every index
        // is below it; the call only stores into this backend's own entry, inside its
        // change-count protocol, and cannot raise an error.
        unsafe {
            pg_sys::pgstat_progress_update_multi_param(
                PARAMS as std::ffi::c_int,
                indexes.as_ptr(),
                record.as_ptr(),
            )
        };
    }
}

impl Drop for TrainingProgress {
    fn drop(&mut self) {
        clear_own_record();
    }
}

const NO_COMMAND: pg_sys::ProgressCommandType::Type =
    pg_sys::ProgressCommandType::PROGRESS_COMMAND_INVALID;

fn own_status_entry() -> *mut pg_sys::PgBackendStatus {
    // SAFETY: reads a pointer that PostgreSQL sets at backend start and nulls at exit.
    unsafe { pg_sys::MyBEEntry }
}

/// Removes this backend's record, if stan's is the one there. Also runs as an abort callback,
/// so it must never raise an error or panic.
fn clear_own_record() {
    let entry = own_status_entry();
    if entry.is_null() {
        return;
    }
    // SAFETY: a non-null MyBEEntry is this backend's own slot, written only by this thread.
    let (command, marker) = unsafe {
        (
            (*entry).st_progress_command,
            (*entry).st_progress_param[MAGIC_AT],
        )
    };
    // pgstat_progress_end_command would not do: it returns early for PROGRESS_COMMAND_INVALID.
    if command == NO_COMMAND && marker == MAGIC {
        // SAFETY: index 0 is in range; the call only stores into this backend's own entry.
        unsafe { pg_sys::pgstat_progress_update_param(MAGIC_AT as std::ffi::c_int, 0) };
    }
}

fn now() -> pg_sys::TimestampTz {
    // SAFETY: reads the clock; no error path.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

fn encode_name(model: &str) -> [i64; PARAMS - NAME_AT] {
    // At most NAME_BYTES - 1 bytes, cut at a character boundary, so a NUL always ends it.
    let mut end = model.len().min(NAME_BYTES - 1);
    while !model.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; NAME_BYTES];
    bytes[..end].copy_from_slice(&model.as_bytes()[..end]);
    std::array::from_fn(|i| {
        i64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
    })
}

fn decode_name(params: &[i64]) -> String {
    let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_ne_bytes()).collect();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A float field; NaN is "not yet".
fn float(bits: i64) -> Option<f64> {
    Some(f64::from_bits(bits as u64)).filter(|v| !v.is_nan())
}

/// A count field; -1 is "not yet".
fn count(value: i64) -> Option<i64> {
    Some(value).filter(|v| *v >= 0)
}

/// pg_stat_activity's rule: the caller may see a backend's details when it has the privileges
/// of that backend's role or of pg_read_all_stats (superusers have every role's).
fn may_see(backend_role: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups inside the calling transaction.
    unsafe {
        let caller = pg_sys::GetUserId();
        pg_sys::has_privs_of_role(caller, pg_sys::Oid::from(pg_sys::ROLE_PG_READ_ALL_STATS))
            || pg_sys::has_privs_of_role(caller, backend_role)
    }
}

fn role_name(role: pg_sys::Oid) -> Option<String> {
    // SAFETY: a syscache lookup that returns null instead of raising when the role is gone.
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    c_text(name)
}

fn database_name(database: pg_sys::Oid) -> Option<String> {
    // SAFETY: a syscache lookup that returns null when the database is gone.
    let name = unsafe { pg_sys::get_database_name(database) };
    c_text(name)
}

fn c_text(text: *const std::ffi::c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null, from a palloc'd NUL-terminated copy that lives for this call.
    let text = unsafe { std::ffi::CStr::from_ptr(text) };
    Some(text.to_string_lossy().into_owned())
}

#[pg_schema]
mod stan {
    use super::*;

    /// The rows of `stan.progress` (sql/progress.sql): one per training running now in a
    /// backend whose role the caller may see, from this transaction's snapshot of the statuses.
    // pgrx reads the result columns' names from the signature, so no type alias.
    #[allow(clippy::type_complexity)]
    #[pg_extern(name = "progress_rows")]
    fn progress_rows() -> TableIterator<
        'static,
        (
            name!(pid, i32),
            name!(datname, Option<String>),
            name!(model, String),
            name!(owner, Option<String>),
            name!(phase, Option<String>),
            name!(epoch, Option<i64>),
            name!(epochs, Option<i64>),
            name!(rows, Option<i64>),
            name!(rows_per_s, Option<f64>),
            name!(loss, Option<f64>),
            name!(validation_loss, Option<f64>),
            name!(elapsed_s, f64),
            name!(eta_s, Option<f64>),
            name!(started_at, Option<TimestampWithTimeZone>),
        ),
    > {
        let now = now();
        let seconds_since = |at: i64| (now - at) as f64 / 1e6;
        let mut rows = Vec::new();
        // SAFETY: takes the snapshot if this transaction has none yet.
        let backends = unsafe { pg_sys::pgstat_fetch_stat_numbackends() };
        for index in 1..=backends {
            let local = super::super::pg_version::backend_status_snapshot_entry(index);
            if local.is_null() {
                continue;
            }
            // SAFETY: a non-null entry of the snapshot, a private copy that lasts until the
            // transaction ends; copied out so nothing borrows it.
            let status = unsafe { (*local).backendStatus };
            let params = status.st_progress_param;
            // Only a query running now: an idle backend keeps whatever its last training left.
            // A record older than the backend is a predecessor's in the same slot (PostgreSQL
            // does not zero the parameters when a new backend takes it).
            if params[MAGIC_AT] != MAGIC
                || status.st_progress_command != NO_COMMAND
                || status.st_state != pg_sys::BackendState::STATE_RUNNING
                || params[STARTED_AT] < status.st_proc_start_timestamp
                || !may_see(status.st_userid)
            {
                continue;
            }
            let eta = float(params[ETA_AT])
                .map(|eta| (eta - seconds_since(params[REPORTED_AT])).max(0.0));
            rows.push((
                status.st_procpid,
                database_name(status.st_databaseid),
                decode_name(&params[NAME_AT..]),
                role_name(pg_sys::Oid::from(params[OWNER_AT] as u32)),
                Phase::from_code(params[PHASE_AT]).map(|phase| phase.label().to_string()),
                count(params[EPOCH_AT]),
                count(params[EPOCHS_AT]),
                count(params[ROWS_AT]),
                float(params[ROWS_PER_S_AT]),
                float(params[LOSS_AT]),
                float(params[VALIDATION_LOSS_AT]),
                seconds_since(params[STARTED_AT]).max(0.0),
                eta,
                TimestampWithTimeZone::try_from(params[STARTED_AT]).ok(),
            ));
        }
        TableIterator::new(rows)
    }
}
