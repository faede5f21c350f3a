//! Errors talking to M3: OAuth2 refusals, M3's `ServerReturnedNOK` answers, gateway and transport failures.

use std::time::Duration;

/// What went wrong calling M3.
#[derive(Debug, thiserror::Error)]
pub enum M3Error {
    /// The authorization server refused the credentials (`invalid_client`, `invalid_grant`, ...).
    #[error("authentication failed: {error}: {description}")]
    Authentication { error: String, description: String },
    /// The gateway refused the token or the call (403).
    #[error("not authorised: HTTP {status} on {path}")]
    NotAuthorised { status: u16, path: String },
    /// M3 answered `ServerReturnedNOK`.
    #[error("{program}/{transaction} returned NOK {code}{}: {message}", field.as_deref().map(|f| format!(" on field {f}")).unwrap_or_default())]
    Nok {
        program: String,
        transaction: String,
        code: String,
        field: Option<String>,
        message: String,
    },
    /// 429: quota exceeded; retry after the given delay if M3 sent one.
    #[error("throttled by the ION API gateway (429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    /// Any other unexpected HTTP status (5xx, 504 gateway timeout, 404 ...).
    #[error("HTTP {status} from {path}: {body}")]
    Http { status: u16, path: String, body: String },
    /// M3 could not be reached or did not answer in time.
    #[error("M3 unreachable: {0}")]
    Unreachable(String),
    /// The answer did not have the documented shape.
    #[error("unexpected answer from {path}: {detail}")]
    Decode { path: String, detail: String },
}

impl M3Error {
    /// Whether retrying later may succeed (outages, throttling, 5xx), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            M3Error::Throttled { .. } | M3Error::Unreachable(_) => true,
            M3Error::Http { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            M3Error::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }
}
