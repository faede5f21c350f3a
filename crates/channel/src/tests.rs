//! Unit tests of the wire protocol: every message round-trips through JSON, the wire names stay
//! those earlier versions wrote, and the tuning reads what older Studios sent.

use std::collections::BTreeMap;
use std::time::Duration;

use pipeline::remote_mi::{M3Answer, M3Call, MiFailure};
use serde_json::{json, Value};

use super::*;

fn status() -> pipeline::ConnectorStatus {
    let mut s = pipeline::ConnectorStatus {
        m3: pipeline::Connectivity::Healthy,
        m3_message: Some("ok".into()),
        ..Default::default()
    };
    s.tables.insert(
        "items".into(),
        pipeline::TableStatus {
            table: "MITMAS".into(),
            rows_seen: 12,
            messages: 7,
            ..Default::default()
        },
    );
    s
}

fn item(seq: i64, deleted: bool) -> UplinkItem {
    UplinkItem {
        seq,
        mapping: "items".into(),
        deleted,
        id: format!("id-{seq}"),
        ty: if deleted { "ItemDeleted" } else { "ItemChanged" }.into(),
        source: "erp-bridge/prod".into(),
        subject: "A100".into(),
        time: "2026-01-01T00:00:00Z".into(),
        dataschema: "/schemas/items".into(),
        payload: r#"{"itemNumber":"A100"}"#.into(),
    }
}

fn tuning() -> Tuning {
    Tuning {
        poll_interval: Duration::from_millis(250),
        reconcile_interval: Duration::from_secs(60),
        overlap: Duration::from_millis(1500),
        page_size: 200,
        separator: '|',
        load_parallelism: 8,
        delete_hold_share: 0.25,
        full_resync: Some("30 2 * * *".into()),
    }
}

fn config() -> ConnectorConfig {
    ConnectorConfig {
        connection: "prod".into(),
        ionapi: r#"{"ti":"TENANT"}"#.into(),
        mdp: Some(MdpCredentials {
            url: "https://m3.example.com/m3/mdprest".into(),
            username: "mdp".into(),
            password: "s3cret".into(),
        }),
        company: Some(100),
        mappings: vec![json!({"name": "items", "table": "MITMAS"})],
        settings: tuning(),
    }
}

fn from_connector_samples() -> Vec<FromConnector> {
    let record: m3::Record = BTreeMap::from([("ITNO".to_string(), "A100".to_string())]);
    vec![
        FromConnector::Hello {
            holder: "host-1".into(),
            version: "0.1.0".into(),
        },
        FromConnector::Status { status: status() },
        FromConnector::Messages {
            items: vec![item(1, false), item(2, true)],
        },
        FromConnector::CallResult {
            id: 1,
            result: Ok(M3Answer::Records(vec![record])),
        },
        FromConnector::CallResult {
            id: 2,
            result: Ok(M3Answer::Tables(vec![m3::mdp::TableInfo {
                name: "MITMAS".into(),
                description: "Item master".into(),
            }])),
        },
        FromConnector::CallResult {
            id: 3,
            result: Ok(M3Answer::Table(None)),
        },
        FromConnector::CallResult {
            id: 4,
            result: Err(MiFailure {
                nok: Some(("WITNO".into(), Some("ITNO".into()), "Item does not exist".into())),
                transient: false,
                message: "M3 refused".into(),
            }),
        },
    ]
}

fn to_connector_samples() -> Vec<ToConnector> {
    let mut without_mdp = config();
    without_mdp.mdp = None;
    without_mdp.company = None;
    without_mdp.settings = Tuning::default();
    let mut samples = vec![
        ToConnector::Config(config()),
        ToConnector::Config(without_mdp),
        ToConnector::Ack { up_to: 42 },
        ToConnector::Call {
            id: 1,
            call: M3Call::Execute {
                program: "MMS200MI".into(),
                transaction: "GetItmBasic".into(),
                inputs: vec![("ITNO".into(), "A100".into())],
                maxrecs: 0,
            },
        },
        ToConnector::Call {
            id: 2,
            call: M3Call::MdpTables { filter: "MIT".into() },
        },
        ToConnector::Call {
            id: 3,
            call: M3Call::MdpTable { table: "MITMAS".into() },
        },
    ];
    for code in [
        RefusalCode::BadHello,
        RefusalCode::LeaseHeld,
        RefusalCode::LeaseLost,
        RefusalCode::TokenRevoked,
        RefusalCode::Unknown,
    ] {
        samples.push(ToConnector::Refused {
            code,
            reason: "because".into(),
        });
    }
    samples
}

#[test]
fn every_connector_message_round_trips_through_json() {
    for frame in from_connector_samples() {
        let text = frame.encode().expect("encodes");
        let back = FromConnector::decode(&text).expect("decodes");
        // `ConnectorStatus` has no equality: compare what each side puts on the wire.
        let first: Value = serde_json::from_str(&text).expect("json");
        let second: Value = serde_json::from_str(&back.encode().expect("encodes")).expect("json");
        assert_eq!(first, second, "{text}");
        assert_eq!(std::mem::discriminant(&frame), std::mem::discriminant(&back), "{text}");
    }
}

#[test]
fn every_studio_message_round_trips_through_json() {
    for frame in to_connector_samples() {
        let text = frame.encode().expect("encodes");
        let back = ToConnector::decode(&text).expect("decodes");
        assert_eq!(back, frame, "{text}");
    }
}

#[test]
fn wire_names_are_those_of_earlier_versions() {
    let hello = FromConnector::Hello {
        holder: "h".into(),
        version: "1".into(),
    };
    assert_eq!(
        serde_json::to_value(&hello).unwrap(),
        json!({"type": "hello", "holder": "h", "version": "1"})
    );
    let messages = FromConnector::Messages {
        items: vec![item(7, true)],
    };
    assert_eq!(
        serde_json::to_value(&messages).unwrap(),
        json!({"type": "messages", "items": [{
            "seq": 7, "mapping": "items", "deleted": true, "id": "id-7", "type": "ItemDeleted",
            "source": "erp-bridge/prod", "subject": "A100", "time": "2026-01-01T00:00:00Z",
            "dataschema": "/schemas/items", "payload": "{\"itemNumber\":\"A100\"}"
        }]})
    );
    let answer = FromConnector::CallResult {
        id: 9,
        result: Ok(M3Answer::Table(None)),
    };
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({"type": "call-result", "id": 9, "result": {"Ok": {"kind": "table", "value": null}}})
    );
    assert_eq!(
        serde_json::to_value(ToConnector::Ack { up_to: 3 }).unwrap(),
        json!({"type": "ack", "up_to": 3})
    );
    let refused = ToConnector::Refused {
        code: RefusalCode::TokenRevoked,
        reason: "revoked".into(),
    };
    assert_eq!(
        serde_json::to_value(&refused).unwrap(),
        json!({"type": "refused", "code": "token-revoked", "reason": "revoked"})
    );
    let cfg = serde_json::to_value(ToConnector::Config(config())).unwrap();
    assert_eq!(cfg["type"], "config");
    assert_eq!(
        cfg["mdp"],
        json!({"url": "https://m3.example.com/m3/mdprest", "username": "mdp", "password": "s3cret"})
    );
}

/// What `remote_settings()` wrote before the tuning was typed (erp-bridge's hub, with a
/// configuration setting every field).
const HAND_WRITTEN_TUNING: &str = r#"{
    "pollIntervalMs": 250,
    "reconcileIntervalMs": 60000,
    "overlapMs": 1500,
    "pageSize": 200,
    "separator": "|",
    "loadParallelism": 8,
    "deleteHoldShare": 0.25,
    "fullResync": "30 2 * * *"
}"#;

#[test]
fn tuning_reads_and_writes_the_hand_written_json() {
    let parsed: Tuning = serde_json::from_str(HAND_WRITTEN_TUNING).expect("parses");
    assert_eq!(parsed, tuning());
    let written = serde_json::to_value(tuning()).unwrap();
    assert_eq!(written, serde_json::from_str::<Value>(HAND_WRITTEN_TUNING).unwrap());
}

#[test]
fn tuning_without_full_resync_reads_null() {
    let old = json!({
        "pollIntervalMs": 2000, "reconcileIntervalMs": 30000, "overlapMs": 5000, "pageSize": 1000,
        "separator": "~", "loadParallelism": 8, "deleteHoldShare": 0.1, "fullResync": null
    });
    let parsed: Tuning = serde_json::from_value(old.clone()).expect("parses");
    assert_eq!(parsed.full_resync, None);
    assert_eq!(parsed, Tuning::default());
    assert_eq!(serde_json::to_value(&parsed).unwrap(), old);
}

#[test]
fn tuning_fields_missing_from_older_peers_take_the_connector_defaults() {
    let defaults = pipeline::ConnectorSettings::new("prod");
    let parsed: Tuning = serde_json::from_value(json!({"pageSize": 50, "unknownLater": true})).expect("parses");
    assert_eq!(parsed.page_size, 50);
    assert_eq!(parsed.poll_interval, defaults.poll_interval);
    assert_eq!(parsed.reconcile_interval, defaults.reconcile_interval);
    assert_eq!(parsed.overlap, defaults.overlap);
    assert_eq!(parsed.separator, defaults.separator);
    assert_eq!(parsed.load_parallelism, defaults.load_parallelism);
    assert_eq!(parsed.delete_hold_share, defaults.delete_hold_share);
    assert_eq!(parsed.full_resync, None);

    let empty: Tuning = serde_json::from_str("{}").expect("parses");
    assert_eq!(empty, Tuning::default());

    // A configuration without any tuning at all.
    let mut cfg = serde_json::to_value(config()).unwrap();
    cfg.as_object_mut().unwrap().remove("settings");
    let cfg: ConnectorConfig = serde_json::from_value(cfg).expect("parses");
    assert_eq!(cfg.settings, Tuning::default());
}

#[test]
fn tuning_with_a_wrong_type_names_the_field() {
    let err = serde_json::from_value::<Tuning>(json!({"pageSize": "many"})).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err = serde_json::from_value::<Tuning>(json!({"separator": "ab"})).unwrap_err();
    assert!(err.to_string().contains("character"), "{err}");
}

#[test]
fn tuning_becomes_the_connector_settings() {
    let s = tuning().to_settings("prod").expect("valid");
    assert_eq!(s.connection, "prod");
    assert_eq!(s.poll_interval, Duration::from_millis(250));
    assert_eq!(s.reconcile_interval, Duration::from_secs(60));
    assert_eq!(s.overlap, Duration::from_millis(1500));
    assert_eq!(s.page_size, 200);
    assert_eq!(s.separator, '|');
    assert_eq!(s.load_parallelism, 8);
    assert_eq!(s.delete_hold_share, 0.25);
    assert_eq!(
        s.full_resync,
        Some(pipeline::schedule::Schedule::parse("30 2 * * *").unwrap())
    );
    assert!(!s.remote);
    assert!(s.lease.is_none());
    assert!(s.via.is_none());
}

#[test]
fn tuning_out_of_range_is_brought_into_range() {
    let wild = Tuning {
        page_size: 0,
        load_parallelism: 1000,
        delete_hold_share: 7.0,
        ..Tuning::default()
    };
    let s = wild.to_settings("prod").expect("valid");
    assert_eq!(s.page_size, 1);
    assert_eq!(s.load_parallelism, 32);
    assert_eq!(s.delete_hold_share, 1.0);
    let big = Tuning {
        page_size: 1_000_000,
        load_parallelism: 0,
        delete_hold_share: -1.0,
        ..Tuning::default()
    };
    let s = big.to_settings("prod").expect("valid");
    assert_eq!(s.page_size, 100_000);
    assert_eq!(s.load_parallelism, 1);
    assert_eq!(s.delete_hold_share, 0.0);
}

#[test]
fn tuning_with_a_bad_schedule_is_refused_naming_full_resync() {
    let bad = Tuning {
        full_resync: Some("every night".into()),
        ..Tuning::default()
    };
    let err = bad.to_settings("prod").unwrap_err();
    assert!(matches!(err, ChannelError::FullResync(_)), "{err:?}");
    assert!(err.to_string().contains("fullResync"), "{err}");
}

#[test]
fn refusal_codes_of_newer_studios_are_unknown_and_not_final() {
    let frame =
        ToConnector::decode(r#"{"type": "refused", "code": "maintenance", "reason": "later"}"#).expect("decodes");
    assert_eq!(
        frame,
        ToConnector::Refused {
            code: RefusalCode::Unknown,
            reason: "later".into()
        }
    );
    assert!(!RefusalCode::Unknown.is_final());
    assert!(!RefusalCode::LeaseHeld.is_final());
    assert!(RefusalCode::TokenRevoked.is_final());
}

#[test]
fn frames_not_understood_say_which_way_they_went() {
    let err = FromConnector::decode(r#"{"type": "hello"}"#).unwrap_err();
    assert!(matches!(
        err,
        ChannelError::Decode {
            direction: Direction::FromConnector,
            ..
        }
    ));
    assert!(err.to_string().contains("holder"), "{err}");
    let err = ToConnector::decode("not json").unwrap_err();
    assert!(
        err.to_string().starts_with("frame from Studio to the connector"),
        "{err}"
    );
    // A connector's frames are strict: an unknown field is refused.
    let err = FromConnector::decode(r#"{"type": "hello", "holder": "h", "version": "1", "extra": 1}"#).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn a_batch_holds_what_fits_and_always_one() {
    assert_eq!(fitting_batch([10, 10, 10]), 3);
    assert_eq!(fitting_batch([BATCH_MAX_BYTES * 2, 10]), 1);
    let half = BATCH_MAX_BYTES / 2 - ITEM_OVERHEAD_BYTES;
    assert_eq!(fitting_batch([half, half, half]), 2);
    assert_eq!(fitting_batch([half, half + 1]), 1);
}

#[test]
fn stored_messages_become_uplink_items() {
    let stored = |ty: &str| store::StoredMessage {
        seq: 5,
        id: "e1".into(),
        ty: ty.into(),
        source: "erp-bridge/prod".into(),
        subject: "A100".into(),
        time: "2026-01-01T00:00:00Z".into(),
        dataschema: "/schemas/items".into(),
        mapping: "items".into(),
        payload: "{}".into(),
    };
    let changed = UplinkItem::from(stored("ItemChanged"));
    assert!(!changed.deleted);
    assert_eq!((changed.seq, changed.subject.as_str()), (5, "A100"));
    assert!(UplinkItem::from(stored("ItemDeleted")).deleted);
}

#[test]
fn debug_output_hides_credentials() {
    let text = format!("{:?}", config());
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("TENANT"), "{text}");
    assert!(text.contains("m3.example.com"), "{text}");
}

#[test]
fn a_configuration_frame_of_an_older_studio_is_read() {
    // As Studio wrote it when the MDP credentials and the tuning were untyped JSON.
    let old = r#"{
        "type": "config",
        "connection": "edge",
        "ionapi": "{\"ti\":\"TENANT\"}",
        "mdp": {"url": "https://m3.example.com/m3/mdprest", "username": "mdp", "password": "s3cret"},
        "company": 100,
        "mappings": [{"name": "items", "table": "MITMAS"}],
        "settings": {
            "pollIntervalMs": 250, "reconcileIntervalMs": 60000, "overlapMs": 1500, "pageSize": 200,
            "separator": "|", "loadParallelism": 8, "deleteHoldShare": 0.25, "fullResync": "30 2 * * *"
        }
    }"#;
    let ToConnector::Config(cfg) = ToConnector::decode(old).expect("decodes") else {
        panic!("not a configuration");
    };
    let mut expected = config();
    expected.connection = "edge".into();
    assert_eq!(cfg, expected);
}
