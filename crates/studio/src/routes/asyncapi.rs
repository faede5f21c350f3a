//! `GET /api/connections/{c}/asyncapi`: AsyncAPI 3.0 of one connection's Kafka side (its
//! topics, the message types of its deployed mappings with their JSON Schemas, its commands and
//! their receipts).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::schema::message_schema;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/asyncapi", get(asyncapi))
}

/// AsyncAPI 3.0: the connection's topics, message types (with their JSON Schemas) and commands.
async fn asyncapi(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let mut messages = serde_json::Map::new();
    for m in conn.connector.mappings() {
        for ty in [m.updated_type(), m.deleted_type()] {
            let id = format!("/api/connections/{c}/schemas/{ty}");
            if let Some(schema) = message_schema(&m, &ty, &id) {
                messages.insert(
                    ty.clone(),
                    json!({
                        "name": ty, "title": ty, "contentType": "application/json",
                        "summary": format!("{} from M3 table {}", ty, m.table),
                        "headers": ce_headers(&ty),
                        "payload": schema,
                    }),
                );
            }
        }
    }
    let mut commands = serde_json::Map::new();
    if let Some(p) = &conn.commands {
        for s in p.specs() {
            commands.insert(
                s.name.clone(),
                json!({"name": s.name, "contentType": "application/json",
                       "summary": format!("{} -> {}/{}", s.name, s.program, s.transaction),
                       "payload": s.json_schema()}),
            );
        }
    }
    let receipt = json!({"name": "CommandReceipt", "contentType": "application/json",
        "payload": pipeline::commands::Receipt::json_schema()});
    let refs = |names: Vec<String>| -> Value {
        Value::Object(
            names
                .into_iter()
                .map(|n| (n.clone(), json!({"$ref": format!("#/components/messages/{n}")})))
                .collect(),
        )
    };
    let topic = |kind: &str| format!("erp-bridge.{c}.{kind}");
    let message_names: Vec<String> = messages.keys().cloned().collect();
    let command_names: Vec<String> = commands.keys().cloned().collect();
    let mut all = messages.clone();
    all.extend(commands.clone());
    all.insert("CommandReceipt".into(), receipt);
    Ok(Json(json!({
        "asyncapi": "3.0.0",
        "info": {"title": format!("erp-bridge connection {c}"), "version": "1.0.0",
                 "description": "Messages from Infor M3 and commands to it. Kafka topic names assume the default prefix `erp-bridge`."},
        "defaultContentType": "application/json",
        "channels": {
            "events": {"address": topic("events"), "messages": refs(message_names.clone())},
            "commands": {"address": topic("commands"), "messages": refs(command_names.clone())},
            "receipts": {"address": topic("receipts"), "messages": refs(vec!["CommandReceipt".into()])},
            "deadletter": {"address": topic("deadletter"), "description": "Malformed commands and commands whose retries ran out, with the reason in the `erp_bridge_error` header."},
        },
        "operations": {
            "receiveEvents": {"action": "receive", "channel": {"$ref": "#/channels/events"}},
            "sendCommands": {"action": "send", "channel": {"$ref": "#/channels/commands"}},
            "receiveReceipts": {"action": "receive", "channel": {"$ref": "#/channels/receipts"}},
        },
        "components": {"messages": all},
    })))
}

fn ce_headers(ty: &str) -> Value {
    json!({"type": "object", "properties": {
        "ce_specversion": {"const": "1.0"}, "ce_id": {"type": "string"}, "ce_source": {"type": "string"},
        "ce_type": {"const": ty}, "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "Entity key"}, "ce_dataschema": {"type": "string"},
        "content-type": {"const": "application/json"}}})
}
