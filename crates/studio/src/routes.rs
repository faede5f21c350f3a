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
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::{CommandProcessor, ReceiptStatus};
use pipeline::registry::MappingRegistry;
use pipeline::{Connectivity, Connector, Health};
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
    /// The running connector: deployed mappings, status, webhooks.
    pub connector: Connector,
    /// Mapping management.
    pub registry: MappingRegistry,
    /// Command processing (HTTP submissions use the same processor as the Kafka consumer).
    pub commands: Option<CommandProcessor>,
    /// Command mapping management (swaps mappings into `commands`); none = fixed defaults.
    pub command_registry: Option<CommandRegistry>,
    /// Credentials M3 must present on webhook calls; none configured = webhooks refused.
    pub webhook_auth: WebhookAuth,
    /// For a self-hosted connection: the state of its connector's channel.
    pub remote: Option<Arc<crate::channel::RemoteState>>,
    /// For a stored connection: the stored version it runs (`updated_at`); `None` for the
    /// configured one.
    pub revision: Option<String>,
}

/// Credentials accepted on `POST /webhooks/{connection}/{TABLE}`.
#[derive(Clone, Default)]
pub struct WebhookAuth {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<m3::Secret>,
    /// `Authorization: Basic` user and password.
    pub basic: Option<(String, m3::Secret)>,
}

impl WebhookAuth {
    /// Whether the `Authorization` header value carries accepted credentials.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        let Some(h) = header else { return false };
        if let (Some(token), Some(given)) = (&self.bearer, h.strip_prefix("Bearer ")) {
            return crate::auth::constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes());
        }
        if let (Some((user, pass)), Some(given)) = (&self.basic, h.strip_prefix("Basic ")) {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
                return false;
            };
            let expected = format!("{user}:{}", pass.expose());
            return crate::auth::constant_time_eq(expected.as_bytes(), &raw);
        }
        false
    }
}

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Connections by name.
    pub connections: Arc<crate::hub::Connections>,
    /// API authentication.
    pub auth: Arc<crate::auth::Auth>,
    /// Seals the secrets of stored connections; `None` = connections cannot be stored.
    pub vault: Option<vault::Vault>,
    /// Starts and stops stored connections; `None` = they are stored but not started.
    pub launcher: Option<Arc<dyn crate::hub::Launcher>>,
    /// Studio's URL as connectors reach it (for bundles); the request's `Host` when unset.
    pub public_url: Option<String>,
}

impl AppState {
    pub(crate) fn vault(&self) -> Result<&vault::Vault, ApiError> {
        self.vault
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("no secret key is configured: connections cannot be stored".into()))
    }
}

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/connections",
            get(list_connections).post(crate::connections::create),
        )
        .route("/api/connections/{c}/connector/channel", get(crate::channel::upgrade))
        .route("/api/connections/{c}/status", get(status))
        .route("/api/connections/{c}/messages", get(messages))
        .route("/api/connections/{c}/dead-letters", get(dead_letters))
        .route("/webhooks/{c}/{table}", axum::routing::post(webhook))
        .route("/metrics", get(metrics))
        .route(
            "/api/connections/{c}/commands",
            get(command_mappings).post(submit_command),
        )
        .route("/api/connections/{c}/schemas/{ty}", get(schema))
        .route("/api/connections/{c}/read-models/{resource}", get(read_model_list))
        .route("/api/connections/{c}/read-models/{resource}/{key}", get(read_model_get))
        .merge(crate::mappings::routes())
        .merge(crate::commands::routes())
        .merge(crate::checks::routes())
        .merge(crate::connections::routes())
        .merge(crate::openapi::routes())
        .merge(crate::ui::routes())
        .merge(crate::auth::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
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
        let s = c.connector.status().snapshot();
        if s.m3 != Connectivity::Healthy {
            problems.push(format!(
                "connection {}: M3 {:?}{}",
                c.name,
                s.m3,
                s.m3_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        problems.extend(failing_mappings(&c.name, &s));
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": problems.is_empty(), "problems": problems})))
}

/// One readiness problem per mapping of `connection` whose health is `Failing` (a mapping not
/// checked yet is not failing), with since when and why.
fn failing_mappings(connection: &str, s: &pipeline::ConnectorStatus) -> Vec<String> {
    s.tables
        .iter()
        .filter(|(_, t)| t.health == Health::Failing)
        .map(|(m, t)| {
            format!(
                "connection {connection}: mapping {m} ({}) failing since {}: {}",
                t.table,
                t.health_since.as_deref().unwrap_or("an unknown time"),
                t.health_message.as_deref().unwrap_or("no reason given")
            )
        })
        .collect()
}

pub(crate) fn connection(st: &AppState, name: &str) -> Result<ConnectionRuntime, ApiError> {
    st.connections
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{name}` does not exist or is not running")))
}

/// Running connections, and stored ones that do not run yet (no `.ionapi` saved).
async fn list_connections(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let stored = st.store.connections().await?;
    let from_api: std::collections::BTreeSet<&str> = stored.iter().map(|r| r.name.as_str()).collect();
    let mut list: BTreeMap<String, Value> = st
        .connections
        .values()
        .map(|c| {
            let connector = match &c.remote {
                Some(r) => r.describe(),
                None => json!({"state": "in-process"}),
            };
            let v = json!({
                "name": c.name,
                "hosting": if c.remote.is_some() { "self-hosted" } else { "hosted" },
                "source": if from_api.contains(c.name.as_str()) { "api" } else { "configuration" },
                "running": true,
                "m3": c.connector.status().snapshot().m3,
                "messageTypes": c.connector.mappings().len(),
                "connector": connector,
            });
            (c.name.clone(), v)
        })
        .collect();
    for rec in &stored {
        list.entry(rec.name.clone()).or_insert_with(|| {
            json!({
                "name": rec.name, "hosting": rec.hosting, "source": "api", "running": false, "m3": "NotConfigured",
                "messageTypes": 0, "connector": {"state": "not-configured"},
            })
        });
    }
    Ok(Json(json!({ "connections": list.into_values().collect::<Vec<_>>() })))
}

async fn status(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(connection(&st, &c)?.connector.status().snapshot()))
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

fn processor(conn: &ConnectionRuntime) -> Result<&CommandProcessor, ApiError> {
    conn.commands
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(format!("connection `{}` has no command processing", conn.name)))
}

async fn command_mappings(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let p = processor(&conn)?;
    let list: Vec<Value> = p
        .specs()
        .map(|s| json!({"name": s.name, "program": s.program, "transaction": s.transaction, "idempotency": s.idempotency(), "mapping": s, "schema": s.json_schema()}))
        .collect();
    Ok(Json(json!({ "commands": list })))
}

/// Submit a command over HTTP: the same validation, deduplication and receipt as over Kafka.
/// 200 succeeded, 400 rejected (malformed), 422 refused by M3, 503 M3 unavailable after retries,
/// 502 unknown (M3 may have run a command that is not idempotent; the receipt says how to check).
async fn submit_command(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let p = processor(&conn)?;
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
        (ReceiptStatus::Unknown, _) => StatusCode::BAD_GATEWAY,
    };
    Ok((code, Json(outcome.receipt)))
}

fn chrono_like_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// `POST /webhooks/{connection}/{TABLE}`: M3 Event Hub style events (JSON or `EventData` XML),
/// pushed. They are hints: the connector reads each row from M3 before anything is written.
/// 401 without valid credentials (counted), 400 naming what is wrong with the event, 202 when
/// applied.
async fn webhook(
    State(st): State<AppState>,
    Path((c, table)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    if conn.remote.is_some() {
        return Err(ApiError::Conflict(format!(
            "connection `{c}` is self-hosted: its connector polls M3 on the customer's network; webhooks are not received by Studio"
        )));
    }
    let ingest = &conn.connector;
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !conn.webhook_auth.accepts(auth) {
        ingest.count_unauthorized();
        tracing::warn!(connection = %c, table = %table, "webhook refused: missing or wrong credentials");
        return Ok((
            StatusCode::UNAUTHORIZED,
            [(
                axum::http::header::WWW_AUTHENTICATE,
                "Bearer, Basic realm=\"erp-bridge webhooks\"",
            )],
            Json(json!({"error": {"code": "unauthorized", "message": "webhook credentials missing or wrong"}})),
        )
            .into_response());
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let hints = pipeline::parse_event(&body, content_type, &table)
        .map_err(|e| ApiError::BadRequest(format!("webhook event: {e}")))?;
    let upper = table.to_ascii_uppercase();
    if !ingest.has_table(&upper) {
        return Err(ApiError::NotFound(format!("connection `{c}` maps no table `{upper}`")));
    }
    let outcome = ingest.hints(&hints).await.map_err(|e| match e {
        pipeline::PipelineError::Webhook(m) => ApiError::BadRequest(format!("webhook event: {m}")),
        other => ApiError::Unavailable(format!("cannot apply the event now: {other}")),
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!(outcome))).into_response())
}

/// Prometheus text exposition of every connection's status.
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let snaps: Vec<(String, pipeline::ConnectorStatus)> = st
        .connections
        .values()
        .map(|c| (c.name.clone(), c.connector.status().snapshot()))
        .collect();
    let per_table = |f: &dyn Fn(&pipeline::TableStatus) -> Option<f64>| -> Vec<(String, f64)> {
        snaps
            .iter()
            .flat_map(|(c, s)| {
                s.tables.iter().filter_map(move |(m, t)| {
                    f(t).map(|v| (format!("connection=\"{c}\",mapping=\"{m}\",table=\"{}\"", t.table), v))
                })
            })
            .collect()
    };
    family(
        "erp_bridge_rows_seen_total",
        "counter",
        "Rows read from M3.",
        per_table(&|t| Some(t.rows_seen as f64)),
    );
    family(
        "erp_bridge_messages_total",
        "counter",
        "Messages appended to the outbox.",
        per_table(&|t| Some(t.messages as f64)),
    );
    family(
        "erp_bridge_unchanged_total",
        "counter",
        "Rows dropped because no mapped field changed.",
        per_table(&|t| Some(t.unchanged as f64)),
    );
    family(
        "erp_bridge_stale_total",
        "counter",
        "Changes dropped because a newer version was stored.",
        per_table(&|t| Some(t.stale as f64)),
    );
    family(
        "erp_bridge_rejected_rows_total",
        "counter",
        "Rows that could not be mapped.",
        per_table(&|t| Some(t.rejected_rows as f64)),
    );
    family(
        "erp_bridge_deletes_found_total",
        "counter",
        "Deletes found by key reconciliation.",
        per_table(&|t| Some(t.deletes_found as f64)),
    );
    family(
        "erp_bridge_errors_total",
        "counter",
        "Failed connector steps.",
        per_table(&|t| Some(t.errors as f64)),
    );
    family(
        "erp_bridge_lag_milliseconds",
        "gauge",
        "Time since the last complete poll started; grows while M3 cannot be read.",
        per_table(&|t| t.lag_ms.map(|v| v as f64)),
    );
    family(
        "erp_bridge_mapping_failing",
        "gauge",
        "1 when the mapping makes no progress (see its status for why).",
        per_table(&|t| Some(f64::from(u8::from(t.health == Health::Failing)))),
    );
    family(
        "erp_bridge_source_dead_letters",
        "gauge",
        "Rows M3 gave that could not be split or mapped, kept as source dead letters.",
        per_table(&|t| Some(t.dead_letters as f64)),
    );
    family(
        "erp_bridge_held_deletes",
        "gauge",
        "Deletes held back because too many keys vanished in one reconciliation pass.",
        per_table(&|t| Some(t.held_deletes as f64)),
    );
    family(
        "erp_bridge_repaired_rows_total",
        "counter",
        "Rows repaired by reconciliation (missing, late or different in the store).",
        per_table(&|t| Some(t.repaired as f64)),
    );
    let per_conn = |f: &dyn Fn(&pipeline::ConnectorStatus) -> Option<f64>| -> Vec<(String, f64)> {
        snaps
            .iter()
            .filter_map(|(c, s)| f(s).map(|v| (format!("connection=\"{c}\""), v)))
            .collect()
    };
    family(
        "erp_bridge_m3_up",
        "gauge",
        "1 when the last M3 call succeeded.",
        per_conn(&|s| Some(f64::from(u8::from(s.m3 == Connectivity::Healthy)))),
    );
    family(
        "erp_bridge_webhooks_received_total",
        "counter",
        "Webhook events applied.",
        per_conn(&|s| Some(s.webhooks.received as f64)),
    );
    family(
        "erp_bridge_webhooks_unauthorized_total",
        "counter",
        "Webhook calls refused for credentials.",
        per_conn(&|s| Some(s.webhooks.unauthorized as f64)),
    );
    family(
        "erp_bridge_relay_published_total",
        "counter",
        "Messages acknowledged by Kafka.",
        per_conn(&|s| s.relay.as_ref().map(|r| r.published as f64)),
    );
    let pending = futures_pending(&st).await;
    family(
        "erp_bridge_outbox_unpublished",
        "gauge",
        "Messages waiting for Kafka.",
        pending,
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn futures_pending(st: &AppState) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for c in st.connections.values() {
        if c.connector.status().snapshot().relay.is_some() {
            if let Ok(n) = st.store.unpublished_count(&c.name).await {
                v.push((format!("connection=\"{}\"", c.name), n as f64));
            }
        }
    }
    v
}
