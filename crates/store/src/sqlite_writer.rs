//! The SQLite back end's writer of pages of changes (`apply_batch`, `ingest`): one read-write
//! rusqlite connection, used on a blocking thread, with cached single-row statements.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each statement and its
//! arguments across (copying every argument into an owned buffer first). For a page of changes
//! those hops and copies cost more than SQLite's own work: a profile of the initial load had a
//! third of its CPU time in sqlx's SQLite thread, most of it outside `sqlite3_step`. Here a page
//! is one hop to a blocking thread, and each row a step of a statement prepared once: a point
//! lookup of the stored version, an outbox insert, an entity upsert.
//!
//! SQLite has one writer at a time. This connection takes the write lock with `BEGIN
//! IMMEDIATE`, like the pool's writers (`sqlite.rs`), and waits for it up to the same busy
//! timeout; the mutex only keeps the process's pages from queueing inside SQLite's busy handler.
//!
//! # Checkpoints
//!
//! By default the connection whose commit takes the write-ahead log past 1,000 pages copies the
//! log into the database file before its commit returns: a webhook's one-row commit could then
//! wait several milliseconds for pages of the initial load, and the load's writer did that
//! copying on its own thread between pages. This connection does not checkpoint
//! (`wal_autocheckpoint = 0`); a thread of its own ([`checkpointer`]) does, with passive
//! checkpoints (they never block a writer or a reader) after commits, at most every
//! [`CHECKPOINT_EVERY`], small commits gathered for up to [`CHECKPOINT_LATEST`]; past
//! [`RESTART_FRAMES`] the next large write restarts the log ([`restart_log`]). The pool's
//! connections keep their automatic checkpoint as a backstop.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::model::{Applied, Batch, Change};
use crate::plan::{Numbering, Stored};
use crate::shared::{now, UPLINK_CURSOR};

/// The writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// Tells the checkpointer that a commit added to the log (it ends once every clone is gone).
    committed: std::sync::mpsc::SyncSender<()>,
    /// Set by the checkpointer when the log should start over (see [`checkpointer`]).
    restart: Arc<AtomicBool>,
    /// Changes committed since the last checkpoint (see [`checkpointer`]).
    uncopied: Arc<AtomicUsize>,
}

/// How long a write waits for SQLite's write lock (the pool's writers wait as long).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes of at most this many changes may run on the caller's thread (see [`Writer::run`]).
const INLINE_ROWS: usize = 8;

/// The shortest pause between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Open the writer on the (migrated) store file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, RESTART_FRAMES, CHECKPOINT_EVERY, Gather::default())
    }

    /// [`Writer::open`] with the log restarted past `restart_frames` frames, checkpoints at
    /// most every `every`, and small commits gathered as `gather` says.
    fn open_with(path: &Path, restart_frames: i64, every: Duration, gather: Gather) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Per connection, like the pool's: WAL with `NORMAL` syncs at checkpoints, not commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(32);
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_LIMIT)?;
        let checkpoints = rusqlite::Connection::open(path)?;
        checkpoints.busy_timeout(Duration::from_secs(1))?;
        checkpoints.pragma_update(None, "journal_size_limit", JOURNAL_LIMIT)?;
        let (committed, nudges) = std::sync::mpsc::sync_channel(1);
        let restart = Arc::new(AtomicBool::new(false));
        let uncopied = Arc::new(AtomicUsize::new(0));
        let (due, written) = (restart.clone(), uncopied.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, nudges, restart_frames, every, gather, &due, &written))
            .map_err(|e| StoreError::Corrupt {
                what: "checkpoint thread",
                detail: e.to_string(),
            })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            committed,
            restart,
            uncopied,
        })
    }

    /// Tell the checkpointer that a commit of `rows` changes grew the log (a full channel
    /// already says so).
    fn nudge(&self, rows: usize) {
        self.uncopied.fetch_add(rows, Ordering::Relaxed);
        let _ = self.committed.try_send(());
    }

    /// Run `write` in a write transaction (`BEGIN IMMEDIATE`) and commit it. A small write
    /// (`rows` at most [`INLINE_ROWS`]) runs on the caller's thread, like the read models'
    /// reads, when both this connection and SQLite's write lock are free at once (a webhook's
    /// one-row commit takes about 100 us; handing it to a blocking thread cost about as much
    /// again). Anything else, or when it would have to wait, runs on a blocking thread: a
    /// runtime thread never sleeps in SQLite's busy handler, where it could wait for a
    /// transaction that only this thread would have gone on to commit.
    async fn run<T: Send + 'static>(
        &self,
        rows: usize,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if rows <= INLINE_ROWS {
            if let Ok(mut conn) = self.conn.try_lock() {
                conn.busy_timeout(Duration::ZERO)?;
                let failed = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
                    Ok(tx) => {
                        tx.busy_timeout(BUSY_TIMEOUT)?;
                        let out = write(&tx)?;
                        tx.commit()?;
                        return Ok(out);
                    }
                    Err(e) => e,
                };
                conn.busy_timeout(BUSY_TIMEOUT)?;
                if !matches!(&failed, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseBusy)
                {
                    return Err(failed.into());
                }
            }
        }
        let (conn, restart) = (self.conn.clone(), self.restart.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = write(&tx)?;
            tx.commit()?;
            if restart.swap(false, Ordering::Relaxed) {
                restart_log(&conn);
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            what: "write task",
            detail: e.to_string(),
        })?
    }

    /// Apply a batch in one write transaction (see `Store::apply_batch`).
    pub(crate) async fn apply_batch(&self, batch: Batch) -> Result<Applied, StoreError> {
        let rows = batch.changes.len();
        let applied = self.run(rows, move |tx| {
            let mut applied = Applied::default();
            let time = now();
            apply_changes(
                tx,
                &batch.connection,
                &batch.mapping,
                &batch.changes,
                &time,
                &mut applied,
                &mut Numbering::default(),
            )?;
            if let Some(c) = &batch.cursor {
                tx.prepare_cached(
                    "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (connection, mapping) DO UPDATE SET fingerprint = excluded.fingerprint,
                         position = excluded.position, updated_at = excluded.updated_at",
                )?
                .execute((&batch.connection, &batch.mapping, &c.fingerprint, c.position.to_string(), &time))?;
            }
            Ok(applied)
        })
        .await;
        self.nudge(rows);
        applied
    }

    /// Ingest a self-hosted connector's messages exactly once (see `Store::ingest`).
    pub(crate) async fn ingest(
        &self,
        connection: &str,
        items: &[(i64, String, Change)],
    ) -> Result<(Applied, i64), StoreError> {
        let connection = connection.to_string();
        let items = items.to_vec();
        let rows = items.len();
        let ingested = self.run(rows, move |tx| {
            let stored: Option<String> = tx
                .prepare_cached("SELECT position FROM cursors WHERE connection = ?1 AND mapping = ?2")?
                .query_row((&connection, UPLINK_CURSOR), |r| r.get(0))
                .optional()?;
            let stored: i64 = stored.and_then(|p| p.parse().ok()).unwrap_or(0);
            let (skipped, runs, position) = crate::plan::uplink_runs(&items, stored);
            let mut applied = Applied {
                unchanged: skipped,
                ..Applied::default()
            };
            let time = now();
            // Read before the first run writes (see `Numbering`).
            let mut numbering = Numbering {
                before: Some(last_connection_seq(tx, &connection)?),
                written: 0,
            };
            for (mapping, changes) in &runs {
                apply_changes(tx, &connection, mapping, changes, &time, &mut applied, &mut numbering)?;
            }
            tx.prepare_cached(
                "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES (?1, ?2, '', ?3, ?4)
                 ON CONFLICT (connection, mapping) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            )?
            .execute((&connection, UPLINK_CURSOR, position.to_string(), &time))?;
            Ok((applied, position))
        })
        .await;
        self.nudge(rows);
        ingested
    }
}

/// Checkpoint the log passively after commits, at most `every` ([`CHECKPOINT_EVERY`]), until every
/// writer is gone. A failed checkpoint is tried again after the next commit (the log only grows
/// meanwhile; the pool's automatic checkpoints still bound it).
///
/// A passive checkpoint never makes the log start over: the log restarts from its beginning
/// only when a write begins after a checkpoint copied all of it, and during a load the next
/// page's write begins while the checkpoint still copies the last one. A million-row load grew
/// the log to 1.7 GB beside a 650 MB database. So once the log holds more than
/// `restart_frames` ([`RESTART_FRAMES`]), the next write on a blocking thread, right after its
/// commit, copies what is left (the passive runs copied most of it) and restarts the log
/// (`RESTART`), holding writes back meanwhile; [`JOURNAL_LIMIT`] then truncates the file. This
/// thread cannot do that itself: `RESTART` must wait for the write lock, and back-to-back
/// pages leave it free only between two of their transactions. Small (inline) writes never do
/// it, so a webhook's commit does not wait for the copy.
///
/// Small commits (a webhook's) are gathered: a checkpoint waits until [`CHECKPOINT_ROWS`]
/// changes were committed or [`CHECKPOINT_LATEST`] passed since the first of them. Each
/// checkpoint syncs the database file; one every 100 ms after webhooks spaced a few
/// milliseconds apart ran beside every thirtieth of them and showed in their latency's tail.
fn checkpointer(
    conn: rusqlite::Connection,
    nudges: std::sync::mpsc::Receiver<()>,
    restart_frames: i64,
    every: Duration,
    gather: Gather,
    restart: &AtomicBool,
    uncopied: &AtomicUsize,
) {
    use std::sync::mpsc::RecvTimeoutError;
    while nudges.recv().is_ok() {
        let first = Instant::now();
        while uncopied.load(Ordering::Relaxed) < gather.rows {
            let left = gather.latest.saturating_sub(first.elapsed());
            match nudges.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                // Every writer is gone; the last connection to close copies the log.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        uncopied.store(0, Ordering::Relaxed);
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames > restart_frames => restart.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed; tried again after the next commit"),
        }
        std::thread::sleep(every);
    }
}

/// Changes committed after which a checkpoint does not wait for more (see [`checkpointer`]):
/// a one-row commit adds about seven log frames, so about 1,800 frames (7 MiB).
const CHECKPOINT_ROWS: usize = 256;

/// The longest a committed change waits for a checkpoint (see [`checkpointer`]).
const CHECKPOINT_LATEST: Duration = Duration::from_secs(1);

/// How small commits are gathered before a checkpoint (see [`checkpointer`]).
#[derive(Debug, Clone, Copy)]
struct Gather {
    /// Changes committed after which a checkpoint does not wait for more.
    rows: usize,
    /// The longest the first of them waits.
    latest: Duration,
}

impl Default for Gather {
    fn default() -> Self {
        Self {
            rows: CHECKPOINT_ROWS,
            latest: CHECKPOINT_LATEST,
        }
    }
}

/// Log frames (pages of about 4 KiB) past which a checkpoint restarts the log (64 MiB).
const RESTART_FRAMES: i64 = 16_384;

/// How long a restart of the log waits for readers of older snapshots.
const RESTART_WAIT: Duration = Duration::from_millis(200);

/// Bytes the log file is truncated to when it starts over.
const JOURNAL_LIMIT: i64 = 64 * 1024 * 1024;

/// Restart the log between two transactions of the writer's connection (see [`checkpointer`]).
/// The write before it is committed whatever happens here: a failure is only logged (a log
/// still too long is flagged again after the next commit). It holds writers back while it waits
/// for readers of older snapshots, so it waits for them only [`RESTART_WAIT`].
fn restart_log(conn: &rusqlite::Connection) {
    let restarted = conn
        .busy_timeout(RESTART_WAIT)
        .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())));
    // The writer's own wait for the write lock, whether the restart worked or not.
    let reset = conn.busy_timeout(BUSY_TIMEOUT);
    if let Err(e) = restarted.and(reset) {
        tracing::debug!(error = %e, "WAL restart failed; tried again later");
    }
}

/// The connection's highest log position (0 when none), for [`Numbering::before`]; in the write
/// transaction, so no other writer is between taking a `seq` and committing.
fn last_connection_seq(tx: &rusqlite::Transaction<'_>, connection: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE connection = ?1")?
        .query_row([connection], |r| r.get(0))
}

/// Apply a page of changes of one mapping: the stored version of every key (one index seek
/// each), the decisions made in memory ([`crate::plan`]), then the messages, deletions and final
/// entity states, a cached statement per row.
fn apply_changes(
    tx: &rusqlite::Transaction<'_>,
    connection: &str,
    mapping: &str,
    changes: &[Change],
    time: &str,
    applied: &mut Applied,
    numbering: &mut Numbering,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let keys = crate::plan::keys(changes);
    let mut stored = HashMap::with_capacity(keys.len());
    {
        let mut lookup = tx.prepare_cached(
            "SELECT hash, position, seq FROM entities WHERE connection = ?1 AND mapping = ?2 AND key = ?3",
        )?;
        for k in &keys {
            let found = lookup
                .query_row((connection, mapping, k), |r| {
                    Ok(Stored {
                        hash: r.get(0)?,
                        position: r.get(1)?,
                        seq: r.get(2)?,
                    })
                })
                .optional()?;
            if let Some(s) = found {
                stored.insert((*k).to_string(), s);
            }
        }
    }
    let plan = crate::plan::plan(changes, &keys, &stored);
    if plan.needs_numbering() && numbering.before.is_none() {
        // Nothing written yet in this transaction (`ingest` reads it before its first run).
        numbering.before = Some(last_connection_seq(tx, connection)?);
    }
    let ids = plan.message_ids(numbering);
    // `seq` is the rowid: this transaction is the only writer, so each row's number is the
    // one SQLite just gave it.
    let mut seqs: Vec<i64> = Vec::with_capacity(plan.emitted.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (e, id) in plan.emitted.iter().zip(&ids) {
            let m = &e.change.message;
            insert.execute((
                connection,
                mapping,
                id.as_ref(),
                &m.ty,
                &m.source,
                &m.subject,
                &m.time,
                &m.dataschema,
                &m.payload,
            ))?;
            seqs.push(tx.last_insert_rowid());
        }
    }
    if !plan.deletes.is_empty() {
        let mut delete =
            tx.prepare_cached("DELETE FROM entities WHERE connection = ?1 AND mapping = ?2 AND key = ?3")?;
        for k in &plan.deletes {
            delete.execute((connection, mapping, k))?;
        }
    }
    if !plan.upserts.is_empty() {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO entities (connection, mapping, key, hash, state, seq, updated_at, position)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (connection, mapping, key)
             DO UPDATE SET hash = excluded.hash, state = excluded.state, seq = excluded.seq,
                           updated_at = excluded.updated_at, position = excluded.position",
        )?;
        for (k, hash, st, message, position) in &plan.upserts {
            upsert.execute((connection, mapping, k, hash, st, seqs[*message], time, position))?;
        }
    }
    if !plan.positions.is_empty() {
        let mut position =
            tx.prepare_cached("UPDATE entities SET position = ?1 WHERE connection = ?2 AND mapping = ?3 AND key = ?4")?;
        for (k, p) in &plan.positions {
            position.execute((p, connection, mapping, k))?;
        }
    }
    plan.written(applied, numbering);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeOp, NewMessage};

    fn page(from: usize, rows: usize) -> Batch {
        let state = "x".repeat(1000);
        let changes = (from..from + rows)
            .map(|i| Change {
                key: format!("k{i:08}"),
                op: ChangeOp::Upsert {
                    hash: i as u64,
                    state: state.clone(),
                },
                position: Some(i as i64),
                message: NewMessage {
                    id: format!("id-{i}"),
                    ty: "ItemUpdated".into(),
                    source: "s".into(),
                    subject: format!("k{i:08}"),
                    time: "2026-11-30T00:00:00.000Z".into(),
                    dataschema: "d".into(),
                    payload: state.clone(),
                },
            })
            .collect();
        Batch {
            connection: "c".into(),
            mapping: "m".into(),
            changes,
            cursor: None,
        }
    }

    /// Pages written one right after the other never leave the log fully copied when the next
    /// one begins: only the restart keeps it from growing with everything ever written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_while_pages_are_written_back_to_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::Store::open(&path).await.unwrap());
        // Restart past 256 frames (1 MiB), checkpoints every 5 ms: about 100 MiB of log frames
        // follow.
        let writer = Writer::open_with(&path, 256, Duration::from_millis(5), Gather::default()).unwrap();
        let wal = dir.path().join("s.db-wal");
        let mut largest = 0;
        for p in 0..200 {
            writer.apply_batch(page(p * 150, 150)).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        assert!(largest < 16 * 1024 * 1024, "the log grew to {largest} bytes");
    }

    /// Small commits wait for one another before a checkpoint copies them into the database
    /// file (each checkpoint syncs it): until enough changes were committed, or the first of
    /// them waited long enough.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_waits_for_enough_changes_or_for_the_first_one_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::Store::open(&path).await.unwrap());
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let copied_within = |start: u64, wait: Duration| {
            let deadline = std::time::Instant::now() + wait;
            while std::time::Instant::now() < deadline {
                if db_len() > start {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        };
        // The writer with small commits gathered up to `rows` changes or `latest`.
        let open = |rows, latest| {
            let gather = Gather { rows, latest };
            Writer::open_with(&path, RESTART_FRAMES, Duration::from_millis(5), gather).unwrap()
        };
        // Gathered until 300 changes (pages of 150 rows of 1 kB add pages to the file once
        // copied), with no time limit to speak of.
        let writer = open(300, Duration::from_secs(3600));
        let start = db_len();
        writer.apply_batch(page(0, 150)).await.unwrap();
        assert!(
            !copied_within(start, Duration::from_millis(300)),
            "150 changes were copied already"
        );
        writer.apply_batch(page(150, 150)).await.unwrap();
        assert!(
            copied_within(start, Duration::from_secs(10)),
            "300 changes were never copied"
        );
        drop(writer);
        // Gathered for at most 50 ms: one page is copied without any other.
        let writer = open(1_000_000, Duration::from_millis(50));
        let start = db_len();
        writer.apply_batch(page(300, 150)).await.unwrap();
        assert!(
            copied_within(start, Duration::from_secs(10)),
            "a lone page was never copied"
        );
    }
}
