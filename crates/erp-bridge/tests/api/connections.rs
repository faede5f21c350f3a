//! Connections created through the API: several M3 instances on one process, isolated from one
//! another, credentials sealed at rest and never returned; and a self-hosted connector started
//! as a separate process that calls home, keeps polling while Studio restarts, is refused when a
//! second one tries to serve the same connection, and stops when its token is revoked.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{self, eventually, Env, ADMIN_TOKEN};
use erp_bridge::App;
use m3_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

async fn call(app: &App, method: &str, path: &str, token: &str, body: Option<String>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.api_url);
    let mut r = match method {
        "POST" => http.post(url),
        "PUT" => http.put(url),
        "DELETE" => http.delete(url),
        _ => http.get(url),
    };
    r = r.bearer_auth(token);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn admin(app: &App, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
    call(app, method, path, ADMIN_TOKEN, body).await
}

/// A second simulated M3 with data of its own.
async fn other_m3(items: usize, seed: u64) -> (Simulator, m3_sim::RunningSim, String) {
    let sim = Simulator::new(SimConfig {
        items,
        seed,
        ..Default::default()
    });
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ion = sim.ionapi(&running.base_url).to_string();
    (sim, running, ion)
}

/// Every key of a connection's `items` read model.
async fn read_model_keys(app: &App, connection: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/api/connections/{connection}/read-models/items?limit=1000{after}");
        let (s, v) = admin(app, "GET", &path, None).await;
        if s != 200 {
            return Vec::new();
        }
        for item in v["items"].as_array().unwrap() {
            keys.push(format!(
                "{}|{}",
                item["company"],
                item["itemNumber"].as_str().unwrap_or_default()
            ));
        }
        match v["next"].as_str() {
            Some(n) => after = format!("&after={}", helpers::key_path(n)),
            None => {
                keys.sort();
                return keys;
            }
        }
    }
}

fn sim_keys(sim: &Simulator) -> Vec<String> {
    let mut k: Vec<String> = sim
        .rows("MITMAS")
        .iter()
        .map(|r| format!("{}|{}", r["MMCONO"], r["MMITNO"]))
        .collect();
    k.sort();
    k
}

async fn deploy_item_mapping(app: &App, connection: &str) {
    let spec = serde_json::to_string(&mapping::spec::default_item_mapping()).unwrap();
    let (s, v) = admin(
        app,
        "POST",
        &format!("/api/connections/{connection}/mappings"),
        Some(spec),
    )
    .await;
    assert_eq!(s, 201, "mapping created on {connection}: {v}");
    let (s, v) = admin(
        app,
        "POST",
        &format!("/api/connections/{connection}/mappings/Item/deploy"),
        Some("{}".into()),
    )
    .await;
    assert_eq!(s, 200, "mapping deployed on {connection}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_created_through_the_api_run_side_by_side_isolated_with_sealed_secrets() {
    let env = Env::new(30).await;
    let app = env.start().await;
    let (sim2, _running2, ion2) = other_m3(45, 99).await;

    // Field-named errors.
    let (s, v) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"Bad Name","hosting":"hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("name:"), "{v}");
    let (s, v) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"second","hosting":"cloud"}"#.into()),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("hosting:"), "{v}");
    let (s, _) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"demo","hosting":"hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 409, "the configured connection's name is taken");
    // Managing connections needs an admin token.
    let (_, rw) = admin(
        &app,
        "POST",
        "/api/tokens",
        Some(json!({"name": "rw", "scope": "read-write"}).to_string()),
    )
    .await;
    let rw = rw["token"].as_str().unwrap().to_string();
    let (s, _) = call(
        &app,
        "POST",
        "/api/connections",
        &rw,
        Some(r#"{"name":"x","hosting":"hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 403);

    let (s, created) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"second","hosting":"hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["running"], false);
    assert!(
        created["webhook"]["token"].as_str().unwrap().len() >= 32,
        "webhook token shown once"
    );
    let (_, again) = admin(&app, "GET", "/api/connections/second", None).await;
    assert!(again["webhook"].get("token").is_none(), "never shown again: {again}");

    // A broken .ionapi: refused naming the key, nothing saved.
    let broken = ion2.replace("\"sask\"", "\"sazk\"");
    let (s, v) = admin(&app, "PUT", "/api/connections/second/ionapi", Some(broken)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["saved"], false);
    assert_eq!(v["errors"][0]["key"], "sask", "{v}");
    // MDP through the gateway cannot be checked before the .ionapi is there.
    let (s, v) = admin(&app, "PUT", "/api/connections/second/mdp", Some("{}".into())).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["check"]["ok"].is_null(), "{v}");
    let (s, v) = admin(
        &app,
        "PUT",
        "/api/connections/second/mdp",
        Some(r#"{"url":"ftp://x"}"#.into()),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("url:"), "{v}");

    let (s, v) = admin(&app, "PUT", "/api/connections/second/ionapi", Some(ion2.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["saved"].clone(), v["status"].clone()),
        (json!(true), json!("Healthy")),
        "{v}"
    );
    assert_eq!(v["launch"]["running"], true, "{v}");
    let (s, v) = admin(&app, "PUT", "/api/connections/second/mdp", Some("{}".into())).await;
    assert_eq!(s, 200);
    assert_eq!(v["check"]["ok"], true, "MDP answers through the gateway: {v}");
    assert!(v["check"]["tables"].as_u64().unwrap() > 5, "{v}");

    deploy_item_mapping(&app, "second").await;
    // Each connection's read model holds its own M3's items, and only those.
    let want2 = sim_keys(&sim2);
    eventually("the second connection's read model to fill", || async {
        read_model_keys(&app, "second").await == want2
    })
    .await;
    let want1 = sim_keys(&env.sim);
    eventually("the demo connection's read model to fill", || async {
        read_model_keys(&app, "demo").await == want1
    })
    .await;
    assert_ne!(want1, want2);
    let (_, list) = admin(&app, "GET", "/api/connections", None).await;
    let names: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo", "second"]);
    // A change in the second M3 reaches only the second connection.
    let itno = sim2.rows("MITMAS")[3]["MMITNO"].clone();
    sim2.update("MITMAS", &["100", &itno], &[("MMITDS", "Only in the second M3")])
        .unwrap();
    eventually("the change to reach the second connection", || async {
        let path = format!("/api/connections/second/read-models/items/100%7C{itno}");
        admin(&app, "GET", &path, None).await.1["name"] == "Only in the second M3"
    })
    .await;
    let (_, log1) = admin(
        &app,
        "GET",
        "/api/connections/demo/messages?after=0&limit=1000&type=ItemUpdated",
        None,
    )
    .await;
    assert!(!log1.to_string().contains("Only in the second M3"));

    // A read-model token of one connection is refused on the other.
    let (_, t) = admin(
        &app,
        "POST",
        "/api/tokens",
        Some(json!({"name": "rm", "scope": "read-model", "connection": "second"}).to_string()),
    )
    .await;
    let rm = t["token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&app, "GET", "/api/connections/second/read-models/items", &rm, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/connections/demo/read-models/items", &rm, None)
            .await
            .0,
        403
    );

    // Secrets: never returned, never in the database in clear text.
    let sask = serde_json::from_str::<Value>(&ion2).unwrap()["sask"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = serde_json::from_str::<Value>(&ion2).unwrap()["cs"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, described) = admin(&app, "GET", "/api/connections/second", None).await;
    assert_eq!(
        described["ionapi"]["tenant"],
        serde_json::from_str::<Value>(&ion2).unwrap()["ti"]
    );
    for s in [&sask, &secret] {
        assert!(
            !described.to_string().contains(s.as_str()),
            "secret returned: {described}"
        );
        assert!(!list.to_string().contains(s.as_str()));
    }
    let data = env.dir.path().join("data");
    let mut db = Vec::new();
    for f in ["erp-bridge.db", "erp-bridge.db-wal"] {
        db.extend(std::fs::read(data.join(f)).unwrap_or_default());
    }
    for s in [&sask, &secret] {
        assert!(
            !db.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is stored in clear text"
        );
    }

    // A restart starts the stored connection again, from its cursor.
    app.shutdown().await;
    let app = env.start().await;
    eventually("the stored connection to run after a restart", || async {
        admin(&app, "GET", "/api/connections/second", None).await.1["running"] == true
    })
    .await;
    assert_eq!(read_model_keys(&app, "second").await, want2);
    // Deleting it stops it and revokes its tokens.
    assert_eq!(admin(&app, "DELETE", "/api/connections/second", None).await.0, 204);
    assert_eq!(admin(&app, "GET", "/api/connections/second", None).await.0, 404);
    assert_eq!(
        call(&app, "GET", "/api/connections/second/read-models/items", &rm, None)
            .await
            .0,
        401
    );
    assert_eq!(admin(&app, "DELETE", "/api/connections/demo", None).await.0, 409);
    app.shutdown().await;
}

/// The connector process: started from its bundle, output kept for failure messages.
struct ConnectorProcess {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl ConnectorProcess {
    fn start(bundle: &std::path::Path, data_dir: &std::path::Path) -> ConnectorProcess {
        let log = data_dir.with_extension("log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
            .arg("connector")
            .arg("--bundle")
            .arg(bundle)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("erp-bridge connector starts");
        ConnectorProcess { child, log }
    }

    fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{out}{err}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_self_hosted_connector_calls_home_keeps_polling_while_studio_restarts_and_holds_the_lease() {
    let env = Env::new(10).await;
    let mut cfg = env.config();
    // A fixed port, so the connector finds Studio again after its restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let app = App::start(cfg.clone()).await.unwrap();
    let (sim, _running, ion) = other_m3(25, 5).await;

    let (s, v) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"edge","hosting":"self-hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        admin(&app, "PUT", "/api/connections/edge/ionapi", Some(ion)).await.0,
        200
    );
    let (_, v) = admin(&app, "GET", "/api/connections/edge", None).await;
    assert_eq!(v["connector"]["state"], "waiting", "{v}");
    // Hosted connections have no bundle; self-hosted ones get a tar with a connector token.
    assert_eq!(admin(&app, "POST", "/api/connections/demo/bundle", None).await.0, 409);
    let r = reqwest::Client::new()
        .post(format!("{}/api/connections/edge/bundle", app.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tar = r.bytes().await.unwrap();
    for name in ["bundle.toml", "Containerfile", "README.md"] {
        assert!(
            tar.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} in the bundle"
        );
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/connections/edge/bundle?format=toml", app.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let bundle_text = r.text().await.unwrap();
    let bundle = env.dir.path().join("bundle.toml");
    std::fs::write(&bundle, &bundle_text).unwrap();
    let token = bundle_text
        .lines()
        .find_map(|l| l.strip_prefix("token = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    // A connector token opens the channel only: it reads nothing.
    assert_eq!(
        call(&app, "GET", "/api/connections/edge/messages", &token, None)
            .await
            .0,
        403
    );

    let mut first = ConnectorProcess::start(&bundle, &env.dir.path().join("connector-1"));
    eventually("the connector to call home", || async {
        admin(&app, "GET", "/api/connections/edge", None).await.1["connector"]["state"] == "connected"
    })
    .await;
    deploy_item_mapping(&app, "edge").await;
    let want = sim_keys(&sim);
    eventually(
        "the self-hosted connector's messages to fill the read model",
        || async { read_model_keys(&app, "edge").await == want },
    )
    .await;
    // Status comes from the connector, every 2 s.
    eventually("the connector's status to reach Studio", || async {
        let (_, status) = admin(&app, "GET", "/api/connections/edge/status", None).await;
        status["m3"] == "Healthy"
            && status["tables"]["Item"]["phase"] == "polling"
            && status["tables"]["Item"]["rows_seen"].as_u64().unwrap_or(0) >= 25
    })
    .await;

    // Commands run on the connector, which reaches M3 on its network; M3's refusals come back.
    let itno5 = sim.rows("MITMAS")[5]["MMITNO"].clone();
    let cmd = json!({"commandId": "edge-1", "command": "UpdateItem", "data": {"itemNumber": itno5, "name": "Set through the connector"}});
    let (s, receipt) = admin(&app, "POST", "/api/connections/edge/commands", Some(cmd.to_string())).await;
    assert_eq!((s, receipt["status"].as_str()), (200, Some("succeeded")), "{receipt}");
    assert_eq!(
        sim.get("MITMAS", &["100", &itno5]).unwrap()["MMITDS"],
        "Set through the connector"
    );
    let cmd =
        json!({"commandId": "edge-2", "command": "UpdateItem", "data": {"itemNumber": "NO-SUCH-ITEM", "name": "x"}});
    let (s, receipt) = admin(&app, "POST", "/api/connections/edge/commands", Some(cmd.to_string())).await;
    assert_eq!((s, receipt["status"].as_str()), (422, Some("failed")), "{receipt}");
    assert!(
        receipt["error"]["message"].as_str().unwrap().contains("does not exist"),
        "{receipt}"
    );

    // Studio's M3 calls for the connection (table search on MDP, previews, MI field lookups)
    // run on the connector too: MDP's custom tables are listed while it is connected.
    let (_, tables) = admin(&app, "GET", "/api/connections/edge/tables?filter=CUG", None).await;
    assert_eq!(tables["source"], "mdp", "{tables}");
    assert!(tables.to_string().contains("CUGEX1"), "{tables}");
    let spec = serde_json::to_string(&mapping::spec::default_item_mapping()).unwrap();
    let (s, preview) = admin(
        &app,
        "POST",
        "/api/connections/edge/mappings/preview?limit=3",
        Some(spec),
    )
    .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["messages"].as_array().unwrap().len(), 3, "{preview}");
    let (s, fields) = admin(
        &app,
        "GET",
        "/api/connections/edge/mi/MMS200MI/UpdItmBasic/fields",
        None,
    )
    .await;
    assert_eq!(s, 200, "{fields}");

    // A second connector for the same connection is refused by the lease.
    let mut second = ConnectorProcess::start(&bundle, &env.dir.path().join("connector-2"));
    eventually("the second connector to be refused", || async {
        admin(&app, "GET", "/api/connections/edge", None).await.1["connector"]["refused"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    // Refused by the lease is not the end: it waits and tries again, in case the holder dies.
    assert!(second.child.try_wait().unwrap().is_none(), "{}", second.output());
    let _ = second.child.kill().await;

    // Studio goes away; the connector keeps polling M3 and sends what it found on return.
    app.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the connector keeps running: {}",
        first.output()
    );
    // Even restarted while Studio is away, it polls with its saved configuration: a change made
    // while it was down reaches its local outbox before Studio is back.
    first.child.kill().await.unwrap();
    let itno = sim.rows("MITMAS")[7]["MMITNO"].clone();
    sim.update(
        "MITMAS",
        &["100", &itno],
        &[("MMITDS", "Changed while Studio was away")],
    )
    .unwrap();
    let mut first = ConnectorProcess::start(&bundle, &env.dir.path().join("connector-1"));
    let local = store::Store::open(&env.dir.path().join("connector-1").join("connector.db"))
        .await
        .unwrap();
    eventually("the restarted connector to poll without Studio", || async {
        let log = local.messages("edge", 0, 10_000, None, None).await.unwrap();
        log.iter().any(|m| m.payload.contains("Changed while Studio was away"))
    })
    .await;
    let app = App::start(cfg.clone()).await.unwrap();
    eventually("the change made while Studio was away to arrive", || async {
        let path = format!("/api/connections/edge/read-models/items/100%7C{itno}");
        admin(&app, "GET", &path, None).await.1["name"] == "Changed while Studio was away"
    })
    .await;
    let (_, log) = admin(&app, "GET", "/api/connections/edge/messages?after=0&limit=1000", None).await;
    let ids: Vec<&str> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "no message ingested twice");

    // Revoking the connector token ends the connector.
    let id = token
        .strip_prefix("ebt_")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(admin(&app, "DELETE", &format!("/api/tokens/{id}"), None).await.0, 204);
    let status = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the connector did not stop after revocation: {}", first.output()))
        .unwrap();
    assert_eq!(status.code(), Some(3), "{}", first.output());
    assert!(first.output().contains("token"), "{}", first.output());
    // A stopped connector is Disconnected everywhere, never the Healthy it last reported.
    eventually("the stopped connector to show Disconnected", || async {
        admin(&app, "GET", "/api/connections/edge/status", None).await.1["status"]["state"] == "Disconnected"
    })
    .await;
    let (_, listed) = admin(&app, "GET", "/api/connections", None).await;
    let edge = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "edge")
        .unwrap();
    assert_eq!(edge["status"]["state"], "Disconnected", "{edge}");
    let (s, ready) = admin(&app, "GET", "/readyz", None).await;
    assert!(
        s == 503 && ready.to_string().contains("connection edge: Disconnected"),
        "{ready}"
    );
    // Without a connector, Studio cannot reach this M3: the table search falls back to the
    // standard catalogue (no custom tables).
    let (_, tables) = admin(&app, "GET", "/api/connections/edge/tables?filter=CUG", None).await;
    assert_eq!(tables["source"], "catalogue", "{tables}");
    app.shutdown().await;
}

/// The seed's order: a self-hosted connection runs from its creation (wizard step 0), so its
/// connector calls home before any `.ionapi` file exists, and every view says what is missing;
/// once the file is uploaded, the same connector process receives it over its channel and its
/// messages flow, without being restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_self_hosted_connector_calls_home_right_after_creation_and_receives_the_ionapi_file_later() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let (sim, _running, ion) = other_m3(12, 7).await;

    let (s, v) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"early","hosting":"self-hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Not set up yet, and no connector: Disconnected (start the connector), in every view.
    assert_eq!(
        (v["running"].clone(), v["connector"]["state"].clone()),
        (json!(false), json!("waiting")),
        "{v}"
    );
    for l in lights(&app, "early").await {
        assert_eq!(l["state"], "Disconnected", "{l}");
        assert!(l["message"].as_str().unwrap().contains("bundle"), "{l}");
    }

    // The bundle is there at step 0; its connector calls home before the .ionapi file exists.
    let r = reqwest::Client::new()
        .post(format!("{}/api/connections/early/bundle?format=toml", app.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle = env.dir.path().join("early.toml");
    std::fs::write(&bundle, r.text().await.unwrap()).unwrap();
    let mut connector = ConnectorProcess::start(&bundle, &env.dir.path().join("connector-early"));
    eventually("the connector to call home without an .ionapi file", || async {
        admin(&app, "GET", "/api/connections/early", None).await.1["connector"]["state"] == "connected"
    })
    .await;
    for l in lights(&app, "early").await {
        assert_eq!(l["state"], "NotConfigured", "{l}");
        let message = l["message"].as_str().unwrap();
        assert!(
            message.contains("connector connected") && message.contains(".ionapi"),
            "{l}"
        );
        assert!(l["since"].as_str().is_some(), "since when it is connected: {l}");
    }
    let (_, d) = admin(&app, "GET", "/api/connections/early", None).await;
    assert_eq!(d["running"], false, "set up only once the .ionapi file is saved: {d}");
    // A connection still being set up does not hold the process's readiness.
    let (_, ready) = admin(&app, "GET", "/readyz", None).await;
    assert!(!ready.to_string().contains("connection early"), "{ready}");
    // It stays connected while it waits (it is not refused, and does not come and go).
    let holder = d["connector"]["holder"].clone();
    let since = d["connector"]["connectedSince"].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, d) = admin(&app, "GET", "/api/connections/early", None).await;
    assert_eq!(
        (
            d["connector"]["state"].clone(),
            d["connector"]["connectedSince"].clone(),
            d["connector"]["refused"].clone()
        ),
        (json!("connected"), since, json!(0)),
        "{d}"
    );

    // The .ionapi file: the same connector receives it over its channel and reads M3.
    let (s, v) = admin(&app, "PUT", "/api/connections/early/ionapi", Some(ion)).await;
    assert_eq!(
        (s, v["saved"].clone(), v["launch"]["running"].clone()),
        (200, json!(true), json!(true)),
        "{v}"
    );
    eventually("the connector to reach M3 with the file it received", || async {
        let (_, d) = admin(&app, "GET", "/api/connections/early", None).await;
        d["running"] == true
            && d["connector"]["state"] == "connected"
            && d["connector"]["holder"] == holder
            && d["status"]["state"] == "Healthy"
    })
    .await;
    deploy_item_mapping(&app, "early").await;
    let want = sim_keys(&sim);
    eventually("the connector's messages to fill the read model", || async {
        read_model_keys(&app, "early").await == want
    })
    .await;
    assert!(
        connector.child.try_wait().unwrap().is_none(),
        "the connector was not restarted: {}",
        connector.output()
    );
    assert!(
        connector.output().contains("M3 credentials received"),
        "{}",
        connector.output()
    );
    let _ = connector.child.kill().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_key_seals_stored_credentials_again() {
    let env = Env::new(5).await;
    let cfg = env.config();
    let app = App::start(cfg.clone()).await.unwrap();
    let (_sim, _running, ion) = other_m3(5, 3).await;
    assert_eq!(
        admin(
            &app,
            "POST",
            "/api/connections",
            Some(r#"{"name":"second","hosting":"hosted"}"#.into())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        admin(&app, "PUT", "/api/connections/second/ionapi", Some(ion)).await.0,
        200
    );
    app.shutdown().await;
    let old = std::fs::read_to_string(cfg.data_dir.join("secret.key")).unwrap();
    let old_id = vault::Key::parse(&old).unwrap().id();
    let new = vault::Key::generate();

    // A new key alone cannot open what the old one sealed: the start fails and says why.
    let mut rotated = cfg.clone();
    rotated.secrets.key = Some(new.to_text());
    let err = format!("{:#}", App::start(rotated.clone()).await.err().expect("refused"));
    assert!(err.contains(&old_id) && err.contains("previous"), "{err}");
    assert!(
        !err.contains(old.trim()) && !err.contains(&new.to_text()),
        "no key in errors: {err}"
    );

    // With the old key as a previous key, every value is sealed again with the new one.
    rotated.secrets.previous_keys = vec![old.trim().to_string()];
    let app = App::start(rotated.clone()).await.unwrap();
    eventually("the stored connection to run with the new key", || async {
        admin(&app, "GET", "/api/connections/second", None).await.1["running"] == true
    })
    .await;
    app.shutdown().await;
    let store = store::Store::open(&cfg.data_dir.join("erp-bridge.db")).await.unwrap();
    let rec = store.connection("second").await.unwrap().unwrap();
    assert_eq!(
        rec.secrets.len(),
        2,
        "ionapi and webhook token: {:?}",
        rec.secrets.keys()
    );
    for sealed in rec.secrets.values() {
        assert!(
            sealed.starts_with(&format!("v1:{}:", new.id())),
            "resealed with the new key"
        );
    }
    // The old key is no longer needed.
    rotated.secrets.previous_keys.clear();
    let app = App::start(rotated).await.unwrap();
    eventually("the stored connection to run without the old key", || async {
        admin(&app, "GET", "/api/connections/second", None).await.1["running"] == true
    })
    .await;
    app.shutdown().await;
}

#[test]
fn a_malformed_bundle_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let f = dir.path().join("bundle.toml");
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
            .arg("connector")
            .arg("--bundle")
            .arg(&f)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run("studio_url = \"http://x\"\nconnection = \"c\"\ntoken = \"t\"\nregion = \"eu\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("region"), "{err}");
    let (code, err) = run("studio_url = \"x\"\nconnection = \"c\"\ntoken = \"t\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("studio_url") && err.contains("http(s) URL"), "{err}");
    let (_, err) = run("studio_url = \"http://x\"\nconnection = \"c\"\n");
    assert!(err.contains("token"), "{err}");
}

#[tokio::test]
async fn a_studio_without_a_connection_of_its_own_runs_those_created_through_the_api() {
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.connection.enabled = false;
    let app = App::start(cfg).await.unwrap();
    let (s, list) = admin(&app, "GET", "/api/connections", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["connections"], json!([]), "no configured connection: {list}");
    assert_eq!(admin(&app, "GET", "/api/connections/demo/status", None).await.0, 404);
    let (s, _) = admin(
        &app,
        "POST",
        "/api/connections",
        Some(r#"{"name":"demo","hosting":"hosted"}"#.into()),
    )
    .await;
    assert_eq!(s, 201, "the name is free without a configured connection");
    let ion = std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap();
    let (s, v) = admin(&app, "PUT", "/api/connections/demo/ionapi", Some(ion)).await;
    assert_eq!((s, v["launch"]["running"].clone()), (200, json!(true)), "{v}");
    app.shutdown().await;
}

/// The light of a connection in every answer that shows one: the list, the connection, its
/// status and `/readyz`.
async fn lights(app: &App, c: &str) -> [Value; 3] {
    let (_, list) = admin(app, "GET", "/api/connections", None).await;
    let listed = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == c)
        .unwrap_or_else(|| panic!("{c} listed: {list}"))["status"]
        .clone();
    let described = admin(app, "GET", &format!("/api/connections/{c}"), None).await.1["status"].clone();
    let status = admin(app, "GET", &format!("/api/connections/{c}/status"), None).await.1["status"].clone();
    [listed, described, status]
}

/// Whether every light of `c` is `state`.
async fn all_lights_are(app: &App, c: &str, state: &str) -> bool {
    lights(app, c).await.iter().all(|l| l["state"] == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_status_model_lights_every_view_and_a_failing_setting_never_replaces_a_working_one() {
    let env = Env::new(10).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let (_sim, _running, ion) = other_m3(10, 3).await;
    let mut wrong: Value = serde_json::from_str(&ion).unwrap();
    wrong["sask"] = json!("not-the-secret");
    let wrong = wrong.to_string();

    // Stored, no .ionapi yet: NotConfigured, with what to do, in every view.
    let create = |name: &str, hosting: &str| json!({"name": name, "hosting": hosting}).to_string();
    assert_eq!(
        admin(&app, "POST", "/api/connections", Some(create("fresh", "hosted")))
            .await
            .0,
        201
    );
    for l in lights(&app, "fresh").await {
        assert_eq!(l["state"], "NotConfigured", "{l}");
        assert!(l["message"].as_str().unwrap().contains(".ionapi"), "{l}");
    }

    // Credentials M3 refuses: AuthenticationFailed with M3's words and the time, everywhere.
    assert_eq!(
        admin(&app, "POST", "/api/connections", Some(create("refused", "hosted")))
            .await
            .0,
        201
    );
    let (s, v) = admin(&app, "PUT", "/api/connections/refused/ionapi", Some(wrong.clone())).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("AuthenticationFailed")), "{v}");
    for l in lights(&app, "refused").await {
        assert_eq!(l["state"], "AuthenticationFailed", "{l}");
        assert!(!l["message"].as_str().unwrap_or("").is_empty(), "M3's message: {l}");
        assert!(l["at"].as_str().is_some(), "when it was last seen: {l}");
    }
    let (s, ready) = admin(&app, "GET", "/readyz", None).await;
    assert!(
        s == 503 && ready.to_string().contains("connection refused: AuthenticationFailed"),
        "{ready}"
    );

    // The working file: Healthy before any message type is deployed (checked, not assumed).
    let (s, v) = admin(&app, "PUT", "/api/connections/refused/ionapi", Some(ion.clone())).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("Healthy")), "{v}");
    eventually("the connection to be Healthy in every view", || async {
        all_lights_are(&app, "refused", "Healthy").await
    })
    .await;
    // A refused file is not saved over the working one: it stays in use, and Healthy.
    let (s, v) = admin(&app, "PUT", "/api/connections/refused/ionapi", Some(wrong.clone())).await;
    assert_eq!(
        (s, v["saved"].clone(), v["kept"].clone()),
        (422, json!(false), json!(true)),
        "{v}"
    );
    assert!(all_lights_are(&app, "refused", "Healthy").await);

    // MDP: through the gateway works; an on-premises URL that does not answer is not saved.
    let (s, v) = admin(&app, "PUT", "/api/connections/refused/mdp", Some("{}".into())).await;
    assert_eq!((s, v["check"]["ok"].clone()), (200, json!(true)), "{v}");
    let dead = json!({"url": "http://127.0.0.1:9/mdprest", "username": "mdp", "password": "pw"}).to_string();
    let (s, v) = admin(&app, "PUT", "/api/connections/refused/mdp", Some(dead)).await;
    assert_eq!(
        (s, v["saved"].clone(), v["check"]["ok"].clone()),
        (422, json!(false), json!(false)),
        "{v}"
    );
    let (_, d) = admin(&app, "GET", "/api/connections/refused", None).await;
    assert_eq!(d["mdp"]["via"], "gateway", "the working setting stays: {d}");
    let (_, tables) = admin(&app, "GET", "/api/connections/refused/tables", None).await;
    assert_eq!(tables["source"], "mdp", "{tables}");

    // Self-hosted, its connector never called home: Disconnected (red), not "Not checked yet".
    assert_eq!(
        admin(&app, "POST", "/api/connections", Some(create("edge", "self-hosted")))
            .await
            .0,
        201
    );
    assert_eq!(
        admin(&app, "PUT", "/api/connections/edge/ionapi", Some(ion.clone()))
            .await
            .0,
        200
    );
    for l in lights(&app, "edge").await {
        assert_eq!(l["state"], "Disconnected", "{l}");
    }

    // The webhook token rotates: the new one is shown once and works, the old one no longer does.
    let (s, v) = admin(&app, "POST", "/api/connections/refused/webhook-token", None).await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["connection"]["webhook"]["bearerTokenSet"], true, "{v}");
    let (_, again) = admin(&app, "GET", "/api/connections/refused", None).await;
    assert!(!again.to_string().contains(&token), "never shown again: {again}");

    // The chart's last hour comes from the server.
    let (s, h) = admin(&app, "GET", "/api/connections/demo/status/history", None).await;
    assert_eq!(s, 200, "{h}");
    let samples = h["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{h}");
    assert!(samples.last().unwrap()["messages"].as_u64().unwrap() > 0, "{h}");
    assert_eq!(h["spanMs"], 3_600_000);
    app.shutdown().await;
}
