//! End to end through public interfaces: a simulated M3 on port 0, erp-bridge on port 0, and
//! assertions over the HTTP API (message log, read models, health).

use crate::helpers::{self, eventually, key_path, of_subject, Env};
use erp_bridge::App;
use m3_sim::Faults;
use serde_json::Value;

const ITEMS: usize = 150;

#[tokio::test]
async fn initial_load_emits_every_item_once_with_cloudevents_attributes() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let messages = env.all_messages(&app).await;
    assert_eq!(messages.len(), ITEMS);
    let rows = env.sim.rows("MITMAS");
    let m = &messages[0];
    assert_eq!(m["specversion"], "1.0");
    assert_eq!(m["type"], "ItemUpdated");
    assert_eq!(m["source"], "erp-bridge/demo/MITMAS");
    assert_eq!(m["datacontenttype"], "application/json");
    assert_eq!(
        m["dataschema"],
        format!("{}/api/connections/demo/schemas/ItemUpdated", app.api_url)
    );
    assert_eq!(m["id"].as_str().unwrap().len(), 36);
    let first = &rows[0];
    let key = format!("100|{}", first["MMITNO"]);
    let msg = of_subject(&messages, &key);
    assert_eq!(msg.len(), 1, "one message for {key}");
    assert_eq!(msg[0]["data"]["itemNumber"], first["MMITNO"].as_str());
    assert_eq!(msg[0]["data"]["name"], first["MMITDS"].as_str());
    assert_eq!(msg[0]["data"]["company"], 100);
    // The read model holds every item, paged.
    let (s, page) = env.get(&app, "/api/connections/demo/read-models/items?limit=100").await;
    assert_eq!(s, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page2) = env
        .get(
            &app,
            &format!(
                "/api/connections/demo/read-models/items?limit=100&after={}",
                key_path(&next)
            ),
        )
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), ITEMS - 100);
    assert!(page2["next"].is_null());
    app.shutdown().await;
}

#[tokio::test]
async fn a_changed_item_yields_exactly_one_item_updated_and_updates_the_read_model() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let itno = env.sim.rows("MITMAS")[10]["MMITNO"].clone();
    let key = format!("100|{itno}");
    env.sim
        .update(
            "MITMAS",
            &["100", &itno],
            &[("MMITDS", "Renamed by a test"), ("MMSTAT", "50")],
        )
        .unwrap();
    let path = format!("/api/connections/demo/read-models/items/{}", key_path(&key));
    eventually("the read model to show the change", || async {
        env.get(&app, &path).await.1["name"] == "Renamed by a test"
    })
    .await;
    // Several more polls re-read the overlap window; they must not repeat the message.
    env.polls(&app, 3).await;
    let messages = env.all_messages(&app).await;
    let mine = of_subject(&messages, &key);
    assert_eq!(mine.len(), 2, "initial load + one change: {mine:?}");
    assert_eq!(mine[1]["type"], "ItemUpdated");
    assert_eq!(mine[1]["data"]["status"], "50");
    assert_ne!(mine[0]["id"], mine[1]["id"]);
    // A change of an unmapped column is not a change of the message: nothing is emitted.
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMPUPR", "12.5")])
        .unwrap();
    env.polls(&app, 3).await;
    assert_eq!(of_subject(&env.all_messages(&app).await, &key).len(), 2);
    // Filtering the read model by field.
    let (s, v) = env
        .get(&app, "/api/connections/demo/read-models/items?status=50&limit=1000")
        .await;
    assert_eq!(s, 200);
    let items = v["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["itemNumber"] == itno.as_str()));
    assert!(items.iter().all(|i| i["status"] == "50"), "{items:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_new_item_and_a_deleted_item_reach_the_log_and_the_read_model() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    env.sim
        .insert(
            "MITMAS",
            &[
                ("MMCONO", "100"),
                ("MMITNO", "ZZ-NEW-1"),
                ("MMITDS", "Brand new"),
                ("MMSTAT", "20"),
                ("MMUNMS", "PCS"),
                ("MMITTY", "FG"),
            ],
        )
        .unwrap();
    let victim = env.sim.rows("MITMAS")[3]["MMITNO"].clone();
    let victim_key = format!("100|{victim}");
    env.sim.delete("MITMAS", &["100", &victim]).unwrap();
    let deleted_path = format!("/api/connections/demo/read-models/items/{}", key_path(&victim_key));
    eventually("the deleted item to leave the read model", || async {
        env.get(&app, &deleted_path).await.0 == 404
    })
    .await;
    eventually("the new item to appear", || async {
        env.get(&app, "/api/connections/demo/read-models/items/100%7CZZ-NEW-1")
            .await
            .0
            == 200
    })
    .await;
    let messages = env.all_messages(&app).await;
    let gone = of_subject(&messages, &victim_key);
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(gone[1]["type"], "ItemDeleted");
    assert_eq!(
        gone[1]["data"],
        serde_json::json!({"company": 100, "itemNumber": victim})
    );
    assert_eq!(of_subject(&messages, "100|ZZ-NEW-1").len(), 1);
    // Reconciliation keeps running; the delete is reported once.
    env.polls(&app, 5).await;
    let deletes = env
        .all_messages(&app)
        .await
        .into_iter()
        .filter(|m| m["type"] == "ItemDeleted")
        .count();
    assert_eq!(deletes, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_cursor_without_duplicates() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    app.shutdown().await;
    // M3 keeps changing while erp-bridge is down.
    let rows = env.sim.rows("MITMAS");
    let changed: Vec<String> = rows.iter().step_by(30).map(|r| r["MMITNO"].clone()).collect();
    for (i, itno) in changed.iter().enumerate() {
        env.sim
            .update("MITMAS", &["100", itno], &[("MMITDS", &format!("While down {i}"))])
            .unwrap();
    }
    let app = env.start().await;
    eventually("the changes made while down", || async {
        let messages = env.all_messages(&app).await;
        messages.len() >= ITEMS + changed.len()
    })
    .await;
    env.polls(&app, 3).await;
    let messages = env.all_messages(&app).await;
    assert_eq!(messages.len(), ITEMS + changed.len(), "no re-export, no duplicates");
    for itno in &changed {
        assert_eq!(of_subject(&messages, &format!("100|{itno}")).len(), 2, "{itno}");
    }
    let status = env.table_status(&app).await;
    assert!(
        status["rows_seen"].as_u64().unwrap() < ITEMS as u64,
        "resumed polling instead of re-reading the table: {status}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_clear_errors_for_bad_requests() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    assert_eq!(env.get(&app, "/healthz").await.0, 200);
    eventually("readiness", || async { env.get(&app, "/readyz").await.0 == 200 }).await;
    let (s, v) = env
        .get(&app, "/api/connections/demo/read-models/items/100%7CNOPE")
        .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found");
    let (s, v) = env.get(&app, "/api/connections/demo/read-models/items/justone").await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("company, itemNumber"),
        "{v}"
    );
    let (s, v) = env
        .get(&app, "/api/connections/demo/read-models/items?colour=red")
        .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("`colour`"), "{v}");
    let (s, v) = env.get(&app, "/api/connections/demo/messages?limit=0").await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("`limit`"), "{v}");
    assert_eq!(env.get(&app, "/api/connections/nope/messages").await.0, 404);
    assert_eq!(env.get(&app, "/api/connections/demo/read-models/orders").await.0, 404);
    let (s, schema) = env.get(&app, "/api/connections/demo/schemas/ItemDeleted").await;
    assert_eq!(s, 200);
    assert_eq!(schema["required"], serde_json::json!(["company", "itemNumber"]));
    // Source dead letters: none on a clean table once it is loaded; bad parameters named.
    env.loaded(&app).await;
    for path in [
        "/api/connections/demo/dead-letters",
        "/api/connections/demo/dead-letters?mapping=Item&limit=1000",
    ] {
        let (s, v) = env.get(&app, path).await;
        assert_eq!(
            (s, v["deadLetters"].clone()),
            (200, serde_json::json!([])),
            "{path}: {v}"
        );
    }
    for bad in ["limit=abc", "limit=0", "limit=1001"] {
        let (s, v) = env
            .get(&app, &format!("/api/connections/demo/dead-letters?{bad}"))
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{bad}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("`limit`"),
            "{bad}: {v}"
        );
    }
    let (s, v) = env.get(&app, "/api/connections/demo/dead-letters?colour=red").await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"), "{v}");
    assert_eq!(env.get(&app, "/api/connections/nope/dead-letters").await.0, 404);
    app.shutdown().await;
}

/// M3 answers every API call with HTTP 500 for a while: the mapping turns `Failing` with the
/// reason, `/readyz` names it, its lag keeps growing, and all of it clears when M3 is back.
#[tokio::test]
async fn an_m3_outage_makes_the_mapping_failing_and_not_ready_until_it_ends() {
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    eventually("readiness", || async { env.get(&app, "/readyz").await.0 == 200 }).await;
    assert_eq!(env.table_status(&app).await["health"], "Healthy");
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    eventually("the mapping to turn Failing with a reason", || async {
        let t = env.table_status(&app).await;
        t["health"] == "Failing"
            && t["health_message"].as_str().is_some_and(|m| !m.is_empty())
            && t["health_since"].is_string()
    })
    .await;
    let naming = |v: &Value| -> Option<String> {
        v["problems"].as_array()?.iter().find_map(|p| {
            let p = p.as_str()?;
            p.contains("mapping Item (MITMAS) failing since").then(|| p.to_string())
        })
    };
    eventually("/readyz to name the failing mapping", || async {
        let (s, v) = env.get(&app, "/readyz").await;
        s == 503 && naming(&v).is_some()
    })
    .await;
    let (s, v) = env.get(&app, "/readyz").await;
    assert_eq!((s, v["ready"].clone()), (503, Value::Bool(false)), "{v}");
    let problem = naming(&v).expect("the failing mapping is named");
    let reason = problem
        .split_once("failing since ")
        .and_then(|(_, r)| r.split_once(": "))
        .map(|(_, r)| r);
    assert!(
        reason.is_some_and(|r| !r.is_empty() && r != "no reason given"),
        "{problem} gives no reason"
    );
    let metrics = env
        .http
        .get(format!("{}/metrics", app.api_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("erp_bridge_mapping_failing{connection=\"demo\",mapping=\"Item\",table=\"MITMAS\"} 1"),
        "{metrics}"
    );
    // No poll completes during the outage, so the lag only grows.
    let first = env.table_status(&app).await["lag_ms"].as_i64().expect("a lag");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = env.table_status(&app).await["lag_ms"].as_i64().expect("a lag");
    assert!(second > first, "lag during the outage: {first} ms, then {second} ms");
    env.sim.set_faults(Faults::default());
    eventually("readiness after the outage", || async {
        env.get(&app, "/readyz").await.0 == 200
    })
    .await;
    let t = env.table_status(&app).await;
    assert_eq!(t["health"], "Healthy", "{t}");
    assert!(t["health_message"].is_null(), "{t}");
    eventually("the lag to fall back after the outage", || async {
        env.table_status(&app).await["lag_ms"]
            .as_i64()
            .is_some_and(|l| l < second)
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_with_wrong_credentials_and_names_the_cause() {
    let env = Env::new(ITEMS).await;
    let mut ion: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap()).unwrap();
    ion["sask"] = Value::String("wrong".into());
    let f = env.dir.path().join("wrong.ionapi");
    std::fs::write(&f, ion.to_string()).unwrap();
    let app = App::start(helpers::config_for(env.dir.path(), &f)).await.unwrap();
    eventually("the authentication failure to show", || async {
        let (s, v) = env.get(&app, "/readyz").await;
        s == 503 && v["problems"][0].as_str().unwrap_or("").contains("AuthenticationFailed")
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_ionapi_file_without_saak_is_rejected_naming_the_key() {
    let env = Env::new(ITEMS).await;
    let mut ion: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap()).unwrap();
    ion.as_object_mut().unwrap().remove("saak");
    let f = env.dir.path().join("browser-app.ionapi");
    std::fs::write(&f, ion.to_string()).unwrap();
    let err = match App::start(helpers::config_for(env.dir.path(), &f)).await {
        Ok(_) => panic!("an .ionapi without saak must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("key `saak` (service account access key) is missing"),
        "{err}"
    );
    assert!(err.contains("browser-app.ionapi"), "{err}");
}

/// When a large share of the keys vanishes in one reconciliation pass (an M3 answering empty,
/// a mistaken mass delete), the deletes are held and reported, not emitted: the mapping is
/// Failing with the reason and /readyz names it. Single deletes still flow.
#[tokio::test]
async fn a_mass_disappearance_is_held_and_reported_not_emitted() {
    let env = Env::new(40).await;
    let mut cfg = env.config();
    cfg.connection.delete_hold_share = 0.2;
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    // One delete: emitted.
    let first = env.sim.rows("MITMAS")[0]["MMITNO"].clone();
    env.sim.delete("MITMAS", &["100", &first]).unwrap();
    eventually("the single delete", || async {
        let m = env.all_messages(&app).await;
        m.iter().any(|m| m["type"] == "ItemDeleted")
    })
    .await;
    // Half of the rest at once: held.
    let rows = env.sim.rows("MITMAS");
    for r in rows.iter().take(rows.len() / 2) {
        env.sim.delete("MITMAS", &["100", &r["MMITNO"]]).unwrap();
    }
    eventually("the deletes held", || async {
        env.table_status(&app).await["held_deletes"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let status = env.table_status(&app).await;
    assert_eq!(status["health"], "Failing", "{status}");
    assert!(status["health_message"].as_str().unwrap().contains("held"), "{status}");
    let (s, ready) = env.get(&app, "/readyz").await;
    assert_eq!(s, 503, "{ready}");
    assert!(ready.to_string().contains("Item"), "{ready}");
    env.polls(&app, 2).await;
    let deleted = env
        .all_messages(&app)
        .await
        .iter()
        .filter(|m| m["type"] == "ItemDeleted")
        .count();
    assert_eq!(deleted, 1, "only the single delete was emitted");
    app.shutdown().await;
}

/// The overlap window reads the newest rows again on every poll; a row identical to the one the
/// last poll wrote is not written again, so an idle table costs a read and no write (with many
/// connections, those writes were most of the idle CPU).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_that_read_the_overlap_again_write_nothing_new() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    // A fresh change: its row stays inside the overlap window (5 s) for the polls below.
    let rows = env.sim.rows("MITMAS");
    let itno = rows[3]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "Inside the overlap")])
        .unwrap();
    eventually("the change to be read", || async {
        env.get(&app, &format!("/api/connections/demo/read-models/items/100%7C{itno}"))
            .await
            .1["name"]
            == "Inside the overlap"
    })
    .await;
    env.polls(&app, 1).await;
    let seen = env.table_status(&app).await["rows_seen"].as_u64().unwrap();
    env.polls(&app, 5).await;
    let after = env.table_status(&app).await;
    assert_eq!(
        after["rows_seen"].as_u64().unwrap(),
        seen,
        "five idle polls wrote rows again: {after}"
    );
    let messages = env.all_messages(&app).await;
    assert_eq!(
        of_subject(&messages, &format!("100|{itno}")).len(),
        2,
        "one message for the load, one for the change"
    );
    app.shutdown().await;
}

/// EXPORTMI cannot count, so the load learns how many rows a window holds from the rows a cut
/// answer returned: small parts of the first cut window say how many rows stand behind each
/// returned one, and the rest is split into parts expected to come back whole. Every answer
/// that comes back cut is read and thrown away (gateway calls against the customer's quota);
/// cutting into a fixed number of parts (eight), as the load did before, threw away 10,015 rows
/// here (3,015 now).
#[tokio::test]
async fn the_initial_load_throws_few_answers_away() {
    const ITEMS: usize = 20_000;
    const CAP: usize = 1000;
    let env = Env::new(ITEMS).await;
    let mut cfg = env.config();
    cfg.connection.page_size = CAP as u32;
    // Only the load reads the table: no reconciliation pass while it is counted.
    cfg.connection.reconcile_interval = std::time::Duration::from_secs(3600);
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    let read = env.sim.mi_records("EXPORTMI", "Select") as usize;
    let calls = env.sim.mi_calls("EXPORTMI", "Select") as usize;
    let messages = env.all_messages(&app).await;
    assert_eq!(messages.len(), ITEMS, "every item loaded once");
    // Besides the table itself: the newest timestamp's search (a cut answer and a few rows),
    // the first cut answer, the rest of the first window, and the polls after the load (no row
    // changed since).
    let thrown_away = read.saturating_sub(ITEMS);
    assert!(
        thrown_away <= 5 * CAP,
        "{thrown_away} rows read and thrown away ({read} read in {calls} calls for {ITEMS} items)"
    );
    app.shutdown().await;
}

/// Reconciliation reads the whole table on every pass, one window at a time, split the same
/// way as the load: a pass over 20,000 rows with a 1,000-row cap reads 22,000 rows (halving
/// each cut window, as passes did before, read 51,000).
#[tokio::test]
async fn a_reconciliation_pass_reads_little_more_than_the_table() {
    const ITEMS: u64 = 20_000;
    let env = Env::new(ITEMS as usize).await;
    let mut cfg = env.config();
    cfg.connection.page_size = 1000;
    cfg.connection.reconcile_interval = std::time::Duration::from_secs(2);
    // No polls after the first one: only reconciliation reads.
    cfg.connection.poll_interval = std::time::Duration::from_secs(3600);
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    let records = || env.sim.mi_records("EXPORTMI", "Select");
    let before = records();
    eventually("a reconciliation pass to read the table", || async {
        records() >= before + ITEMS
    })
    .await;
    // The pass is over once nothing is read for a while (the next one starts 2 s later).
    let mut last = records();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = records();
        if now == last {
            break;
        }
        last = now;
    }
    let read = last - before;
    assert!(read <= ITEMS * 13 / 10, "one pass read {read} rows for {ITEMS} items");
    app.shutdown().await;
}
