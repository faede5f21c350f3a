//! Store errors.

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    /// Schema migration failed.
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A synchronous read of a SQLite store's read model failed.
    #[error("store read failed: {0}")]
    Read(#[from] rusqlite::Error),
    /// A stored value could not be decoded.
    #[error("store holds an undecodable {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}
