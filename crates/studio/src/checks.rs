//! Live checks for the connection wizard: an uploaded `.ionapi` file validated key by key, then
//! verified against M3 (token, then one MI call), with the exact failure when it does not work.

use axum::body::Bytes;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use m3::{ClientOptions, IonApi, IonApiError, M3Client, M3Error};
use serde_json::{json, Value};

use crate::routes::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/checks/ionapi", post(check_ionapi))
}

/// Upload the text of an `.ionapi` file; the answer says, step by step, what works:
/// `{"valid", "errors": [{"key", "message"}], "tenant", "token": {"ok", "message"}, "mi": {"ok", "message"}, "status"}`
/// where `status` is `Invalid`, `Unreachable`, `AuthenticationFailed`, `AuthorizationFailed` or `Healthy`.
/// Secrets are never echoed.
async fn check_ionapi(body: Bytes) -> impl IntoResponse {
    let text = String::from_utf8_lossy(&body);
    let ion = match IonApi::parse(&text) {
        Ok(ion) => ion,
        Err(e) => {
            let key = match &e {
                IonApiError::Missing { key, .. } | IonApiError::Invalid { key, .. } => Some(*key),
                _ => None,
            };
            return Json(json!({
                "valid": false, "status": "Invalid",
                "errors": [{"key": key, "message": e.to_string()}],
            }));
        }
    };
    let summary = json!({"tenant": ion.tenant, "application": ion.app_name, "gateway": ion.gateway_url, "clientId": ion.client_id});
    let client = match M3Client::new(
        ion,
        ClientOptions {
            timeout: std::time::Duration::from_secs(15),
            company: None,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            return Json(
                json!({"valid": true, "status": "Unreachable", "file": summary, "errors": [], "token": {"ok": false, "message": e.to_string()}}),
            )
        }
    };
    let token = client.access_token().await;
    let token_step = step(&token.as_ref().map(|_| ()));
    if let Err(e) = token {
        return Json(
            json!({"valid": true, "status": status_of(&e), "file": summary, "errors": [], "token": token_step}),
        );
    }
    let mi = client.execute("MMS200MI", "LstItmByItm", &[], 1).await;
    let mi_step = step(&mi.as_ref().map(|_| ()));
    let status = match &mi {
        Ok(_) => "Healthy",
        // M3 answered: reachable and authorised, even if the transaction refused.
        Err(M3Error::Nok { .. }) => "Healthy",
        Err(e) => status_of(e),
    };
    Json(json!({"valid": true, "status": status, "file": summary, "errors": [], "token": token_step, "mi": mi_step}))
}

fn step(r: &Result<(), &M3Error>) -> Value {
    match r {
        Ok(()) => json!({"ok": true, "message": "ok"}),
        Err(e) => json!({"ok": false, "message": e.to_string()}),
    }
}

fn status_of(e: &M3Error) -> &'static str {
    match e {
        M3Error::Authentication { .. } => "AuthenticationFailed",
        M3Error::NotAuthorised { .. } => "AuthorizationFailed",
        _ => "Unreachable",
    }
}
