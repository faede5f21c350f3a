//! OpenAPI 3.1 of one connection's REST side: a read model per deployed mapping (list with
//! field filters and key paging, one entity by key), the message log, and command submission
//! with its receipts. Generated from the deployed mappings and command mappings, so it always
//! matches what the connection serves.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/openapi.json", get(openapi))
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// `GET /api/connections/{c}/openapi.json`.
async fn openapi(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let base = format!("/api/connections/{c}");
    for m in conn.connector.mappings() {
        let ty = m.updated_type();
        let id = format!("{base}/schemas/{ty}");
        let Some(mut schema) = crate::schema::message_schema(&m, &ty, &id) else {
            continue;
        };
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
            obj.remove("$id");
        }
        let entity = m.name.to_string();
        schemas.insert(entity.clone(), schema);
        let filters: Vec<Value> = m
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                json!({"name": f.name, "in": "query", "required": false,
                       "description": format!("only entities whose `{}` equals this value (M3 column {})", f.name, f.column),
                       "schema": {"type": "string"}, "x-field-schema": m.field_json_schema(i)})
            })
            .collect();
        let mut params = vec![
            json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
            json!({"name": "after", "in": "query", "required": false, "description": "the `next` key of the previous page", "schema": {"type": "string"}}),
        ];
        params.extend(filters);
        let keys = m.key_field_names().join(", ");
        let r = &m.resource;
        paths.insert(
            format!("{base}/read-models/{r}"),
            json!({"get": {
                "operationId": format!("list{}", m.name),
                "summary": format!("{} entities, in key order", m.name),
                "description": format!("Current state of every {} (M3 table {}), as of the last message.", m.name, m.table),
                "tags": ["read models"],
                "parameters": params,
                "responses": {
                    "200": {"description": "a page", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["items", "next"],
                        "properties": {
                            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{entity}")}},
                            "next": {"type": ["string", "null"], "description": "pass as `after` for the next page; null on the last"},
                        }}}}},
                    "400": error_response("a parameter is wrong (named in the message)"),
                    "401": error_response("no or wrong token"),
                    "403": error_response("the token may not read this"),
                }
            }}),
        );
        paths.insert(
            format!("{base}/read-models/{r}/{{key}}"),
            json!({"get": {
                "operationId": format!("get{}", m.name),
                "summary": format!("one {} by key", m.name),
                "tags": ["read models"],
                "parameters": [{"name": "key", "in": "path", "required": true,
                    "description": format!("{keys} joined by `|` (sent as `%7C`; a `|` or `%` inside a value as `%7C` / `%25` before joining)"),
                    "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the entity", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{entity}")}}}},
                    "400": error_response("the key does not have the right number of parts"),
                    "404": error_response("no such entity"),
                }
            }}),
        );
    }
    let mut command_variants = Vec::new();
    if let Some(p) = &conn.commands {
        for s in p.specs() {
            let name = format!("{}Command", s.name);
            schemas.insert(name.clone(), s.json_schema());
            command_variants.push(json!({"$ref": format!("#/components/schemas/{name}")}));
        }
        paths.insert(
            format!("{base}/commands"),
            json!({"post": {
                "operationId": "submitCommand",
                "summary": "run a command in M3 and get its receipt",
                "description": "The same commands and receipts as on the Kafka commands topic; the command id makes it idempotent (a repeated id gets the stored receipt).",
                "tags": ["commands"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": command_variants}}}},
                "responses": {
                    "200": {"description": "succeeded", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "400": {"description": "rejected: malformed (the field is named)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "422": {"description": "failed: M3 refused it (its error text)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "503": {"description": "failed: M3 unavailable after retries", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "502": {"description": "unknown: M3 may have run a command that is not idempotent (timeout, HTTP 5xx); not retried, `check` says how to find out", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                }
            }}),
        );
    }
    paths.insert(
        format!("{base}/messages"),
        json!({"get": {
            "operationId": "messages",
            "summary": "the message log (CloudEvents attributes and data), oldest first",
            "tags": ["messages"],
            "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "type", "in": "query", "schema": {"type": "string"}},
                {"name": "key", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "a page of messages; `next` is the `after` of the next page"}}
        }}),
    );
    paths.insert(
        format!("{base}/dead-letters"),
        json!({"get": {
            "operationId": "deadLetters",
            "summary": "source dead letters: rows M3 gave that could not be split or mapped, most recently seen first",
            "tags": ["messages"],
            "parameters": [
                {"name": "mapping", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            ],
            "responses": {"200": {"description": "`deadLetters`: connection, mapping, key, raw, reason, firstSeen, lastSeen, attempts"}}
        }}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}),
    );
    schemas.insert("Receipt".into(), pipeline::commands::Receipt::json_schema());
    Ok(Json(json!({
        "openapi": "3.1.0",
        "info": {"title": format!("erp-bridge connection {c}"), "version": "1.0.0",
                 "description": "Read models of the messages mapped from Infor M3, the message log, and commands to M3."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "an erp-bridge API token (`read-model` tokens read the read models of one connection)"}},
        },
    })))
}
