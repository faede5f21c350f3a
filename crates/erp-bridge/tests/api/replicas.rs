//! Several erp-bridge processes sharing one store, as behind a load balancer: the connection's
//! lease lets exactly one of them read M3, the other stands by and takes over when the first
//! stops; every replica serves the same read models. Run on a shared SQLite file, and on
//! PostgreSQL named by `ERP_BRIDGE_TEST_PG_URL` (required; `./scripts/test` starts one).

use std::collections::BTreeSet;

use crate::helpers::{eventually, Env};
use erp_bridge::App;
use serde_json::Value;

/// A fresh PostgreSQL database on the test server; fails the test when no server is configured.
async fn fresh_pg_database() -> String {
    let Ok(admin_url) = std::env::var("ERP_BRIDGE_TEST_PG_URL") else {
        panic!(
            "ERP_BRIDGE_TEST_PG_URL is not set: run ./scripts/test (it starts a throwaway PostgreSQL), \
             or start one with: eval \"$(scripts/pg-up.sh)\""
        );
    };
    use sqlx::Connection;
    let name = format!(
        "replicas_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("test PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn phase(env: &Env, app: &App) -> String {
    env.get(app, "/api/connections/demo/status").await.1["tables"]["Item"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn item_name(env: &Env, app: &App, itno: &str) -> Value {
    env.get(app, &format!("/api/connections/demo/read-models/items/100%7C{itno}"))
        .await
        .1["name"]
        .clone()
}

async fn two_replicas_share_one_store(env: Env, store_url: String) {
    let mut a = env.config();
    a.store.url = Some(store_url.clone());
    a.data_dir = env.dir.path().join("replica-a");
    // Replicas share the key that seals stored credentials (docs/SCALING.md).
    a.secrets.key = Some(vault::Key::generate().to_text());
    let mut b = a.clone();
    b.data_dir = env.dir.path().join("replica-b");

    let first = App::start(a).await.unwrap();
    env.loaded(&first).await;
    let second = App::start(b).await.unwrap();
    // One connection, two replicas: one of them reads it (the deal may hand it to the second),
    // the other stands by.
    eventually("one replica to read and the other to stand by", || async {
        let phases = [phase(&env, &first).await, phase(&env, &second).await];
        phases.contains(&"polling".to_string()) && phases.contains(&"standby".to_string())
    })
    .await;

    // A change read by the first replica is served by both.
    let rows = env.sim.rows("MITMAS");
    let one = rows[4]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &one], &[("MMITDS", "Read by the lease holder")])
        .unwrap();
    for app in [&first, &second] {
        eventually("both replicas to serve the change", || async {
            item_name(&env, app, &one).await == "Read by the lease holder"
        })
        .await;
    }

    // A connection created through one replica's API runs on the other too (under its lease,
    // so only one reads M3), and deleting it stops it everywhere.
    let sim2 = m3_sim::Simulator::new(m3_sim::SimConfig {
        items: 12,
        seed: 11,
        ..Default::default()
    });
    let running2 = sim2.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (s, v) = env
        .post(&first, "/api/connections", r#"{"name":"second","hosting":"hosted"}"#)
        .await;
    assert_eq!(s, 201, "{v}");
    let r = env
        .http
        .put(format!("{}/api/connections/second/ionapi", first.api_url))
        .body(sim2.ionapi(&running2.base_url).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("the other replica to start the new connection", || async {
        env.get(&second, "/api/connections/second").await.1["running"] == true
    })
    .await;
    let spec = serde_json::to_string(&mapping::spec::default_item_mapping()).unwrap();
    assert_eq!(
        env.post(&second, "/api/connections/second/mappings", &spec).await.0,
        201
    );
    assert_eq!(
        env.post(&second, "/api/connections/second/mappings/Item/deploy", "{}")
            .await
            .0,
        200
    );
    eventually("the new connection's read model to fill, served by both", || async {
        let mut n = 0;
        for app in [&first, &second] {
            let (_, page) = env
                .get(app, "/api/connections/second/read-models/items?limit=100")
                .await;
            n += page["items"].as_array().map(|a| a.len()).unwrap_or(0);
        }
        n == 24
    })
    .await;
    let r = env
        .http
        .delete(format!("{}/api/connections/second", second.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    eventually("the deleted connection to stop on the other replica", || async {
        env.get(&first, "/api/connections/second/status").await.0 == 404
    })
    .await;

    // The first replica stops: the second takes the lease and goes on from the stored cursor.
    first.shutdown().await;
    eventually("the second replica to take over", || async {
        phase(&env, &second).await == "polling"
    })
    .await;
    let other = rows[9]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &other], &[("MMITDS", "Read after the take-over")])
        .unwrap();
    eventually("the take-over to read new changes", || async {
        item_name(&env, &second, &other).await == "Read after the take-over"
    })
    .await;

    // Never read twice: every row was exported once and every change emitted once.
    let messages = env.all_messages(&second).await;
    let ids: BTreeSet<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), messages.len(), "duplicate CloudEvents ids");
    let updated = messages.iter().filter(|m| m["type"] == "ItemUpdated").count();
    assert_eq!(updated, rows.len() + 2, "one message per row plus one per change");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_sqlite_file() {
    let env = Env::new(40).await;
    let url = format!("sqlite://{}", env.dir.path().join("shared.db").display());
    two_replicas_share_one_store(env, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_postgresql_database() {
    let url = fresh_pg_database().await;
    let env = Env::new(40).await;
    two_replicas_share_one_store(env, url).await;
}

/// The live leases in a PostgreSQL store: how many connections each holder reads.
async fn leases_per_holder(url: &str) -> Vec<usize> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT holder, COUNT(*) FROM connector_leases WHERE expires_at > $1 GROUP BY holder ORDER BY holder",
    )
    .bind(now_ms)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut counts: Vec<usize> = rows.into_iter().map(|(_, n)| n as usize).collect();
    counts.sort();
    counts
}

/// Every message of one connection's log, oldest first.
async fn messages_of(env: &Env, app: &App, connection: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (s, v) = env
            .get(
                app,
                &format!("/api/connections/{connection}/messages?after={after}&limit=1000"),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let page = v["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        after = v["next"].as_i64().unwrap();
        out.extend(page);
    }
}

/// Issue 16: three replicas on one PostgreSQL store deal twelve hosted connections 4/4/4; when
/// one stops the other two take its share (6/6) within the lease time, and when it comes back
/// it takes its share again. Changes made in every phase are each read exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_twelve_connections_fairly() {
    const CONNECTIONS: usize = 12;
    const ITEMS: usize = 6;
    let url = fresh_pg_database().await;
    let env = Env::new(5).await;
    let key = vault::Key::generate().to_text();
    let replica = |name: &str| {
        let mut c = env.config();
        c.store.url = Some(url.clone());
        c.data_dir = env.dir.path().join(name);
        c.secrets.key = Some(key.clone());
        c.connection.enabled = false;
        c
    };
    let a = App::start(replica("a")).await.unwrap();

    let mut sims = Vec::new();
    let spec = serde_json::to_string(&mapping::spec::default_item_mapping()).unwrap();
    for i in 0..CONNECTIONS {
        let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
            items: ITEMS,
            seed: 100 + i as u64,
            ..Default::default()
        });
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let name = format!("c{i:02}");
        let (s, v) = env
            .post(
                &a,
                "/api/connections",
                &format!(r#"{{"name":"{name}","hosting":"hosted"}}"#),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let r = env
            .http
            .put(format!("{}/api/connections/{name}/ionapi", a.api_url))
            .body(sim.ionapi(&running.base_url).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        eventually("the new connection to run", || async {
            env.get(&a, &format!("/api/connections/{name}")).await.1["running"] == true
        })
        .await;
        assert_eq!(
            env.post(&a, &format!("/api/connections/{name}/mappings"), &spec)
                .await
                .0,
            201
        );
        assert_eq!(
            env.post(&a, &format!("/api/connections/{name}/mappings/Item/deploy"), "{}")
                .await
                .0,
            200
        );
        sims.push((name, sim, running));
    }
    let b = App::start(replica("b")).await.unwrap();
    let c = App::start(replica("c")).await.unwrap();
    eventually("the twelve connections dealt 4/4/4", || async {
        leases_per_holder(&url).await == vec![4, 4, 4]
    })
    .await;

    // One change per connection, read whoever holds it; `round` names the change.
    let change_everywhere = |round: &'static str| {
        let sims = &sims;
        let env = &env;
        let a = &a;
        async move {
            for (name, sim, _) in sims {
                let rows = sim.rows("MITMAS");
                let itno = rows[0]["MMITNO"].clone();
                sim.update("MITMAS", &["100", &itno], &[("MMITDS", round)]).unwrap();
                eventually("the change to reach the read model", || async {
                    env.get(a, &format!("/api/connections/{name}/read-models/items/100%7C{itno}"))
                        .await
                        .1["name"]
                        == round
                })
                .await;
            }
        }
    };
    change_everywhere("round one").await;

    // A replica stops: the two others take its connections, 6/6, within the lease time.
    let stopped = std::time::Instant::now();
    b.shutdown().await;
    eventually("the stopped replica's share taken over, 6/6", || async {
        leases_per_holder(&url).await == vec![6, 6]
    })
    .await;
    let lease_time = runtime::LeasePolicy::STANDARD.ttl;
    assert!(
        stopped.elapsed() <= lease_time,
        "take-over after {:?}, lease time {lease_time:?}",
        stopped.elapsed()
    );
    change_everywhere("round two").await;

    // It comes back and takes its share again (handed over by the others).
    let b = App::start(replica("b")).await.unwrap();
    eventually("the returning replica to take its share, 4/4/4", || async {
        leases_per_holder(&url).await == vec![4, 4, 4]
    })
    .await;
    change_everywhere("round three").await;

    // Nothing lost or read twice: one message per row and per change, ids unique.
    for (name, _, _) in &sims {
        let messages = messages_of(&env, &a, name).await;
        let ids: BTreeSet<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), messages.len(), "{name}: duplicate CloudEvents ids");
        let updated = messages.iter().filter(|m| m["type"] == "ItemUpdated").count();
        assert_eq!(updated, ITEMS + 3, "{name}: one message per row plus one per change");
    }
    for app in [a, b, c] {
        app.shutdown().await;
    }
}
