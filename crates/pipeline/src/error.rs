//! Errors of the connector loops.

/// A connector step failed; the loop retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// M3 refused or failed a call.
    #[error(transparent)]
    M3(#[from] m3::M3Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A webhook event cannot be used.
    #[error("webhook event: {0}")]
    Webhook(String),
    /// A stored cursor could not be read back.
    #[error("stored cursor of mapping `{mapping}` is unreadable: {detail}")]
    Cursor { mapping: String, detail: String },
    /// A write running on a task of its own was cancelled (the runtime is stopping); what it
    /// would have written is read again after the restart.
    #[error("a write was cancelled: the process is stopping")]
    Cancelled,
}
