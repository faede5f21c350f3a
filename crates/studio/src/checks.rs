//! Live checks for the connection wizard: an uploaded `.ionapi` file validated key by key, then
//! verified against M3 (token, then one MI call), with the exact failure when it does not work.
//! The answers are JSON documents for the wizard; the routes are `routes/checks.rs` and
//! `routes/connections.rs`.

use m3::{ClientOptions, IonApi, IonApiError, M3Client, M3Error};
use serde_json::{json, Value};

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
pub(crate) async fn check(text: &str, mdp: Option<m3::MdpEndpoint>) -> (Value, Option<IonApi>) {
    let (mut out, ion) = validate_only(text);
    let Some(ion) = ion else { return (out, None) };
    let client = match M3Client::new(
        ion.clone(),
        ClientOptions {
            timeout: std::time::Duration::from_secs(15),
            company: None,
            mdp,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            out["status"] = json!("Unreachable");
            out["token"] = json!({"ok": false, "message": e.to_string()});
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
        Err(e) => json!({"ok": false, "message": e.to_string()}),
    }
}

pub(crate) fn status_of(e: &M3Error) -> &'static str {
    match e {
        M3Error::Authentication { .. } => "AuthenticationFailed",
        M3Error::NotAuthorised { .. } => "AuthorizationFailed",
        _ => "Unreachable",
    }
}
