//! One error type for the core. The pgrx layer maps each variant to a SQLSTATE in one place
//! (`api::error`), so every message here names the column, option or value at fault.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input table has no rows the model could learn from.
    #[error("{0}")]
    NoData(String),
    /// A column's type cannot be modelled.
    #[error("column \"{column}\": {reason}")]
    UnsupportedColumn { column: String, reason: String },
    /// A column's values cannot be modelled (IPv6, NaN, negative counts ...).
    #[error("column \"{column}\": {reason}")]
    InvalidValue { column: String, reason: String },
    /// An option key or value is wrong.
    #[error("option \"{key}\": {reason}")]
    InvalidOption { key: String, reason: String },
    /// Stored model bytes or metadata failed validation.
    #[error("model is corrupt or foreign: {0}")]
    CorruptModel(String),
    /// The row type asked for does not match the model's columns.
    #[error("{0}")]
    RowTypeMismatch(String),
    /// The input or the request is larger than a documented limit allows.
    #[error("{0}")]
    LimitExceeded(String),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn column(column: &str, reason: impl Into<String>) -> Self {
        Error::InvalidValue {
            column: column.to_string(),
            reason: reason.into(),
        }
    }
    pub fn option(key: &str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
