//! Outbox retention (`Store::prune_outbox`) on every back end: by age, by size, compacted, and
//! never an unpublished message; the horizon readers are told about; and (SQLite) a file that
//! really shrinks, with a million messages.
//!
//! Like `store.rs`, each test is an `async fn(Store)` run on a fresh SQLite file and on a fresh
//! PostgreSQL database on the server named by `ERP_BRIDGE_TEST_PG_URL` (which must be set:
//! `source scripts/setup.sh`).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Connection;
use store::{Batch, Change, ChangeOp, NewMessage, OutboxMode, RetentionPolicy, Store};

const PG_URL_VAR: &str = "ERP_BRIDGE_TEST_PG_URL";

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    test(store).await;
}

async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin_url) = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()) else {
        panic!("{PG_URL_VAR} is not set: the PostgreSQL back end would go untested (source scripts/setup.sh)");
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "retention_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = |sql: String| {
        let admin_url = admin_url.clone();
        async move {
            let mut c = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    };
    admin(format!("CREATE DATABASE {name}")).await;
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    let store = Store::connect(url.as_str()).await.unwrap();
    let outcome = tokio::spawn(test(store)).await;
    admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

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
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

/// A change of `key` to version `v` (a delete when `v` is `None`), with a payload of about
/// `pad` bytes.
fn change(key: &str, v: Option<u64>, pad: usize) -> Change {
    let (op, ty) = match v {
        Some(v) => (
            ChangeOp::Upsert {
                hash: v,
                state: format!(r#"{{"v":{v}}}"#),
            },
            "ItemUpdated",
        ),
        None => (ChangeOp::Delete, "ItemDeleted"),
    };
    Change {
        key: key.into(),
        op,
        position: None,
        message: NewMessage {
            id: format!("{key}-{v:?}"),
            ty: ty.into(),
            source: "erp-bridge/demo/MITMAS".into(),
            subject: key.into(),
            time: "2026-01-01T00:00:00.000Z".into(),
            dataschema: "x".into(),
            payload: format!(r#"{{"v":{},"pad":"{}"}}"#, v.unwrap_or(0), "x".repeat(pad)),
        },
    }
}

async fn apply(store: &Store, changes: Vec<Change>) {
    store
        .apply_batch(&Batch {
            connection: "demo".into(),
            mapping: "Item".into(),
            changes,
            cursor: None,
        })
        .await
        .unwrap();
}

async fn seqs(store: &Store) -> Vec<(i64, String)> {
    store
        .messages("demo", 0, 10_000, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.subject))
        .collect()
}

fn by_age(hours: u64, mode: OutboxMode, keep_unpublished: bool) -> RetentionPolicy {
    RetentionPolicy {
        max_age: Some(Duration::from_secs(hours * 3600)),
        max_bytes: None,
        mode,
        keep_unpublished,
    }
}

on_every_backend!(age_retention_removes_what_is_older_and_tells_readers_where_the_log_starts);
async fn age_retention_removes_what_is_older_and_tells_readers_where_the_log_starts(store: Store) {
    let policy = by_age(1, OutboxMode::Delete, false);
    apply(&store, (0..5).map(|i| change(&format!("A{i}"), Some(1), 10)).collect()).await;
    // The first tick marks "up to here, before t0"; nothing is an hour old yet.
    assert_eq!(store.prune_outbox(&policy, t0()).await.unwrap().removed, 0);
    apply(&store, (0..3).map(|i| change(&format!("B{i}"), Some(1), 10)).collect()).await;
    let r = store.prune_outbox(&policy, t0() + hours(1)).await.unwrap();
    assert_eq!(r.removed, 5, "the messages appended before t0 are an hour old");
    let left = seqs(&store).await;
    assert_eq!(
        left.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(),
        ["B0", "B1", "B2"]
    );
    let h = store.outbox_horizon("demo").await.unwrap();
    assert_eq!(h.earliest, Some(left[0].0));
    assert!(
        h.gone(0) && h.gone(4),
        "positions before the removed 5th message are gone: {h:?}"
    );
    assert!(!h.gone(5) && !h.gone(left[0].0), "{h:?}");
    // Another connection's log is not affected.
    let other = store.outbox_horizon("other").await.unwrap();
    assert!(!other.gone(0));
    // The B messages go an hour after the tick that saw them, but for the connection's newest
    // (it numbers the ids of the next messages).
    assert_eq!(store.prune_outbox(&policy, t0() + hours(2)).await.unwrap().removed, 2);
    let newest = seqs(&store).await;
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].1, "B2");
    let h = store.outbox_horizon("demo").await.unwrap();
    assert_eq!(h.earliest, Some(newest[0].0));
    assert!(h.gone(newest[0].0 - 2) && !h.gone(newest[0].0 - 1));
}

on_every_backend!(unpublished_messages_are_never_removed);
async fn unpublished_messages_are_never_removed(store: Store) {
    apply(
        &store,
        (0..10).map(|i| change(&format!("K{i}"), Some(1), 100)).collect(),
    )
    .await;
    let all = seqs(&store).await;
    store.mark_published("demo", all[3].0).await.unwrap();
    let policy = by_age(1, OutboxMode::Delete, true);
    store.prune_outbox(&policy, t0()).await.unwrap();
    let policy = RetentionPolicy {
        max_bytes: Some(1),
        ..policy
    };
    let r = store.prune_outbox(&policy, t0() + hours(5)).await.unwrap();
    assert_eq!(r.removed, 4, "only the 4 acknowledged messages go");
    assert!(r.over_bound, "the unpublished rest stays over the bound: {r:?}");
    assert_eq!(seqs(&store).await, all[4..].to_vec());
    assert_eq!(store.unpublished_count("demo").await.unwrap(), 6);
    // Without Kafka (nothing is ever acknowledged), the same log goes, but for its newest.
    let policy = RetentionPolicy {
        keep_unpublished: false,
        ..policy
    };
    assert_eq!(store.prune_outbox(&policy, t0() + hours(5)).await.unwrap().removed, 5);
    assert_eq!(seqs(&store).await, all[9..].to_vec());
}

on_every_backend!(compaction_keeps_the_latest_message_of_every_live_key);
async fn compaction_keeps_the_latest_message_of_every_live_key(store: Store) {
    let policy = by_age(1, OutboxMode::Compact, false);
    // A: three versions; B: one; C: created then deleted; D: deleted and created again.
    apply(
        &store,
        vec![
            change("A", Some(1), 5),
            change("B", Some(1), 5),
            change("C", Some(1), 5),
        ],
    )
    .await;
    apply(&store, vec![change("A", Some(2), 5), change("D", Some(1), 5)]).await;
    apply(
        &store,
        vec![change("A", Some(3), 5), change("C", None, 5), change("D", None, 5)],
    )
    .await;
    apply(&store, vec![change("D", Some(2), 5)]).await;
    let before = seqs(&store).await;
    assert_eq!(before.len(), 9);
    store.prune_outbox(&policy, t0()).await.unwrap();
    let r = store.prune_outbox(&policy, t0() + hours(1)).await.unwrap();
    assert_eq!(r.removed, 6, "{r:?}");
    let left = seqs(&store).await;
    let latest = |k: &str| before.iter().rev().find(|(_, key)| key == k).unwrap().clone();
    assert_eq!(left, vec![latest("B"), latest("A"), latest("D")]);
    let state: Vec<String> = store
        .messages("demo", 0, 10, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| format!("{}={}", m.subject, m.payload.split(',').next().unwrap()))
        .collect();
    assert_eq!(state, ["B={\"v\":1", "A={\"v\":3", "D={\"v\":2"]);
    let h = store.outbox_horizon("demo").await.unwrap();
    assert!(!h.gone(0) && !h.gone(3), "compaction's gaps are not refused: {h:?}");
    // C's delete is gone; the horizon says up to where deletes may be missing.
    let c_deleted = before.iter().rev().find(|(_, k)| k == "C").unwrap().0;
    assert_eq!(h.changes_through, c_deleted, "{h:?}");
    assert_eq!(h.earliest, Some(latest("B").0));
    // Later versions make the kept ones removable in the next pass.
    apply(&store, vec![change("A", Some(4), 5)]).await;
    let r = store.prune_outbox(&policy, t0() + hours(2)).await.unwrap();
    assert_eq!(r.removed, 1, "A's third version, older than an hour, is superseded now");
    assert_eq!(seqs(&store).await.iter().filter(|(_, k)| k == "A").count(), 1);
}

on_every_backend!(size_retention_removes_the_oldest_until_the_estimate_fits);
async fn size_retention_removes_the_oldest_until_the_estimate_fits(store: Store) {
    for round in 0..10u64 {
        apply(
            &store,
            (0..200)
                .map(|i| change(&format!("K{i}"), Some(round + 1), 400))
                .collect(),
        )
        .await;
    }
    let full = store.outbox_stats("demo").await.unwrap();
    assert_eq!(full.messages, 2000);
    assert!(full.bytes > 2000 * 400, "{full:?}");
    let policy = RetentionPolicy {
        max_age: None,
        max_bytes: Some(full.bytes / 4),
        mode: OutboxMode::Delete,
        keep_unpublished: false,
    };
    let r = store.prune_outbox(&policy, t0()).await.unwrap();
    let now = store.outbox_stats("demo").await.unwrap();
    assert!(!r.over_bound && now.bytes <= full.bytes / 4, "{r:?} {now:?}");
    assert!(now.messages >= 400, "no more than needed goes: {now:?}");
    assert_eq!(now.oldest, Some(full.oldest.unwrap() + r.removed as i64));
}

/// A million messages under a small bound, with a relay that lags behind: the SQLite file stays
/// under the bound after every pruning tick, and every unacknowledged message is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_messages_keep_the_sqlite_file_under_its_bound() {
    const ROUNDS: u64 = 100;
    const PER_ROUND: u64 = 10_000;
    const KEYS: u64 = 1000;
    const MAX_BYTES: u64 = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).await.unwrap();
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: Some(MAX_BYTES),
        mode: OutboxMode::Delete,
        keep_unpublished: true,
    };
    let file_size = || {
        let wal = std::fs::metadata(dir.path().join("s.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        (std::fs::metadata(&path).unwrap().len(), wal)
    };
    let mut biggest = 0;
    let mut removed = 0;
    for round in 0..ROUNDS {
        for part in 0..PER_ROUND / KEYS {
            let version = round * PER_ROUND + part * KEYS + 1;
            let changes = (0..KEYS)
                .map(|k| change(&format!("K{k}"), Some(version + k), 150))
                .collect();
            apply(&store, changes).await;
        }
        // The relay acknowledged all but the last 3,000 messages.
        let last = store.last_seq().await.unwrap();
        store.mark_published("demo", last - 3000).await.unwrap();
        let now = t0() + chrono::Duration::minutes(round as i64);
        let r = store.prune_outbox(&policy, now).await.unwrap();
        removed += r.removed;
        assert!(!r.over_bound, "round {round}: {r:?}");
        assert_eq!(store.unpublished_count("demo").await.unwrap(), 3000, "round {round}");
        let (db, _) = file_size();
        biggest = biggest.max(db);
        assert!(
            db <= MAX_BYTES * 3 / 2,
            "round {round}: the file is {db} bytes, over 1.5 times {MAX_BYTES}"
        );
    }
    let stats = store.outbox_stats("demo").await.unwrap();
    let (db, wal) = file_size();
    let total = ROUNDS * PER_ROUND;
    assert_eq!(removed + stats.messages as u64, total, "{stats:?}");
    assert!(stats.bytes <= MAX_BYTES, "{stats:?}");
    // The unpublished tail is contiguous and complete.
    let tail = store.unpublished("demo", 5000).await.unwrap();
    assert_eq!(tail.len(), 3000);
    assert_eq!(tail.last().unwrap().seq, total as i64);
    assert_eq!(tail.last().unwrap().seq - tail[0].seq, 2999);
    println!(
        "1M messages, max_bytes {MAX_BYTES}: {} held, estimate {} bytes, file {db} bytes (largest {biggest}), wal {wal}",
        stats.messages, stats.bytes
    );
}

/// A file made before retention existed (`auto_vacuum = NONE`) is switched at open.
#[tokio::test]
async fn an_older_sqlite_file_is_switched_to_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x)").execute(&mut c).await.unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(mode, 0);
        c.close().await.unwrap();
    }
    let store = Store::open(&path).await.unwrap();
    store.ping().await.unwrap();
    drop(store);
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}
