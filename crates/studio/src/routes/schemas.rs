//! `GET /api/connections/{c}/schemas/{type}`: the JSON Schema of one message type of a
//! connection (the `dataschema` its messages point to), as `application/schema+json` with an
//! absolute `$id` equal to that `dataschema`.

use axum::extract::{Path, State};
use axum::http::header;
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

#[utoipa::path(
    get,
    path = "/api/connections/{c}/schemas/{ty}",
    operation_id = "messageSchema",
    summary = "the JSON Schema of one message type",
    tag = "messages",
    params(("c" = String, Path, description = "connection name"), ("ty" = String, Path, description = "message type, like ItemUpdated")),
    responses(
        (status = 200, description = "a JSON Schema (2020-12)", content((Object = "application/schema+json"), (Object = "application/json"))),
        (status = 404, description = "no such connection or message type", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn schema(
    State(st): State<AppState>,
    Path((c, ty)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let id = st.schema_url(&c, &ty);
    conn.connector
        .mappings()
        .iter()
        .find_map(|m| message_schema(m, &ty, &id))
        .map(|schema| ([(header::CONTENT_TYPE, SCHEMA_JSON)], Json(schema)))
        .ok_or_else(|| ApiError::NotFound(format!("connection `{c}` has no message type `{ty}`")))
}

/// The media type of JSON Schema documents.
pub const SCHEMA_JSON: &str = "application/schema+json";
