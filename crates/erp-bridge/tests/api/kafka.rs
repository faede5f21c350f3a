//! Against a real Kafka-protocol broker (tansu, started per test): messages out with CloudEvents
//! headers, commands in with receipts and dead letters, and a broker outage mid-stream.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{eventually, Env, TestBroker};
use erp_bridge::App;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

struct Received {
    key: String,
    headers: HashMap<String, String>,
    value: Value,
}

fn consumer(brokers: &str, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", rand_suffix()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Receive until `done` says enough (or fail after 60 s).
async fn receive_until(c: &StreamConsumer, mut done: impl FnMut(&[Received]) -> bool) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&got) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "timed out; received {} messages", got.len());
        if let Ok(Ok(m)) = tokio::time::timeout(left.min(Duration::from_secs(2)), c.recv()).await {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            got.push(Received {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
                headers,
                value: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null),
            });
        }
    }
    got
}

async fn start_with_kafka(env: &Env, broker: &TestBroker) -> App {
    let mut cfg = env.config();
    cfg.kafka.brokers = broker.brokers();
    cfg.kafka.partitions = 2;
    App::start(cfg).await.expect("app starts")
}

/// Waits until `app`'s relay runs, so that its topics exist before anything is produced.
async fn relay_started(env: &Env, app: &App) {
    eventually("the relay to start", || async {
        env.status(app).await["relay"]["healthy"] == true
    })
    .await;
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap()
}

/// Produces one command record, keyed `key`, to the demo connection's command topic.
async fn produce_command(p: &FutureProducer, key: &str, value: &str) {
    p.send(
        FutureRecord::to("erp-bridge.demo.commands").key(key).payload(value),
        Duration::from_secs(10),
    )
    .await
    .expect("produced");
}

#[tokio::test]
async fn a_change_in_m3_arrives_on_kafka_as_a_cloudevent_keyed_by_entity() {
    let broker = TestBroker::start().await;
    let env = Env::new(30).await;
    let app = start_with_kafka(&env, &broker).await;
    env.loaded(&app).await;
    let itno = env.sim.rows("MITMAS")[7]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "Seen on Kafka")])
        .unwrap();
    let key = format!("100|{itno}");
    let c = consumer(&broker.brokers(), "erp-bridge.demo.events");
    let got = receive_until(&c, |g| g.iter().any(|r| r.value["name"] == "Seen on Kafka")).await;
    assert!(got.len() > 30, "the initial load is published too: {}", got.len());
    let m = got.iter().find(|r| r.value["name"] == "Seen on Kafka").unwrap();
    assert_eq!(m.key, key);
    assert_eq!(m.headers["ce_specversion"], "1.0");
    assert_eq!(m.headers["ce_type"], "ItemUpdated");
    assert_eq!(m.headers["ce_source"], "erp-bridge/demo/MITMAS");
    assert_eq!(m.headers["ce_subject"], key);
    assert_eq!(m.headers["content-type"], "application/json");
    assert_eq!(
        m.headers["ce_dataschema"],
        format!("{}/api/connections/demo/schemas/ItemUpdated", app.api_url)
    );
    // The same id as in the embedded log.
    let log = env.all_messages(&app).await;
    let logged = log.iter().rev().find(|x| x["subject"] == key.as_str()).unwrap();
    assert_eq!(m.headers["ce_id"], logged["id"].as_str().unwrap());
    eventually("the relay to report its progress", || async {
        env.status(&app).await["relay"]["published"].as_u64().unwrap_or(0) >= 31
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn commands_from_kafka_change_m3_and_get_receipts_malformed_ones_are_dead_lettered() {
    let broker = TestBroker::start().await;
    let env = Env::new(20).await;
    let app = start_with_kafka(&env, &broker).await;
    env.loaded(&app).await;
    let itno = env.sim.rows("MITMAS")[2]["MMITNO"].clone();
    let p = producer(&broker.brokers());
    let topic = "erp-bridge.demo.commands";
    let send = |key: &'static str, value: String, headers: Option<OwnedHeaders>| {
        let p = p.clone();
        async move {
            let mut rec = FutureRecord::to(topic).key(key).payload(&value);
            if let Some(h) = headers {
                rec = rec.headers(h);
            }
            p.send(rec, Duration::from_secs(10)).await.expect("produced");
        }
    };
    // Wait for the topics to exist before producing.
    relay_started(&env, &app).await;
    let ok = json!({"commandId": "k-1", "command": "UpdateItem", "data": {"itemNumber": itno, "status": "50"}});
    send("k-1", ok.to_string(), None).await;
    send("k-1", ok.to_string(), None).await; // redelivered / sent twice: executed once
    send("bad", "{oops".into(), None).await;
    send(
        "k-3",
        json!({"commandId": "k-3", "command": "Nope", "data": {}}).to_string(),
        None,
    )
    .await;
    send(
        "k-4",
        json!({"commandId": "k-4", "command": "UpdateItem", "data": {}}).to_string(),
        None,
    )
    .await;
    send(
        "k-5",
        json!({"commandId": "k-5", "command": "UpdateItem", "data": {"itemNumber": "GHOST"}}).to_string(),
        None,
    )
    .await;
    // CloudEvents binary mode: id and type in headers, data as the value.
    let ce = OwnedHeaders::new()
        .insert(Header {
            key: "ce_id",
            value: Some("k-6"),
        })
        .insert(Header {
            key: "ce_type",
            value: Some("UpdateItem"),
        });
    send(
        "k-6",
        json!({"itemNumber": itno, "name": "From a CloudEvent"}).to_string(),
        Some(ce),
    )
    .await;

    let receipts = consumer(&broker.brokers(), "erp-bridge.demo.receipts");
    let got = receive_until(&receipts, |g| g.len() >= 7).await;
    let by_id = |id: &str| -> Vec<&Value> {
        got.iter()
            .filter(|r| r.value["commandId"] == id)
            .map(|r| &r.value)
            .collect()
    };
    assert_eq!(by_id("k-1").len(), 2);
    assert!(by_id("k-1").iter().all(|r| r["status"] == "succeeded"));
    assert_eq!(by_id("k-3")[0]["status"], "rejected");
    assert_eq!(by_id("k-3")[0]["error"]["code"], "unknown_command");
    assert_eq!(by_id("k-4")[0]["error"]["field"], "data.itemNumber");
    assert_eq!(by_id("k-5")[0]["status"], "failed");
    assert_eq!(by_id("k-5")[0]["error"]["code"], "XIM0002");
    assert_eq!(by_id("k-6")[0]["status"], "succeeded");
    let bad = got
        .iter()
        .find(|r| r.value["error"]["code"] == "invalid_json")
        .expect("a receipt for bad JSON");
    assert_eq!(bad.value["status"], "rejected");
    assert!(bad.value["commandId"]
        .as_str()
        .unwrap()
        .starts_with("erp-bridge.demo.commands/"));
    let row = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    assert_eq!(row["MMSTAT"], "50");
    assert_eq!(row["MMITDS"], "From a CloudEvent");
    // k-1 once, k-6 once: two MI changes on top of the seeded change number.
    let dead = consumer(&broker.brokers(), "erp-bridge.demo.deadletter");
    let dl = receive_until(&dead, |g| g.len() >= 3).await;
    let reasons: Vec<&str> = dl.iter().map(|r| r.headers["erp_bridge_error"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("unknown command `Nope`")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("data.itemNumber: required")),
        "{reasons:?}"
    );
    assert_eq!(dl.len(), 3, "M3 refusals are receipts, not dead letters");
    app.shutdown().await;
}

#[tokio::test]
async fn a_broker_outage_loses_nothing_and_keeps_order_per_key() {
    let mut broker = TestBroker::start().await;
    let env = Env::new(20).await;
    let app = start_with_kafka(&env, &broker).await;
    env.loaded(&app).await;
    eventually("the initial load on Kafka", || async {
        env.status(&app).await["relay"]["published"].as_u64().unwrap_or(0) >= 20
    })
    .await;
    broker.stop();
    let items: Vec<String> = env
        .sim
        .rows("MITMAS")
        .iter()
        .take(4)
        .map(|r| r["MMITNO"].clone())
        .collect();
    // Several versions per key while the broker is down, each seen by a separate poll.
    for round in 0..3 {
        for itno in &items {
            env.sim
                .update("MITMAS", &["100", itno], &[("MMITDS", &format!("v{round}"))])
                .unwrap();
        }
        env.polls(&app, 2).await;
    }
    let logged = env.all_messages(&app).await;
    assert_eq!(
        logged.len(),
        20 + 12,
        "every change is in the outbox while the broker is down"
    );
    eventually("the relay to notice the outage", || async {
        env.status(&app).await["relay"]["healthy"] == false
    })
    .await;
    broker.resume().await;
    let c = consumer(&broker.brokers(), "erp-bridge.demo.events");
    let got = receive_until(&c, |g| {
        items
            .iter()
            .all(|i| g.iter().any(|r| r.key == format!("100|{i}") && r.value["name"] == "v2"))
    })
    .await;
    for itno in &items {
        let names: Vec<&str> = got
            .iter()
            .filter(|r| r.key == format!("100|{itno}"))
            .map(|r| r.value["name"].as_str().unwrap())
            .collect();
        // At-least-once: a version may repeat, but never out of order, and none is missing.
        let mut dedup: Vec<&str> = names.clone();
        dedup.dedup();
        assert_eq!(&dedup[dedup.len() - 3..], &["v0", "v1", "v2"], "{itno}: {names:?}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn structured_mode_puts_the_whole_cloudevent_in_the_value() {
    let broker = TestBroker::start().await;
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.kafka.brokers = broker.brokers();
    cfg.kafka.structured_mode = true;
    cfg.kafka.topic_prefix = "structured".into();
    let app = App::start(cfg).await.unwrap();
    let c = consumer(&broker.brokers(), "structured.demo.events");
    let got = receive_until(&c, |g| g.len() >= 5).await;
    let m = &got[0];
    assert_eq!(m.headers["content-type"], "application/cloudevents+json; charset=UTF-8");
    assert!(
        !m.headers.contains_key("ce_id"),
        "no binary-mode headers in structured mode"
    );
    assert_eq!(m.value["specversion"], "1.0");
    assert_eq!(m.value["type"], "ItemUpdated");
    assert_eq!(m.value["subject"], m.key.as_str());
    assert_eq!(m.value["datacontenttype"], "application/json");
    assert_eq!(m.value["data"]["company"], 100);
    app.shutdown().await;
}

#[tokio::test]
async fn a_create_with_an_ambiguous_504_gets_an_unknown_receipt_and_is_not_retried() {
    let broker = TestBroker::start().await;
    let env = Env::new(20).await;
    let app = start_with_kafka(&env, &broker).await;
    relay_started(&env, &app).await;
    env.sim.set_faults(m3_sim::Faults {
        execute_then_timeout: Some(20),
        ..Default::default()
    });
    let create = json!({"commandId": "u-1", "command": "CreateItem", "data": {
        "itemNumber": "KAFKA-1", "name": "New widget", "status": "20", "unit": "PCS",
        "itemType": "FG", "responsible": "JSMITH"}});
    produce_command(&producer(&broker.brokers()), "u-1", &create.to_string()).await;
    let receipts = consumer(&broker.brokers(), "erp-bridge.demo.receipts");
    let got = receive_until(&receipts, |g| g.iter().any(|r| r.key == "u-1")).await;
    let r = &got.iter().find(|r| r.key == "u-1").unwrap().value;
    assert_eq!(r["status"], "unknown", "{r}");
    assert_eq!(r["error"]["code"], "m3_http_504", "{r}");
    assert_eq!(r["sent"]["inputs"]["ITNO"], "KAFKA-1", "{r}");
    assert!(
        r["check"]
            .as_str()
            .unwrap()
            .contains("MMS200MI/GetItmBasic with ITNO=KAFKA-1"),
        "{r}"
    );
    assert!(env.sim.get("MITMAS", &["100", "KAFKA-1"]).is_some());
    assert_eq!(env.sim.mi_calls("MMS200MI", "AddItmBasic"), 1);
    // Someone must look: a dead-letter copy says so.
    let dead = consumer(&broker.brokers(), "erp-bridge.demo.deadletter");
    let dl = receive_until(&dead, |g| g.iter().any(|r| r.key == "u-1")).await;
    let reason = &dl.iter().find(|r| r.key == "u-1").unwrap().headers["erp_bridge_error"];
    assert!(reason.starts_with("outcome unknown"), "{reason}");
    app.shutdown().await;
}

#[tokio::test]
async fn over_long_fields_and_reused_command_ids_get_rejected_receipts_and_dead_letters_without_m3() {
    let broker = TestBroker::start().await;
    let env = Env::new(20).await;
    let app = start_with_kafka(&env, &broker).await;
    relay_started(&env, &app).await;
    let itno = env.sim.rows("MITMAS")[3]["MMITNO"].clone();
    let p = producer(&broker.brokers());
    let send = |key: &'static str, value: String| {
        let p = p.clone();
        async move { produce_command(&p, key, &value).await }
    };
    let long = json!({"commandId": "kl-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "x".repeat(100_000)}});
    send("kl-1", long.to_string()).await;
    // One key, so the first command is processed before the reuse of its id.
    let first = json!({"commandId": "kr-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "First"}});
    let reuse = json!({"commandId": "kr-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "Second"}});
    send("kr-1", first.to_string()).await;
    send("kr-1", reuse.to_string()).await;

    let receipts = consumer(&broker.brokers(), "erp-bridge.demo.receipts");
    let got = receive_until(&receipts, |g| g.len() >= 3).await;
    let by_id = |id: &str| -> Vec<&Value> {
        got.iter()
            .filter(|r| r.value["commandId"] == id)
            .map(|r| &r.value)
            .collect()
    };
    let long = by_id("kl-1")[0];
    assert_eq!(long["status"], "rejected", "{long}");
    assert_eq!(long["error"]["code"], "too_long", "{long}");
    assert_eq!(long["error"]["field"], "data.name", "{long}");
    assert_eq!(long["error"]["length"], 100_000, "{long}");
    assert_eq!(long["error"]["maxLength"], 30, "{long}");
    let kr = by_id("kr-1");
    assert_eq!(kr.len(), 2, "{kr:?}");
    assert_eq!(kr[0]["status"], "succeeded", "{kr:?}");
    assert_eq!(kr[1]["status"], "rejected", "{kr:?}");
    assert_eq!(kr[1]["error"]["code"], "command_id_reused", "{kr:?}");
    assert!(
        kr[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UpdateItem succeeded"),
        "{kr:?}"
    );
    // M3 ran the first command only.
    assert_eq!(env.sim.mi_calls("MMS200MI", "UpdItmBasic"), 1);
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"], "First");

    let dead = consumer(&broker.brokers(), "erp-bridge.demo.deadletter");
    let dl = receive_until(&dead, |g| g.len() >= 2).await;
    let reasons: Vec<&str> = dl.iter().map(|r| r.headers["erp_bridge_error"].as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("data.name: 100000 characters; MI field ITDS")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("commandId: `kr-1` was used before")),
        "{reasons:?}"
    );
    app.shutdown().await;
}
