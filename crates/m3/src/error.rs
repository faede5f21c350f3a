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
    /// M3 could not be reached or did not answer in time, after the request may have been sent
    /// (a timeout waiting for the answer, a connection dropped mid-answer): it may have run.
    #[error("M3 unreachable: {0}")]
    Unreachable(String),
    /// M3 could not be reached before the request was sent (connection refused, DNS, TLS, the
    /// token endpoint failing): the request certainly did not run.
    #[error("M3 unreachable: {0}")]
    NotSent(String),
    /// The answer did not have the documented shape.
    #[error("unexpected answer from {path}: {detail}")]
    Decode { path: String, detail: String },
}

impl M3Error {
    /// Whether retrying later may succeed (outages, throttling, 5xx), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            M3Error::Throttled { .. } | M3Error::Unreachable(_) | M3Error::NotSent(_) => true,
            M3Error::Http { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// Whether the request may have reached M3 and run although no success answer came back
    /// (an ambiguous failure): no answer after sending ([`M3Error::Unreachable`]), HTTP 5xx
    /// (500, 502, 503, 504: M3 or the gateway failed, possibly after M3 ran the transaction), or a
    /// 200 answer that could not be read ([`M3Error::Decode`]). Refusals (NOK, 4xx, 429,
    /// authentication) and failures before sending ([`M3Error::NotSent`]) are not ambiguous.
    pub fn may_have_run(&self) -> bool {
        match self {
            M3Error::Unreachable(_) | M3Error::Decode { .. } => true,
            M3Error::Http { status, .. } => *status >= 500,
            M3Error::Authentication { .. }
            | M3Error::NotAuthorised { .. }
            | M3Error::Nok { .. }
            | M3Error::Throttled { .. }
            | M3Error::NotSent(_) => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_after_sending_may_have_run_and_refusals_did_not() {
        let http = |status| M3Error::Http {
            status,
            path: "/x".into(),
            body: String::new(),
        };
        for status in [500, 502, 503, 504] {
            assert!(http(status).may_have_run(), "{status}");
            assert!(http(status).is_transient(), "{status}");
        }
        assert!(M3Error::Unreachable("timed out".into()).may_have_run());
        for e in [
            http(400),
            http(404),
            M3Error::Throttled { retry_after: None },
            M3Error::NotSent("connection refused".into()),
        ] {
            assert!(!e.may_have_run(), "{e}");
        }
        assert!(M3Error::NotSent("connection refused".into()).is_transient());
    }
}
