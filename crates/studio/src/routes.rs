//! Routes: `/healthz`, `/readyz`, and per connection its status, message log, read models and schemas.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mapping::{CompiledMapping, EntityKey};
use pipeline::commands::{CommandProcessor, ReceiptStatus};
use pipeline::{Connectivity, StatusBoard};
use serde::Deserialize;
use serde_json::{json, Value};
use store::Store;

use crate::error::ApiError;
use crate::schema::message_schema;

/// What the API knows of one running connection.
#[derive(Clone)]
pub struct ConnectionRuntime {
    /// Connection name.
    pub name: String,
    /// Deployed mappings.
    pub mappings: Vec<Arc<CompiledMapping>>,
    /// The connector's live status.
    pub status: StatusBoard,
    /// Command processing (HTTP submissions use the same processor as the Kafka consumer).
    pub commands: Option<CommandProcessor>,
}

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Connections by name.
    pub connections: Arc<BTreeMap<String, ConnectionRuntime>>,
}

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/connections", get(list_connections))
        .route("/api/connections/{c}/status", get(status))
        .route("/api/connections/{c}/messages", get(messages))
        .route("/api/connections/{c}/mappings", get(mappings))
        .route(
            "/api/connections/{c}/commands",
            get(command_mappings).post(submit_command),
        )
        .route("/api/connections/{c}/schemas/{ty}", get(schema))
        .route("/api/connections/{c}/read-models/{resource}", get(read_model_list))
        .route("/api/connections/{c}/read-models/{resource}/{key}", get(read_model_get))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let store_ok = st.store.ping().await.is_ok();
    let mut problems = Vec::new();
    if !store_ok {
        problems.push("store: not answering".to_string());
    }
    for c in st.connections.values() {
        let s = c.status.snapshot();
        if s.m3 != Connectivity::Healthy {
            problems.push(format!(
                "connection {}: M3 {:?}{}",
                c.name,
                s.m3,
                s.m3_message.map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": problems.is_empty(), "problems": problems})))
}

fn connection<'a>(st: &'a AppState, name: &str) -> Result<&'a ConnectionRuntime, ApiError> {
    st.connections
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{name}` does not exist")))
}

async fn list_connections(State(st): State<AppState>) -> impl IntoResponse {
    let list: Vec<Value> = st
        .connections
        .values()
        .map(|c| {
            json!({
                "name": c.name,
                "hosting": "hosted",
                "m3": c.status.snapshot().m3,
                "messageTypes": c.mappings.len(),
            })
        })
        .collect();
    Json(json!({ "connections": list }))
}

async fn status(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(connection(&st, &c)?.status.snapshot()))
}

async fn mappings(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let list: Vec<Value> = conn
        .mappings
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "table": m.table,
                "resource": m.resource,
                "messageTypes": [m.updated_type(), m.deleted_type()],
                "key": m.key_field_names(),
                "fields": m.fields.iter().map(|f| json!({
                    "name": f.name, "column": f.column, "type": f.ty.as_str(), "key": f.is_key, "description": f.description,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "mappings": list })))
}

async fn schema(
    State(st): State<AppState>,
    Path((c, ty)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let id = format!("/api/connections/{c}/schemas/{ty}");
    conn.mappings
        .iter()
        .find_map(|m| message_schema(m, &ty, &id))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{c}` has no message type `{ty}`")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

fn parse_param<T: std::str::FromStr>(name: &str, v: Option<&str>, default: T, expected: &str) -> Result<T, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("query parameter `{name}`: expected {expected}, got {s:?}"))),
    }
}

fn parse_limit(v: Option<&str>) -> Result<u32, ApiError> {
    let limit: u32 = parse_param("limit", v, 100, "an integer from 1 to 1000")?;
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "query parameter `limit`: expected an integer from 1 to 1000, got {limit}"
        )))
    }
}

async fn messages(
    State(st): State<AppState>,
    Path(c): Path<String>,
    q: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::BadRequest(format!("{}; expected after, limit, type, key", e.body_text())))?;
    connection(&st, &c)?;
    let after: i64 = parse_param("after", q.after.as_deref(), 0, "a message sequence number")?;
    let limit = parse_limit(q.limit.as_deref())?;
    let rows = st
        .store
        .messages(&c, after, limit, q.ty.as_deref(), q.key.as_deref())
        .await?;
    let next = rows.last().map(|m| m.seq).unwrap_or(after);
    let messages: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            json!({
                "seq": m.seq,
                "specversion": "1.0",
                "id": m.id,
                "type": m.ty,
                "source": m.source,
                "subject": m.subject,
                "time": m.time,
                "datacontenttype": "application/json",
                "dataschema": m.dataschema,
                "data": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "next": next })))
}

fn resource<'a>(conn: &'a ConnectionRuntime, resource: &str) -> Result<&'a Arc<CompiledMapping>, ApiError> {
    conn.mappings.iter().find(|m| m.resource == resource).ok_or_else(|| {
        ApiError::NotFound(format!(
            "connection `{}` has no read model `{resource}`; it has: {}",
            conn.name,
            conn.mappings
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
    let m = resource(conn, &res)?;
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
    let m = resource(conn, &res)?;
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

fn processor(conn: &ConnectionRuntime) -> Result<&CommandProcessor, ApiError> {
    conn.commands
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(format!("connection `{}` has no command processing", conn.name)))
}

async fn command_mappings(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let p = processor(connection(&st, &c)?)?;
    let list: Vec<Value> = p
        .specs()
        .map(|s| json!({"name": s.name, "program": s.program, "transaction": s.transaction, "mapping": s, "schema": s.json_schema()}))
        .collect();
    Ok(Json(json!({ "commands": list })))
}

/// Submit a command over HTTP: the same validation, deduplication and receipt as over Kafka.
/// 200 succeeded, 400 rejected (malformed), 422 refused by M3, 503 M3 unavailable after retries.
async fn submit_command(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let p = processor(connection(&st, &c)?)?;
    let fallback = format!("http-{}", chrono_like_now());
    let outcome = p
        .handle(&body, &fallback)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let r = &outcome.receipt;
    let code = match (r.status, r.error.as_ref().map(|e| e.code.as_str())) {
        (ReceiptStatus::Succeeded, _) => StatusCode::OK,
        (ReceiptStatus::Rejected, _) => StatusCode::BAD_REQUEST,
        (ReceiptStatus::Failed, Some("m3_unavailable")) => StatusCode::SERVICE_UNAVAILABLE,
        (ReceiptStatus::Failed, _) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((code, Json(outcome.receipt)))
}

fn chrono_like_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
