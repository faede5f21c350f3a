//! `POST /api/checks/ionapi`: the connection wizard's live check of an uploaded `.ionapi` file
//! (the checking itself is [`crate::checks`]).

use axum::body::Bytes;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

use crate::checks::check;
use crate::state::AppState;

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
    Json(check(&text, None).await.0)
}
