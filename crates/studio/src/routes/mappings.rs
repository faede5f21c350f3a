//! Mapping management over HTTP: tables and columns (MDP or catalogue), mappings with versions,
//! deploy/undeploy, preview and re-export.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mapping::names::{suggest_field_names, Case};
use pipeline::registry::RegistryError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/connections/{c}/tables", get(tables))
        .route("/api/connections/{c}/tables/{table}", get(table))
        .route("/api/connections/{c}/mappings", get(list).post(create))
        .route("/api/connections/{c}/mappings/preview", post(preview))
        .route(
            "/api/connections/{c}/mappings/{name}",
            get(show).put(update).delete(remove),
        )
        .route("/api/connections/{c}/mappings/{name}/deploy", post(deploy))
        .route("/api/connections/{c}/mappings/{name}/undeploy", post(undeploy))
        .route("/api/connections/{c}/re-export", post(re_export))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Spec(_) | RegistryError::Invalid(_) | RegistryError::UnknownTable { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            RegistryError::NotFound(m) => ApiError::NotFound(m),
            RegistryError::Conflict(_) => ApiError::Conflict(e.to_string()),
            RegistryError::M3(m) => ApiError::Unavailable(format!("M3: {m}")),
            RegistryError::Pipeline(p) => ApiError::Internal(p.to_string()),
        }
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: not valid JSON: {e}")))
}

#[derive(Deserialize)]
struct TablesQuery {
    #[serde(default)]
    filter: String,
}

async fn tables(
    State(st): State<AppState>,
    Path(c): Path<String>,
    Query(q): Query<TablesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let (list, source) = conn.registry.tables(&q.filter).await;
    Ok(Json(json!({"source": source, "tables": list})))
}

async fn table(
    State(st): State<AppState>,
    Path((c, t)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let (table, source) = conn.registry.table(&t).await?;
    let suggested = suggest_field_names(table.columns.iter().map(|c| c.description.as_str()), Case::Camel);
    let columns: Vec<Value> = table
        .columns
        .iter()
        .zip(suggested)
        .map(|(col, name)| {
            json!({
                "name": col.name, "description": col.description, "type": col.kind.mi_type(),
                "length": col.length, "decimals": col.decimals,
                "key": table.primary_key.contains(&col.name), "suggestedName": name,
            })
        })
        .collect();
    Ok(Json(json!({
        "name": table.name, "description": table.description, "source": source,
        "primaryKey": table.primary_key, "columns": columns,
    })))
}

async fn list(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let deployed = conn.connector.mappings();
    let list: Vec<Value> = conn
        .registry
        .list()
        .await?
        .into_iter()
        .map(|r| {
            let spec = &r.latest.spec;
            let running = deployed.iter().find(|m| m.name.as_str() == r.latest.name);
            json!({
                "name": r.latest.name,
                "table": spec["table"],
                "description": spec["description"],
                "fields": spec["fields"].as_array().map(|f| f.len()).unwrap_or(0),
                "latestVersion": r.latest.version,
                "updatedAt": r.latest.created_at,
                "updatedBy": r.latest.created_by,
                "deployedVersion": r.deployed_version,
                "deployedAt": r.deployed_at,
                "deployedBy": r.deployed_by,
                "resource": running.map(|m| m.resource.clone()),
                "messageTypes": running.map(|m| vec![m.updated_type(), m.deleted_type()]),
            })
        })
        .collect();
    Ok(Json(json!({ "mappings": list })))
}

async fn create(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let version = conn.registry.create(&spec, "api").await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": spec.name, "version": version})),
    ))
}

async fn show(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let versions = conn.registry.versions(&name).await?;
    let record = conn.registry.list().await?.into_iter().find(|r| r.latest.name == name);
    let compiled = conn.connector.mappings().into_iter().find(|m| m.name.as_str() == name);
    Ok(Json(json!({
        "name": name,
        "spec": versions.last().map(|v| v.spec.clone()),
        "versions": versions,
        "deployedVersion": record.as_ref().and_then(|r| r.deployed_version),
        "deployedAt": record.as_ref().and_then(|r| r.deployed_at.clone()),
        "deployed": compiled.map(|m| json!({
            "resource": m.resource,
            "messageTypes": [m.updated_type(), m.deleted_type()],
            "key": m.key_field_names(),
            "fields": m.fields.iter().map(|f| json!({"name": f.name, "column": f.column, "type": f.ty.as_str(), "key": f.is_key, "description": f.description})).collect::<Vec<_>>(),
        })),
    })))
}

async fn update(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let version = conn.registry.update(&name, &spec, "api").await?;
    Ok(Json(json!({"name": name, "version": version})))
}

async fn remove(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    connection(&st, &c)?.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    #[serde(default)]
    version: Option<i64>,
}

async fn deploy(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let b: DeployBody = if body.is_empty() {
        DeployBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("body: {e}; expected {{\"version\": n}}")))?
    };
    let version = conn.registry.deploy(&name, b.version, "api").await?;
    Ok(Json(json!({"name": name, "deployedVersion": version})))
}

async fn undeploy(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    connection(&st, &c)?.registry.undeploy(&name).await?;
    Ok(Json(json!({"name": name, "deployedVersion": null})))
}

#[derive(Deserialize)]
struct PreviewQuery {
    #[serde(default)]
    limit: Option<u32>,
}

async fn preview(
    State(st): State<AppState>,
    Path(c): Path<String>,
    Query(q): Query<PreviewQuery>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let messages = conn.registry.preview(&spec, q.limit.unwrap_or(5)).await?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReExportBody {
    #[serde(default)]
    mappings: Option<Vec<String>>,
}

async fn re_export(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let b: ReExportBody = if body.is_empty() {
        ReExportBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("body: {e}; expected {{\"mappings\": [\"Item\", ...]}}")))?
    };
    let started = conn.registry.re_export(b.mappings.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "reExporting": started }))))
}
