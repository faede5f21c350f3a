//! Read models: `GET /api/connections/{c}/read-models/{resource}` (field filters, key paging)
//! and `GET /api/connections/{c}/read-models/{resource}/{key}`, one per deployed mapping.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mapping::{CompiledMapping, EntityKey};
use runtime::ConnectionRuntime;
use serde_json::{json, Value};

use super::query::parse_limit;
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/connections/{c}/read-models/{resource}", get(read_model_list))
        .route("/api/connections/{c}/read-models/{resource}/{key}", get(read_model_get))
}

fn resource(conn: &ConnectionRuntime, resource: &str) -> Result<Arc<CompiledMapping>, ApiError> {
    let mappings = conn.connector.mappings();
    mappings
        .iter()
        .find(|m| m.resource == resource)
        .cloned()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "connection `{}` has no read model `{resource}`; it has: {}",
                conn.name,
                mappings
                    .iter()
                    .map(|m| m.resource.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

async fn read_model_list(
    State(st): State<AppState>,
    Path((c, res)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let m = resource(&conn, &res)?;
    let limit = parse_limit(params.get("limit").map(String::as_str))?;
    let after = params.get("after").map(String::as_str);
    let mut filters = Vec::new();
    for (k, v) in &params {
        if k == "limit" || k == "after" {
            continue;
        }
        if !m.fields.iter().any(|f| &f.name == k) {
            return Err(ApiError::BadRequest(format!(
                "query parameter `{k}`: not a field of {}; expected limit, after, or a field filter: {}",
                m.name,
                m.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        filters.push((k.clone(), v.clone()));
    }
    filters.sort();
    let page = st.store.entities(&c, m.name.as_str(), after, limit, &filters).await?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|(_, state)| serde_json::from_str(&state).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({ "items": items, "next": page.next })))
}

async fn read_model_get(
    State(st): State<AppState>,
    Path((c, res, key)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let m = resource(&conn, &res)?;
    let parts = m.key_columns().len();
    if EntityKey::parse(&key, parts).is_none() {
        return Err(ApiError::BadRequest(format!(
            "key {key:?}: expected {parts} values ({}) separated by `{}`",
            m.key_field_names().join(", "),
            EntityKey::SEPARATOR
        )));
    }
    match st.store.entity(&c, m.name.as_str(), &key).await? {
        Some(state) => Ok(Json(serde_json::from_str::<Value>(&state).unwrap_or(Value::Null))),
        None => Err(ApiError::NotFound(format!("{} `{key}` does not exist", m.name))),
    }
}
