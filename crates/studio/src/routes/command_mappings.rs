//! Command mapping management over HTTP: command mappings with versions (validated, hot-swapped
//! into the running command processor) with their idempotency (declared or derived from the
//! transaction name), and the input fields of MI transactions for the editor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pipeline::command_registry::{CommandRegistry, CommandRegistryError};
use runtime::ConnectionRuntime;
use serde_json::{json, Value};

use crate::auth::By;
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/connections/{c}/command-mappings", get(list).post(create))
        .route(
            "/api/connections/{c}/command-mappings/{name}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/api/connections/{c}/mi/{program}/{transaction}/fields",
            get(transaction_fields),
        )
        .route("/api/connections/{c}/mi/{program}/transactions", get(transactions))
}

/// An MI program name from a path, upper-cased, or an error naming `program`.
fn mi_program(program: &str) -> Result<String, ApiError> {
    let program = program.trim().to_ascii_uppercase();
    if !pipeline::commands::is_mi_program(&program) {
        return Err(ApiError::BadRequest(format!(
            "program: expected an MI program name (upper-case letters and digits ending in `MI`, like `MMS200MI`), got {program:?}"
        )));
    }
    Ok(program)
}

/// `GET /api/connections/{c}/mi/{program}/transactions`: the transactions of an MI program
/// (`MRS001MI/LstTransactions`), for the command editor's search.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/mi/{program}/transactions",
    operation_id = "listTransactions",
    summary = "the transactions of an MI program",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name"), ("program" = String, Path, description = "MI program, like MMS200MI")),
    responses(
        (status = 200, description = "the transactions", body = crate::routes::openapi::schemas::Transactions),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn transactions(
    State(st): State<AppState>,
    Path((c, program)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = registry(connection(&st, &c)?)?;
    let program = mi_program(&program)?;
    let list: Vec<Value> = reg
        .transactions(&program)
        .await?
        .into_iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    Ok(Json(json!({"program": program, "transactions": list})))
}

impl From<CommandRegistryError> for ApiError {
    fn from(e: CommandRegistryError) -> Self {
        match e {
            CommandRegistryError::Spec(_) | CommandRegistryError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            CommandRegistryError::NotFound(m) => ApiError::NotFound(m),
            CommandRegistryError::Conflict(_) => ApiError::Conflict(e.to_string()),
            CommandRegistryError::M3(m) => ApiError::Unavailable(format!("M3: {m}")),
            CommandRegistryError::Pipeline(p) => ApiError::Internal(p.to_string()),
        }
    }
}

fn registry(conn: ConnectionRuntime) -> Result<CommandRegistry, ApiError> {
    conn.command_registry
        .clone()
        .ok_or_else(|| ApiError::NotFound(format!("connection `{}` has no command mapping management", conn.name)))
}

/// Whether a stored definition's transaction may run twice (declared, else derived from the
/// transaction name); null when the definition no longer parses.
fn idempotency(spec: &Value) -> Value {
    CommandRegistry::parse(spec)
        .map(|s| json!(s.idempotency()))
        .unwrap_or(Value::Null)
}

fn parse_body(body: &[u8]) -> Result<pipeline::commands::CommandSpec, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: not valid JSON: {e}")))?;
    Ok(CommandRegistry::parse(&v)?)
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/command-mappings",
    operation_id = "listCommandMappings",
    summary = "command mappings with their latest versions",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "the command mappings", body = crate::routes::openapi::schemas::CommandMappingList),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn list(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let reg = registry(connection(&st, &c)?)?;
    let list: Vec<Value> = reg
        .list()
        .await?
        .into_iter()
        .map(|v| {
            let s = &v.spec;
            json!({
                "name": v.name,
                "description": s["description"],
                "program": s["program"],
                "transaction": s["transaction"],
                "idempotency": idempotency(s),
                "parameters": s["parameters"].as_array().map(Vec::len).unwrap_or(0),
                "latestVersion": v.version,
                "updatedAt": v.created_at,
                "updatedBy": v.created_by,
            })
        })
        .collect();
    Ok(Json(json!({ "commandMappings": list })))
}

#[utoipa::path(
    post,
    path = "/api/connections/{c}/command-mappings",
    operation_id = "createCommandMapping",
    summary = "save a new command mapping",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a command mapping definition"),
    responses(
        (status = 201, description = "saved", body = crate::routes::openapi::schemas::VersionSaved),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "a command mapping of that name exists", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn create(
    State(st): State<AppState>,
    Path(c): Path<String>,
    By(by): By,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let reg = registry(connection(&st, &c)?)?;
    let spec = parse_body(&body)?;
    let saved = reg.create(&spec, &by).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": spec.name, "version": saved.version, "warnings": saved.warnings})),
    ))
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/command-mappings/{name}",
    operation_id = "getCommandMapping",
    summary = "one command mapping: its versions and whether it runs",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "command mapping name")),
    responses(
        (status = 200, description = "the command mapping", body = crate::routes::openapi::schemas::CommandMappingDetail),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn show(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let versions = registry(conn.clone())?.versions(&name).await?;
    let latest = versions.last().expect("versions of an existing command mapping");
    let running = conn.commands.as_ref().and_then(|p| p.spec_set().get(&name).cloned());
    Ok(Json(json!({
        "name": name,
        "spec": latest.spec,
        "idempotency": idempotency(&latest.spec),
        "latestVersion": latest.version,
        "updatedAt": latest.created_at,
        "updatedBy": latest.created_by,
        "versions": versions,
        "schema": running.as_ref().map(|s| s.json_schema()),
        "running": running.is_some(),
    })))
}

#[utoipa::path(
    put,
    path = "/api/connections/{c}/command-mappings/{name}",
    operation_id = "updateCommandMapping",
    summary = "save a new version of a command mapping",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "command mapping name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a command mapping definition"),
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
    let reg = registry(connection(&st, &c)?)?;
    let spec = parse_body(&body)?;
    let saved = reg.update(&name, &spec, &by).await?;
    Ok(Json(
        json!({"name": name, "version": saved.version, "warnings": saved.warnings}),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/connections/{c}/command-mappings/{name}",
    operation_id = "deleteCommandMapping",
    summary = "delete a command mapping",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name"), ("name" = String, Path, description = "command mapping name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "conflicts with what exists", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn remove(
    State(st): State<AppState>,
    Path((c, name)): Path<(String, String)>,
    By(by): By,
) -> Result<impl IntoResponse, ApiError> {
    registry(connection(&st, &c)?)?.delete(&name, &by).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The input fields of an MI transaction (from `MRS001MI/LstAdtFieldInf`): 404 when M3 does not
/// know it, 503 when M3 cannot be asked.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/mi/{program}/{transaction}/fields",
    operation_id = "transactionFields",
    summary = "the input fields of an MI transaction",
    tag = "command mappings",
    params(("c" = String, Path, description = "connection name"), ("program" = String, Path, description = "MI program, like MMS200MI"), ("transaction" = String, Path, description = "MI transaction, like UpdItmBasic")),
    responses(
        (status = 200, description = "the fields", body = crate::routes::openapi::schemas::TransactionFields),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection, or M3 does not know the transaction", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "M3 cannot be asked", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn transaction_fields(
    State(st): State<AppState>,
    Path((c, program, transaction)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = registry(connection(&st, &c)?)?;
    let program = mi_program(&program)?;
    if !pipeline::commands::is_mi_transaction(&transaction) {
        return Err(ApiError::BadRequest(format!(
            "transaction: expected an MI transaction name (letters and digits, like `UpdItmBasic`), got {transaction:?}"
        )));
    }
    let fields = reg.transaction_fields(&program, &transaction).await?;
    Ok(Json(
        json!({"program": program, "transaction": transaction, "fields": fields}),
    ))
}
