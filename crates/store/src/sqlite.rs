//! The SQLite back end: one file in the data folder, WAL mode, migrations embedded in the binary.
//! Only what SQLite does its own way is here; the rest is written once in `shared.rs`.
//!
//! SQLite has one writer at a time: every write transaction starts with `BEGIN IMMEDIATE`, which
//! serialises writers of a connection, of a lease and of a mapping's versions as [`Dialect`]
//! asks.
//!
//! # Read models
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query is a round trip
//! between threads, which cost far more than the index lookup itself (a read model GET by key
//! spent 45 % of its CPU time in those threads and most of the rest switching to and from them).
//! Read models are therefore read on the caller's thread through [`Readers`]: read-only
//! connections of their own (rusqlite, on the same SQLite library), each query one short
//! index seek with a cached statement. Every read is its own read transaction in WAL mode, so
//! it sees every transaction committed before it began: never an older state. A list with
//! field filters may scan many rows, so it still goes through the pool, off the caller's thread.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use rusqlite::OpenFlags;

use crate::error::StoreError;
use crate::model::{Applied, Change, Cursor, ReadModelPage};
use crate::plan::{Numbering, Stored};
use crate::shared::{cursor_from, now, Db, Dialect, Versioned};

/// The SQLite store. Cheap to clone.
pub(crate) type SqliteStore = Db<Sqlite>;

impl Dialect for Sqlite {
    async fn connection_tx(pool: &SqlitePool, _connection: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        write_tx(pool).await
    }

    async fn lease_tx(pool: &SqlitePool, _connection: &str) -> Result<Transaction<'static, Sqlite>, StoreError> {
        write_tx(pool).await
    }

    async fn version_tx(
        pool: &SqlitePool,
        _kind: Versioned,
        _connection: &str,
        _name: &str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        write_tx(pool).await
    }

    async fn apply_changes(
        conn: &mut SqliteConnection,
        connection: &str,
        mapping: &str,
        changes: &[Change],
        time: &str,
        applied: &mut Applied,
        numbering: &mut Numbering,
    ) -> Result<(), StoreError> {
        apply_changes(conn, connection, mapping, changes, time, applied, numbering).await
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`): a
/// deferred one that reads first would have to upgrade its lock, which SQLite refuses at once
/// ("database is locked") while another connection writes, instead of waiting its turn.
async fn write_tx(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

impl SqliteStore {
    /// Open (creating if needed) the store file at `path` and migrate it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .auto_vacuum(SqliteAutoVacuum::Incremental);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file does not go stale; the check before every use was
            // another round trip to the connection's thread per query.
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        crate::retention::ensure_incremental_vacuum(&pool, &path.display().to_string()).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            readers: Some(std::sync::Arc::new(Readers::new(path))),
            read_pool: None,
        })
    }

    /// The highest message sequence number (0 when empty).
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The stored cursor of a mapping. Read on the caller's thread like the read models (see the
    /// module documentation): every poll asks for it, and with many connections the hop to
    /// sqlx's worker thread was most of the idle CPU. A fresh read transaction sees every
    /// committed write.
    pub async fn cursor(&self, connection: &str, mapping: &str) -> Result<Option<Cursor>, StoreError> {
        let Some(readers) = &self.readers else {
            return self.cursor_pooled(connection, mapping).await;
        };
        let row: Option<(String, String)> = readers.read(|c| {
            use rusqlite::OptionalExtension;
            c.prepare_cached("SELECT fingerprint, position FROM cursors WHERE connection = ?1 AND mapping = ?2")?
                .query_row((connection, mapping), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
        row.map(|(fingerprint, position)| cursor_from(fingerprint, &position))
            .transpose()
    }

    /// Refresh the query planner's statistics after a load (`PRAGMA optimize`).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA optimize").execute(&self.pool).await?;
        Ok(())
    }

    /// The current state of one entity (read on the caller's thread: see the module documentation).
    pub async fn entity(&self, connection: &str, mapping: &str, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(readers) = &self.readers {
            return readers.read(|c| {
                use rusqlite::OptionalExtension;
                c.prepare_cached("SELECT state FROM entities WHERE connection = ?1 AND mapping = ?2 AND key = ?3")?
                    .query_row((connection, mapping, key), |r| r.get(0))
                    .optional()
            });
        }
        Ok(
            sqlx::query_scalar("SELECT state FROM entities WHERE connection = ? AND mapping = ? AND key = ?")
                .bind(connection)
                .bind(mapping)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A page of entities in key order after `after`, where every `(field, value)` filter matches
    /// the field's value rendered as text. Field names must have been validated by the caller.
    ///
    /// The first page and a later one are two statements (`key > ?` only in the second): a
    /// condition such as `(? IS NULL OR key > ?)` cannot be used to seek the primary-key index,
    /// so every page would scan from the first key. Without filters a page reads at most
    /// `limit + 1` rows, on the caller's thread (see the module documentation).
    pub async fn entities(
        &self,
        connection: &str,
        mapping: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[(String, String)],
    ) -> Result<ReadModelPage, StoreError> {
        let mut sql = String::from("SELECT key, state FROM entities WHERE connection = ?1 AND mapping = ?2");
        if after.is_some() {
            sql.push_str(" AND key > ?4");
        }
        if let (Some(readers), true) = (&self.readers, filters.is_empty()) {
            sql.push_str(" ORDER BY key LIMIT ?3");
            let rows = readers.read(|c| {
                let mut st = c.prepare_cached(&sql)?;
                let rows = match after {
                    Some(after) => st.query((connection, mapping, limit + 1, after))?,
                    None => st.query((connection, mapping, limit + 1))?,
                };
                rows.mapped(|r| Ok((r.get(0)?, r.get(1)?))).collect()
            })?;
            return Ok(ReadModelPage::from_rows(rows, limit));
        }
        let first = if after.is_some() { 5 } else { 4 };
        for i in 0..filters.len() {
            let n = first + 2 * i;
            sql.push_str(&format!(" AND CAST(json_extract(state, ?{n}) AS TEXT) = ?{}", n + 1));
        }
        sql.push_str(" ORDER BY key LIMIT ?3");
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping).bind(limit + 1);
        if let Some(after) = after {
            q = q.bind(after);
        }
        for (field, value) in filters {
            q = q.bind(format!("$.\"{field}\"")).bind(value);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(ReadModelPage::from_rows(
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect(),
            limit,
        ))
    }

    /// Record a source row that could not be split or mapped; the same row again bumps its
    /// attempts and last sighting and takes the new reason.
    pub async fn put_source_dead_letter(
        &self,
        connection: &str,
        mapping: &str,
        key: &str,
        raw: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO source_dead_letters
                 (connection, mapping, key, raw_hash, raw, reason, first_seen, last_seen, attempts, touched)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1,
                     (SELECT COALESCE(MAX(touched), 0) + 1 FROM source_dead_letters WHERE connection = ?1))
             ON CONFLICT (connection, mapping, key, raw_hash) DO UPDATE SET reason = excluded.reason,
                 last_seen = excluded.last_seen, attempts = source_dead_letters.attempts + 1,
                 touched = excluded.touched",
        )
        .bind(connection)
        .bind(mapping)
        .bind(key)
        .bind(crate::plan::raw_hash(raw))
        .bind(raw)
        .bind(reason)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forget the source dead letters of these keys; returns how many were removed.
    pub async fn clear_source_dead_letters(
        &self,
        connection: &str,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        let mut tx = write_tx(&self.pool).await?;
        let mut removed = 0;
        for chunk in keys.chunks(500) {
            let sql = format!(
                "DELETE FROM source_dead_letters WHERE connection = ? AND mapping = ? AND key IN {}",
                crate::plan::placeholders(1, chunk.len(), None)
            );
            let mut q = sqlx::query(&sql).bind(connection).bind(mapping);
            for k in chunk {
                q = q.bind(k);
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Rows per multi-row `INSERT` (9 values each: far below SQLite's limit of 32,766 variables).
const ROWS_PER_STATEMENT: usize = 250;
/// Keys per `IN (...)` list.
const KEYS_PER_STATEMENT: usize = 500;

/// The text of a multi-row statement for `n` rows; the one for full chunks (`full` rows) is
/// built once and kept in `cache` (sqlx caches the prepared statement by its text).
fn rows_sql(
    cache: &'static OnceLock<String>,
    full: usize,
    n: usize,
    build: impl Fn(usize) -> String,
) -> Cow<'static, str> {
    if n == full {
        Cow::Borrowed(cache.get_or_init(|| build(full)).as_str())
    } else {
        Cow::Owned(build(n))
    }
}

/// Read-only connections to the store file, used synchronously on the caller's thread for the
/// short, index-bounded reads of read models (see the module documentation). A read takes an
/// idle connection or opens one; at most [`Readers::IDLE`] are kept.
pub(crate) struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl Readers {
    /// Idle connections kept: as many as threads read at once (the runtime's workers).
    const IDLE: usize = 8;

    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Run `read` on an idle connection (a new one if none is idle).
    fn read<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = rusqlite::Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // Readers of a WAL database wait only in rare moments (recovery after a crash).
                c.busy_timeout(Duration::from_secs(1))?;
                c
            }
        };
        let got = read(&conn)?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < Self::IDLE {
            idle.push(conn);
        }
        Ok(got)
    }
}

/// Apply a page of changes with a few statements instead of three per change: the stored hash
/// and position of every key in one query, the decisions made in memory ([`crate::plan`]), then
/// the messages, deletions and final entity states written in multi-row statements.
async fn apply_changes(
    tx: &mut SqliteConnection,
    connection: &str,
    mapping: &str,
    changes: &[Change],
    time: &str,
    applied: &mut Applied,
    numbering: &mut Numbering,
) -> Result<(), StoreError> {
    use crate::plan::placeholders;
    if changes.is_empty() {
        return Ok(());
    }
    let keys = crate::plan::keys(changes);
    let mut stored = std::collections::HashMap::with_capacity(keys.len());
    static SELECT_STORED: OnceLock<String> = OnceLock::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let sql = rows_sql(&SELECT_STORED, KEYS_PER_STATEMENT, chunk.len(), |n| {
            format!(
                "SELECT key, hash, position, seq FROM entities WHERE connection = ? AND mapping = ? AND key IN {}",
                placeholders(1, n, None)
            )
        });
        let mut q = sqlx::query_as::<_, (String, i64, i64, i64)>(&sql)
            .bind(connection)
            .bind(mapping);
        for k in chunk {
            q = q.bind(*k);
        }
        stored.extend(
            q.fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(k, hash, position, seq)| (k, Stored { hash, position, seq })),
        );
    }
    let plan = crate::plan::plan(changes, &keys, &stored);
    if plan.needs_numbering() && numbering.before.is_none() {
        // Nothing written yet in this transaction (`ingest` reads it before its first run).
        numbering.before = Some(SqliteStore::last_connection_seq(tx, connection).await?);
    }
    let ids = plan.message_ids(numbering);
    // Messages: AUTOINCREMENT numbers the rows of one statement in insertion order, and this
    // transaction is the only writer, so the returned numbers, sorted, follow `emitted`.
    let mut seqs: Vec<i64> = Vec::with_capacity(plan.emitted.len());
    static INSERT_MESSAGES: OnceLock<String> = OnceLock::new();
    for (chunk, ids) in plan
        .emitted
        .chunks(ROWS_PER_STATEMENT)
        .zip(ids.chunks(ROWS_PER_STATEMENT))
    {
        let sql = rows_sql(&INSERT_MESSAGES, ROWS_PER_STATEMENT, chunk.len(), |n| {
            format!(
                "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload) VALUES {} RETURNING seq",
                placeholders(n, 9, None)
            )
        });
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for (e, id) in chunk.iter().zip(ids) {
            let m = &e.change.message;
            q = q
                .bind(connection)
                .bind(mapping)
                .bind(id.as_ref())
                .bind(&m.ty)
                .bind(&m.source)
                .bind(&m.subject)
                .bind(&m.time)
                .bind(&m.dataschema)
                .bind(&m.payload);
        }
        let mut got = q.fetch_all(&mut *tx).await?;
        got.sort_unstable();
        seqs.extend(got);
    }
    for chunk in plan.deletes.chunks(500) {
        let sql = format!(
            "DELETE FROM entities WHERE connection = ? AND mapping = ? AND key IN {}",
            placeholders(1, chunk.len(), None)
        );
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping);
        for k in chunk {
            q = q.bind(*k);
        }
        q.execute(&mut *tx).await?;
    }
    static UPSERT_ENTITIES: OnceLock<String> = OnceLock::new();
    for chunk in plan.upserts.chunks(ROWS_PER_STATEMENT) {
        let sql = rows_sql(&UPSERT_ENTITIES, ROWS_PER_STATEMENT, chunk.len(), |n| {
            format!(
                "INSERT INTO entities (connection, mapping, key, hash, state, seq, updated_at, position) VALUES {}
                 ON CONFLICT (connection, mapping, key)
                 DO UPDATE SET hash = excluded.hash, state = excluded.state, seq = excluded.seq,
                               updated_at = excluded.updated_at, position = excluded.position",
                placeholders(n, 8, None)
            )
        });
        let mut q = sqlx::query(&sql);
        for (k, hash, st, message, position) in chunk {
            q = q
                .bind(connection)
                .bind(mapping)
                .bind(*k)
                .bind(*hash)
                .bind(*st)
                .bind(seqs[*message])
                .bind(time)
                .bind(*position);
        }
        q.execute(&mut *tx).await?;
    }
    for (k, p) in &plan.positions {
        sqlx::query("UPDATE entities SET position = ? WHERE connection = ? AND mapping = ? AND key = ?")
            .bind(p)
            .bind(connection)
            .bind(mapping)
            .bind(*k)
            .execute(&mut *tx)
            .await?;
    }
    numbering.written += plan.emitted.len();
    applied.emitted += plan.applied.emitted;
    applied.unchanged += plan.applied.unchanged;
    applied.stale += plan.applied.stale;
    Ok(())
}
