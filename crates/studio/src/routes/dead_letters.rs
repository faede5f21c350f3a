//! `GET /api/connections/{c}/dead-letters?mapping=&limit=`: the rows M3 gave that could not be
//! split or mapped.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::query::{parse_limit, UniqueQuery};
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/dead-letters", get(dead_letters))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeadLettersQuery {
    /// Only this mapping's dead letters.
    #[serde(default)]
    mapping: Option<String>,
    /// Page size, 1 to 1000; 100 when absent.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// `GET /api/connections/{c}/dead-letters?mapping=&limit=`: the rows M3 gave that could not be
/// split or mapped (of one mapping, or all), most recently seen first.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/dead-letters",
    operation_id = "listDeadLetters",
    summary = "rows M3 gave that could not be split or mapped, most recently seen first",
    tag = "messages",
    params(("c" = String, Path, description = "connection name"), DeadLettersQuery),
    responses(
        (status = 200, description = "the dead letters", body = crate::routes::openapi::schemas::DeadLetterPage),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn dead_letters(
    State(st): State<AppState>,
    Path(c): Path<String>,
    UniqueQuery(q): UniqueQuery<DeadLettersQuery>,
) -> Result<impl IntoResponse, ApiError> {
    connection(&st, &c)?;
    let limit = parse_limit(q.limit.as_deref())?;
    let mapping = q.mapping.as_deref().filter(|m| !m.is_empty());
    let rows = st.store.source_dead_letters(&c, mapping, limit).await?;
    Ok(Json(json!({ "deadLetters": rows })))
}
