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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use rusqlite::OpenFlags;

use crate::error::StoreError;
use crate::model::{Applied, Batch, Change, Cursor, ReadModelPage};
use crate::shared::{cursor_from, now, Db, Dialect, Versioned};
use crate::sqlite_writer::Writer;

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
            writer: Some(Writer::open(path)?),
            read_pool: None,
        })
    }

    /// Apply a batch atomically (see `Store::apply_batch`), through the writer.
    pub async fn apply_batch(&self, batch: &Batch) -> Result<Applied, StoreError> {
        self.writer().apply_batch(batch.clone()).await
    }

    /// [`SqliteStore::apply_batch`] of a batch the caller gives up: it moves to the writer's
    /// thread without a copy.
    pub async fn apply_owned(&self, batch: Batch) -> Result<Applied, StoreError> {
        self.writer().apply_batch(batch).await
    }

    /// Ingest a self-hosted connector's messages exactly once (see `Store::ingest`), through the
    /// writer.
    pub async fn ingest(
        &self,
        connection: &str,
        items: &[(i64, String, Change)],
    ) -> Result<(Applied, i64), StoreError> {
        self.writer().ingest(connection, items).await
    }

    fn writer(&self) -> &Writer {
        self.writer.as_ref().expect("a SQLite store has a writer")
    }

    /// The highest message sequence number (0 when empty). One seek to the end of the outbox,
    /// read on the caller's thread like the read models (see the module documentation); a fresh
    /// read transaction sees every committed message.
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        let Some(readers) = &self.readers else {
            return Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
                .fetch_one(&self.pool)
                .await?);
        };
        readers.read(|c| {
            c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM outbox")?
                .query_row([], |r| r.get(0))
        })
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
