//! `GET /api/connections/{c}/schemas/{type}`: the JSON Schema of one message type of a
//! connection (the `dataschema` its messages point to).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiError;
use crate::schema::message_schema;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/schemas/{ty}", get(schema))
}

async fn schema(
    State(st): State<AppState>,
    Path((c, ty)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let id = format!("/api/connections/{c}/schemas/{ty}");
    conn.connector
        .mappings()
        .iter()
        .find_map(|m| message_schema(m, &ty, &id))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{c}` has no message type `{ty}`")))
}
