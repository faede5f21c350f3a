//! CloudEvents 1.0 Kafka protocol binding: binary mode (`ce_*` headers, JSON payload as the value)
//! and structured mode (the whole event as `application/cloudevents+json`).

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};
use store::StoredMessage;

/// Headers and value of one outbox message in the chosen mode.
pub fn encode(m: &StoredMessage, structured: bool) -> (OwnedHeaders, Vec<u8>) {
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
            "dataschema": m.dataschema,
            "data": data,
        });
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json; charset=UTF-8"),
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
            ("ce_dataschema", m.dataschema.as_str()),
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
