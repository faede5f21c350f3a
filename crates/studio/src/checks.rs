//! Live checks for the connection wizard: an uploaded `.ionapi` file validated key by key, then
//! verified against M3 (token, then one MI call), with the exact failure when it does not work.
//! The answers are JSON documents for the wizard; the routes are `routes/checks.rs` and
//! `routes/connections.rs`.
//!
//! These calls go to URLs a user typed, so they are held short: admin-only (the token
//! middleware), no redirects followed (the M3 client's policy), a [`CHECK_TIMEOUT`], the hosts
//! limited to `outbound.allowed_hosts` when it is set ([`Outbound`]), and what the remote
//! server said is never echoed: a failure is its HTTP status and a classified reason
//! ([`classify`]), an OAuth error only as its registered code.

use std::time::Duration;

use m3::{ClientOptions, IonApi, IonApiError, M3Client, M3Error};
use serde_json::{json, Value};

/// Time one outbound check call may take.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where outbound calls driven by user input may go (`outbound.allowed_hosts`).
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// Host names (exact, case-insensitive) or `*.suffix` patterns; empty = any host.
    pub allowed_hosts: Vec<String>,
}

impl Outbound {
    /// `Err` naming the host of `url` when the allow-list is set and does not have it.
    pub fn check_url(&self, what: &str, url: &str) -> Result<(), String> {
        if self.allowed_hosts.is_empty() {
            return Ok(());
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .ok_or_else(|| format!("{what}: not a URL with a host"))?;
        let allowed = self.allowed_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == a,
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{what}: host `{host}` is not in outbound.allowed_hosts; the server calls only {}",
                self.allowed_hosts.join(", ")
            ))
        }
    }

    /// The hosts of an `.ionapi` file (gateway and authorization server) checked.
    pub fn check_ionapi(&self, ion: &IonApi) -> Result<(), String> {
        self.check_url("iu", &ion.gateway_url)?;
        self.check_url("pu", &ion.auth_url)
    }
}

/// A failed outbound call as the API tells it: a classified `reason` (`dns`, `connect`,
/// `tls`, `timeout`, `http_status`, `oauth`, `m3`, `unexpected_answer`), the HTTP `status` when
/// there was one, the OAuth `oauthError` code, and a message of ours. Nothing the remote
/// server sent is repeated beyond those.
pub(crate) fn classify(e: &M3Error) -> Value {
    let transport = |s: &str| {
        let l = s.to_ascii_lowercase();
        if l.contains("dns") || l.contains("lookup") || l.contains("resolve") || l.contains("name or service") {
            ("dns", "the host name could not be resolved")
        } else if l.contains("certificate") || l.contains("tls") || l.contains("handshake") || l.contains("ssl") {
            ("tls", "the TLS handshake failed (certificate or protocol)")
        } else if l.contains("timed out") || l.contains("timeout") {
            ("timeout", "no answer in time")
        } else {
            ("connect", "the connection could not be made or was dropped")
        }
    };
    match e {
        M3Error::Authentication { error, .. } => {
            // Only a registered-looking code (RFC 6749 section 5.2), never free text.
            let code =
                (!error.is_empty() && error.len() <= 40 && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                    .then(|| error.clone());
            json!({"reason": "oauth", "oauthError": code, "message": format!(
                "the authorization server refused the credentials{}",
                code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
            )})
        }
        M3Error::NotAuthorised { status, .. } => {
            json!({"reason": "http_status", "status": status, "message": format!("the gateway refused the call (HTTP {status})")})
        }
        M3Error::Throttled { .. } => {
            json!({"reason": "http_status", "status": 429, "message": "the gateway throttled the call (HTTP 429)"})
        }
        M3Error::Http { status, .. } => {
            json!({"reason": "http_status", "status": status, "message": format!("the server answered HTTP {status}")})
        }
        M3Error::Nok {
            program, transaction, ..
        } => {
            json!({"reason": "m3", "message": format!("M3 answered: {program}/{transaction} refused the call")})
        }
        M3Error::Decode { .. } => {
            json!({"reason": "unexpected_answer", "message": "the answer did not have the documented shape"})
        }
        M3Error::Unreachable(s) | M3Error::NotSent(s) => {
            let (reason, message) = transport(s);
            json!({"reason": reason, "message": message})
        }
    }
}

/// Validate an `.ionapi` text key by key: the answer's first part, and the parsed file if valid.
pub(crate) fn validate_only(text: &str) -> (Value, Option<IonApi>) {
    match IonApi::parse(text) {
        Ok(ion) => {
            let summary = json!({"tenant": ion.tenant, "application": ion.app_name, "gateway": ion.gateway_url, "clientId": ion.client_id});
            (
                json!({"valid": true, "status": "Unchecked", "file": summary, "errors": []}),
                Some(ion),
            )
        }
        Err(e) => {
            let key = match &e {
                IonApiError::Missing { key, .. } | IonApiError::Invalid { key, .. } => Some(*key),
                _ => None,
            };
            (
                json!({"valid": false, "status": "Invalid", "errors": [{"key": key, "message": e.to_string()}]}),
                None,
            )
        }
    }
}

/// Validate, then verify live: a token, then one MI call (and MDP through `mdp` when given).
/// Returns the check answer and the parsed file when it is valid (whether or not M3 accepted it).
pub(crate) async fn check(text: &str, mdp: Option<m3::MdpEndpoint>, outbound: &Outbound) -> (Value, Option<IonApi>) {
    let (mut out, ion) = validate_only(text);
    let Some(ion) = ion else { return (out, None) };
    if let Err(message) = outbound.check_ionapi(&ion) {
        out["status"] = json!("NotAllowed");
        out["token"] = json!({"ok": false, "reason": "not_allowed", "message": message});
        return (out, Some(ion));
    }
    let client = match M3Client::new(
        ion.clone(),
        ClientOptions {
            timeout: CHECK_TIMEOUT,
            company: None,
            mdp,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            out["status"] = json!("Unreachable");
            let mut failed = classify(&e);
            failed["ok"] = json!(false);
            out["token"] = failed;
            return (out, Some(ion));
        }
    };
    let token = client.access_token().await;
    out["token"] = step(&token.as_ref().map(|_| ()));
    if let Err(e) = token {
        out["status"] = json!(status_of(&e));
        return (out, Some(ion));
    }
    let mi = client.execute("MMS200MI", "LstItmByItm", &[], 1).await;
    out["mi"] = step(&mi.as_ref().map(|_| ()));
    out["status"] = json!(match &mi {
        Ok(_) => "Healthy",
        // M3 answered: reachable and authorised, even if the transaction refused.
        Err(M3Error::Nok { .. }) => "Healthy",
        Err(e) => status_of(e),
    });
    (out, Some(ion))
}

fn step(r: &Result<(), &M3Error>) -> Value {
    match r {
        Ok(()) => json!({"ok": true, "message": "ok"}),
        Err(e) => {
            let mut failed = classify(e);
            failed["ok"] = json!(false);
            failed
        }
    }
}

pub(crate) fn status_of(e: &M3Error) -> &'static str {
    match e {
        M3Error::Authentication { .. } => "AuthenticationFailed",
        M3Error::NotAuthorised { .. } => "AuthorizationFailed",
        _ => "Unreachable",
    }
}
