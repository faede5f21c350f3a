//! Outbox retention through the public interfaces: a log kept under `outbox.max_bytes` answers
//! 410 (our JSON error, with the earliest position held) for a pruned position and 200 from
//! there; `/metrics` reports its size and oldest position; a compacted log (`outbox.mode =
//! "compact"`) keeps one message per item, so reading it from the start rebuilds the read model;
//! with Kafka, nothing the relay has not acknowledged is removed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::{eventually, Env, TestBroker};
use erp_bridge::App;
use serde_json::Value;

const ITEMS: usize = 120;

/// The value of a metric sample `name{connection="demo"}` in a `/metrics` text.
async fn metric(env: &Env, app: &App, name: &str) -> Option<f64> {
    let text = env
        .http
        .get(format!("{}/metrics", app.api_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{connection=\"demo\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

/// Every message from `after` on, oldest first, or the 410 answer.
async fn read_from(env: &Env, app: &App, mut after: i64) -> Result<Vec<Value>, Value> {
    let mut out = Vec::new();
    loop {
        let (s, v) = env
            .get(app, &format!("/api/connections/demo/messages?after={after}&limit=1000"))
            .await;
        if s == 410 {
            return Err(v);
        }
        assert_eq!(s, 200, "{v}");
        let page = v["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            return Ok(out);
        }
        after = v["next"].as_i64().unwrap();
        out.extend(page);
    }
}

#[tokio::test]
async fn a_log_over_its_size_answers_410_for_pruned_positions_and_reports_its_size() {
    let env = Env::new(ITEMS).await;
    let mut cfg = env.config();
    cfg.outbox.max_bytes = Some(20_000);
    cfg.outbox.prune_interval = Duration::from_secs(1);
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    // The initial load wrote a message per item; the pruner brings the log under 20 kB.
    eventually("the log to be pruned", || async {
        metric(&env, &app, "erp_bridge_outbox_bytes")
            .await
            .is_some_and(|b| b <= 20_000.0)
            && metric(&env, &app, "erp_bridge_outbox_messages")
                .await
                .is_some_and(|n| n > 0.0 && n < ITEMS as f64)
    })
    .await;
    let gone = read_from(&env, &app, 0).await.expect_err("position 0 was pruned");
    assert_eq!(gone["error"]["code"], "gone", "{gone}");
    let earliest = gone["error"]["earliest"].as_i64().expect("the earliest position held");
    let resume = gone["error"]["resume_after"].as_i64().unwrap();
    assert!(resume < earliest, "{gone}");
    assert!(
        gone["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&earliest.to_string()),
        "{gone}"
    );
    assert_eq!(
        metric(&env, &app, "erp_bridge_outbox_oldest_seq").await,
        Some(earliest as f64)
    );
    // From the position it names, the rest of the log is answered in full.
    let rest = read_from(&env, &app, resume).await.expect("after resume_after is held");
    assert_eq!(rest[0]["seq"].as_i64(), Some(earliest));
    let held = metric(&env, &app, "erp_bridge_outbox_messages").await.unwrap();
    assert_eq!(rest.len() as f64, held);
    // A position inside the pruned range is gone too; the newest ones are not.
    assert_eq!(
        env.get(&app, &format!("/api/connections/demo/messages?after={}", resume - 1))
            .await
            .0,
        410
    );
    let last = rest.last().unwrap()["seq"].as_i64().unwrap();
    let (s, v) = env
        .get(&app, &format!("/api/connections/demo/messages?after={last}"))
        .await;
    assert_eq!((s, v["messages"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_compacted_log_read_from_the_start_rebuilds_the_read_model() {
    let env = Env::new(ITEMS).await;
    let mut cfg = env.config();
    cfg.outbox.retention = Some(Duration::from_secs(1));
    cfg.outbox.mode = store::OutboxMode::Compact;
    cfg.outbox.prune_interval = Duration::from_secs(1);
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    // Three new versions of the first 10 items, and one item deleted.
    let rows = env.sim.rows("MITMAS");
    for round in 0..3 {
        for r in &rows[..10] {
            env.sim
                .update(
                    "MITMAS",
                    &["100", &r["MMITNO"]],
                    &[("MMITDS", &format!("Version {round}"))],
                )
                .unwrap();
        }
        env.polls(&app, 2).await;
    }
    let victim = rows[20]["MMITNO"].clone();
    env.sim.delete("MITMAS", &["100", &victim]).unwrap();
    eventually("the delete to reach the read model", || async {
        env.get(
            &app,
            &format!("/api/connections/demo/read-models/items/100%7C{}", victim),
        )
        .await
        .0 == 404
    })
    .await;
    // A change after the delete, so that the delete is not the log's newest message (which
    // always stays).
    let first = rows[0]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &first], &[("MMITDS", "Version 3")])
        .unwrap();
    eventually("the last change to reach the read model", || async {
        let (_, item) = env
            .get(&app, &format!("/api/connections/demo/read-models/items/100%7C{first}"))
            .await;
        item["name"] == "Version 3"
    })
    .await;
    // Compaction leaves one message per item still there, and none of the deleted one.
    eventually("the log to be compacted", || async {
        let all = read_from(&env, &app, 0)
            .await
            .expect("a compacted log is never refused");
        let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
        for m in &all {
            *per_key.entry(m["subject"].as_str().unwrap().to_string()).or_default() += 1;
        }
        per_key.len() == ITEMS - 1 && per_key.values().all(|n| *n == 1)
    })
    .await;
    let all = read_from(&env, &app, 0)
        .await
        .expect("from the start, a compacted log is whole");
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    for m in &all {
        replayed.insert(m["subject"].as_str().unwrap().to_string(), m["data"].clone());
    }
    let mut read_model: BTreeMap<String, Value> = BTreeMap::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() {
            String::new()
        } else {
            format!("&after={}", after.replace('|', "%7C"))
        };
        let (s, page) = env
            .get(&app, &format!("/api/connections/demo/read-models/items?limit=1000{q}"))
            .await;
        assert_eq!(s, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let key = format!("100|{}", item["itemNumber"].as_str().unwrap());
            read_model.insert(key, item.clone());
        }
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(replayed.len(), read_model.len());
    for (k, state) in &read_model {
        assert_eq!(replayed[k]["name"], state["name"], "{k}");
    }
    assert_eq!(replayed[&format!("100|{first}")]["name"], "Version 3");
    assert_eq!(replayed[&format!("100|{}", rows[1]["MMITNO"])]["name"], "Version 2");
    // Positions in the gaps are answered: what changed after them, once per key.
    let (s, v) = env.get(&app, "/api/connections/demo/messages?after=1&limit=1000").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["messages"].as_array().unwrap().len(),
        all.iter().filter(|m| m["seq"].as_i64() > Some(1)).count()
    );
    app.shutdown().await;
}

/// With Kafka configured and the broker away, nothing is acknowledged, so nothing is pruned
/// however old; once the broker is back and the relay has caught up, the log is pruned (to its
/// newest message, which always stays).
#[tokio::test]
async fn unacknowledged_messages_are_never_pruned() {
    let env = Env::new(ITEMS).await;
    let mut broker = TestBroker::start().await;
    let mut cfg = env.config();
    cfg.kafka.brokers = broker.brokers();
    cfg.outbox.retention = Some(Duration::from_secs(1));
    cfg.outbox.max_bytes = Some(1);
    cfg.outbox.prune_interval = Duration::from_secs(1);
    broker.stop();
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    // Several pruning passes with every message over both limits.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = read_from(&env, &app, 0).await.expect("nothing pruned");
    assert_eq!(all.len(), ITEMS);
    broker.resume().await;
    eventually("the relay to publish and the log to be pruned", || async {
        metric(&env, &app, "erp_bridge_outbox_messages").await == Some(1.0)
    })
    .await;
    app.shutdown().await;
}
