//! The SQLite back end: one file in the data folder, WAL mode, migrations embedded in the binary.
//! Only what SQLite does its own way is here; the rest is written once in `shared.rs`.
//!
//! SQLite has one writer at a time: every write transaction starts with `BEGIN IMMEDIATE`, which
//! serialises writers of a connection, of a lease and of a mapping's versions as [`Dialect`]
//! asks.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::error::StoreError;
use crate::model::{Applied, Change, ReadModelPage};
use crate::plan::{Numbering, Stored};
use crate::shared::{now, Db, Dialect, Versioned};

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
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The highest message sequence number (0 when empty).
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }

    /// A page of entities in key order after `after`, where every `(field, value)` filter matches
    /// the field's value rendered as text. Field names must have been validated by the caller.
    pub async fn entities(
        &self,
        connection: &str,
        mapping: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[(String, String)],
    ) -> Result<ReadModelPage, StoreError> {
        let mut sql = String::from(
            "SELECT key, state FROM entities WHERE connection = ? AND mapping = ? AND (? IS NULL OR key > ?)",
        );
        for _ in filters {
            sql.push_str(" AND CAST(json_extract(state, ?) AS TEXT) = ?");
        }
        sql.push_str(" ORDER BY key LIMIT ?");
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping).bind(after).bind(after);
        for (field, value) in filters {
            q = q.bind(format!("$.\"{field}\"")).bind(value);
        }
        let rows = q.bind(limit + 1).fetch_all(&self.pool).await?;
        let mut items: Vec<(String, String)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(ReadModelPage { items, next })
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
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT key, hash, position, seq FROM entities WHERE connection = ? AND mapping = ? AND key IN {}",
            placeholders(1, chunk.len(), None)
        );
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
    for (chunk, ids) in plan.emitted.chunks(100).zip(ids.chunks(100)) {
        let sql = format!(
            "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload) VALUES {} RETURNING seq",
            placeholders(chunk.len(), 9, None)
        );
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
    for chunk in plan.upserts.chunks(100) {
        let sql = format!(
            "INSERT INTO entities (connection, mapping, key, hash, state, seq, updated_at, position) VALUES {}
             ON CONFLICT (connection, mapping, key)
             DO UPDATE SET hash = excluded.hash, state = excluded.state, seq = excluded.seq,
                           updated_at = excluded.updated_at, position = excluded.position",
            placeholders(chunk.len(), 8, None)
        );
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
