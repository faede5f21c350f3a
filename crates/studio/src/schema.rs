//! JSON Schemas (2020-12) of the messages a mapping emits.

use mapping::{CompiledMapping, FieldType};
use serde_json::{json, Map, Value};

fn field_schema(ty: FieldType, description: &str) -> Value {
    let mut s = match ty {
        FieldType::String => json!({"type": "string"}),
        FieldType::Integer => json!({"type": "integer"}),
        FieldType::Decimal => json!({"type": "number"}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": ["string", "null"], "format": "date"}),
    };
    if !description.is_empty() {
        s["description"] = json!(description);
    }
    s
}

/// The schema of `<Name>Updated` or `<Name>Deleted`, or `None` if `message_type` is neither.
pub fn message_schema(m: &CompiledMapping, message_type: &str, id: &str) -> Option<Value> {
    let deleted = if message_type == m.updated_type() {
        false
    } else if message_type == m.deleted_type() {
        true
    } else {
        return None;
    };
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in m.fields.iter().filter(|f| !deleted || f.is_key) {
        props.insert(f.name.clone(), field_schema(f.ty, &f.description));
        required.push(json!(f.name));
    }
    Some(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "title": message_type,
        "description": if deleted {
            format!("A {} was deleted in M3 table {}; carries its key.", m.name, m.table)
        } else {
            format!("The full mapped state of a {} after a change in M3 table {}. {}", m.name, m.table, m.description)
        },
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    }))
}
