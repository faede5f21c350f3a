//! Token management: `GET /api/tokens`, `POST /api/tokens` (the token's text is shown once),
//! `DELETE /api/tokens/{id}` (admin only, enforced by the token middleware).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{create_expiring_token, Scope};
use crate::error::ApiError;
use crate::state::AppState;

/// Token management routes (admin only, enforced by the middleware).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: String,
    #[serde(default)]
    connection: Option<String>,
    /// How long it is accepted, from now (`90d`, `12h`, `30m`); without it (and `expires_at`),
    /// it does not expire.
    #[serde(default)]
    expires_in: Option<String>,
    /// When it stops being accepted (RFC 3339, in the future).
    #[serde(default)]
    expires_at: Option<String>,
}

/// Longest expiry accepted: ten years.
const MAX_EXPIRY: chrono::Duration = chrono::Duration::days(3650);

/// When a new token expires, from `expires_in` or `expires_at` (at most one of them).
fn expiry(t: &NewToken, now: chrono::DateTime<chrono::Utc>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let at = match (&t.expires_in, &t.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "expires_in, expires_at: give one of them, not both".into(),
            ))
        }
        (None, None) => return Ok(None),
        (Some(d), None) => {
            let d = humantime::parse_duration(d.trim()).map_err(|e| {
                ApiError::BadRequest(format!("expires_in: {e}; expected a duration such as 90d, 12h or 30m"))
            })?;
            let d = chrono::Duration::from_std(d)
                .ok()
                .filter(|d| *d <= MAX_EXPIRY)
                .ok_or_else(|| ApiError::BadRequest("expires_in: at most 3650d".into()))?;
            now + d
        }
        (None, Some(at)) => chrono::DateTime::parse_from_rfc3339(at.trim())
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "expires_at: {e}; expected an RFC 3339 time such as 2030-01-31T00:00:00Z"
                ))
            })?
            .with_timezone(&chrono::Utc),
    };
    if at <= now {
        return Err(ApiError::BadRequest(format!(
            "expires_at: {} is not in the future",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    if at - now > MAX_EXPIRY {
        return Err(ApiError::BadRequest("expires_at: at most ten years from now".into()));
    }
    Ok(Some(at))
}

#[utoipa::path(
    post,
    path = "/api/tokens",
    operation_id = "createToken",
    summary = "create an API token (admin); its text is shown once",
    tag = "tokens",
    request_body(content = NewToken, content_type = "application/json", description = "name, scope and connection"),
    responses(
        (status = 201, description = "created", body = crate::routes::openapi::schemas::TokenCreated),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn create(State(st): State<AppState>, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let t: NewToken = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e}; expected {{\"name\", \"scope\": read|read-write|admin|read-model, \"connection\"?, \"expires_in\"? (90d) or \"expires_at\"? (RFC 3339)}}"
        ))
    })?;
    if t.name.trim().is_empty() || t.name.len() > 100 {
        return Err(ApiError::BadRequest("name: expected 1 to 100 characters".into()));
    }
    let scope = Scope::parse(&t.scope).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "scope: expected read, read-write, admin or read-model, got {:?}",
            t.scope
        ))
    })?;
    if scope == Scope::Connector {
        return Err(ApiError::BadRequest(
            "scope: connector tokens come with a connector bundle (POST /api/connections/{c}/bundle)".into(),
        ));
    }
    if let Some(c) = &t.connection {
        if !st.connections.contains_key(c) {
            return Err(ApiError::BadRequest(format!("connection: `{c}` does not exist")));
        }
    }
    if scope == Scope::ReadModel && t.connection.is_none() {
        return Err(ApiError::BadRequest(
            "connection: required for read-model tokens".into(),
        ));
    }
    if scope == Scope::Admin && t.connection.is_some() {
        return Err(ApiError::BadRequest(
            "connection: admin tokens cannot be restricted".into(),
        ));
    }
    let expires_at = expiry(&t, chrono::Utc::now())?;
    let (token, text) =
        create_expiring_token(&st.store, t.name.trim(), scope, t.connection.as_deref(), expires_at).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": token.id, "name": token.name, "scope": token.scope, "connection": token.connection,
                    "token": text, "expires_at": token.expires_at, "note": "shown once; store it now"}),
        ),
    ))
}

#[utoipa::path(
    get,
    path = "/api/tokens",
    operation_id = "listTokens",
    summary = "every API token (admin)",
    tag = "tokens",
    responses(
        (status = 200, description = "the tokens", body = crate::routes::openapi::schemas::TokenList)
    )
)]
async fn list(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "tokens": st.store.tokens().await? })))
}

#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    operation_id = "revokeToken",
    summary = "revoke a token (admin)",
    tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such token, or revoked already", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    if st.store.revoke_token(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "token `{id}` does not exist or is revoked already"
        )))
    }
}
