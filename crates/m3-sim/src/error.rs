//! Errors of the simulator's direct ("M3 user") operations.

use thiserror::Error;

/// An error from a direct table operation on the simulator ([`crate::Simulator::insert`] and co).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The table does not exist in the simulated M3.
    #[error("table {0} does not exist")]
    UnknownTable(String),
    /// The column does not exist in the table.
    #[error("column {column} does not exist in table {table}")]
    UnknownColumn {
        /// Table name.
        table: String,
        /// Column name as given.
        column: String,
    },
    /// A key was given with the wrong number of values.
    #[error("table {table} has {expected} key columns, {got} key values given")]
    KeyArity {
        /// Table name.
        table: String,
        /// Number of primary-key columns.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// A row with this key already exists.
    #[error("record {key} already exists in {table}")]
    DuplicateKey {
        /// Table name.
        table: String,
        /// The key, values joined with `/`.
        key: String,
    },
    /// No row has this key.
    #[error("record {key} does not exist in {table}")]
    NotFound {
        /// Table name.
        table: String,
        /// The key, values joined with `/`.
        key: String,
    },
    /// A value does not fit its column.
    #[error("invalid value '{value}' for {column}: {reason}")]
    InvalidValue {
        /// Full column name.
        column: String,
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Key columns cannot be changed by an update.
    #[error("key column {0} cannot be changed")]
    KeyChange(String),
    /// Reading or writing a snapshot file failed.
    #[error("snapshot file {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A snapshot file exists but cannot be used (not JSON, wrong format).
    #[error("snapshot file {path} is invalid: {message}")]
    Snapshot {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A webhook subscription cannot be used (bad `M3:TABLE:CUD` filter, URL or table).
    #[error("invalid webhook subscription: {0}")]
    InvalidSubscription(String),
}
