//! Conformance with validators and clients nobody here wrote: erp-bridge runs with a real
//! broker (tansu) and a mapping with every field type, then `conformance/check.py` (python
//! `jsonschema` with format checking, the CloudEvents SDK, kafka-python, promtool; see its
//! docstring) and `conformance/asyncapi.mjs` (`@asyncapi/parser`: 0 errors, 0 warnings) check
//! it from outside. A failure shows the validator's own output.
//!
//! The validators are installed by `scripts/setup.sh` into `conformance/.venv` and
//! `conformance/node_modules`; a missing one fails the test with the command that installs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{eventually, Env, TestBroker, ADMIN_TOKEN};
use erp_bridge::App;
use serde_json::{json, Value};

/// The mapping with every field type (string, integer, decimal, boolean, date, datetime, enum)
/// and constants, its dates in a zone with daylight saving time.
fn every_field_type() -> Value {
    json!({
        "name": "Conformance",
        "description": "Every field type, for the conformance suite",
        "table": "MITMAS",
        "timeZone": "Europe/Stockholm",
        "filter": "not MMEVGR = 'ROHS'",
        "fields": [
            {"column": "MMCONO", "name": "company", "type": "integer"},
            {"column": "MMITNO", "name": "itemNumber"},
            {"column": "MMITDS", "name": "name", "type": "string"},
            {"column": "MMSTAT", "name": "status", "type": "enum",
             "values": {"10": "preliminary", "20": "active", "50": "blocked"}, "default": "other"},
            {"column": "MMPUPR", "name": "price", "type": "decimal"},
            {"column": "MMEVGR", "name": "flagged", "type": "boolean"},
            {"column": "MMLMDT", "name": "changed", "type": "date"},
            {"column": "MMRGDT", "name": "created", "type": "datetime", "timeColumn": "MMRGTM"}
        ],
        "constants": {"source": "m3", "schemaVersion": 1}
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The conformance suite's Python (conformance/.venv), or a failure saying how to install it.
fn python() -> PathBuf {
    let p = repo().join("conformance/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: `source scripts/setup.sh` installs the conformance validators",
        p.display()
    );
    p
}

fn node_modules() -> PathBuf {
    let p = repo().join("conformance/node_modules/@asyncapi/parser");
    assert!(
        p.exists(),
        "{} is missing: `source scripts/setup.sh` runs `npm ci --prefix conformance`",
        p.display()
    );
    p
}

/// Run a validator; fail with its output unless it exits 0.
async fn run(what: &str, program: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(program)
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: no answer within 300 s"))
    .unwrap_or_else(|e| panic!("{what}: cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    println!("{what}:\n{text}");
    text
}

/// erp-bridge with Kafka in `structured` or binary mode, the every-field-type mapping deployed
/// and loaded (one item flagged, so the boolean is `true` somewhere).
async fn start(env: &Env, broker: &TestBroker, structured: bool) -> App {
    let mut cfg = env.config();
    // The AsyncAPI contact (the test's address has no domain to derive one from).
    cfg.http.contact_email = Some("integration@example.com".into());
    cfg.kafka.brokers = broker.brokers();
    cfg.kafka.partitions = 2;
    cfg.kafka.topic_prefix = "conformance".into();
    cfg.kafka.structured_mode = structured;
    let app = App::start(cfg).await.expect("app starts");
    env.loaded(&app).await;
    let (s, v) = env
        .post(&app, "/api/connections/demo/mappings", &every_field_type().to_string())
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = env
        .post(&app, "/api/connections/demo/mappings/Conformance/deploy", "{}")
        .await;
    assert_eq!(s, 200, "{v}");
    let rows = env.sim.rows("MITMAS");
    let flagged = rows
        .iter()
        .find(|r| r["MMEVGR"] != "ROHS")
        .expect("an item without ROHS")["MMITNO"]
        .clone();
    env.sim
        .update("MITMAS", &["100", &flagged], &[("MMEVGR", "1")])
        .unwrap();
    eventually("the flagged item in the new read model", || async {
        let (_, page) = env
            .get(&app, "/api/connections/demo/read-models/conformances?limit=1000")
            .await;
        page["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["flagged"] == true))
    })
    .await;
    let logged = env.all_messages(&app).await.len() as u64;
    eventually("the relay to publish the log", || async {
        let status = env.status(&app).await;
        status["relay"]["healthy"] == true && status["relay"]["published"].as_u64().unwrap_or(0) >= logged
    })
    .await;
    app
}

async fn check_py(app: &App, broker: &TestBroker, mode: &str, docs: bool) -> String {
    let brokers = broker.brokers();
    let mut args = vec![
        "conformance/check.py",
        "--api",
        &app.api_url,
        "--token",
        ADMIN_TOKEN,
        "--brokers",
        &brokers,
        "--mode",
        mode,
        "--mapping",
        "Conformance",
    ];
    if docs {
        args.extend(["--docs", "docs/CONSUMING.md"]);
    }
    run(&format!("conformance/check.py --mode {mode}"), &python(), &args).await
}

async fn check_asyncapi(app: &App) -> String {
    node_modules();
    let url = format!("{}/api/connections/demo/asyncapi", app.api_url);
    run(
        "@asyncapi/parser",
        std::path::Path::new("node"),
        &["conformance/asyncapi.mjs", &url, ADMIN_TOKEN],
    )
    .await
}

#[tokio::test]
async fn binary_mode_passes_json_schema_cloudevents_kafka_asyncapi_and_promtool_validators() {
    let broker = TestBroker::start().await;
    let env = Env::new(25).await;
    let app = start(&env, &broker, false).await;
    let out = check_asyncapi(&app).await;
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
    let out = check_py(&app, &broker, "binary", true).await;
    assert!(out.contains("all conformance checks passed"), "{out}");
    app.shutdown().await;
}

#[tokio::test]
async fn structured_mode_records_are_read_by_the_cloudevents_sdk_and_match_asyncapi() {
    let broker = TestBroker::start().await;
    let env = Env::new(15).await;
    let app = start(&env, &broker, true).await;
    let (_, doc) = env.get(&app, "/api/connections/demo/asyncapi").await;
    assert_eq!(
        doc["components"]["messages"]["ConformanceUpdated"]["contentType"], "application/cloudevents+json",
        "{doc}"
    );
    let out = check_asyncapi(&app).await;
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
    let out = check_py(&app, &broker, "structured", false).await;
    assert!(out.contains("all conformance checks passed"), "{out}");
    app.shutdown().await;
}

/// Without a broker or a validator: the AsyncAPI document follows `kafka.*` as the relay does.
#[tokio::test]
async fn asyncapi_follows_the_prefix_the_mode_and_the_brokers_the_relay_uses() {
    let broker = TestBroker::start().await;
    let env = Env::new(5).await;
    let mut cfg = env.config();
    // The second bootstrap server is down: the client uses the first.
    cfg.kafka.brokers = format!("{}, 127.0.0.1:1", broker.brokers());
    cfg.kafka.topic_prefix = "acme".into();
    cfg.kafka.structured_mode = true;
    cfg.kafka.partitions = 4;
    let app = App::start(cfg).await.expect("app starts");
    let (s, doc) = env.get(&app, "/api/connections/demo/asyncapi").await;
    assert_eq!(s, 200);
    for (channel, topic) in [
        ("events", "acme.demo.events"),
        ("commands", "acme.demo.commands"),
        ("receipts", "acme.demo.receipts"),
        ("deadletter", "acme.demo.deadletter"),
    ] {
        assert_eq!(doc["channels"][channel]["address"], topic, "{doc}");
        assert_eq!(doc["channels"][channel]["bindings"]["kafka"]["topic"], topic);
        assert_eq!(doc["channels"][channel]["bindings"]["kafka"]["partitions"], 4);
    }
    assert_eq!(doc["servers"]["broker1"]["host"], broker.brokers());
    assert_eq!(doc["servers"]["broker2"]["host"], "127.0.0.1:1");
    assert_eq!(doc["servers"]["broker1"]["protocol"], "kafka");
    // Structured mode: the whole event is the value; the only header is the content type.
    let updated = &doc["components"]["messages"]["ItemUpdated"];
    assert_eq!(updated["contentType"], "application/cloudevents+json");
    assert_eq!(updated["headers"]["required"], json!(["content-type"]));
    let schema_url = format!("{}/api/connections/demo/schemas/ItemUpdated", app.api_url);
    assert_eq!(
        updated["payload"]["properties"]["dataschema"]["const"],
        schema_url.as_str()
    );
    assert_eq!(updated["payload"]["properties"]["data"]["$id"], schema_url.as_str());
    assert_eq!(updated["bindings"]["kafka"]["key"]["type"], "string");
    // Receipts, dead letters and both command forms, with their headers required.
    let receipt = &doc["components"]["messages"]["CommandReceipt"]["headers"]["required"];
    assert_eq!(
        receipt,
        &json!([
            "ce_specversion",
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_subject",
            "content-type"
        ])
    );
    let dead = &doc["components"]["messages"]["DeadLetter"]["headers"]["required"];
    assert_eq!(
        dead,
        &json!(["erp_bridge_error", "erp_bridge_command_id", "erp_bridge_origin"])
    );
    assert_eq!(
        doc["channels"]["commands"]["messages"]["UpdateItemCloudEvent"]["$ref"],
        "#/components/messages/UpdateItemCloudEvent"
    );
    assert_eq!(
        doc["operations"]["receiveCommands"]["bindings"]["kafka"]["groupId"]["const"],
        "acme.demo.command-processor"
    );
    // The schema endpoint answers application/schema+json with that absolute `$id`.
    let r = env.http.get(&schema_url).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/schema+json");
    let schema: Value = r.json().await.unwrap();
    assert_eq!(schema["$id"], schema_url.as_str());
    app.shutdown().await;
}
