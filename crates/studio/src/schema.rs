//! JSON Schemas (2020-12) of the messages a mapping emits.

use mapping::CompiledMapping;
use serde_json::{json, Map, Value};

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
    for (i, f) in m.fields.iter().enumerate().filter(|(_, f)| !deleted || f.is_key) {
        props.insert(f.name.clone(), m.field_json_schema(i));
        required.push(json!(f.name));
    }
    if !deleted {
        for name in m.constants().keys() {
            if let Some(s) = m.constant_json_schema(name) {
                props.insert(name.clone(), s);
                required.push(json!(name));
            }
        }
    }
    Some(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "title": message_type,
        "description": if deleted {
            format!("A {} was deleted in M3 table {} (or left the mapping's filter); carries its key.", m.name, m.table)
        } else {
            format!("The full mapped state of a {} after a change in M3 table {}. {}", m.name, m.table, m.description)
        },
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    }))
}
