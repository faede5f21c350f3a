//! `POST /webhooks/{connection}/{TABLE}`: M3 Event Hub style events pushed to a hosted
//! connection, checked against the connection's own webhook credentials (not API tokens).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use runtime::WebhookAuth;

use crate::auth::{constant_time_eq, credentials, Attempt};
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module (public to the token middleware: webhooks carry their own credentials).
pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/{c}/{table}", post(webhook))
}

/// `POST /webhooks/{connection}/{TABLE}`: M3 Event Hub style events (JSON or `EventData` XML),
/// pushed. They are hints: the connector reads each row from M3 before anything is written.
/// 401 without valid credentials (counted; 429 after too many failures from the source or
/// for the connection), 400 naming what is wrong with the event, 202 when
/// applied.
#[utoipa::path(
    post,
    path = "/webhooks/{c}/{table}",
    operation_id = "webhook",
    summary = "an M3 Event Hub style event (a hint: the row is read back from M3)",
    tag = "webhooks",
    params(("c" = String, Path, description = "connection name"), ("table" = String, Path, description = "M3 table, like MITMAS")),
    request_body(content((Object = "application/json"), (String = "application/xml")), description = "the event, JSON or `EventData` XML"),
    responses(
        (status = 202, description = "applied", body = crate::routes::openapi::schemas::WebhookOutcome),
        (status = 400, description = "the event cannot be read (what is wrong is named)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 401, description = "webhook credentials missing or wrong", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection, or it maps no such table", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is self-hosted: it receives no webhooks", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "the event cannot be applied now", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn webhook(
    State(st): State<AppState>,
    Path((c, table)): Path<(String, String)>,
    source: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    if conn.remote.is_some() {
        return Err(ApiError::Conflict(format!(
            "connection `{c}` is self-hosted: its connector polls M3 on the customer's network; webhooks are not received by Studio"
        )));
    }
    let ingest = &conn.connector;
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !accepts(&conn.webhook_auth, auth) {
        ingest.count_unauthorized();
        tracing::warn!(connection = %c, table = %table, "webhook refused: missing or wrong credentials");
        // Failures are throttled per source and per connection; valid credentials never are.
        let ip = source.map(|s| s.0 .0.ip());
        if let Some(left) = st.auth.fail(ip, Attempt::Webhook(&c)) {
            return Ok(super::middleware::too_many_failures(left));
        }
        return Ok((
            StatusCode::UNAUTHORIZED,
            [(
                axum::http::header::WWW_AUTHENTICATE,
                "Bearer, Basic realm=\"erp-bridge webhooks\"",
            )],
            Json(json!({"error": {"code": "unauthorized", "message": "webhook credentials missing or wrong"}})),
        )
            .into_response());
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let hints = pipeline::parse_event(&body, content_type, &table)
        .map_err(|e| ApiError::BadRequest(format!("webhook event: {e}")))?;
    let upper = table.to_ascii_uppercase();
    if !ingest.has_table(&upper) {
        return Err(ApiError::NotFound(format!("connection `{c}` maps no table `{upper}`")));
    }
    let outcome = ingest.hints(&hints).await.map_err(|e| match e {
        pipeline::PipelineError::Webhook(m) => ApiError::BadRequest(format!("webhook event: {m}")),
        other => ApiError::Unavailable(format!("cannot apply the event now: {other}")),
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!(outcome))).into_response())
}

/// Whether the `Authorization` header value carries credentials `auth` accepts.
fn accepts(auth: &WebhookAuth, header: Option<&str>) -> bool {
    use base64::Engine;
    let Some(h) = header else { return false };
    if let (Some(token), Some(given)) = (&auth.bearer, credentials(h, "Bearer")) {
        return constant_time_eq(token.expose().as_bytes(), given.as_bytes());
    }
    if let (Some((user, pass)), Some(given)) = (&auth.basic, credentials(h, "Basic")) {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
            return false;
        };
        let expected = format!("{user}:{}", pass.expose());
        return constant_time_eq(expected.as_bytes(), &raw);
    }
    false
}
