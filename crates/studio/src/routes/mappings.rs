//! Mapping management over HTTP: tables and columns (MDP or catalogue), mappings with versions,
//! deploy/undeploy, preview and re-export.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mapping::names::{suggest_field_names, Case};
use pipeline::registry::RegistryError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::query::UniqueQuery;
use crate::auth::By;
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
        .route("/api/connections/{c}/mappings/{name}/rollback", post(rollback))
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

#[utoipa::path(
    get,
    path = "/api/connections/{c}/tables",
    operation_id = "listTables",
    summary = "tables a mapping can read",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("filter" = Option<String>, Query, description = "only names or descriptions containing this")),
    responses(
        (status = 200, description = "the tables", body = crate::routes::openapi::schemas::TableList),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn tables(
    State(st): State<AppState>,
    Path(c): Path<String>,
    UniqueQuery(q): UniqueQuery<TablesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let (list, source) = conn.registry.tables(&q.filter).await;
    Ok(Json(json!({"source": source, "tables": list})))
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/tables/{table}",
    operation_id = "getTable",
    summary = "one table's columns, with suggested field names",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("table" = String, Path, description = "M3 table, like MITMAS")),
    responses(
        (status = 200, description = "the table", body = crate::routes::openapi::schemas::TableDetail),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/connections/{c}/mappings",
    operation_id = "listMappings",
    summary = "mappings with their latest and deployed versions",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "the mappings", body = crate::routes::openapi::schemas::MappingList),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/connections/{c}/mappings",
    operation_id = "createMapping",
    summary = "save a new mapping (version 1)",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a mapping definition"),
    responses(
        (status = 201, description = "saved", body = crate::routes::openapi::schemas::VersionSaved),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "a mapping of that name exists", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn create(
    State(st): State<AppState>,
    Path(c): Path<String>,
    By(by): By,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let version = conn.registry.create(&spec, &by).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": spec.name, "version": version})),
    ))
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/mappings/{name}",
    operation_id = "getMapping",
    summary = "one mapping: its versions and what runs",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    responses(
        (status = 200, description = "the mapping", body = crate::routes::openapi::schemas::MappingDetail),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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
        "deployedBy": record.as_ref().and_then(|r| r.deployed_by.clone()),
        "deployed": compiled.map(|m| json!({
            "resource": m.resource,
            "messageTypes": [m.updated_type(), m.deleted_type()],
            "key": m.key_field_names(),
            "fields": m.fields.iter().map(|f| json!({"name": f.name, "column": f.column, "type": f.ty.as_str(), "key": f.is_key, "description": f.description})).collect::<Vec<_>>(),
        })),
    })))
}

#[utoipa::path(
    put,
    path = "/api/connections/{c}/mappings/{name}",
    operation_id = "updateMapping",
    summary = "save a new version of a mapping",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a mapping definition"),
    responses(
        (status = 200, description = "saved", body = crate::routes::openapi::schemas::VersionSaved),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "conflicts with what exists", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn update(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    By(by): By,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let version = conn.registry.update(&name, &spec, &by).await?;
    Ok(Json(json!({"name": name, "version": version})))
}

#[utoipa::path(
    delete,
    path = "/api/connections/{c}/mappings/{name}",
    operation_id = "deleteMapping",
    summary = "delete a mapping that is not deployed",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the mapping is deployed", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn remove(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    connection(&st, &c)?.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    #[serde(default)]
    version: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/api/connections/{c}/mappings/{name}/deploy",
    operation_id = "deployMapping",
    summary = "deploy a version (the latest when none is given)",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    request_body(content = DeployBody, content_type = "application/json", description = "`{\"version\": n}`, or `{}` for the latest (a body is required)"),
    responses(
        (status = 200, description = "deployed", body = crate::routes::openapi::schemas::Deployment),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "conflicts with what exists", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn deploy(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    By(by): By,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "body: required: {\"version\": n} for a version, {} for the latest".into(),
        ));
    }
    let b: DeployBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e}; expected {{\"version\": n}} for a version, {{}} for the latest"
        ))
    })?;
    let version = conn.registry.deploy(&name, b.version, &by).await?;
    Ok(Json(json!({"name": name, "deployedVersion": version})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    /// The earlier version whose definition is saved again.
    version: i64,
}

#[utoipa::path(
    post,
    path = "/api/connections/{c}/mappings/{name}/rollback",
    operation_id = "rollbackMapping",
    summary = "save an earlier version's definition again, as a new version (deploy it to run it)",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    request_body(content = RollbackBody, content_type = "application/json", description = "`{\"version\": n}`"),
    responses(
        (status = 200, description = "saved as a new version", body = crate::routes::openapi::schemas::VersionSaved),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection, mapping or version", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn rollback(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    By(by): By,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let b: RollbackBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e}; expected {{\"version\": n}}")))?;
    let versions = conn.registry.versions(&name).await?;
    let Some(old) = versions.iter().find(|v| v.version == b.version) else {
        return Err(ApiError::NotFound(format!(
            "mapping `{name}` has no version {} (it has 1 to {})",
            b.version,
            versions.last().map_or(0, |v| v.version)
        )));
    };
    let spec = pipeline::registry::MappingRegistry::parse(&old.spec)?;
    let version = conn.registry.update(&name, &spec, &by).await?;
    Ok(Json(
        json!({"name": name, "version": version, "rolledBackTo": b.version}),
    ))
}

#[utoipa::path(
    post,
    path = "/api/connections/{c}/mappings/{name}/undeploy",
    operation_id = "undeployMapping",
    summary = "stop a mapping (its read model stays)",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "mapping name")),
    responses(
        (status = 200, description = "undeployed", body = crate::routes::openapi::schemas::Deployment),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "conflicts with what exists", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/connections/{c}/mappings/preview",
    operation_id = "previewMapping",
    summary = "the messages a mapping would make from current rows",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name"), ("limit" = Option<u32>, Query, description = "how many messages, 5 when absent")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a mapping definition"),
    responses(
        (status = 200, description = "the messages", body = crate::routes::openapi::schemas::Preview),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn preview(
    State(st): State<AppState>,
    Path(c): Path<String>,
    UniqueQuery(q): UniqueQuery<PreviewQuery>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let spec = pipeline::registry::MappingRegistry::parse(&parse_body(&body)?)?;
    let limit = q.limit.unwrap_or(5);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "query parameter `limit`: expected 1 to 100 rows to preview, got {limit}"
        )));
    }
    let messages = conn.registry.preview(&spec, limit).await?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReExportBody {
    /// Names of deployed mappings, 1 to [`MAX_RE_EXPORT`]; duplicates count once.
    mappings: Vec<String>,
}

/// Most distinct mappings one re-export may name.
const MAX_RE_EXPORT: usize = 100;

/// Re-exports of this process, one at a time: a request sees the one before it done, so a
/// mapping it started is seen re-exporting and joined, never restarted.
static RE_EXPORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[utoipa::path(
    post,
    path = "/api/connections/{c}/re-export",
    operation_id = "reExport",
    summary = "export the current state of deployed mappings again",
    tag = "mappings",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = ReExportBody, content_type = "application/json", description = "`{\"mappings\": [...]}`: 1 to 100 deployed mappings (duplicates count once); one already re-exporting is joined, not restarted"),
    responses(
        (status = 202, description = "started", body = crate::routes::openapi::schemas::ReExport),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "conflicts with what exists", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn re_export(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let expected = format!("expected {{\"mappings\": [\"Item\", ...]}} with 1 to {MAX_RE_EXPORT} deployed mappings");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!("body: required; {expected}")));
    }
    let b: ReExportBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}; {expected}")))?;
    let mut names: Vec<String> = Vec::new();
    for n in b.mappings {
        if !names.contains(&n) {
            names.push(n);
        }
        if names.len() > MAX_RE_EXPORT {
            return Err(ApiError::BadRequest(format!(
                "mappings: more than {MAX_RE_EXPORT} distinct names; {expected}"
            )));
        }
    }
    if names.is_empty() {
        return Err(ApiError::BadRequest(format!("mappings: empty; {expected}")));
    }
    let _one_at_a_time = RE_EXPORTS.lock().await;
    let deployed: Vec<String> = conn.connector.mappings().iter().map(|m| m.name.to_string()).collect();
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !deployed.contains(n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::NotFound(format!(
            "mappings: not deployed: {}; deployed: {}",
            unknown.join(", "),
            deployed.join(", ")
        )));
    }
    // A mapping still reading every row (a re-export or first load under way) is joined.
    let status = conn.connector.status().snapshot();
    let (joined, start): (Vec<String>, Vec<String>) = names.iter().cloned().partition(|n| {
        status.tables.get(n).is_some_and(|t| {
            matches!(
                t.phase,
                pipeline::status::Phase::Starting | pipeline::status::Phase::InitialLoad
            )
        })
    });
    let started = if start.is_empty() {
        Vec::new()
    } else {
        conn.registry.re_export(Some(&start)).await?
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "reExporting": names, "started": started, "joined": joined })),
    ))
}
