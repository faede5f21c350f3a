//! Event Hub style webhooks: subscriptions, the posted JSON, auth, ordering, admin routes and
//! the drop fault.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use common::Harness;
use m3_sim::{Faults, WebhookAuth, WebhookSubscription};
use serde_json::{json, Value};

/// One received webhook: its Authorization header and body.
type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on a free port; answers 200 to `POST /hook/{anything}`.
async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    async fn hook(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> &'static str {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        got.lock().unwrap().push((auth, serde_json::from_slice(&body).unwrap()));
        "ok"
    }
    let app = Router::new().route("/hook/{name}", post(hook)).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Waits until at least `n` webhooks arrived (at most 5 s) and answers them all.
async fn wait_for(got: &Got, n: usize) -> Vec<(String, Value)> {
    let start = Instant::now();
    loop {
        let v = got.lock().unwrap().clone();
        if v.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn element<'a>(event: &'a Value, name: &str) -> &'a Value {
    event["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no element {name} in {event}"))
}

#[tokio::test]
async fn direct_writes_post_cud_events_with_all_columns() {
    let h = Harness::start().await;
    let (url, got) = receiver().await;
    h.sim.subscribe(WebhookSubscription {
        subscription: "M3:MITMAS:CUD".into(),
        url: format!("{url}/MITMAS"),
        auth: WebhookAuth::Bearer { token: "s3cret".into() },
    });
    let ncols = h.sim.rows("MITMAS")[0].len();
    h.sim
        .insert(
            "MITMAS",
            &[("MMITNO", "HOOK-1"), ("MMITDS", "Hooked"), ("MMSTAT", "20")],
        )
        .unwrap();
    h.sim
        .update("MITMAS", &["100", "HOOK-1"], &[("MMITDS", "Hooked again")])
        .unwrap();
    h.sim.delete("MITMAS", &["100", "HOOK-1"]).unwrap();
    // Not subscribed: another table.
    h.sim
        .update("OCUSMA", &["100", &h.sim.rows("OCUSMA")[0]["OKCUNO"]], &[])
        .unwrap();

    let events = wait_for(&got, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(got.lock().unwrap().len(), 3, "only MITMAS events");
    let ops: Vec<&str> = events.iter().map(|(_, e)| e["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["C", "U", "D"]);
    for (auth, e) in &events {
        assert_eq!(auth, "Bearer s3cret");
        assert_eq!(e["publisher"], "M3");
        assert_eq!(e["documentName"], "MITMAS");
        let tid = e["trackingId"].as_str().unwrap();
        assert_eq!(tid.len(), 36, "{tid}");
        assert!(chrono::DateTime::parse_from_rfc3339(e["sentTimestamp"].as_str().unwrap()).is_ok());
        assert_eq!(e["elements"].as_array().unwrap().len(), ncols, "all columns");
        assert_eq!(element(e, "MMITNO")["value"], "HOOK-1");
        assert_eq!(element(e, "MMCONO")["value"], "100");
    }
    assert_ne!(events[0].1["trackingId"], events[1].1["trackingId"]);
    let (c, u, d) = (&events[0].1, &events[1].1, &events[2].1);
    // C: after image, no oldValue.
    assert_eq!(element(c, "MMITDS")["value"], "Hooked");
    assert!(element(c, "MMITDS").get("oldValue").is_none());
    assert_eq!(element(c, "MMCHNO")["value"], "1");
    assert_eq!(element(c, "MMCHID")["value"], "TEST");
    // U: after as value, before as oldValue.
    assert_eq!(element(u, "MMITDS")["value"], "Hooked again");
    assert_eq!(element(u, "MMITDS")["oldValue"], "Hooked");
    assert_eq!(element(u, "MMCHNO")["value"], "2");
    assert_eq!(element(u, "MMCHNO")["oldValue"], "1");
    assert_eq!(element(u, "MMSTAT")["value"], element(u, "MMSTAT")["oldValue"]);
    // D: the deleted row as value and oldValue.
    assert_eq!(element(d, "MMITDS")["value"], "Hooked again");
    assert_eq!(element(d, "MMITDS")["oldValue"], "Hooked again");
    let lmts: Vec<i64> = events
        .iter()
        .take(2)
        .map(|(_, e)| element(e, "MMLMTS")["value"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(lmts[0] > 1_700_000_000_000 && lmts[1] >= lmts[0]);
}

#[tokio::test]
async fn mi_transactions_fire_filtered_operations_with_basic_auth_and_keep_order() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (url, got) = receiver().await;
    let id = h.sim.subscribe(WebhookSubscription {
        subscription: "M3:OCUSMA:U".into(),
        url: format!("{url}/OCUSMA"),
        auth: WebhookAuth::Basic {
            user: "m3".into(),
            password: "pw:1".into(),
        },
    });
    let (_, v) = h
        .v2(&token, "CRS610MI/Add", &[("CUNO", "HOOKCUST"), ("CUNM", "Hook Ltd")])
        .await;
    assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    for i in 0..20 {
        let (_, v) = h
            .v2(
                &token,
                "CRS610MI/ChgBasicData",
                &[("CUNO", "HOOKCUST"), ("CUNM", &format!("Hook {i}"))],
            )
            .await;
        assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    }
    let events = wait_for(&got, 20).await;
    assert_eq!(events.len(), 20, "only U events, the Add is not subscribed");
    for (i, (auth, e)) in events.iter().enumerate() {
        // base64("m3:pw:1")
        assert_eq!(auth, "Basic bTM6cHc6MQ==");
        assert_eq!(e["operation"], "U");
        assert_eq!(element(e, "OKCUNM")["value"], format!("Hook {i}"), "in commit order");
        assert_eq!(element(e, "OKCHID")["value"], "MIUSER");
        assert_eq!(element(e, "OKCHNO")["value"], (i + 2).to_string());
    }
    assert!(h.sim.unsubscribe(id));
    assert!(!h.sim.unsubscribe(id));
    h.v2(
        &token,
        "CRS610MI/ChgBasicData",
        &[("CUNO", "HOOKCUST"), ("CUNM", "After")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 20, "nothing after unsubscribe");
}

#[tokio::test]
async fn workload_changes_are_posted_and_drop_fault_loses_them() {
    let h = Harness::start().await;
    let (url, got) = receiver().await;
    h.sim.subscribe(WebhookSubscription {
        subscription: "M3:MITMAS:CUD".into(),
        url: format!("{url}/MITMAS"),
        auth: WebhookAuth::None,
    });
    h.sim.set_faults(Faults {
        drop_webhooks: 1.0,
        ..Faults::default()
    });
    for i in 0..10 {
        h.sim.insert("MITMAS", &[("MMITNO", &format!("DROP-{i}"))]).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 0, "all dropped");
    h.sim.set_faults(Faults::default());

    let work = h.sim.start_workload(200.0);
    let events = wait_for(&got, 20).await;
    work.abort();
    assert!(events.len() >= 20, "{}", events.len());
    let (auth, e) = &events[0];
    assert_eq!(auth, "");
    assert!(element(e, "MMCHID")["value"].as_str().unwrap().starts_with("SIMUSR"));
    assert!(["C", "U", "D"].contains(&e["operation"].as_str().unwrap()));
}

#[tokio::test]
async fn admin_routes_manage_subscriptions() {
    let h = Harness::start().await;
    let (url, got) = receiver().await;
    let admin = format!("{}/admin/webhooks", h.running.base_url);
    let post = |body: Value| h.http.post(&admin).json(&body).send();

    let r = post(json!({"subscription": "M3:MITMAS:C", "url": format!("{url}/MITMAS"),
                        "auth": {"type": "bearer", "token": "tok"}}))
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["auth"], json!({"type": "bearer", "token": "***"}));

    for bad in [
        json!({"subscription": "M3:MITMAS:X", "url": url}),
        json!({"subscription": "M3:NOSUCH:C", "url": url}),
        json!({"subscription": "LN:MITMAS:C", "url": url}),
        json!({"subscription": "M3:MITMAS:C", "url": "ftp://x"}),
        json!({"url": url}),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let list: Value = h.http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["list"].as_array().unwrap().len(), 1);
    assert_eq!(list["list"][0]["subscription"], "M3:MITMAS:C");
    assert_eq!(list["list"][0]["id"], id);

    h.sim.insert("MITMAS", &[("MMITNO", "ADMIN-1")]).unwrap();
    let events = wait_for(&got, 1).await;
    assert_eq!(events[0].0, "Bearer tok");
    assert_eq!(element(&events[0].1, "MMITNO")["value"], "ADMIN-1");

    let r = h.http.delete(format!("{admin}/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = h.http.delete(format!("{admin}/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    h.sim.insert("MITMAS", &[("MMITNO", "ADMIN-2")]).unwrap();

    // DELETE without id removes all.
    post(json!({"subscription": "M3:MITMAS", "url": format!("{url}/MITMAS")}))
        .await
        .unwrap();
    post(json!({"subscription": "M3:OCUSMA:CUD", "url": format!("{url}/OCUSMA")}))
        .await
        .unwrap();
    let r: Value = h.http.delete(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["removed"], 2);
    assert!(h.sim.subscriptions().is_empty());
    h.sim.insert("MITMAS", &[("MMITNO", "ADMIN-3")]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_receiver_does_not_block_writes() {
    let h = Harness::start().await;
    // Nothing listens here (bound then dropped).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    h.sim.subscribe(WebhookSubscription {
        subscription: "M3:MITMAS:CUD".into(),
        url: format!("http://{dead}/hook"),
        auth: WebhookAuth::None,
    });
    let start = Instant::now();
    for i in 0..50 {
        h.sim.insert("MITMAS", &[("MMITNO", &format!("DEAD-{i}"))]).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(h.sim.get("MITMAS", &["100", "DEAD-49"]).is_some());
}
