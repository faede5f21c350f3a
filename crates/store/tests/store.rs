//! The store's behaviour, checked on every back end: each test below is an `async fn(Store)`, and
//! `on_every_backend!` makes two tests of it, `<name>::sqlite` (always, on a fresh file) and
//! `<name>::postgres` (on a fresh database created for it on the server named by
//! `ERP_BRIDGE_TEST_PG_URL`, dropped afterwards; so tests run in parallel).
//!
//! Without `ERP_BRIDGE_TEST_PG_URL` the PostgreSQL variants fail (never skip), so a run cannot
//! silently stop testing PostgreSQL. `./scripts/test` starts a throwaway server and sets it; by
//! hand, start one with `eval "$(scripts/pg-up.sh)"` and stop it with `scripts/pg-down.sh`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use store::{ApiToken, Batch, Change, ChangeOp, ConnectionRecord, Cursor, LeaseOutcome, NewMessage, Store, StoreError};

/// The variable naming the PostgreSQL server for the tests: an admin URL (a user that may
/// create databases, e.g. `postgres://postgres@127.0.0.1:15432/postgres`).
const PG_URL_VAR: &str = "ERP_BRIDGE_TEST_PG_URL";

/// Run `test` on a store in a fresh SQLite file.
async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    test(store).await;
}

/// Run `test` on a store in a fresh PostgreSQL database (see the module documentation).
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDatabase::create(&pg_admin_url()).await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    db.remove_after(test(store)).await;
}

/// The PostgreSQL server for the tests (see the module documentation); they fail without one.
fn pg_admin_url() -> String {
    let Some(admin_url) = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()) else {
        panic!(
            "{PG_URL_VAR} is not set: the PostgreSQL back end would go untested. Run ./scripts/test \
             (it starts a throwaway server), or start one first: eval \"$(scripts/pg-up.sh)\""
        );
    };
    admin_url
}

/// A database of its own for one test.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "test_{}_{}_{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        }
    }

    /// Run `test` as a task, then drop the database, even when the test panics (its panic is
    /// passed on afterwards).
    async fn remove_after(self, test: impl Future<Output = ()> + Send + 'static) {
        let outcome = tokio::spawn(test).await;
        self.remove().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn remove(self) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

/// `on_every_backend!(test_fn)` makes `test_fn::sqlite` and `test_fn::postgres`;
/// `on_every_backend!(test_fn, multi_thread)` runs them on a 4-thread runtime;
/// `on_every_backend!(test_fn, twins)` gives `test_fn` two fresh stores of the back end.
macro_rules! on_every_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::on_sqlite(super::$name).await
            }
            #[tokio::test]
            async fn postgres() {
                crate::on_postgres(super::$name).await
            }
        }
    };
    ($name:ident, twins) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::on_sqlite(|a| crate::on_sqlite(|b| super::$name(a, b))).await
            }
            #[tokio::test]
            async fn postgres() {
                crate::on_postgres(|a| crate::on_postgres(|b| super::$name(a, b))).await
            }
        }
    };
    ($name:ident, multi_thread) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::on_sqlite(super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::on_postgres(super::$name).await
            }
        }
    };
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn msg(id: &str, ty: &str, key: &str) -> NewMessage {
    NewMessage {
        id: id.into(),
        ty: ty.into(),
        source: "erp-bridge/demo/MITMAS".into(),
        subject: key.into(),
        time: now(),
        dataschema: "x".into(),
        payload: "{}".into(),
    }
}

fn upsert(key: &str, hash: u64, state: &str) -> Change {
    Change {
        key: key.into(),
        op: ChangeOp::Upsert {
            hash,
            state: state.into(),
        },
        position: None,
        message: msg(&format!("{key}-{hash}"), "ItemUpdated", key),
    }
}

on_every_backend!(batches_dedupe_by_hash_and_store_the_cursor_atomically);
async fn batches_dedupe_by_hash_and_store_the_cursor_atomically(store: Store) {
    let cursor = Cursor {
        fingerprint: "f1".into(),
        position: serde_json::json!({"lmts": 5}),
    };
    let batch = Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes: vec![
            upsert("100|A", 1, r#"{"status":"20","n":1}"#),
            upsert("100|B", 2, r#"{"status":"90","n":2}"#),
            upsert("100|A", 1, r#"{"status":"20","n":1}"#),
        ],
        cursor: Some(cursor.clone()),
    };
    let a = store.apply_batch(&batch).await.unwrap();
    assert_eq!((a.emitted, a.unchanged), (2, 1));
    assert_eq!(store.cursor("demo", "Item").await.unwrap(), Some(cursor));
    let del = Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes: vec![
            Change {
                key: "100|B".into(),
                op: ChangeOp::Delete,
                position: None,
                message: msg("d", "ItemDeleted", "100|B"),
            },
            Change {
                key: "100|Z".into(),
                op: ChangeOp::Delete,
                position: None,
                message: msg("dz", "ItemDeleted", "100|Z"),
            },
        ],
        cursor: None,
    };
    assert_eq!(store.apply_batch(&del).await.unwrap().emitted, 1);
    let log = store.messages("demo", 0, 10, None, None).await.unwrap();
    let types: Vec<_> = log.iter().map(|m| (m.ty.as_str(), m.subject.as_str())).collect();
    assert_eq!(
        types,
        vec![
            ("ItemUpdated", "100|A"),
            ("ItemUpdated", "100|B"),
            ("ItemDeleted", "100|B")
        ]
    );
    assert_eq!(store.entity("demo", "Item", "100|B").await.unwrap(), None);
    assert!(store.entity("demo", "Item", "100|A").await.unwrap().is_some());
    assert_eq!(
        store
            .messages("demo", 2, 10, Some("ItemDeleted"), None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.unpublished_count("demo").await.unwrap(), 3);
    assert_eq!(store.mark_published("demo", 2).await.unwrap(), 2);
    let left = store.unpublished("demo", 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3]);
    assert!(store
        .record_command("demo", "c1", "UpdateItem", "succeeded", "{}", None)
        .await
        .unwrap());
    assert!(!store
        .record_command("demo", "c1", "UpdateItem", "failed", "{}", None)
        .await
        .unwrap());
    assert_eq!(
        store.command_receipt("demo", "c1").await.unwrap().as_deref(),
        Some("{}")
    );
}

on_every_backend!(a_command_is_stored_with_the_hash_of_its_request);
async fn a_command_is_stored_with_the_hash_of_its_request(store: Store) {
    assert_eq!(store.stored_command("demo", "h1").await.unwrap(), None);
    assert!(store
        .record_command("demo", "h1", "UpdateItem", "succeeded", r#"{"a":1}"#, Some("abc"))
        .await
        .unwrap());
    // The first record stays: a second one with another hash changes nothing.
    assert!(!store
        .record_command("demo", "h1", "UpdateItem", "failed", r#"{"a":2}"#, Some("def"))
        .await
        .unwrap());
    assert_eq!(
        store.stored_command("demo", "h1").await.unwrap(),
        Some((r#"{"a":1}"#.to_string(), Some("abc".to_string())))
    );
    assert!(store
        .record_command("demo", "h2", "UpdateItem", "succeeded", "{}", None)
        .await
        .unwrap());
    assert_eq!(
        store.stored_command("demo", "h2").await.unwrap(),
        Some(("{}".to_string(), None))
    );
    assert_eq!(store.stored_command("other", "h1").await.unwrap(), None);
}

on_every_backend!(concurrent_writers_wait_for_each_other_instead_of_failing, multi_thread);
async fn concurrent_writers_wait_for_each_other_instead_of_failing(store: Store) {
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let batch = Batch {
                    connection: "demo".into(),
                    mapping: "Item".into(),
                    changes: vec![upsert(&format!("100|K{w}-{i}"), w * 100 + i + 1, "{}")],
                    cursor: None,
                };
                store.apply_batch(&batch).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("no writer fails with `database is locked`");
    }
    assert_eq!(store.entity_count("demo", "Item").await.unwrap(), 200);
}

on_every_backend!(older_positions_never_overwrite_newer_state);
async fn older_positions_never_overwrite_newer_state(store: Store) {
    let at = |hash: u64, pos: i64, op: ChangeOp| Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes: vec![Change {
            key: "100|A".into(),
            op,
            message: msg(&format!("m{hash}-{pos}"), "ItemUpdated", "100|A"),
            position: Some(pos),
        }],
        cursor: None,
    };
    let up = |hash: u64, state: &str| ChangeOp::Upsert {
        hash,
        state: state.into(),
    };
    assert_eq!(store.apply_batch(&at(2, 20, up(2, "v2"))).await.unwrap().emitted, 1);
    // A late event with the older version: dropped as stale.
    let late = store.apply_batch(&at(1, 10, up(1, "v1"))).await.unwrap();
    assert_eq!((late.emitted, late.stale), (0, 1));
    assert_eq!(
        store.entity("demo", "Item", "100|A").await.unwrap().as_deref(),
        Some("v2")
    );
    // Same content seen at a newer position moves the position forward.
    assert_eq!(store.apply_batch(&at(2, 30, up(2, "v2"))).await.unwrap().unchanged, 1);
    assert_eq!(store.apply_batch(&at(3, 25, up(3, "v3"))).await.unwrap().stale, 1);
    // A delete of an older version is stale; of the current one, real.
    assert_eq!(store.apply_batch(&at(0, 29, ChangeOp::Delete)).await.unwrap().stale, 1);
    assert_eq!(
        store.apply_batch(&at(0, 30, ChangeOp::Delete)).await.unwrap().emitted,
        1
    );
    assert_eq!(store.entity("demo", "Item", "100|A").await.unwrap(), None);
}

on_every_backend!(mapping_versions_and_deployments);
async fn mapping_versions_and_deployments(store: Store) {
    let v1 = serde_json::json!({"name": "Item", "v": 1});
    let v2 = serde_json::json!({"name": "Item", "v": 2});
    assert_eq!(store.save_mapping("demo", "Item", &v1, "alice").await.unwrap(), 1);
    assert_eq!(store.save_mapping("demo", "Item", &v2, "bob").await.unwrap(), 2);
    assert_eq!(store.save_mapping("other", "Item", &v1, "bob").await.unwrap(), 1);
    store.set_deployed("demo", "Item", 1, "alice").await.unwrap();
    let list = store.mappings("demo").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].latest.version, 2);
    assert_eq!(list[0].latest.spec, v2);
    assert_eq!(list[0].deployed_version, Some(1));
    assert_eq!(store.mapping_versions("demo", "Item").await.unwrap().len(), 2);
    assert!(store.set_undeployed("demo", "Item").await.unwrap());
    assert_eq!(store.mappings("demo").await.unwrap()[0].deployed_version, None);
    assert!(store.delete_mapping("demo", "Item").await.unwrap());
    assert!(store.mappings("demo").await.unwrap().is_empty());
    assert_eq!(store.mappings("other").await.unwrap().len(), 1);
}

on_every_backend!(entity_pages_filter_on_fields_and_reconciliation_finds_unseen_keys);
async fn entity_pages_filter_on_fields_and_reconciliation_finds_unseen_keys(store: Store) {
    let changes = (0..5)
        .map(|i| {
            upsert(
                &format!("100|K{i}"),
                i,
                &format!(r#"{{"status":"{}","n":{i}}}"#, if i % 2 == 0 { "20" } else { "90" }),
            )
        })
        .collect();
    let batch = Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes,
        cursor: None,
    };
    store.apply_batch(&batch).await.unwrap();
    let p = store.entities("demo", "Item", None, 2, &[]).await.unwrap();
    assert_eq!(p.items.len(), 2);
    assert_eq!(p.next.as_deref(), Some("100|K1"));
    let p = store
        .entities("demo", "Item", p.next.as_deref(), 10, &[])
        .await
        .unwrap();
    assert_eq!(p.items.len(), 3);
    assert_eq!(p.next, None);
    let f = store
        .entities("demo", "Item", None, 10, &[("status".into(), "90".into())])
        .await
        .unwrap();
    assert_eq!(
        f.items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["100|K1", "100|K3"]
    );
    let f = store
        .entities("demo", "Item", None, 10, &[("n".into(), "4".into())])
        .await
        .unwrap();
    assert_eq!(f.items.len(), 1, "numbers compare by their text");
    let max = store.last_seq().await.unwrap();
    store
        .mark_seen(
            "demo",
            "Item",
            1,
            &["100|K0".into(), "100|K2".into(), "100|K3".into(), "100|K4".into()],
        )
        .await
        .unwrap();
    assert_eq!(store.unseen_keys("demo", "Item", 1, max).await.unwrap(), vec!["100|K1"]);
    assert!(store.unseen_keys("demo", "Item", 1, 0).await.unwrap().is_empty());
}

on_every_backend!(command_mapping_versions_deletions_and_latest);
async fn command_mapping_versions_deletions_and_latest(store: Store) {
    assert!(!store.has_command_mappings("demo").await.unwrap());
    let v1 = serde_json::json!({"name": "RenameItem", "v": 1});
    let v2 = serde_json::json!({"name": "RenameItem", "v": 2});
    let other = serde_json::json!({"name": "DeleteItem"});
    assert_eq!(
        store
            .save_command_mapping("demo", "RenameItem", &v1, "alice")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .save_command_mapping("demo", "RenameItem", &v2, "bob")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .save_command_mapping("demo", "DeleteItem", &other, "bob")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .save_command_mapping("other", "RenameItem", &v1, "bob")
            .await
            .unwrap(),
        1
    );
    let list = store.command_mappings("demo").await.unwrap();
    assert_eq!(
        list.iter().map(|v| (v.name.as_str(), v.version)).collect::<Vec<_>>(),
        [("DeleteItem", 1), ("RenameItem", 2)]
    );
    assert_eq!(list[1].spec, v2);
    assert_eq!(list[1].created_by, "bob");
    // Deleting appends a tombstone: gone from the list, history kept, numbering goes on.
    assert!(store
        .delete_command_mapping("demo", "RenameItem", "carol")
        .await
        .unwrap());
    assert!(!store
        .delete_command_mapping("demo", "RenameItem", "carol")
        .await
        .unwrap());
    assert!(!store.delete_command_mapping("demo", "Unknown", "carol").await.unwrap());
    let names: Vec<String> = store
        .command_mappings("demo")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["DeleteItem"]);
    let versions = store.command_mapping_versions("demo", "RenameItem").await.unwrap();
    assert_eq!(versions.len(), 3);
    assert!(versions[2].deleted && versions[2].spec.is_null());
    assert_eq!(versions[2].created_by, "carol");
    assert!(store.has_command_mappings("demo").await.unwrap());
    assert_eq!(
        store
            .save_command_mapping("demo", "RenameItem", &v1, "dave")
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.command_mappings("demo").await.unwrap().len(), 2);
    assert_eq!(store.command_mappings("other").await.unwrap().len(), 1);
}

on_every_backend!(ingest_skips_what_was_ingested_already_and_applies_the_rest_in_order);
async fn ingest_skips_what_was_ingested_already_and_applies_the_rest_in_order(store: Store) {
    let items = vec![
        (1, "Item".to_string(), upsert("A", 1, "{\"v\":1}")),
        (2, "Item".to_string(), upsert("A", 2, "{\"v\":2}")),
        (3, "Customer".to_string(), upsert("C", 7, "{}")),
    ];
    let (applied, pos) = store.ingest("remote", &items[..2]).await.unwrap();
    assert_eq!((applied.emitted, pos), (2, 2));
    // The acknowledgement was lost: the connector sends 1..3 again; only 3 is new.
    let (applied, pos) = store.ingest("remote", &items).await.unwrap();
    assert_eq!((applied.emitted, applied.unchanged, pos), (1, 2, 3));
    assert_eq!(
        store.entity("remote", "Item", "A").await.unwrap().as_deref(),
        Some("{\"v\":2}")
    );
    assert_eq!(
        store.entity("remote", "Customer", "C").await.unwrap().as_deref(),
        Some("{}")
    );
    let log = store.messages("remote", 0, 100, None, None).await.unwrap();
    assert_eq!(log.len(), 3, "no duplicate in the log: {log:?}");
}

on_every_backend!(a_lease_has_one_holder_until_it_expires_or_is_released);
async fn a_lease_has_one_holder_until_it_expires_or_is_released(store: Store) {
    let ttl = Duration::from_secs(30);
    assert_eq!(
        store.acquire_lease("c", "one", ttl).await.unwrap(),
        LeaseOutcome::Granted
    );
    assert_eq!(
        store.acquire_lease("c", "one", ttl).await.unwrap(),
        LeaseOutcome::Granted,
        "renewal"
    );
    match store.acquire_lease("c", "two", ttl).await.unwrap() {
        LeaseOutcome::HeldBy { holder, .. } => assert_eq!(holder, "one"),
        other => panic!("second holder must be refused, got {other:?}"),
    }
    assert_eq!(
        store.acquire_lease("other", "two", ttl).await.unwrap(),
        LeaseOutcome::Granted,
        "per connection"
    );
    assert!(
        !store.release_lease("c", "two").await.unwrap(),
        "only the holder releases"
    );
    assert!(store.release_lease("c", "one").await.unwrap());
    assert_eq!(
        store.acquire_lease("c", "two", Duration::from_millis(1)).await.unwrap(),
        LeaseOutcome::Granted
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.acquire_lease("c", "one", ttl).await.unwrap(),
        LeaseOutcome::Granted,
        "expired lease"
    );
}

on_every_backend!(connections_round_trip_and_deleting_one_revokes_its_tokens);
async fn connections_round_trip_and_deleting_one_revokes_its_tokens(store: Store) {
    let rec = ConnectionRecord {
        name: "prod".into(),
        hosting: "hosted".into(),
        settings: serde_json::json!({"company": 100}),
        secrets: [("ionapi".to_string(), "v1:abc:xyz".to_string())].into(),
        created_at: String::new(),
        created_by: "admin".into(),
        updated_at: String::new(),
    };
    assert!(store.create_connection(&rec).await.unwrap());
    assert!(!store.create_connection(&rec).await.unwrap(), "names are unique");
    let got = store.connection("prod").await.unwrap().unwrap();
    assert_eq!((got.settings, got.secrets), (rec.settings.clone(), rec.secrets.clone()));
    let mut changed = rec.clone();
    changed.hosting = "self-hosted".into();
    assert!(store.update_connection(&changed).await.unwrap());
    assert_eq!(store.connections().await.unwrap()[0].hosting, "self-hosted");
    store
        .create_token(&ApiToken {
            id: "t1".into(),
            name: "connector".into(),
            scope: "connector".into(),
            connection: Some("prod".into()),
            hash: "h".into(),
            created_at: String::new(),
            revoked_at: None,
            expires_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
    assert!(store.delete_connection("prod").await.unwrap());
    assert!(store.connection("prod").await.unwrap().is_none());
    assert!(store.token("t1").await.unwrap().unwrap().revoked_at.is_some());
}

// ---- Added with the PostgreSQL back end: what SQLite's single writer gives for free. ----

on_every_backend!(readers_see_the_outbox_in_commit_order, multi_thread);
/// A relay-like reader runs while writers append: it must see every message exactly once, in
/// `seq` order, and `mark_published` up to the last one it read must mark exactly what it read
/// (a message committed later with a smaller `seq` would be skipped by `messages(after)` and
/// marked published unsent).
async fn readers_see_the_outbox_in_commit_order(store: Store) {
    const WRITERS: u64 = 4;
    const BATCHES: u64 = 40;
    const PER_BATCH: u64 = 3;
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let changes = (0..PER_BATCH)
                    .map(|i| upsert(&format!("K{w}-{b}-{i}"), 1 + w * 10_000 + b * 10 + i, "{}"))
                    .collect();
                let batch = Batch {
                    connection: "demo".into(),
                    mapping: "Item".into(),
                    changes,
                    cursor: None,
                };
                store.apply_batch(&batch).await.unwrap();
            }
        }));
    }
    let relay = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut published = 0u64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = store.unpublished("demo", 7).await.unwrap();
                if batch.is_empty() && finished {
                    return published;
                }
                if let Some(last) = batch.last() {
                    let marked = store.mark_published("demo", last.seq).await.unwrap();
                    assert_eq!(
                        marked,
                        batch.len() as u64,
                        "marking up to seq {} marked rows the relay never read",
                        last.seq
                    );
                    published += marked;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let pager = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let (mut after, mut seen) = (0i64, 0u64);
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.messages("demo", after, 5, None, None).await.unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                for m in &page {
                    assert!(m.seq > after, "messages are in seq order");
                    after = m.seq;
                }
                seen += page.len() as u64;
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let total = WRITERS * BATCHES * PER_BATCH;
    let (published, seen) = tokio::time::timeout(Duration::from_secs(120), async {
        (relay.await.unwrap(), pager.await.unwrap())
    })
    .await
    .expect("readers finish");
    assert_eq!(published, total, "the relay published every message once");
    assert_eq!(seen, total, "a reader paging by seq saw every message (none skipped)");
    assert_eq!(store.unpublished_count("demo").await.unwrap(), 0);
}

on_every_backend!(last_seq_is_a_watermark_across_connections, multi_thread);
/// `last_seq` is a watermark across connections: once it returned `m`, no message with a
/// `seq <= m` appears later (key reconciliation compares entity seqs with it).
async fn last_seq_is_a_watermark_across_connections(store: Store) {
    const CONNECTIONS: usize = 3;
    async fn visible_up_to(store: &Store, m: i64) -> usize {
        let mut n = 0;
        for c in 0..CONNECTIONS {
            let all = store.messages(&format!("c{c}"), 0, 100_000, None, None).await.unwrap();
            n += all.iter().filter(|msg| msg.seq <= m).count();
        }
        n
    }
    let mut writers = Vec::new();
    for c in 0..CONNECTIONS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..40u64 {
                let changes = (0..3)
                    .map(|i| upsert(&format!("K{b}-{i}"), 1 + b * 10 + i, "{}"))
                    .collect();
                let batch = Batch {
                    connection: format!("c{c}"),
                    mapping: "Item".into(),
                    changes,
                    cursor: None,
                };
                store.apply_batch(&batch).await.unwrap();
            }
        }));
    }
    let mut marks = Vec::new();
    while !writers.iter().all(|w| w.is_finished()) {
        let m = store.last_seq().await.unwrap();
        marks.push((m, visible_up_to(&store, m).await));
    }
    for w in writers {
        w.await.unwrap();
    }
    for (m, then) in marks {
        assert_eq!(
            visible_up_to(&store, m).await,
            then,
            "a message with seq <= {m} appeared after last_seq returned {m}"
        );
    }
}

on_every_backend!(one_of_concurrent_lease_takers_wins, multi_thread);
/// Connectors racing for a free lease: exactly one is granted it.
async fn one_of_concurrent_lease_takers_wins(store: Store) {
    for round in 0..5 {
        let connection = format!("c{round}");
        let takers: Vec<_> = (0..6)
            .map(|h| {
                let (store, connection) = (store.clone(), connection.clone());
                tokio::spawn(async move {
                    store
                        .acquire_lease(&connection, &format!("holder{h}"), Duration::from_secs(30))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut granted = 0;
        let mut holders = std::collections::BTreeSet::new();
        for t in takers {
            match t.await.unwrap() {
                LeaseOutcome::Granted => granted += 1,
                LeaseOutcome::HeldBy { holder, .. } => {
                    holders.insert(holder);
                }
            }
        }
        assert_eq!(granted, 1, "round {round}: one taker is granted the lease");
        assert!(
            holders.len() <= 1,
            "round {round}: the others see one holder: {holders:?}"
        );
    }
}

on_every_backend!(concurrent_saves_number_versions_without_gaps, multi_thread);
/// Concurrent saves of one mapping get versions 1, 2, 3, ... without failing.
async fn concurrent_saves_number_versions_without_gaps(store: Store) {
    const SAVES: i64 = 10;
    let mut saves = Vec::new();
    for i in 0..SAVES {
        for command in [false, true] {
            let store = store.clone();
            saves.push(tokio::spawn(async move {
                let spec = serde_json::json!({ "v": i });
                let version = if command {
                    store.save_command_mapping("demo", "Rename", &spec, "a").await
                } else {
                    store.save_mapping("demo", "Item", &spec, "a").await
                };
                (command, version.unwrap())
            }));
        }
    }
    let (mut ms, mut cs) = (Vec::new(), Vec::new());
    for s in saves {
        match s.await.unwrap() {
            (false, v) => ms.push(v),
            (true, v) => cs.push(v),
        }
    }
    ms.sort();
    cs.sort();
    assert_eq!(ms, (1..=SAVES).collect::<Vec<i64>>());
    assert_eq!(cs, (1..=SAVES).collect::<Vec<i64>>());
}

on_every_backend!(filters_compare_strings_numbers_and_booleans_as_text);
/// Read model filters render values as text the same way on every back end.
async fn filters_compare_strings_numbers_and_booleans_as_text(store: Store) {
    let batch = Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes: vec![
            upsert("a", 1, r#"{"s":"x","n":1.5,"b":true,"z":null}"#),
            upsert("b", 2, r#"{"s":"y","n":2,"b":false}"#),
            upsert("B", 3, r#"{"s":"x y","n":-3}"#),
        ],
        cursor: None,
    };
    store.apply_batch(&batch).await.unwrap();
    let keys = |filters: &[(&str, &str)]| {
        let filters: Vec<(String, String)> = filters.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
        let store = store.clone();
        async move {
            let page = store.entities("demo", "Item", None, 10, &filters).await.unwrap();
            page.items.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        }
    };
    assert_eq!(keys(&[]).await, ["B", "a", "b"], "keys in byte order");
    assert_eq!(keys(&[("s", "x")]).await, ["a"]);
    assert_eq!(keys(&[("s", "x y")]).await, ["B"]);
    assert_eq!(keys(&[("n", "1.5")]).await, ["a"]);
    assert_eq!(keys(&[("n", "-3")]).await, ["B"]);
    assert_eq!(keys(&[("b", "1")]).await, ["a"], "true renders as 1");
    assert_eq!(keys(&[("b", "0")]).await, ["b"], "false renders as 0");
    assert!(keys(&[("z", "null")]).await.is_empty(), "null never matches");
    assert!(keys(&[("missing", "")]).await.is_empty());
    assert_eq!(keys(&[("s", "x"), ("n", "1.5")]).await, ["a"]);
    assert!(keys(&[("s", "x"), ("n", "2")]).await.is_empty());
    let page = store.entities("demo", "Item", Some("B"), 1, &[]).await.unwrap();
    assert_eq!(page.items[0].0, "a");
    assert_eq!(page.next.as_deref(), Some("a"));
}

#[tokio::test]
async fn connect_opens_sqlite_by_url_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    store
        .save_mapping("demo", "Item", &serde_json::json!({}), "a")
        .await
        .unwrap();
    drop(store);
    let again = Store::connect(path.to_str().unwrap()).await.unwrap();
    assert_eq!(again.backend(), "sqlite");
    assert_eq!(again.mappings("demo").await.unwrap().len(), 1, "the same file");
}

#[tokio::test]
async fn a_postgres_connection_error_does_not_show_the_password() {
    // Nothing listens on port 1.
    let err = Store::connect("postgres://bridge:s3cret@127.0.0.1:1/erp")
        .await
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
}

on_every_backend!(a_page_applied_at_once_equals_its_changes_applied_one_by_one);
/// The batched write of a page (one lookup, multi-row inserts) must decide exactly as applying
/// its changes one at a time would: same messages in the same order, same counts, same entity
/// states and positions (checked by a second round whose stale changes must match too).
async fn a_page_applied_at_once_equals_its_changes_applied_one_by_one(store: Store) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut id = 0;
    for round in 0..40 {
        let (one, all) = (format!("one-{round}"), format!("all-{round}"));
        for _ in 0..3 {
            let changes: Vec<Change> = (0..(5 + next(40)))
                .map(|_| {
                    id += 1;
                    let key = format!("K{}", next(8));
                    let op = if next(5) == 0 {
                        ChangeOp::Delete
                    } else {
                        let h = next(3);
                        ChangeOp::Upsert {
                            hash: h,
                            state: format!("{{\"v\":{h}}}"),
                        }
                    };
                    let position = (next(4) != 0).then(|| next(20) as i64);
                    let ty = match op {
                        ChangeOp::Delete => "ItemDeleted",
                        ChangeOp::Upsert { .. } => "ItemUpdated",
                    };
                    let mut message = msg(&format!("c{id}"), ty, &key);
                    message.time = "t".into();
                    Change {
                        key,
                        op,
                        position,
                        message,
                    }
                })
                .collect();
            let mut counts = [0usize; 3];
            for c in &changes {
                let a = store
                    .apply_batch(&Batch {
                        connection: one.clone(),
                        mapping: "Item".into(),
                        changes: vec![c.clone()],
                        cursor: None,
                    })
                    .await
                    .unwrap();
                counts[0] += a.emitted;
                counts[1] += a.unchanged;
                counts[2] += a.stale;
            }
            let a = store
                .apply_batch(&Batch {
                    connection: all.clone(),
                    mapping: "Item".into(),
                    changes: changes.clone(),
                    cursor: None,
                })
                .await
                .unwrap();
            assert_eq!(counts, [a.emitted, a.unchanged, a.stale], "round {round}: {changes:?}");
        }
        let log = |c: String| {
            let store = store.clone();
            async move {
                let m = store.messages(&c, 0, 1000, None, None).await.unwrap();
                // The id of an update or delete names the log position of the version it
                // replaces, which differs between the two connections: compare messages by what
                // they say.
                m.into_iter()
                    .map(|m| format!("{} {} {}", m.ty, m.subject, m.payload))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            log(one.clone()).await,
            log(all.clone()).await,
            "round {round}: messages"
        );
        let page = |c: String| {
            let store = store.clone();
            async move { store.entities(&c, "Item", None, 100, &[]).await.unwrap().items }
        };
        assert_eq!(page(one).await, page(all).await, "round {round}: entities");
    }
}

fn at(key: &str, position: Option<i64>, hash: u64, id: &str) -> Change {
    Change {
        key: key.into(),
        op: ChangeOp::Upsert {
            hash,
            state: format!("{{\"v\":{hash}}}"),
        },
        position,
        message: msg(id, "ItemUpdated", key),
    }
}

fn delete(key: &str, id: &str) -> Change {
    Change {
        key: key.into(),
        op: ChangeOp::Delete,
        position: None,
        message: msg(id, "ItemDeleted", key),
    }
}

fn batch(connection: &str, mapping: &str, changes: Vec<Change>) -> Batch {
    Batch {
        connection: connection.into(),
        mapping: mapping.into(),
        changes,
        cursor: None,
    }
}

fn sorted(mut v: Vec<(String, Option<i64>)>) -> Vec<(String, Option<i64>)> {
    v.sort();
    v
}

on_every_backend!(windows_include_their_start_exclude_their_end_and_unknown_positions_open_ones);
async fn windows_include_their_start_exclude_their_end_and_unknown_positions_open_ones(store: Store) {
    let changes = vec![
        at("U", None, 1, "u"),
        at("A", Some(10), 2, "a"),
        at("B", Some(20), 3, "b"),
        at("C", Some(30), 4, "c"),
    ];
    store.apply_batch(&batch("demo", "Item", changes)).await.unwrap();
    // Same positions in another mapping and another connection: never in the windows below.
    store
        .apply_batch(&batch("demo", "Customer", vec![at("X", Some(20), 5, "x")]))
        .await
        .unwrap();
    store
        .apply_batch(&batch("other", "Item", vec![at("Y", Some(20), 6, "y")]))
        .await
        .unwrap();
    let window = |from: Option<i64>, to: Option<i64>| {
        let store = store.clone();
        async move { sorted(store.window_entities("demo", "Item", from, to).await.unwrap()) }
    };
    let e = |k: &str, p: Option<i64>| (k.to_string(), p);
    assert_eq!(
        window(None, None).await,
        vec![e("A", Some(10)), e("B", Some(20)), e("C", Some(30)), e("U", None)]
    );
    assert_eq!(window(None, Some(20)).await, vec![e("A", Some(10)), e("U", None)]);
    assert_eq!(
        window(None, Some(-5)).await,
        vec![e("U", None)],
        "unknown positions open every open start"
    );
    assert_eq!(
        window(Some(10), Some(30)).await,
        vec![e("A", Some(10)), e("B", Some(20))]
    );
    assert_eq!(window(Some(11), Some(30)).await, vec![e("B", Some(20))]);
    assert_eq!(window(Some(20), None).await, vec![e("B", Some(20)), e("C", Some(30))]);
    assert_eq!(
        window(Some(0), None).await,
        vec![e("A", Some(10)), e("B", Some(20)), e("C", Some(30))],
        "an unknown position is in no window with a start"
    );
    assert_eq!(window(Some(20), Some(20)).await, vec![]);
    assert_eq!(window(Some(31), None).await, vec![]);
    // A position that moves (same content, newer position) moves the entity between windows.
    store
        .apply_batch(&batch("demo", "Item", vec![at("A", Some(40), 2, "a2")]))
        .await
        .unwrap();
    assert_eq!(window(Some(35), None).await, vec![e("A", Some(40))]);
    assert_eq!(window(None, Some(20)).await, vec![e("U", None)]);
    // The keys reconciliation did not see come with their positions.
    store
        .mark_seen("demo", "Item", 1, &["A".to_string(), "B".to_string()])
        .await
        .unwrap();
    let max = store.last_seq().await.unwrap();
    assert_eq!(
        sorted(store.unseen_entities("demo", "Item", 1, max).await.unwrap()),
        vec![e("C", Some(30)), e("U", None)]
    );
    assert_eq!(store.unseen_keys("demo", "Item", 1, max).await.unwrap(), vec!["C", "U"]);
}

on_every_backend!(source_dead_letters_are_upserted_listed_counted_cleared_and_deleted_with_their_mapping);
async fn source_dead_letters_are_upserted_listed_counted_cleared_and_deleted_with_their_mapping(store: Store) {
    let put = |connection: &'static str,
               mapping: &'static str,
               key: &'static str,
               raw: &'static str,
               reason: &'static str| {
        let store = store.clone();
        async move {
            store
                .put_source_dead_letter(connection, mapping, key, raw, reason)
                .await
                .unwrap()
        }
    };
    put("demo", "Item", "100|A", "100;A;x", "ITNO: expected text").await;
    put("demo", "Item", "", "garbage", "2 fields, expected 3").await;
    put("demo", "Customer", "100|C", "100;C", "bad date").await;
    put("other", "Item", "100|A", "100;A;x", "elsewhere").await;
    // The same row again: one dead letter, seen twice, with the new reason, now the newest.
    put("demo", "Item", "100|A", "100;A;x", "ITNO: expected text (again)").await;
    // The same key with another raw row: a dead letter of its own.
    put("demo", "Item", "100|A", "100;A;y", "other row").await;

    assert_eq!(store.source_dead_letter_count("demo", "Item").await.unwrap(), 3);
    assert_eq!(store.source_dead_letter_count("demo", "Customer").await.unwrap(), 1);
    assert_eq!(store.source_dead_letter_count("demo", "Nothing").await.unwrap(), 0);
    let items = store.source_dead_letters("demo", Some("Item"), 10).await.unwrap();
    let order: Vec<(&str, &str, i64)> = items
        .iter()
        .map(|d| (d.key.as_str(), d.raw.as_str(), d.attempts))
        .collect();
    assert_eq!(
        order,
        vec![("100|A", "100;A;y", 1), ("100|A", "100;A;x", 2), ("", "garbage", 1)]
    );
    let again = &items[1];
    assert_eq!(
        (again.connection.as_str(), again.mapping.as_str(), again.reason.as_str()),
        ("demo", "Item", "ITNO: expected text (again)")
    );
    assert!(again.first_seen <= again.last_seen, "{again:?}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&again.last_seen).is_ok(),
        "{again:?}"
    );
    let all = store.source_dead_letters("demo", None, 10).await.unwrap();
    let mappings: Vec<&str> = all.iter().map(|d| d.mapping.as_str()).collect();
    assert_eq!(mappings, vec!["Item", "Item", "Customer", "Item"]);
    assert_eq!(store.source_dead_letters("demo", None, 2).await.unwrap().len(), 2);

    // Rows that read fine now: both dead letters of the key go; unknown keys change nothing.
    let cleared = store
        .clear_source_dead_letters("demo", "Item", &["100|A".to_string(), "100|Z".to_string()])
        .await
        .unwrap();
    assert_eq!(cleared, 2);
    assert_eq!(store.source_dead_letter_count("demo", "Item").await.unwrap(), 1);
    assert_eq!(store.source_dead_letter_count("other", "Item").await.unwrap(), 1);

    // Deleting the mapping takes its dead letters; deleting the connection takes the rest.
    store
        .save_mapping("demo", "Item", &serde_json::json!({}), "me")
        .await
        .unwrap();
    assert!(store.delete_mapping("demo", "Item").await.unwrap());
    assert_eq!(store.source_dead_letter_count("demo", "Item").await.unwrap(), 0);
    assert_eq!(store.source_dead_letter_count("demo", "Customer").await.unwrap(), 1);
    store.delete_connection("demo").await.unwrap();
    assert!(store.source_dead_letters("demo", None, 10).await.unwrap().is_empty());
    assert_eq!(store.source_dead_letter_count("other", "Item").await.unwrap(), 1);
}

fn is_uuid_shaped(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The ids of a connection's delete messages, in log order.
async fn delete_ids(store: &Store, connection: &str) -> Vec<String> {
    let log = store
        .messages(connection, 0, 100, Some("ItemDeleted"), None)
        .await
        .unwrap();
    log.into_iter().map(|m| m.id).collect()
}

on_every_backend!(every_delete_of_a_key_gets_its_own_message_id);
async fn every_delete_of_a_key_gets_its_own_message_id(store: Store) {
    // The caller gives every change of the key the same ids (built from key and position).
    let up = || at("K", None, 1, "up-K");
    for changes in [
        vec![up()],
        vec![delete("K", "del-K")],
        vec![up()],
        vec![delete("K", "del-K")],
    ] {
        assert_eq!(
            store
                .apply_batch(&batch("demo", "Item", changes))
                .await
                .unwrap()
                .emitted,
            1
        );
    }
    // Deleted, re-created and deleted again in one batch, twice over.
    let page = || vec![up(), delete("K", "del-K"), up(), delete("K", "del-K")];
    assert_eq!(
        store.apply_batch(&batch("demo", "Item", page())).await.unwrap().emitted,
        4
    );
    assert_eq!(
        store.apply_batch(&batch("demo", "Item", page())).await.unwrap().emitted,
        4
    );
    // And through a connector's uplink.
    let items: Vec<(i64, String, Change)> = page()
        .into_iter()
        .chain(page())
        .enumerate()
        .map(|(i, c)| (i as i64 + 1, "Item".to_string(), c))
        .collect();
    assert_eq!(store.ingest("demo", &items).await.unwrap().0.emitted, 8);

    let ids = delete_ids(&store, "demo").await;
    assert_eq!(ids.len(), 10);
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 10, "{ids:?}");
    assert!(ids.iter().all(|id| is_uuid_shaped(id)), "{ids:?}");
    // Every re-creation, with the same content as before, gets its own id too.
    let ups = store.messages("demo", 0, 100, Some("ItemUpdated"), None).await.unwrap();
    let distinct: std::collections::HashSet<&String> = ups.iter().map(|m| &m.id).collect();
    assert_eq!(distinct.len(), ups.len(), "{ups:?}");
    assert!(ups.iter().all(|m| is_uuid_shaped(&m.id)), "{ups:?}");
}

on_every_backend!(a_delete_replayed_on_the_same_stored_state_gets_the_same_id, twins);
/// Two stores with the same history of a connection stand for a transaction and its replay
/// after a crash before commit: the replay must write the same delete ids, although log
/// positions were handed out in between (here to another connection; a rolled-back PostgreSQL
/// transaction also leaves its sequence numbers used).
async fn a_delete_replayed_on_the_same_stored_state_gets_the_same_id(first: Store, replay: Store) {
    let up = |hash: u64| at("K", None, hash, "up-K");
    let deletes = || vec![delete("K", "del-K"), up(2), delete("K", "del-K"), up(3)];
    let uplink = |from: i64, changes: Vec<Change>| -> Vec<(i64, String, Change)> {
        let items = changes.into_iter().enumerate();
        items.map(|(i, c)| (from + i as i64, "Item".to_string(), c)).collect()
    };
    // The same committed state in both: "demo" written by batches, "remote" by its connector.
    for store in [&first, &replay] {
        store.apply_batch(&batch("demo", "Item", vec![up(1)])).await.unwrap();
        store.ingest("remote", &uplink(1, vec![up(1)])).await.unwrap();
    }
    for i in 0..3 {
        replay
            .apply_batch(&batch("elsewhere", "Item", vec![at("E", None, i, "e")]))
            .await
            .unwrap();
    }
    for store in [&first, &replay] {
        store.apply_batch(&batch("demo", "Item", deletes())).await.unwrap();
        store.ingest("remote", &uplink(2, deletes())).await.unwrap();
    }
    for connection in ["demo", "remote"] {
        let ids = delete_ids(&first, connection).await;
        assert_eq!(ids.len(), 2, "{connection}");
        assert_ne!(ids[0], ids[1], "{connection}");
        assert_eq!(ids, delete_ids(&replay, connection).await, "{connection}");
    }
}

on_every_backend!(messages_filter_by_type_and_subject);
/// The nullable filters of `messages`: none, the subject alone, both, and one that matches nothing.
async fn messages_filter_by_type_and_subject(store: Store) {
    let mut changes = vec![upsert("100|A", 1, "{}"), upsert("100|B", 2, "{}")];
    changes.push(delete("100|A", "del-a"));
    store.apply_batch(&batch("demo", "Item", changes)).await.unwrap();
    let subjects = |log: Vec<store::StoredMessage>| -> Vec<(String, String)> {
        log.into_iter().map(|m| (m.ty, m.subject)).collect()
    };
    assert_eq!(store.messages("demo", 0, 10, None, None).await.unwrap().len(), 3);
    assert_eq!(
        subjects(store.messages("demo", 0, 10, None, Some("100|A")).await.unwrap()),
        vec![
            ("ItemUpdated".to_string(), "100|A".to_string()),
            ("ItemDeleted".to_string(), "100|A".to_string())
        ]
    );
    assert_eq!(
        subjects(
            store
                .messages("demo", 0, 10, Some("ItemDeleted"), Some("100|A"))
                .await
                .unwrap()
        ),
        vec![("ItemDeleted".to_string(), "100|A".to_string())]
    );
    assert!(store
        .messages("demo", 0, 10, Some("ItemDeleted"), Some("100|B"))
        .await
        .unwrap()
        .is_empty());
}

on_every_backend!(a_reset_export_forgets_cursor_and_hashes_but_keeps_the_read_model);
async fn a_reset_export_forgets_cursor_and_hashes_but_keeps_the_read_model(store: Store) {
    let mut first = batch("demo", "Item", vec![upsert("100|A", 1, r#"{"n":1}"#)]);
    first.cursor = Some(Cursor {
        fingerprint: "f".into(),
        position: serde_json::json!({"lmts": 1}),
    });
    assert_eq!(store.apply_batch(&first).await.unwrap().emitted, 1);
    first.cursor = None;
    assert_eq!(store.apply_batch(&first).await.unwrap().unchanged, 1);
    store.reset_export("demo", "Item").await.unwrap();
    assert_eq!(store.cursor("demo", "Item").await.unwrap(), None);
    assert_eq!(
        store.entity("demo", "Item", "100|A").await.unwrap().as_deref(),
        Some(r#"{"n":1}"#)
    );
    // The same row read again after the reset is emitted again.
    assert_eq!(store.apply_batch(&first).await.unwrap().emitted, 1);
}

on_every_backend!(only_an_unrevoked_admin_token_counts_as_one);
async fn only_an_unrevoked_admin_token_counts_as_one(store: Store) {
    let token = |id: &str, scope: &str| ApiToken {
        id: id.into(),
        name: id.into(),
        scope: scope.into(),
        connection: None,
        hash: "h".into(),
        created_at: String::new(),
        revoked_at: None,
        expires_at: None,
        last_used_at: None,
    };
    assert!(!store.has_admin_token().await.unwrap());
    store.create_token(&token("reader", "read")).await.unwrap();
    assert!(!store.has_admin_token().await.unwrap());
    store.create_token(&token("root", "admin")).await.unwrap();
    assert!(store.has_admin_token().await.unwrap());
    assert!(store.revoke_token("root").await.unwrap());
    assert!(!store.revoke_token("root").await.unwrap());
    assert!(!store.has_admin_token().await.unwrap());
    assert!(store.token("root").await.unwrap().unwrap().revoked_at.is_some());
}

on_every_backend!(paging_returns_every_key_once_in_byte_order);
/// Keyset paging (a first page, then `after` the previous page's `next`) returns every key of
/// the read model exactly once, in byte order, with and without a filter, and nothing of other
/// mappings or connections; a page reads what was committed before it.
async fn paging_returns_every_key_once_in_byte_order(store: Store) {
    // Keys whose byte order differs from a case-insensitive or numeric one; applied shuffled.
    let mut keys: Vec<String> = (0..230).map(|i| format!("100|K{i}")).collect();
    keys.extend(
        [
            "100|a", "100|B", "100|Z", "100|ä", "100|A-1", "100|A0", "100| ", "99|Z", "100|",
        ]
        .map(String::from),
    );
    let mut shuffled = keys.clone();
    shuffled.sort_by_key(|k| xxhash_rust::xxh3::xxh3_64(k.as_bytes()));
    let state = |k: &str| format!(r#"{{"key":{k:?},"even":{}}}"#, k.len().is_multiple_of(2));
    for (n, (connection, mapping)) in [("demo", "Item"), ("demo", "Other"), ("other", "Item")]
        .into_iter()
        .enumerate()
    {
        // Distinct hashes make distinct message ids.
        let changes = shuffled
            .iter()
            .enumerate()
            .map(|(i, k)| upsert(k, (n * 1000 + i + 1) as u64, &state(k)))
            .collect();
        store.apply_batch(&batch(connection, mapping, changes)).await.unwrap();
    }
    let mut expected = keys.clone();
    expected.sort();
    for (limit, filters) in [
        (7, vec![]),
        (1, vec![]),
        (1000, vec![]),
        (5, vec![("even".to_string(), "1".to_string())]),
    ] {
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .entities("demo", "Item", after.as_deref(), limit, &filters)
                .await
                .unwrap();
            for (k, s) in &page.items {
                assert_eq!(s, &state(k), "the state of {k}");
            }
            got.extend(page.items.iter().map(|(k, _)| k.clone()));
            match page.next {
                Some(next) => {
                    assert_eq!(page.items.len(), limit as usize, "a page before the last is full");
                    assert_eq!(Some(&next), got.last(), "next is the page's last key");
                    after = Some(next);
                }
                None => break,
            }
        }
        let want: Vec<String> = expected
            .iter()
            .filter(|k| filters.is_empty() || k.len().is_multiple_of(2))
            .cloned()
            .collect();
        assert_eq!(got, want, "limit {limit}, filters {filters:?}");
    }
    let last = expected.last().unwrap();
    let page = store.entities("demo", "Item", Some(last), 10, &[]).await.unwrap();
    assert!(
        page.items.is_empty() && page.next.is_none(),
        "after the last key: {page:?}"
    );
    // A state committed before a read is what the read sees, by key and in a page.
    store
        .apply_batch(&batch("demo", "Item", vec![upsert("100|B", 9999, r#"{"new":true}"#)]))
        .await
        .unwrap();
    assert_eq!(
        store.entity("demo", "Item", "100|B").await.unwrap().as_deref(),
        Some(r#"{"new":true}"#)
    );
    let page = store.entities("demo", "Item", Some("100|A0"), 1, &[]).await.unwrap();
    assert_eq!(page.items, vec![("100|B".to_string(), r#"{"new":true}"#.to_string())]);
    assert_eq!(store.entity("demo", "Item", "100|nope").await.unwrap(), None);
}

on_every_backend!(a_token_keeps_its_expiry_and_its_last_use);
async fn a_token_keeps_its_expiry_and_its_last_use(store: Store) {
    store
        .create_token(&ApiToken {
            id: "brief".into(),
            name: "brief".into(),
            scope: "read".into(),
            connection: None,
            hash: "h".into(),
            created_at: String::new(),
            revoked_at: None,
            expires_at: Some("2030-01-31T00:00:00Z".into()),
            last_used_at: Some("ignored on create".into()),
        })
        .await
        .unwrap();
    let t = store.token("brief").await.unwrap().unwrap();
    assert_eq!(t.expires_at.as_deref(), Some("2030-01-31T00:00:00Z"));
    assert_eq!(t.last_used_at, None, "a new token was never used");
    store.touch_token("brief").await.unwrap();
    let used = store.tokens().await.unwrap()[0].last_used_at.clone().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(&used).is_ok(), "{used}");
}

/// A small write waits for a writer that holds SQLite's write lock and needs the caller's
/// (only) runtime thread to finish: it must not wait in SQLite's busy handler on that thread,
/// where the holder could never commit (the write would fail with "database is locked" after
/// the busy timeout).
#[tokio::test(flavor = "current_thread")]
async fn a_small_sqlite_write_waits_for_a_lock_held_by_a_task_of_the_same_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).await.unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // The holder commits once this thread is free to run it.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.execute_batch("COMMIT").unwrap();
    });
    let batch = Batch {
        connection: "demo".into(),
        mapping: "Item".into(),
        changes: vec![upsert("100|A", 1, r#"{"n":1}"#)],
        cursor: None,
    };
    let applied = store
        .apply_batch(&batch)
        .await
        .expect("written once the holder commits");
    assert_eq!(applied.emitted, 1);
    release.await.unwrap();
    assert!(store.entity("demo", "Item", "100|A").await.unwrap().is_some());
}

/// A store made by the migrations up to 0021 (relay progress in `outbox.published_at`) in
/// `folder` (`migrations` or `migrations-postgres`), through `pool`.
async fn migrate_to_0021<DB>(folder: &str, pool: &sqlx::Pool<DB>)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let old = tempfile::tempdir().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0022" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(pool)
        .await
        .unwrap();
}

/// Messages of three connections as a store before 0022 held them: `a` published up to its
/// third message, `b` all, `c` none (one row each, `seq` 1 to 8).
const OLD_OUTBOX: &str =
    "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload, published_at)
     SELECT c, 'Item', 'id-' || n, 'ItemUpdated', 's', 'k', 't', 'd', '{}', p FROM (
       SELECT 1 AS n, 'a' AS c, 'x' AS p UNION ALL SELECT 2, 'a', 'x' UNION ALL SELECT 3, 'a', 'x'
       UNION ALL SELECT 4, 'a', NULL UNION ALL SELECT 5, 'a', NULL UNION ALL SELECT 6, 'b', 'x'
       UNION ALL SELECT 7, 'b', 'x' UNION ALL SELECT 8, 'c', NULL) m ORDER BY n";

/// After the migration to relay progress per connection, exactly the messages that were not
/// published before are left to publish, and marking goes on from there.
async fn old_relay_progress_survives_the_migration(store: Store) {
    let seqs = |v: Vec<store::StoredMessage>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.unpublished("a", 10).await.unwrap()), vec![4, 5]);
    assert_eq!(store.unpublished_count("a").await.unwrap(), 2);
    assert_eq!(store.unpublished_count("b").await.unwrap(), 0);
    assert_eq!(seqs(store.unpublished("c", 10).await.unwrap()), vec![8]);
    assert_eq!(seqs(store.unpublished_after("a", 4, 10).await.unwrap()), vec![5]);
    assert_eq!(store.mark_published("a", 4).await.unwrap(), 1);
    // A mark never moves back, and a repeated one marks nothing new.
    assert_eq!(store.mark_published("a", 2).await.unwrap(), 0);
    assert_eq!(seqs(store.unpublished("a", 10).await.unwrap()), vec![5]);
    assert_eq!(store.mark_published("c", 8).await.unwrap(), 1);
    assert_eq!(store.unpublished_count("c").await.unwrap(), 0);
}

#[tokio::test]
async fn old_relay_progress_survives_the_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    migrate_to_0021("migrations", &pool).await;
    sqlx::query(OLD_OUTBOX).execute(&pool).await.unwrap();
    pool.close().await;
    old_relay_progress_survives_the_migration(Store::open(&path).await.unwrap()).await;
}

#[tokio::test]
async fn old_relay_progress_survives_the_migration_on_postgres() {
    let db = TestDatabase::create(&pg_admin_url()).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrate_to_0021("migrations-postgres", &pool).await;
    sqlx::query(OLD_OUTBOX).execute(&pool).await.unwrap();
    pool.close().await;
    let store = Store::connect(&db.url).await.unwrap();
    db.remove_after(old_relay_progress_survives_the_migration(store)).await;
}
