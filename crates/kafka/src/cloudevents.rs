//! CloudEvents 1.0 Kafka protocol binding: binary mode (`ce_*` headers, JSON payload as the value)
//! and structured mode (the whole event as `application/cloudevents+json`).
//!
//! `dataschema` must be an absolute URI (CloudEvents 1.0, section 3.1.1): the outbox stores the
//! schema's path (`/api/connections/demo/schemas/ItemUpdated`), which is resolved here against
//! the schema base URL (`http.public_url`, default `http://<http.listen>`).

use std::borrow::Cow;

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};
use store::StoredMessage;

/// The `content-type` of structured-mode records.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// `dataschema` as an absolute URI: `path` resolved against `base` (`http://host:8080` +
/// `/api/...`). A `path` that is already absolute, or an empty `base`, is kept as it is.
pub fn absolute_dataschema<'a>(base: &str, path: &'a str) -> Cow<'a, str> {
    if base.is_empty() || !path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{}{path}", base.trim_end_matches('/')))
    }
}

/// Headers and value of one outbox message in the chosen mode, its `dataschema` resolved
/// against `schema_base_url` (see [`absolute_dataschema`]).
pub fn encode(m: &StoredMessage, structured: bool, schema_base_url: &str) -> (OwnedHeaders, Vec<u8>) {
    let dataschema = absolute_dataschema(schema_base_url, &m.dataschema);
    if structured {
        let data: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
        let event = json!({
            "specversion": "1.0",
            "id": m.id,
            "source": m.source,
            "type": m.ty,
            "subject": m.subject,
            "time": m.time,
            "datacontenttype": "application/json",
            "dataschema": dataschema,
            "data": data,
        });
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some(STRUCTURED_CONTENT_TYPE),
        });
        (headers, serde_json::to_vec(&event).expect("events serialise"))
    } else {
        let pairs = [
            ("ce_specversion", "1.0"),
            ("ce_id", m.id.as_str()),
            ("ce_source", m.source.as_str()),
            ("ce_type", m.ty.as_str()),
            ("ce_time", m.time.as_str()),
            ("ce_subject", m.subject.as_str()),
            ("ce_dataschema", &dataschema),
            ("content-type", "application/json"),
        ];
        let headers = pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(*v),
            })
        });
        (headers, m.payload.clone().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataschema_paths_become_absolute_uris() {
        let p = "/api/connections/demo/schemas/ItemUpdated";
        assert_eq!(
            absolute_dataschema("https://bridge.example.com/", p),
            "https://bridge.example.com/api/connections/demo/schemas/ItemUpdated"
        );
        assert_eq!(
            absolute_dataschema("http://127.0.0.1:8080", p),
            "http://127.0.0.1:8080/api/connections/demo/schemas/ItemUpdated"
        );
        assert_eq!(absolute_dataschema("", p), p);
        assert_eq!(absolute_dataschema("http://a", "urn:x:y"), "urn:x:y");
    }
}
