//! Commands to M3 over HTTP: `GET /api/connections/{c}/commands` lists the running command
//! mappings with their schemas; `POST` submits one, with the same validation, deduplication
//! and receipt as over Kafka.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pipeline::commands::{CommandProcessor, ReceiptStatus, COMMAND_ID_REUSED};
use runtime::ConnectionRuntime;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/connections/{c}/commands",
        get(command_mappings).post(submit_command),
    )
}

fn processor(conn: &ConnectionRuntime) -> Result<&CommandProcessor, ApiError> {
    conn.commands
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(format!("connection `{}` has no command processing", conn.name)))
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/commands",
    operation_id = "listCommands",
    summary = "the running commands with their JSON Schemas",
    tag = "commands",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "the commands", body = crate::routes::openapi::schemas::CommandList),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
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
/// 200 succeeded, 400 rejected (malformed, or a value longer than its MI field takes), 409 the
/// command id was used before with other data (the stored receipt is shown), 422 refused by M3,
/// 503 M3 unavailable after retries, 502 unknown (M3 may have run a command that is not
/// idempotent; the receipt says how to check).
#[utoipa::path(
    post,
    path = "/api/connections/{c}/commands",
    operation_id = "submitCommand",
    summary = "run a command in M3 and get its receipt",
    tag = "commands",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "a command: `{id?, command, data}`; the id makes it idempotent"),
    responses(
        (status = 200, description = "succeeded", body = ref("#/components/schemas/Receipt")),
        (status = 400, description = "rejected: malformed (the field is named), or a value longer than its MI field takes (`too_long`: the field, its `length` and the `maxLength` from M3's metadata; M3 is not called)", body = ref("#/components/schemas/Receipt")),
        (status = 404, description = "no such connection, or it has no command processing", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "`command_id_reused`: the command id was used before for a command with other data (connection, command or parameters); the stored receipt is shown and M3 is not called. The same command again gets its stored receipt with the status it had", body = crate::routes::openapi::schemas::CommandIdReused),
        (status = 422, description = "failed: M3 refused it (its error text)", body = ref("#/components/schemas/Receipt")),
        (status = 502, description = "unknown: M3 may have run a command that is not idempotent; not retried, `check` says how to find out", body = ref("#/components/schemas/Receipt")),
        (status = 503, description = "failed: M3 unavailable after retries", body = ref("#/components/schemas/Receipt"))
    )
)]
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
    if let Some(stored) = outcome.reused {
        let error = outcome.receipt.error.as_ref();
        let body = json!({
            "error": {
                "code": error.map_or(COMMAND_ID_REUSED, |e| e.code.as_str()),
                "message": error.map_or("", |e| e.message.as_str()),
            },
            "receipt": stored,
        });
        return Ok((StatusCode::CONFLICT, Json(body)));
    }
    let r = &outcome.receipt;
    let code = match (r.status, r.error.as_ref().map(|e| e.code.as_str())) {
        (ReceiptStatus::Succeeded, _) => StatusCode::OK,
        (ReceiptStatus::Rejected, _) => StatusCode::BAD_REQUEST,
        (ReceiptStatus::Failed, Some("m3_unavailable")) => StatusCode::SERVICE_UNAVAILABLE,
        (ReceiptStatus::Failed, _) => StatusCode::UNPROCESSABLE_ENTITY,
        (ReceiptStatus::Unknown, _) => StatusCode::BAD_GATEWAY,
    };
    Ok((
        code,
        Json(serde_json::to_value(&outcome.receipt).expect("receipts serialise")),
    ))
}

fn chrono_like_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
