//! The one place that turns core errors into SQL errors with a SQLSTATE.

use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use stan_core::Error;

pub fn sqlstate(e: &Error) -> Code {
    match e {
        Error::NoData(_) => Code::ERRCODE_DATA_EXCEPTION,
        Error::UnsupportedColumn { .. } => Code::ERRCODE_FEATURE_NOT_SUPPORTED,
        Error::InvalidValue { .. } => Code::ERRCODE_DATA_EXCEPTION,
        Error::InvalidOption { .. } => Code::ERRCODE_INVALID_PARAMETER_VALUE,
        Error::CorruptModel(_) => Code::ERRCODE_DATA_CORRUPTED,
        Error::RowTypeMismatch(_) => Code::ERRCODE_DATATYPE_MISMATCH,
        Error::LimitExceeded(_) => Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Error::Torch(_) => Code::ERRCODE_INTERNAL_ERROR,
    }
}

pub fn raise(e: Error) -> ! {
    ereport!(ERROR, sqlstate(&e), format!("stan: {e}"));
}

/// Unwraps a core result or raises it as a SQL error.
pub fn ok<T>(r: stan_core::Result<T>) -> T {
    r.unwrap_or_else(|e| raise(e))
}

/// Raises an error with an explicit SQLSTATE.
pub fn fail(code: Code, message: String) -> ! {
    ereport!(ERROR, code, message);
}

/// The value of an argument that may not be NULL, or a 22004 error naming it.
pub fn required<T>(value: Option<T>, argument: &str) -> T {
    value.unwrap_or_else(|| {
        fail(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("stan: argument \"{argument}\" must not be NULL"),
        )
    })
}

/// An SPI failure in stan's own fixed SQL (not the user's): `what` says what stan was doing.
pub fn internal(what: &str, e: impl std::fmt::Display) -> ! {
    fail(Code::ERRCODE_INTERNAL_ERROR, format!("stan: {what}: {e}"))
}
