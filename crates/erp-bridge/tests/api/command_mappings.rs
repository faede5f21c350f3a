//! Command mapping management through the HTTP API and from files: create, validation with
//! field-named errors (on its own and against M3's MRS001MI), versions, hot swapping into the
//! running command processor, deletion, command files at start, and the AsyncAPI document.

use crate::helpers::{self, Env};
use erp_bridge::App;
use serde_json::{json, Value};

const BASE: &str = "/api/connections/demo/command-mappings";

fn rename_item() -> Value {
    json!({
        "name": "RenameItem",
        "description": "Give an item a new name.",
        "program": "MMS200MI",
        "transaction": "UpdItmBasic",
        "parameters": [
            {"field": "itemNumber", "mi": "ITNO", "required": true, "description": "Item number"},
            {"field": "newName", "mi": "ITDS", "required": true, "description": "The new name"},
        ]
    })
}

async fn send(env: &Env, app: &App, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.api_url);
    let mut req = env.http.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn submit(env: &Env, app: &App, id: &str, command: &str, data: Value) -> (u16, Value) {
    let cmd = json!({"commandId": id, "command": command, "data": data});
    env.post(app, "/api/connections/demo/commands", &cmd.to_string()).await
}

fn item(env: &Env, n: usize) -> String {
    env.sim.rows("MITMAS")[n]["MMITNO"].clone()
}

fn item_name(env: &Env, itno: &str) -> String {
    env.sim.get("MITMAS", &["100", itno]).unwrap()["MMITDS"].clone()
}

fn names(list: &Value) -> Vec<String> {
    list["commandMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_created_command_mapping_runs_at_once_and_appears_in_lists_and_asyncapi() {
    let env = Env::new(20).await;
    let app = env.start().await;

    // First start: the defaults are stored as version 1.
    let (s, list) = env.get(&app, BASE).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(names(&list), ["CreateItem", "DeleteItem", "UpdateItem"]);
    let update = &list["commandMappings"][2];
    assert_eq!(update["latestVersion"], 1);
    assert_eq!(update["updatedBy"], "erp-bridge (default)");
    assert_eq!(update["program"], "MMS200MI");
    assert_eq!(update["transaction"], "UpdItmBasic");
    assert_eq!(update["parameters"], 6);

    let (s, created) = env.post(&app, BASE, &rename_item().to_string()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created, json!({"name": "RenameItem", "version": 1, "warnings": []}));
    // Creating it again is a conflict.
    let (s, again) = env.post(&app, BASE, &rename_item().to_string()).await;
    assert_eq!(s, 409, "{again}");
    assert!(
        again["error"]["message"].as_str().unwrap().contains("RenameItem"),
        "{again}"
    );

    let (_, list) = env.get(&app, BASE).await;
    let rename = list["commandMappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "RenameItem")
        .unwrap_or_else(|| panic!("RenameItem listed: {list}"))
        .clone();
    assert_eq!(rename["program"], "MMS200MI");
    assert_eq!(rename["transaction"], "UpdItmBasic");
    assert_eq!(rename["parameters"], 2);
    assert_eq!(rename["latestVersion"], 1);
    assert_eq!(rename["updatedBy"], "token:testadmin (bootstrap admin (configured))");
    assert!(rename["updatedAt"].as_str().is_some_and(|t| t.len() > 10), "{rename}");

    let (s, one) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["spec"]["transaction"], "UpdItmBasic");
    assert_eq!(one["versions"].as_array().unwrap().len(), 1);
    assert_eq!(one["running"], true);
    assert_eq!(
        one["schema"]["properties"]["data"]["required"],
        json!(["itemNumber", "newName"])
    );

    // The existing command list reflects it at once, with its schema.
    let (s, commands) = env.get(&app, "/api/connections/demo/commands").await;
    assert_eq!(s, 200);
    let listed = commands["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "RenameItem")
        .unwrap_or_else(|| panic!("RenameItem in /commands: {commands}"))
        .clone();
    assert_eq!(listed["transaction"], "UpdItmBasic");

    // A command with it changes the item in M3.
    let itno = item(&env, 3);
    let (s, receipt) = submit(
        &env,
        &app,
        "rename-1",
        "RenameItem",
        json!({"itemNumber": itno, "newName": "Renamed by a command"}),
    )
    .await;
    assert_eq!(s, 200, "{receipt}");
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(receipt["command"], "RenameItem");
    assert_eq!(item_name(&env, &itno), "Renamed by a command");
    // Its required fields are enforced.
    let (s, r) = submit(&env, &app, "rename-2", "RenameItem", json!({"itemNumber": itno})).await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(r["error"]["field"], "data.newName");

    // The AsyncAPI document lists the new command with its schema.
    let (s, doc) = env.get(&app, "/api/connections/demo/asyncapi").await;
    assert_eq!(s, 200);
    let msg = &doc["components"]["messages"]["RenameItem"];
    assert_eq!(msg["payload"]["properties"]["command"]["const"], "RenameItem", "{doc}");
    assert!(msg["payload"]["properties"]["data"]["properties"]["newName"].is_object());
    assert_eq!(
        doc["channels"]["commands"]["messages"]["RenameItem"]["$ref"],
        "#/components/messages/RenameItem"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_command_mappings_are_rejected_naming_the_field() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = rename_item();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|v| v["parameters"][1]["mi"] = json!("ITDSX")),
            "parameters[1].mi: expected a 4-letter MI field name",
            "ITDSX",
        ),
        (
            with(&|v| v["transaction"] = json!("UpdItmBasix")),
            "transaction: ",
            "UpdItmBasix does not exist",
        ),
        (with(&|v| v["program"] = json!("MMS999MI")), "transaction: ", "MMS999MI"),
        (
            with(&|v| v["parameters"][0]["fixed"] = json!("A000001")),
            "parameters[0].fixed: ",
            "not both",
        ),
        (
            with(&|v| v["parameters"][1]["mi"] = json!("ITDZ")),
            "parameters[1].mi: MMS200MI/UpdItmBasic has no input field ITDZ",
            "did you mean `ITDS`?",
        ),
        (
            with(&|v| v["parameters"][1]["field"] = json!("itemNumber")),
            "parameters[1].field: ",
            "already used by parameters[0]",
        ),
        (with(&|v| v["program"] = json!("MMS200")), "program: ", "ending in `MI`"),
        (with(&|v| v["name"] = json!("rename item")), "name: ", "PascalCase"),
        (
            with(&|v| v["parameters"][0]["mii"] = json!("ITNO")),
            "command mapping definition: ",
            "unknown field `mii`",
        ),
    ];
    for (body, starts, contains) in cases {
        let (s, r) = env.post(&app, BASE, &body.to_string()).await;
        assert_eq!(s, 400, "{body} -> {r}");
        let m = r["error"]["message"].as_str().unwrap();
        assert!(m.starts_with(starts), "{m:?} should start with {starts:?}");
        assert!(m.contains(contains), "{m:?} should contain {contains:?}");
    }
    // Nothing was stored.
    let (s, _) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(s, 404);

    // The editor's field list comes from MRS001MI.
    let (s, fields) = env
        .get(&app, "/api/connections/demo/mi/MMS200MI/UpdItmBasic/fields")
        .await;
    assert_eq!(s, 200, "{fields}");
    let list = fields["fields"].as_array().unwrap();
    assert!(list.iter().any(|f| f["name"] == "ITNO" && f["type"] == "A"), "{fields}");
    assert!(list.iter().any(|f| f["name"] == "ITDS"), "{fields}");
    let (s, r) = env
        .get(&app, "/api/connections/demo/mi/MMS200MI/UpdItmBasix/fields")
        .await;
    assert_eq!(s, 404, "{r}");

    // M3 unreachable: the definition is accepted unchecked, with a warning.
    env.sim.set_faults(m3_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let (s, r) = env.post(&app, BASE, &rename_item().to_string()).await;
    env.sim.set_faults(m3_sim::Faults::default());
    assert_eq!(s, 201, "{r}");
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    assert!(warnings[0].as_str().unwrap().contains("not checked with M3"), "{r}");
    // ... but never when it is invalid on its own.
    env.sim.set_faults(m3_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let mut bad = rename_item();
    bad["name"] = json!("Other");
    bad["parameters"][0]["mi"] = json!("itno");
    let (s, r) = env.post(&app, BASE, &bad.to_string()).await;
    env.sim.set_faults(m3_sim::Faults::default());
    assert_eq!(s, 400, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("parameters[0].mi: "));
    app.shutdown().await;
}

#[tokio::test]
async fn updates_take_effect_without_restart_deletes_stop_the_command_and_both_survive_a_restart() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let itno = item(&env, 2);
    let (s, r) = env.post(&app, BASE, &rename_item().to_string()).await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = submit(
        &env,
        &app,
        "u-1",
        "RenameItem",
        json!({"itemNumber": itno, "newName": "One"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");

    // Version 2 renames the command field `newName` to `title` and sends a fixed status.
    let mut v2 = rename_item();
    v2["parameters"][1]["field"] = json!("title");
    v2["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mi": "STAT", "fixed": "20"}));
    let (s, r) = send(&env, &app, "PUT", &format!("{BASE}/RenameItem"), Some(&v2)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["version"], 2);
    // At once, without a restart: the old field is refused, the new one works.
    let (s, r) = submit(
        &env,
        &app,
        "u-2",
        "RenameItem",
        json!({"itemNumber": itno, "newName": "Two"}),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(r["error"]["code"], "unknown_field");
    assert_eq!(r["error"]["field"], "data.newName");
    env.sim.update("MITMAS", &["100", &itno], &[("MMSTAT", "10")]).unwrap();
    let (s, r) = submit(
        &env,
        &app,
        "u-3",
        "RenameItem",
        json!({"itemNumber": itno, "title": "Three"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let row = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    assert_eq!(row["MMITDS"], "Three");
    assert_eq!(row["MMSTAT"], "20");
    let (_, one) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(one["latestVersion"], 2);
    assert_eq!(one["versions"].as_array().unwrap().len(), 2);
    assert_eq!(one["versions"][0]["spec"]["parameters"][1]["field"], "newName");
    let (_, commands) = env.get(&app, "/api/connections/demo/commands").await;
    let listed = commands["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "RenameItem")
        .unwrap()
        .clone();
    assert!(
        listed["schema"]["properties"]["data"]["properties"]["title"].is_object(),
        "{listed}"
    );

    // An invalid update is refused and changes nothing.
    let mut broken = v2.clone();
    broken["parameters"][0]["mi"] = json!("ITNOX");
    let (s, r) = send(&env, &app, "PUT", &format!("{BASE}/RenameItem"), Some(&broken)).await;
    assert_eq!(s, 400, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("parameters[0].mi: "));
    // A command mapping cannot be renamed, and an unknown one cannot be updated.
    let (s, r) = send(&env, &app, "PUT", &format!("{BASE}/Renamed"), Some(&v2)).await;
    assert_eq!(s, 400, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().starts_with("name: "), "{r}");
    let mut other = v2.clone();
    other["name"] = json!("Unknown");
    let (s, _) = send(&env, &app, "PUT", &format!("{BASE}/Unknown"), Some(&other)).await;
    assert_eq!(s, 404);

    // Delete: the command is refused from the next one on; a deleted default stays deleted.
    for name in ["RenameItem", "DeleteItem"] {
        let (s, r) = send(&env, &app, "DELETE", &format!("{BASE}/{name}"), None).await;
        assert_eq!(s, 204, "{name}: {r}");
    }
    let (s, r) = send(&env, &app, "DELETE", &format!("{BASE}/RenameItem"), None).await;
    assert_eq!(s, 404, "{r}");
    let (s, r) = submit(
        &env,
        &app,
        "u-4",
        "RenameItem",
        json!({"itemNumber": itno, "title": "Four"}),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(r["error"]["code"], "unknown_command");
    assert_eq!(item_name(&env, &itno), "Three");
    let (s, _) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(s, 404);
    let (_, list) = env.get(&app, BASE).await;
    assert_eq!(names(&list), ["CreateItem", "UpdateItem"]);
    let (_, doc) = env.get(&app, "/api/connections/demo/asyncapi").await;
    assert!(doc["components"]["messages"]["RenameItem"].is_null());

    // Created again: numbering goes on after the deletion.
    let (s, r) = env.post(&app, BASE, &v2.to_string()).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["version"], 4);
    app.shutdown().await;

    // After a restart the stored state is what runs (no defaults brought back).
    let app = env.start().await;
    let (_, list) = env.get(&app, BASE).await;
    assert_eq!(names(&list), ["CreateItem", "RenameItem", "UpdateItem"]);
    let (s, r) = submit(
        &env,
        &app,
        "u-5",
        "RenameItem",
        json!({"itemNumber": itno, "title": "Five"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(item_name(&env, &itno), "Five");
    let (s, r) = submit(&env, &app, "u-6", "DeleteItem", json!({"itemNumber": itno})).await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(r["error"]["code"], "unknown_command");
    app.shutdown().await;
}

#[tokio::test]
async fn command_files_are_applied_at_start_and_a_broken_file_stops_the_start() {
    let env = Env::new(10).await;
    let dir = env.dir.path().join("commands");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rename.json"), rename_item().to_string()).unwrap();
    std::fs::write(
        dir.join("status.toml"),
        r#"
name = "SetItemStatus"
program = "MMS200MI"
transaction = "UpdItmBasic"

[[parameters]]
field = "itemNumber"
mi = "ITNO"
required = true

[[parameters]]
field = "status"
mi = "STAT"
required = true
"#,
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a command file").unwrap();
    let mut cfg = env.config();
    cfg.commands_dir = Some(dir.clone());

    let app = App::start(cfg.clone()).await.expect("app starts");
    let (_, list) = env.get(&app, BASE).await;
    assert_eq!(
        names(&list),
        ["CreateItem", "DeleteItem", "RenameItem", "SetItemStatus", "UpdateItem"]
    );
    let rename = list["commandMappings"][2].clone();
    assert_eq!(rename["latestVersion"], 1);
    assert!(
        rename["updatedBy"].as_str().unwrap().starts_with("file:")
            && rename["updatedBy"].as_str().unwrap().ends_with("rename.json"),
        "{rename}"
    );
    let itno = item(&env, 1);
    let (s, r) = submit(
        &env,
        &app,
        "f-1",
        "SetItemStatus",
        json!({"itemNumber": itno, "status": "90"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMSTAT"], "90");
    let (s, r) = submit(
        &env,
        &app,
        "f-2",
        "RenameItem",
        json!({"itemNumber": itno, "newName": "From a file"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(item_name(&env, &itno), "From a file");
    app.shutdown().await;

    // Unchanged files: no new version. A changed file: a new version, running.
    let app = App::start(cfg.clone()).await.expect("app starts");
    let (_, one) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(one["latestVersion"], 1, "{one}");
    app.shutdown().await;
    let mut v2 = rename_item();
    v2["parameters"][1]["field"] = json!("title");
    std::fs::write(dir.join("rename.json"), v2.to_string()).unwrap();
    let app = App::start(cfg.clone()).await.expect("app starts");
    let (_, one) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(one["latestVersion"], 2, "{one}");
    let (s, r) = submit(
        &env,
        &app,
        "f-3",
        "RenameItem",
        json!({"itemNumber": itno, "title": "Changed file"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(item_name(&env, &itno), "Changed file");
    app.shutdown().await;

    // A file that does not validate stops the start, naming the file and the field.
    let mut bad = rename_item();
    bad["name"] = json!("BrokenItem");
    bad["parameters"][1]["mi"] = json!("ITDSX");
    std::fs::write(dir.join("broken.json"), bad.to_string()).unwrap();
    let err = match App::start(cfg.clone()).await {
        Ok(_) => panic!("a broken command file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("broken.json"), "{err}");
    assert!(err.contains("parameters[1].mi"), "{err}");
    // So does one that does not parse.
    std::fs::write(dir.join("broken.json"), "{\"name\": \"BrokenItem\", \"program\": ").unwrap();
    let err = match App::start(cfg.clone()).await {
        Ok(_) => panic!("an unparsable command file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("broken.json"), "{err}");
    std::fs::remove_file(dir.join("broken.json")).unwrap();
    let app = App::start(cfg).await.expect("app starts again once the file is gone");
    let (s, _) = env.get(&app, &format!("{BASE}/BrokenItem")).await;
    assert_eq!(s, 404);
    app.shutdown().await;
}

/// The Kafka command consumer runs the same (swapped) command mappings as the HTTP API.
#[tokio::test]
async fn the_kafka_consumer_runs_command_mappings_created_and_changed_over_http() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = helpers::TestBroker::start().await;
    let env = Env::new(10).await;
    let mut cfg = env.config();
    cfg.kafka.brokers = broker.brokers();
    let app = App::start(cfg).await.expect("app starts");
    helpers::eventually("the relay to start", || async {
        env.status(&app).await["relay"]["healthy"] == true
    })
    .await;
    let itno = item(&env, 4);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .unwrap();
    let send = |value: Value| {
        let p = producer.clone();
        async move {
            let text = value.to_string();
            p.send(
                FutureRecord::to("erp-bridge.demo.commands").key("k").payload(&text),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("produced");
        }
    };

    let (s, r) = env.post(&app, BASE, &rename_item().to_string()).await;
    assert_eq!(s, 201, "{r}");
    send(json!({"commandId": "kc-1", "command": "RenameItem", "data": {"itemNumber": itno, "newName": "Via Kafka"}}))
        .await;
    helpers::eventually("the Kafka command to rename the item", || async {
        item_name(&env, &itno) == "Via Kafka"
    })
    .await;

    let mut v2 = rename_item();
    v2["parameters"][1]["field"] = json!("title");
    let (s, r) = send_put(&env, &app, &v2).await;
    assert_eq!(s, 200, "{r}");
    send(json!({"commandId": "kc-2", "command": "RenameItem", "data": {"itemNumber": itno, "title": "Via Kafka, v2"}}))
        .await;
    helpers::eventually("the Kafka command with version 2 to rename the item", || async {
        item_name(&env, &itno) == "Via Kafka, v2"
    })
    .await;
    app.shutdown().await;
}

async fn send_put(env: &Env, app: &App, spec: &Value) -> (u16, Value) {
    send(
        env,
        app,
        "PUT",
        &format!("{BASE}/{}", spec["name"].as_str().unwrap()),
        Some(spec),
    )
    .await
}

#[tokio::test]
async fn idempotency_is_derived_or_declared_shown_and_decides_retries() {
    let env = Env::new(20).await;
    let app = env.start().await;
    // Derived from the transaction name, in the list and in one mapping.
    let (_, list) = env.get(&app, BASE).await;
    let by_name = |n: &str| {
        list["commandMappings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("UpdateItem")["idempotency"], "idempotent");
    assert_eq!(by_name("CreateItem")["idempotency"], "not-idempotent");
    assert_eq!(by_name("DeleteItem")["idempotency"], "not-idempotent");

    // A wrong value is refused naming the field.
    let mut bad = rename_item();
    bad["idempotent"] = json!("sometimes");
    let (s, r) = env.post(&app, BASE, &bad.to_string()).await;
    assert_eq!(s, 400, "{r}");
    let m = r["error"]["message"].as_str().unwrap();
    assert!(m.contains("idempotent: expected true"), "{m}");

    // Declared: an update that must never run twice (say it counts something in M3).
    let mut once = rename_item();
    once["idempotent"] = json!(false);
    let (s, created) = env.post(&app, BASE, &once.to_string()).await;
    assert_eq!(s, 201, "{created}");
    let (_, shown) = env.get(&app, &format!("{BASE}/RenameItem")).await;
    assert_eq!(shown["idempotency"], "not-idempotent", "{shown}");
    assert_eq!(shown["spec"]["idempotent"], false, "{shown}");
    assert_eq!(shown["schema"]["x-idempotency"], "not-idempotent", "{shown}");

    let itno = item(&env, 2);
    env.sim.set_faults(m3_sim::Faults {
        execute_then_timeout: Some(20),
        ..Default::default()
    });
    let (s, receipt) = submit(
        &env,
        &app,
        "once-1",
        "RenameItem",
        json!({"itemNumber": itno, "newName": "Once"}),
    )
    .await;
    assert_eq!(s, 502, "{receipt}");
    assert_eq!(receipt["status"], "unknown", "{receipt}");
    assert_eq!(receipt["sent"]["transaction"], "UpdItmBasic");
    assert_eq!(env.sim.mi_calls("MMS200MI", "UpdItmBasic"), 1);
    assert_eq!(item_name(&env, &itno), "Once");
    app.shutdown().await;
}
