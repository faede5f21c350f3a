//! `GET /api/connections/{c}/dead-letters?mapping=&limit=`: the rows M3 gave that could not be
//! split or mapped.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::query::parse_limit;
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/dead-letters", get(dead_letters))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLettersQuery {
    #[serde(default)]
    mapping: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// `GET /api/connections/{c}/dead-letters?mapping=&limit=`: the rows M3 gave that could not be
/// split or mapped (of one mapping, or all), most recently seen first.
async fn dead_letters(
    State(st): State<AppState>,
    Path(c): Path<String>,
    q: Result<Query<DeadLettersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("{}; expected mapping, limit", e.body_text())))?;
    connection(&st, &c)?;
    let limit = parse_limit(q.limit.as_deref())?;
    let mapping = q.mapping.as_deref().filter(|m| !m.is_empty());
    let rows = st.store.source_dead_letters(&c, mapping, limit).await?;
    Ok(Json(json!({ "deadLetters": rows })))
}
