//! Read models: `GET /api/connections/{c}/read-models/{resource}` (field filters, key paging)
//! and `GET /api/connections/{c}/read-models/{resource}/{key}`, one per deployed mapping.
//!
//! An entity's state is stored as the JSON text of its `...Updated` payload and is sent as it is
//! stored: checked to be JSON (without building a tree), never parsed and re-encoded. Its fields
//! keep the mapping's order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mapping::{CompiledMapping, EntityKey};
use runtime::ConnectionRuntime;

use super::query::{parse_limit, UniqueQuery};
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

#[utoipa::path(
    get,
    path = "/api/connections/{c}/read-models/{resource}",
    operation_id = "listReadModel",
    summary = "a read model's entities in key order (its fields in the connection's document)",
    tag = "read models",
    params(("c" = String, Path, description = "connection name"), ("resource" = String, Path, description = "the mapping's resource, like items"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "page size, 100 when absent"), ("after" = Option<String>, Query, description = "the `next` key of the previous page")),
    responses(
        (status = 200, description = "a page", body = crate::routes::openapi::schemas::ReadModelPage),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn read_model_list(
    State(st): State<AppState>,
    Path((c, res)): Path<(String, String)>,
    UniqueQuery(params): UniqueQuery<HashMap<String, String>>,
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
    // `{"items":[<state>,...],"next":<key or null>}`, the states as stored.
    let mut body = String::with_capacity(page.items.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"items\":[");
    for (i, (_, state)) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(if is_json(state) { state } else { "null" });
    }
    body.push_str("],\"next\":");
    body.push_str(&serde_json::to_string(&page.next).map_err(|e| ApiError::Internal(e.to_string()))?);
    body.push('}');
    Ok(json_body(body))
}

/// Whether `state` is one JSON value, checked without building a tree. A stored state always
/// is; a damaged row is answered as `null` (as before) rather than breaking the whole answer.
fn is_json(state: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(state).is_ok()
}

/// A 200 answer whose body is JSON text already.
fn json_body(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/read-models/{resource}/{key}",
    operation_id = "getReadModel",
    summary = "one entity by key",
    tag = "read models",
    params(("c" = String, Path, description = "connection name"), ("resource" = String, Path, description = "the mapping's resource"), ("key" = String, Path, description = "the key fields joined by `|` (sent as `%7C`)")),
    responses(
        (status = 200, description = "the entity", body = crate::routes::openapi::schemas::Object),
        (status = 400, description = "the key does not have the right number of parts", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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
        Some(state) if is_json(&state) => Ok(json_body(state)),
        Some(_) => Ok(json_body("null".into())),
        None => Err(ApiError::NotFound(format!("{} `{key}` does not exist", m.name))),
    }
}
