//! Token management: `GET /api/tokens`, `POST /api/tokens` (the token's text is shown once),
//! `DELETE /api/tokens/{id}` (admin only, enforced by the token middleware).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{create_token, Scope};
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
            "body: {e}; expected {{\"name\", \"scope\": read|read-write|admin|read-model, \"connection\"?}}"
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
    let (token, text) = create_token(&st.store, t.name.trim(), scope, t.connection.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": token.id, "name": token.name, "scope": token.scope, "connection": token.connection,
                    "token": text, "note": "shown once; store it now"}),
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
