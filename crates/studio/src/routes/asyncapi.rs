//! `GET /api/connections/{c}/asyncapi`: AsyncAPI 3.1 of one connection's Kafka side, generated
//! from the same [`kafka::KafkaSettings`] the relay and the command consumer use: the servers
//! (`kafka.brokers`), the topic names (`kafka.topic_prefix`), the record form of events (CloudEvents
//! binary mode with `ce_*` headers, or structured mode with the whole event as the value), the
//! message key, the two forms commands are accepted in, receipts and dead letters with their
//! headers. Described from erp-bridge's side: it sends events, receipts and dead letters and
//! receives commands.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

use kafka::KafkaSettings;
use mapping::command::CommandSpec;
use mapping::CompiledMapping;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::schema::message_schema;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/asyncapi", get(asyncapi))
}

/// AsyncAPI 3.1: the connection's topics, message types (with their JSON Schemas) and commands.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/asyncapi",
    operation_id = "asyncapi",
    summary = "AsyncAPI document of the connection's Kafka side",
    tag = "documents",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "AsyncAPI 3", body = crate::routes::openapi::schemas::Object),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn asyncapi(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let conn = connection(&st, &c)?;
    let mappings = conn.connector.mappings();
    let commands: Vec<CommandSpec> = conn.commands.as_ref().map(|p| p.specs().collect()).unwrap_or_default();
    Ok(Json(document(&st, &c, &mappings, &commands)))
}

/// The version of the Kafka bindings used.
const KAFKA_BINDING: &str = "0.5.0";

/// The AsyncAPI document of connection `c`.
fn document(st: &AppState, c: &str, mappings: &[Arc<CompiledMapping>], commands: &[CommandSpec]) -> Value {
    let k = &st.kafka;
    let topics = k.topics(c);
    let mut messages = Map::new();
    let mut event_names = Vec::new();
    for m in mappings {
        for ty in [m.updated_type(), m.deleted_type()] {
            let id = st.schema_url(c, &ty);
            if let Some(schema) = message_schema(m, &ty, &id) {
                messages.insert(ty.clone(), event_message(k, c, m, &ty, &id, schema));
                event_names.push(ty);
            }
        }
    }
    let mut command_names = Vec::new();
    for s in commands {
        let envelope = s.json_schema();
        messages.insert(
            s.name.clone(),
            json!({
                "name": s.name, "title": s.name, "contentType": "application/json",
                "summary": format!("{} -> {}/{} (command envelope as the value)", s.name, s.program, s.transaction),
                "description": "The command as one JSON envelope `{commandId, command, data}` in the record's value. The key is free; records with the same key are processed in order (use the entity key to keep one entity's commands in order).",
                "payload": envelope,
                "bindings": {"kafka": {"key": {"type": "string", "description": "Free; the same key keeps commands in order."}, "bindingVersion": KAFKA_BINDING}},
            }),
        );
        let ce_name = format!("{}CloudEvent", s.name);
        messages.insert(
            ce_name.clone(),
            json!({
                "name": ce_name, "title": format!("{} (CloudEvents binary mode)", s.name), "contentType": "application/json",
                "summary": format!("{} -> {}/{} as a CloudEvent in binary mode", s.name, s.program, s.transaction),
                "description": format!("The same command as a CloudEvent in Kafka binary mode: `ce_id` is the command id, `ce_type` the command name (`{}`), the value is the command's `data` object.", s.name),
                "headers": headers_schema(&[
                    ("ce_specversion", json!({"const": "1.0"}), true),
                    ("ce_id", json!({"type": "string", "minLength": 1, "maxLength": 200, "description": "The command id: a redelivered command with the same id is not executed twice."}), true),
                    ("ce_source", json!({"type": "string", "minLength": 1, "description": "The sender (URI-reference)."}), true),
                    ("ce_type", json!({"const": s.name}), true),
                    ("content-type", json!({"const": "application/json"}), false),
                ]),
                "payload": envelope["properties"]["data"].clone(),
                "bindings": {"kafka": {"key": {"type": "string", "description": "Free; the same key keeps commands in order."}, "bindingVersion": KAFKA_BINDING}},
            }),
        );
        command_names.push(s.name.clone());
        command_names.push(ce_name);
    }
    messages.insert("CommandReceipt".into(), receipt_message(c));
    messages.insert("DeadLetter".into(), dead_letter_message());

    let channel = |address: &str, description: &str, names: &[String]| {
        json!({
            "address": address,
            "description": description,
            "messages": refs(names),
            "bindings": {"kafka": {
                "topic": address,
                "partitions": k.partitions.max(1),
                "replicas": k.replication_factor.max(1),
                "bindingVersion": KAFKA_BINDING,
            }},
        })
    };
    let receipt = ["CommandReceipt".to_string()];
    let dead = ["DeadLetter".to_string()];
    let operation = |action: &str, channel: &str, names: &[String], summary: &str, group: Option<String>| {
        let mut op = json!({
            "action": action,
            "channel": {"$ref": format!("#/channels/{channel}")},
            "summary": summary,
            "messages": names.iter().map(|n| json!({"$ref": format!("#/channels/{channel}/messages/{n}")})).collect::<Vec<_>>(),
        });
        if let Some(g) = group {
            op["bindings"] =
                json!({"kafka": {"groupId": {"type": "string", "const": g}, "bindingVersion": KAFKA_BINDING}});
        }
        op
    };
    let mode = if k.structured_mode {
        "CloudEvents structured mode: the record's value is the whole event (`application/cloudevents+json`)"
    } else {
        "CloudEvents binary mode: the attributes are `ce_*` headers, the value is the event's data (`application/json`)"
    };
    let mut doc = json!({
        "asyncapi": "3.1.0",
        "id": format!("urn:erp-bridge:connection:{c}"),
        "info": {
            "title": format!("erp-bridge connection {c}"),
            "version": "1.0.0",
            "description": format!(
                "Messages from Infor M3 and commands to it, on Kafka topics `{}.{c}.*`. Events: {mode}; the record key is the entity key (`subject`), so one entity's messages stay in order on one partition (murmur2, like the Java client). Deduplicate by the event `id`.",
                k.topic_prefix
            ),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "channels": {
            "events": channel(&topics.events, "Messages from M3: `<Name>Updated` with the full mapped state, `<Name>Deleted` with the key.", &event_names),
            "commands": channel(&topics.commands, "Commands to M3, as a JSON envelope or as a CloudEvent in binary mode.", &command_names),
            "receipts": channel(&topics.receipts, "One receipt per command, keyed by the command id.", &receipt),
            "deadletter": channel(&topics.deadletter, "Malformed commands and commands whose retries ran out: the original record with the reason in `erp_bridge_error`.", &dead),
        },
        "operations": {
            "sendEvents": operation("send", "events", &event_names, "erp-bridge publishes M3 changes", None),
            "receiveCommands": operation("receive", "commands", &command_names, "erp-bridge consumes commands and runs them in M3",
                Some(format!("{}.{c}.command-processor", k.topic_prefix))),
            "sendReceipts": operation("send", "receipts", &receipt, "erp-bridge answers every command with a receipt", None),
            "sendDeadLetters": operation("send", "deadletter", &dead, "erp-bridge sets aside commands it cannot run", None),
        },
        "components": {"messages": messages},
    });
    let servers: Map<String, Value> = k
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .enumerate()
        .map(|(i, host)| {
            let secure = k
                .properties
                .get("security.protocol")
                .is_some_and(|p| p.to_ascii_uppercase().contains("SSL"));
            (
                format!("broker{}", i + 1),
                json!({"host": host, "protocol": if secure { "kafka-secure" } else { "kafka" },
                       "description": "A bootstrap server from `kafka.brokers`."}),
            )
        })
        .collect();
    if let Some(c) = contact(&st.schema_base_url, st.contact_email.as_deref()) {
        doc["info"]["contact"] = c;
    }
    if !servers.is_empty() {
        doc["servers"] = Value::Object(servers);
    }
    doc
}

/// Who answers for this erp-bridge: `http.contact_email`, else the `postmaster` mailbox every
/// mail domain has (RFC 2142) at the host of its URL when that is a domain name; `None` for a
/// bare address (`127.0.0.1`, `localhost`), where no mailbox can be named.
fn contact(base_url: &str, email: Option<&str>) -> Option<Value> {
    let email = match email {
        Some(e) => e.to_string(),
        None => {
            let url = url::Url::parse(base_url).ok()?;
            match url.host()? {
                url::Host::Domain(d) if d.contains('.') => format!("postmaster@{d}"),
                _ => return None,
            }
        }
    };
    Some(json!({"name": "The operators of this erp-bridge", "url": base_url, "email": email}))
}

/// `{name: {"$ref": "#/components/messages/<name>"}}` for each name.
fn refs(names: &[String]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| (n.clone(), json!({"$ref": format!("#/components/messages/{n}")})))
            .collect(),
    )
}

/// A headers schema: an object with these properties, the `true` ones required.
fn headers_schema(props: &[(&str, Value, bool)]) -> Value {
    json!({
        "type": "object",
        "properties": props.iter().map(|(n, s, _)| (n.to_string(), s.clone())).collect::<Map<String, Value>>(),
        "required": props.iter().filter(|(_, _, r)| *r).map(|(n, _, _)| *n).collect::<Vec<_>>(),
    })
}

/// The description of the record key of events.
fn entity_key(m: &CompiledMapping) -> Value {
    json!({"type": "string", "minLength": 1, "description": format!(
        "The entity key, equal to `subject`: the trimmed values of {} joined by `|` (`%` and `|` inside a value written `%25` and `%7C`).",
        m.key_field_names().join(", ")
    )})
}

/// An event message type in the record form the relay writes.
fn event_message(k: &KafkaSettings, c: &str, m: &CompiledMapping, ty: &str, id: &str, schema: Value) -> Value {
    let summary = format!("{ty} from M3 table {}", m.table);
    let bindings = json!({"kafka": {"key": entity_key(m), "bindingVersion": KAFKA_BINDING}});
    let attr = |name: &str| -> Value {
        match name {
            "specversion" => json!({"const": "1.0"}),
            "id" => {
                json!({"type": "string", "minLength": 1, "description": "Unique per message and stable across redeliveries: deduplicate by it."})
            }
            "source" => {
                json!({"const": format!("erp-bridge/{c}/{}", m.table), "description": "URI-reference of the connection and table."})
            }
            "type" => json!({"const": ty}),
            "time" => json!({"type": "string", "format": "date-time", "description": "When M3 changed the row."}),
            "subject" => {
                json!({"type": "string", "minLength": 1, "description": "The entity key (also the record key)."})
            }
            "dataschema" => {
                json!({"type": "string", "format": "uri", "const": id, "description": "The absolute URI of the data's JSON Schema."})
            }
            _ => json!({"type": "string"}),
        }
    };
    const ATTRS: [&str; 7] = ["specversion", "id", "source", "type", "time", "subject", "dataschema"];
    if k.structured_mode {
        let mut data = schema;
        if let Some(o) = data.as_object_mut() {
            o.remove("$schema");
        }
        let mut props: Map<String, Value> = ATTRS.iter().map(|a| (a.to_string(), attr(a))).collect();
        props.insert("datacontenttype".into(), json!({"const": "application/json"}));
        props.insert("data".into(), data);
        let mut required: Vec<&str> = ATTRS.to_vec();
        required.extend(["datacontenttype", "data"]);
        json!({
            "name": ty, "title": ty, "summary": summary,
            "contentType": "application/cloudevents+json",
            "description": "CloudEvents structured mode: the whole event is the record's value.",
            "headers": headers_schema(&[("content-type", json!({"const": kafka::cloudevents::STRUCTURED_CONTENT_TYPE}), true)]),
            "payload": {"type": "object", "properties": props, "required": required, "additionalProperties": false},
            "bindings": bindings,
        })
    } else {
        let mut headers: Vec<(String, Value, bool)> =
            ATTRS.iter().map(|a| (format!("ce_{a}"), attr(a), true)).collect();
        headers.push(("content-type".into(), json!({"const": "application/json"}), true));
        let headers: Vec<(&str, Value, bool)> = headers.iter().map(|(n, s, r)| (n.as_str(), s.clone(), *r)).collect();
        json!({
            "name": ty, "title": ty, "summary": summary,
            "contentType": "application/json",
            "description": "CloudEvents binary mode: the attributes are `ce_*` headers, the value is the data.",
            "headers": headers_schema(&headers),
            "payload": schema,
            "bindings": bindings,
        })
    }
}

/// The receipt of a command, as the command consumer publishes it.
fn receipt_message(c: &str) -> Value {
    json!({
        "name": "CommandReceipt", "title": "CommandReceipt", "contentType": "application/json",
        "summary": "The outcome of one command",
        "description": "Published once per command id, keyed by it; a redelivered command is answered with the same stored receipt. The `ce_*` headers make it a CloudEvent in binary mode.",
        "headers": headers_schema(&[
            ("ce_specversion", json!({"const": "1.0"}), true),
            ("ce_id", json!({"type": "string", "pattern": "^receipt-", "description": "`receipt-<commandId>`"}), true),
            ("ce_type", json!({"const": "CommandReceipt"}), true),
            ("ce_source", json!({"const": format!("erp-bridge/{c}")}), true),
            ("ce_subject", json!({"type": "string", "description": "The command id."}), true),
            ("content-type", json!({"const": "application/json"}), true),
        ]),
        "payload": pipeline::commands::Receipt::json_schema(),
        "bindings": {"kafka": {"key": {"type": "string", "description": "The command id."}, "bindingVersion": KAFKA_BINDING}},
    })
}

/// A command set aside, as the command consumer publishes it.
fn dead_letter_message() -> Value {
    let mut headers = headers_schema(&[
        (
            "erp_bridge_error",
            json!({"type": "string", "minLength": 1, "description": "Why the command was set aside (the receipt's error)."}),
            true,
        ),
        (
            "erp_bridge_command_id",
            json!({"type": "string", "minLength": 1, "description": "The command id (the transport position when the command had none); also the record key."}),
            true,
        ),
        (
            "erp_bridge_origin",
            json!({"type": "string", "pattern": "^.+/[0-9]+/[0-9]+$", "description": "Where the command was read: `<topic>/<partition>/<offset>`."}),
            true,
        ),
    ]);
    headers["description"] =
        json!("The original record's headers are copied, followed by the three `erp_bridge_*` headers.");
    headers["additionalProperties"] = json!({"type": "string"});
    json!({
        "name": "DeadLetter", "title": "DeadLetter",
        "summary": "A command that was malformed or whose retries ran out",
        "description": "The original command record's value, byte for byte (it may not even be JSON), with its headers, keyed by the command id. Its receipt says the same on the receipts topic.",
        "headers": headers,
        "payload": {"description": "The original command value."},
        "bindings": {"kafka": {"key": {"type": "string", "description": "The command id."}, "bindingVersion": KAFKA_BINDING}},
    })
}
