//! `POST /api/checks/ionapi`: the connection wizard's live check of an uploaded `.ionapi` file
//! (the checking itself is [`crate::checks`]).

use axum::body::Bytes;
use axum::extract::State;
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
#[utoipa::path(
    post,
    path = "/api/checks/ionapi",
    operation_id = "checkIonApi",
    summary = "check an .ionapi file live, step by step (secrets are never echoed)",
    tag = "connections",
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "the .ionapi file"),
    responses(
        (status = 200, description = "the check", body = crate::routes::openapi::schemas::IonApiCheck)
    )
)]
async fn check_ionapi(State(st): State<AppState>, body: Bytes) -> impl IntoResponse {
    let text = String::from_utf8_lossy(&body);
    Json(check(&text, None, &st.outbound).await.0)
}
