//! The PostgreSQL back end: the same operations as the SQLite one (`sqlite.rs`), on a server,
//! migrations (`migrations-postgres/`) embedded in the binary. Only what PostgreSQL does its own
//! way is here; the rest is written once in `shared.rs`.
//!
//! # Writers and locks
//!
//! SQLite has one writer at a time: every write transaction there starts with `BEGIN IMMEDIATE`,
//! so a transaction's reads and writes happen as if alone, and the outbox's `seq` order is the
//! order in which its rows became visible. PostgreSQL runs writers side by side (`READ
//! COMMITTED`), and its sequences hand out numbers at insert time, not at commit: a transaction
//! can take `seq` 10, another take 11 and commit first. A relay that read up to 11 would then
//! never read 10 (`messages(after = 11)`), and `mark_published(up to 11)` would mark 10 as
//! published although it was never sent. The same serialisation that SQLite gives for free is
//! therefore taken explicitly, with transaction-level advisory locks (released at commit or
//! rollback, so nothing can leak them):
//!
//! - **a connection's write lock** (`pg_advisory_xact_lock(CONNECTION_LOCK, hashtext(connection))`),
//!   taken first in every transaction that writes a connection's outbox, entities or cursors
//!   (`apply_batch`, `ingest`, `mark_seen`, `delete_mapping`, `reset_export`: the shared code
//!   takes it through [`Dialect::connection_tx`]). Writers of one connection run one
//!   after another, so within a connection `seq` order is commit order (the relay and
//!   `messages` page by connection), and each transaction's read-then-write (the content hash
//!   check, the stale-position check, the uplink position of `ingest`) sees the previous
//!   writer's commit, exactly as under `BEGIN IMMEDIATE`. Writers of different connections
//!   still run in parallel (a hash collision merely serialises two connections).
//! - **the outbox barrier** (`OUTBOX_BARRIER`): those writers also hold it shared (taken before
//!   the connection lock, always in that order); [`PgStore::last_seq`] takes it exclusively
//!   for one read. Once it holds it, no writer is between taking a `seq` and committing, so the
//!   maximum it reads is a watermark: every later row gets a larger `seq`. Key reconciliation
//!   (`unseen_keys(.., max_seq = last_seq())`) relies on that across connections.
//! - **a lease lock** per connection (`LEASE_LOCK`, [`Dialect::lease_tx`]) serialises deleting a
//!   connection with its lease. Taking a lease needs no lock: `acquire_lease` is one conditional
//!   upsert (`ON CONFLICT ... DO UPDATE ... WHERE` ours or expired), and PostgreSQL locks the
//!   conflicting row while it checks the condition, so two connectors racing for a free lease
//!   cannot both be granted it.
//! - **a version lock** per mapping or command mapping name (`VERSION_LOCK`): saving a new
//!   version (`MAX(version) + 1`) waits for a concurrent save instead of failing on the
//!   primary key ([`Dialect::version_tx`]).
//!
//! # Read models
//!
//! Read models are read through a small pool of their own ([`read_pool`]): the API's reads do
//! not wait behind the writers' pool, and its sessions forbid sorts, sequential and bitmap scans
//! (`enable_sort` and the others off, which makes them a last resort), so a page is always an
//! ordered walk of the primary-key index that stops after `limit + 1` rows. The cost-based
//! choice went wrong while the statistics still described a nearly empty table (right after
//! the initial load, before autovacuum analyses it): the planner expected 4 rows, read all of
//! them with a bitmap scan and sorted them, and a first page took 800 ms at 200,000 entities.
//!
//! # Read model filters
//!
//! [`PgStore::entities`] compares a field of the stored JSON state as text like SQLite's
//! `CAST(json_extract(state, '$."field"') AS TEXT)`: strings without quotes, numbers as written,
//! booleans as `1` / `0`, `null` and a missing field never match. (Differences remain only for
//! numbers in exponent form and nested objects or arrays, which SQLite prints minified.)

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};

use crate::error::StoreError;
use tracing::instrument;

use crate::model::{Applied, Batch, Change, Cursor, ReadModelPage};
use crate::plan::{Numbering, Stored};
use crate::shared::{now, Db, Dialect, Versioned, UPLINK_CURSOR};

/// Advisory lock class (the first key of the two-key form) of a connection's write lock; the
/// second key is `hashtext(connection)`. The classes spell "ERB" and a number, to keep clear of
/// other users of advisory locks in a shared database.
const CONNECTION_LOCK: i32 = 0x4552_4201;
/// Advisory lock class of the outbox barrier (second key 0): shared by outbox writers, exclusive
/// for [`PgStore::last_seq`].
const OUTBOX_BARRIER: i32 = 0x4552_4202;
/// Advisory lock class of a connection's connector lease; second key `hashtext(connection)`.
const LEASE_LOCK: i32 = 0x4552_4203;
/// Advisory lock class of a (command) mapping's version numbering; second key
/// `hashtext('<table>/<connection>/<name>')`.
const VERSION_LOCK: i32 = 0x4552_4204;

/// The PostgreSQL store. Cheap to clone.
pub(crate) type PgStore = Db<Postgres>;

impl Dialect for Postgres {
    async fn connection_tx(pool: &PgPool, connection: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        connection_tx(pool, connection).await
    }

    async fn lease_tx(pool: &PgPool, connection: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
        locked_tx(pool, LEASE_LOCK, connection).await
    }

    async fn version_tx(
        pool: &PgPool,
        kind: Versioned,
        connection: &str,
        name: &str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        locked_tx(pool, VERSION_LOCK, &format!("{}/{connection}/{name}", kind.table())).await
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// `url` with its password hidden, for error messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable PostgreSQL URL>".into(),
    }
}

/// A transaction holding the outbox barrier (shared) and `connection`'s write lock: see the
/// module documentation. The order of the two is fixed, so writers cannot deadlock.
async fn connection_tx(pool: &PgPool, connection: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, 0)")
        .bind(OUTBOX_BARRIER)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(CONNECTION_LOCK)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The pool that reads read models (see the module documentation); connections are opened when
/// first needed.
///
/// Its statements keep their generic plans (`plan_cache_mode` back to `auto`, after the store's
/// `force_custom_plan`): with sorts and scans other than the index off, the generic plan is the
/// index walk whatever the statistics say, and planning every execution anew cost more than
/// the lookup. A connection is checked (a ping) before use only when it was idle for a while,
/// not before every query: under load that check was a second round trip per request.
fn read_pool(opts: PgConnectOptions) -> PgPool {
    let opts = opts.options([
        ("plan_cache_mode", "auto"),
        ("enable_sort", "off"),
        ("enable_seqscan", "off"),
        ("enable_bitmapscan", "off"),
    ]);
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(10) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(opts)
}

/// A transaction holding the advisory lock `(class, hashtext(key))`.
async fn locked_tx(pool: &PgPool, class: i32, key: &str) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(class)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/database?...`) and
    /// migrate it. The database must exist; the schema is created in it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: redact(url),
            source,
        };
        // Plans are made for each execution's values: a generic plan cached while the tables
        // were still empty (a sequential scan) would otherwise stay in use as they grow, and
        // one page's key lookup took 800 ms at 40,000 entities.
        let opts = PgConnectOptions::from_str(url)
            .map_err(open_error)?
            .options([("plan_cache_mode", "force_custom_plan")]);
        // One connection first, so that a wrong address, password or database fails at once with
        // its own message (the pool would retry until its acquire timeout, then only say so).
        PgConnection::connect_with(&opts)
            .await
            .map_err(open_error)?
            .close()
            .await
            .map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        Ok(Self {
            pool,
            readers: None,
            writer: None,
            read_pool: Some(read_pool(opts)),
        })
    }

    /// The highest message sequence number (0 when empty), read while no outbox writer is between
    /// taking a `seq` and committing (the barrier, exclusively), so no smaller `seq` appears later.
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(OUTBOX_BARRIER)
            .execute(&mut *tx)
            .await?;
        let seq = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The stored cursor of a mapping.
    pub async fn cursor(&self, connection: &str, mapping: &str) -> Result<Option<Cursor>, StoreError> {
        self.cursor_pooled(connection, mapping).await
    }

    /// Refresh the planner's statistics of the tables a load filled: a table planned from the
    /// statistics of its empty start scans everything until autovacuum analyses it.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE entities, outbox").execute(&self.pool).await?;
        Ok(())
    }

    /// The current state of one entity.
    pub async fn entity(&self, connection: &str, mapping: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM entities WHERE connection = $1 AND mapping = $2 AND key = $3")
                .bind(connection)
                .bind(mapping)
                .bind(key)
                .fetch_optional(self.read_pool.as_ref().unwrap_or(&self.pool))
                .await?,
        )
    }

    /// A page of entities in key order after `after`, where every `(field, value)` filter matches
    /// the field's value rendered as text (as SQLite renders it: see the module documentation).
    ///
    /// The first page and a later one are two statements (`key > $3` only in the second), so
    /// that each has one plan that seeks the primary-key index (see the SQLite twin).
    pub async fn entities(
        &self,
        connection: &str,
        mapping: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[(String, String)],
    ) -> Result<ReadModelPage, StoreError> {
        let mut sql = String::from("SELECT key, state FROM entities WHERE connection = $1 AND mapping = $2");
        let mut n = 2;
        if after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND key > ${n}"));
        }
        for _ in filters {
            let (field, value) = (n + 1, n + 2);
            n += 2;
            sql.push_str(&format!(
                " AND (CASE jsonb_typeof(state::jsonb -> ${field}::text)
                         WHEN 'boolean' THEN CASE WHEN state::jsonb -> ${field}::text = 'true'::jsonb THEN '1' ELSE '0' END
                         ELSE state::jsonb ->> ${field}::text END) = ${value}::text"
            ));
        }
        sql.push_str(&format!(" ORDER BY key LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping);
        if let Some(after) = after {
            q = q.bind(after);
        }
        for (field, value) in filters {
            q = q.bind(field).bind(value);
        }
        let rows = q
            .bind(i64::from(limit) + 1)
            .fetch_all(self.read_pool.as_ref().unwrap_or(&self.pool))
            .await?;
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
                 (connection, mapping, key, raw_hash, raw, reason, first_seen, last_seen, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)
             ON CONFLICT (connection, mapping, key, raw_hash) DO UPDATE SET reason = excluded.reason,
                 last_seen = excluded.last_seen, attempts = source_dead_letters.attempts + 1,
                 touched = nextval('source_dead_letters_touched')",
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
        let r = sqlx::query("DELETE FROM source_dead_letters WHERE connection = $1 AND mapping = $2 AND key = ANY($3)")
            .bind(connection)
            .bind(mapping)
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

/// Pages of changes: written through sqlx (the SQLite back end has a writer of its own).
impl PgStore {
    /// Apply a batch atomically, in the connection's write transaction: changed entities are
    /// updated and their messages appended; no-op changes are dropped by content hash; the
    /// cursor is stored in the same transaction.
    #[instrument(skip_all, fields(connection = %batch.connection, mapping = %batch.mapping, changes = batch.changes.len()))]
    pub async fn apply_batch(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let mut tx = connection_tx(&self.pool, &batch.connection).await?;
        let mut applied = Applied::default();
        let time = now();
        apply_changes(
            &mut tx,
            &batch.connection,
            &batch.mapping,
            &batch.changes,
            &time,
            &mut applied,
            &mut Numbering::default(),
        )
        .await?;
        if let Some(c) = &batch.cursor {
            sqlx::query(
                "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connection, mapping) DO UPDATE SET fingerprint = excluded.fingerprint,
                     position = excluded.position, updated_at = excluded.updated_at",
            )
            .bind(&batch.connection)
            .bind(&batch.mapping)
            .bind(&c.fingerprint)
            .bind(c.position.to_string())
            .bind(&time)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Ingest messages a self-hosted connector produced (its outbox, in its order), exactly once:
    /// the stored uplink position is read and moved in the connection's write transaction, so a
    /// concurrent resend waits and then skips what this one applied.
    #[instrument(skip_all, fields(connection, items = items.len()))]
    pub async fn ingest(
        &self,
        connection: &str,
        items: &[(i64, String, Change)],
    ) -> Result<(Applied, i64), StoreError> {
        let mut tx = connection_tx(&self.pool, connection).await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT position FROM cursors WHERE connection = $1 AND mapping = $2")
                .bind(connection)
                .bind(UPLINK_CURSOR)
                .fetch_optional(&mut *tx)
                .await?;
        let stored: i64 = stored.and_then(|p| p.parse().ok()).unwrap_or(0);
        let (skipped, runs, position) = crate::plan::uplink_runs(items, stored);
        let mut applied = Applied {
            unchanged: skipped,
            ..Applied::default()
        };
        let time = now();
        // Read before the first run writes (see `Numbering`).
        let mut numbering = Numbering {
            before: Some(Self::last_connection_seq(&mut tx, connection).await?),
            written: 0,
        };
        for (mapping, changes) in &runs {
            apply_changes(
                &mut tx,
                connection,
                mapping,
                changes,
                &time,
                &mut applied,
                &mut numbering,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES ($1, $2, '', $3, $4)
             ON CONFLICT (connection, mapping) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(connection)
        .bind(UPLINK_CURSOR)
        .bind(position.to_string())
        .bind(&time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((applied, position))
    }
}

/// Apply a page of changes with a few statements (see the SQLite twin and [`crate::plan`]):
/// each statement takes its rows as arrays (`UNNEST`), so a page is one round trip per
/// statement and one prepared statement whatever its size. Sequence numbers of one insert
/// increase in row order (`ORDER BY` the arrays' ordinality); the per-connection lock taken by
/// the caller keeps them in commit order too.
async fn apply_changes(
    tx: &mut PgConnection,
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
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT key, hash, position, seq FROM entities WHERE connection = $1 AND mapping = $2 AND key = ANY($3)",
    )
    .bind(connection)
    .bind(mapping)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    let stored = rows
        .into_iter()
        .map(|(k, hash, position, seq)| (k, Stored { hash, position, seq }))
        .collect();
    let plan = crate::plan::plan(changes, &keys, &stored);
    if plan.needs_numbering() && numbering.before.is_none() {
        // Nothing written yet in this transaction (`ingest` reads it before its first run).
        numbering.before = Some(PgStore::last_connection_seq(&mut *tx, connection).await?);
    }
    let ids = plan.message_ids(numbering);
    let mut seqs: Vec<i64> = Vec::with_capacity(plan.emitted.len());
    if !plan.emitted.is_empty() {
        let column = |f: fn(&crate::model::NewMessage) -> &str| -> Vec<&str> {
            plan.emitted.iter().map(|e| f(&e.change.message)).collect()
        };
        let ids: Vec<&str> = ids.iter().map(|id| id.as_ref()).collect();
        seqs = sqlx::query_scalar(
            "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload)
             SELECT $1, $2, u.id, u.type, u.source, u.subject, u.time, u.dataschema, u.payload
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                  WITH ORDINALITY AS u(id, type, source, subject, time, dataschema, payload, n)
             ORDER BY u.n
             RETURNING seq",
        )
        .bind(connection)
        .bind(mapping)
        .bind(&ids)
        .bind(column(|m| m.ty.as_str()))
        .bind(column(|m| m.source.as_str()))
        .bind(column(|m| m.subject.as_str()))
        .bind(column(|m| m.time.as_str()))
        .bind(column(|m| m.dataschema.as_str()))
        .bind(column(|m| m.payload.as_str()))
        .fetch_all(&mut *tx)
        .await?;
        seqs.sort_unstable();
    }
    if !plan.deletes.is_empty() {
        sqlx::query("DELETE FROM entities WHERE connection = $1 AND mapping = $2 AND key = ANY($3)")
            .bind(connection)
            .bind(mapping)
            .bind(&plan.deletes)
            .execute(&mut *tx)
            .await?;
    }
    if !plan.upserts.is_empty() {
        let ups = &plan.upserts;
        sqlx::query(
            "INSERT INTO entities (connection, mapping, key, hash, state, seq, updated_at, position)
             SELECT $1, $2, u.key, u.hash, u.state, u.seq, $3, u.position
             FROM UNNEST($4::text[], $5::int8[], $6::text[], $7::int8[], $8::int8[]) AS u(key, hash, state, seq, position)
             ON CONFLICT (connection, mapping, key)
             DO UPDATE SET hash = excluded.hash, state = excluded.state, seq = excluded.seq,
                           updated_at = excluded.updated_at, position = excluded.position",
        )
        .bind(connection)
        .bind(mapping)
        .bind(time)
        .bind(ups.iter().map(|u| u.0).collect::<Vec<&str>>())
        .bind(ups.iter().map(|u| u.1).collect::<Vec<i64>>())
        .bind(ups.iter().map(|u| u.2).collect::<Vec<&str>>())
        .bind(ups.iter().map(|u| seqs[u.3]).collect::<Vec<i64>>())
        .bind(ups.iter().map(|u| u.4).collect::<Vec<i64>>())
        .execute(&mut *tx)
        .await?;
    }
    if !plan.positions.is_empty() {
        sqlx::query(
            "UPDATE entities AS e SET position = u.position
             FROM UNNEST($3::text[], $4::int8[]) AS u(key, position)
             WHERE e.connection = $1 AND e.mapping = $2 AND e.key = u.key",
        )
        .bind(connection)
        .bind(mapping)
        .bind(plan.positions.iter().map(|p| p.0).collect::<Vec<&str>>())
        .bind(plan.positions.iter().map(|p| p.1).collect::<Vec<i64>>())
        .execute(&mut *tx)
        .await?;
    }
    plan.written(applied, numbering);
    Ok(())
}
