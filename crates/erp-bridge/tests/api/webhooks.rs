//! M3 webhooks (Event Hub style events) pushed to `/webhooks/{connection}/{TABLE}`: credentials,
//! C/U/D handling as hints (every row is read from M3 before anything is written, so an event's
//! values and deletes are never taken on trust), and no duplicates with polling.

use std::time::Duration;

use crate::helpers::{eventually, key_path, of_subject, Env};
use erp_bridge::App;
use serde_json::{json, Value};

const ITEMS: usize = 30;
const TOKEN: &str = "webhook-secret-token";

/// An app that only learns of changes through webhooks (polling effectively off).
async fn start_push_only(env: &Env) -> App {
    let mut cfg = env.config();
    cfg.connection.poll_interval = Duration::from_secs(3600);
    cfg.connection.reconcile_interval = Duration::from_secs(3600);
    cfg.connection.webhook_token = Some(TOKEN.into());
    let app = App::start(cfg).await.unwrap();
    eventually("the initial load", || async {
        env.all_messages(&app).await.len() == ITEMS
    })
    .await;
    app
}

fn event(env: &Env, op: &str, itno: &str, before: Option<&std::collections::BTreeMap<String, String>>) -> Value {
    let after = env.sim.get("MITMAS", &["100", itno]);
    let names: Vec<String> = after
        .as_ref()
        .or(before)
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let elements: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({
                "name": n,
                "value": after.as_ref().and_then(|r| r.get(n)).cloned().unwrap_or_default(),
                "oldValue": before.and_then(|r| r.get(n)).cloned().unwrap_or_default(),
            })
        })
        .collect();
    json!({"publisher": "M3", "documentName": "MITMAS", "operation": op, "trackingId": "t-1",
           "sentTimestamp": "2026-11-25T12:00:00Z", "elements": elements})
}

async fn push(env: &Env, app: &App, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = env
        .http
        .post(format!("{}/webhooks/demo/MITMAS", app.api_url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn webhooks_need_credentials_and_refusals_are_counted() {
    let env = Env::new(ITEMS).await;
    let app = start_push_only(&env).await;
    let itno = env.sim.rows("MITMAS")[0]["MMITNO"].clone();
    let body = event(&env, "U", &itno, None);
    assert_eq!(push(&env, &app, None, &body).await.0, 401);
    assert_eq!(push(&env, &app, Some("Bearer wrong"), &body).await.0, 401);
    assert_eq!(push(&env, &app, Some("Basic dXNlcjpwYXNz"), &body).await.0, 401);
    assert_eq!(env.status(&app).await["webhooks"]["unauthorized"], 3);
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
        metrics.contains("erp_bridge_webhooks_unauthorized_total{connection=\"demo\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("erp_bridge_rows_seen_total{connection=\"demo\",mapping=\"Item\",table=\"MITMAS\"}"));
    let auth = format!("Bearer {TOKEN}");
    let (s, v) = push(&env, &app, Some(&auth), &json!({"documentName": "MITMAS"})).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("operation: missing"),
        "{v}"
    );
    let mut wrong_table = body.clone();
    wrong_table["documentName"] = json!("OCUSMA");
    let (s, v) = push(&env, &app, Some(&auth), &wrong_table).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    let mut bad_op = body.clone();
    bad_op["operation"] = json!("X");
    assert_eq!(push(&env, &app, Some(&auth), &bad_op).await.0, 400);
    app.shutdown().await;
}

#[tokio::test]
async fn update_and_delete_events_become_messages_without_polling() {
    let env = Env::new(ITEMS).await;
    let app = start_push_only(&env).await;
    let auth = format!("Bearer {TOKEN}");
    let itno = env.sim.rows("MITMAS")[4]["MMITNO"].clone();
    let key = format!("100|{itno}");
    let before = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "Pushed")])
        .unwrap();
    let body = event(&env, "U", &itno, Some(&before));
    let (s, out) = push(&env, &app, Some(&auth), &body).await;
    assert_eq!(s, 202, "{out}");
    assert_eq!(out["messages"], 1);
    assert_eq!(out["read_back"], true);
    let (_, item) = env
        .get(
            &app,
            &format!("/api/connections/demo/read-models/items/{}", key_path(&key)),
        )
        .await;
    assert_eq!(item["name"], "Pushed");
    // Fire-and-forget senders may repeat an event: the content hash drops the repeat.
    assert_eq!(push(&env, &app, Some(&auth), &body).await.1["messages"], 0);
    // A late event carrying the older version is a hint only: M3 still has "Pushed".
    let mut old = event(&env, "U", &itno, None);
    for e in old["elements"].as_array_mut().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        e["value"] = json!(before[&name]);
    }
    assert_eq!(push(&env, &app, Some(&auth), &old).await.1["messages"], 0);
    assert_eq!(
        env.get(
            &app,
            &format!("/api/connections/demo/read-models/items/{}", key_path(&key))
        )
        .await
        .1["name"],
        "Pushed"
    );
    // A delete event for a row M3 still has deletes nothing.
    let (s, out) = push(&env, &app, Some(&auth), &event(&env, "D", &itno, None)).await;
    assert_eq!((s, out["messages"].clone()), (202, json!(0)), "{out}");
    assert_eq!(
        env.get(
            &app,
            &format!("/api/connections/demo/read-models/items/{}", key_path(&key))
        )
        .await
        .0,
        200
    );
    // Delete.
    let before = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    env.sim.delete("MITMAS", &["100", &itno]).unwrap();
    let (s, out) = push(&env, &app, Some(&auth), &event(&env, "D", &itno, Some(&before))).await;
    assert_eq!((s, out["messages"].clone()), (202, json!(1)), "{out}");
    assert_eq!(
        env.get(
            &app,
            &format!("/api/connections/demo/read-models/items/{}", key_path(&key))
        )
        .await
        .0,
        404
    );
    let messages = env.all_messages(&app).await;
    let mine: Vec<&str> = of_subject(&messages, &key)
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(mine, vec!["ItemUpdated", "ItemUpdated", "ItemDeleted"]);
    app.shutdown().await;
}

#[tokio::test]
async fn an_event_without_the_mapped_columns_is_read_back_from_m3() {
    let env = Env::new(ITEMS).await;
    let app = start_push_only(&env).await;
    let itno = env.sim.rows("MITMAS")[9]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMFUDS", "Only the key was sent")])
        .unwrap();
    let body = json!({"publisher": "M3", "documentName": "MITMAS", "operation": "U",
        "elements": [{"name": "MMCONO", "value": "100"}, {"name": "MMITNO", "value": itno}]});
    let (s, out) = push(&env, &app, Some(&format!("Bearer {TOKEN}")), &body).await;
    assert_eq!(s, 202, "{out}");
    assert_eq!(out["read_back"], true);
    assert_eq!(out["messages"], 1);
    let (_, item) = env
        .get(&app, &format!("/api/connections/demo/read-models/items/100%7C{itno}"))
        .await;
    assert_eq!(item["description"], "Only the key was sent");
    app.shutdown().await;
}

#[tokio::test]
async fn webhooks_and_polling_together_emit_one_message_per_change() {
    let env = Env::new(ITEMS).await;
    let mut cfg = env.config();
    cfg.connection.webhook_token = Some(TOKEN.into());
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    let itno = env.sim.rows("MITMAS")[12]["MMITNO"].clone();
    let before = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    env.sim.update("MITMAS", &["100", &itno], &[("MMSTAT", "90")]).unwrap();
    push(
        &env,
        &app,
        Some(&format!("Bearer {TOKEN}")),
        &event(&env, "U", &itno, Some(&before)),
    )
    .await;
    env.polls(&app, 3).await;
    let messages = env.all_messages(&app).await;
    assert_eq!(
        of_subject(&messages, &format!("100|{itno}")).len(),
        2,
        "load + one change"
    );
    app.shutdown().await;
}

/// An event claiming a change timestamp far in the future is a hint like any other: the row is
/// read from M3 and stored with M3's timestamp, so later real changes are not taken for stale.
#[tokio::test]
async fn an_event_with_a_future_timestamp_cannot_freeze_the_entity() {
    let env = Env::new(ITEMS).await;
    let app = start_push_only(&env).await;
    let auth = format!("Bearer {TOKEN}");
    let itno = env.sim.rows("MITMAS")[6]["MMITNO"].clone();
    let key = format!("100|{itno}");
    let mut future = event(&env, "U", &itno, None);
    for e in future["elements"].as_array_mut().unwrap() {
        match e["name"].as_str().unwrap() {
            "MMLMTS" => e["value"] = json!("9999999999999"),
            "MMITDS" => e["value"] = json!("From the future"),
            _ => {}
        }
    }
    let (s, out) = push(&env, &app, Some(&auth), &future).await;
    assert_eq!(
        (s, out["messages"].clone()),
        (202, json!(0)),
        "M3 did not change: {out}"
    );
    // A real change after it gets through.
    let before = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "Real change")])
        .unwrap();
    let (s, out) = push(&env, &app, Some(&auth), &event(&env, "U", &itno, Some(&before))).await;
    assert_eq!((s, out["messages"].clone()), (202, json!(1)), "{out}");
    let (_, item) = env
        .get(
            &app,
            &format!("/api/connections/demo/read-models/items/{}", key_path(&key)),
        )
        .await;
    assert_eq!(item["name"], "Real change");
    assert_eq!(env.table_status(&app).await["stale"], 0);
    app.shutdown().await;
}
