//! Reconciliation, in both directions, in a task of its own beside polling (never instead of
//! it; one M3 call in flight, so it stays within the gateway's quota). A pass reads the whole
//! table in windows of the change timestamp, keys and timestamps only (all mapped columns when
//! the mapping has a filter, so that rows outside it are told apart), and compares each window
//! with the stored entities whose position falls in it:
//! - a key M3 has and the store lacks, or holds at another timestamp (a late commit, a change
//!   lost while the process was down), is read again in full and written: repaired;
//! - a stored key no window returned is a delete candidate. Each candidate is confirmed with a
//!   point read by key before its `...Deleted` is emitted (a row that is there after all is
//!   repaired instead). When more than a configured share of the keys vanish in one pass, the
//!   deletes are held and reported, not emitted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mapping::EntityKey;
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::source::reader::sample;
use crate::source::splitter::Splitter;
use crate::source::window::{Range, Window};
use crate::source::worker::{parse_lmts, Position, Worker};

/// A pass may delete this many keys whatever the share.
const ALWAYS_DELETABLE: usize = 10;

impl Worker {
    /// Run passes every `reconcile_interval` while the mapping polls.
    pub(crate) async fn reconcile_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            shutdown.sleep(self.settings.reconcile_interval).await;
            if shutdown.is_shutdown() {
                return;
            }
            if !self.lease_held() {
                self.wait_for_lease(&mut shutdown).await;
                continue;
            }
            match self.position().await {
                Ok(Some(Position::Polling { .. })) => {}
                _ => continue,
            }
            if let Err(e) = self.reconcile(&shutdown).await {
                warn!(connection = %self.connection(), mapping = self.name(), error = %e, "reconciliation failed; the next pass starts over");
                self.failed(&e);
            }
        }
    }

    /// One pass.
    pub(crate) async fn reconcile(&self, shutdown: &Shutdown) -> Result<(), PipelineError> {
        let conn = self.connection().to_string();
        let round = chrono::Utc::now().timestamp_millis();
        let max_seq = self.store.last_seq().await?;
        let m = &self.src.mapping;
        let wide = m.filter().is_some();
        let select: Vec<String> = if wide {
            self.columns.clone()
        } else {
            let mut s = m.key_columns();
            for c in std::iter::once(&self.columns[self.lmts_index]).chain(&self.reader.dims.columns) {
                if !s.contains(c) {
                    s.push(c.clone());
                }
            }
            s
        };
        let key_idx: Vec<usize> = m
            .key_columns()
            .iter()
            .map(|k| select.iter().position(|c| c == k).expect("keys are selected"))
            .collect();
        let lmts_at = select
            .iter()
            .position(|c| *c == self.columns[self.lmts_index])
            .expect("the timestamp is selected");
        let dims_at = self.reader.dim_positions(&select);
        let mut todo = vec![Window::all()];
        let mut splitter = Splitter::sequential();
        let mut repaired = 0u64;
        while let Some(w) = splitter.next(&mut todo) {
            if shutdown.is_shutdown() || !self.lease_held() {
                return Ok(());
            }
            let a = self.reader.read(&select, &w).await?;
            if a.may_be_cut {
                if let Some(kids) = splitter.cut(&self.reader.dims, &w, &sample(&a.rows, &dims_at)) {
                    todo.extend(kids);
                    continue;
                }
            }
            todo.extend(splitter.whole(&self.reader.dims, &w, a.rows.len()));
            let rows: Vec<&Vec<String>> = if wide {
                a.rows
                    .iter()
                    .filter(|r| m.matches(&r.iter().map(String::as_str).collect::<Vec<_>>()))
                    .collect()
            } else {
                a.rows.iter().collect()
            };
            let keys: Vec<String> = rows
                .iter()
                .map(|r| EntityKey(key_idx.iter().map(|&i| r[i].trim().to_string()).collect()).to_string())
                .collect();
            self.store.mark_seen(&conn, self.name(), round, &keys).await?;
            let (lo, hi) = w.lmts_bounds();
            let stored: HashMap<String, Option<i64>> = self
                .store
                .window_entities(&conn, self.name(), lo, hi)
                .await?
                .into_iter()
                .collect();
            let off: HashSet<&String> = rows
                .iter()
                .zip(&keys)
                .filter(|(r, k)| stored.get(*k) != Some(&Some(parse_lmts(&r[lmts_at]))))
                .map(|(_, k)| k)
                .collect();
            if off.is_empty() {
                continue;
            }
            // Read the window's rows in full and write those that were off; the store's
            // position guard and content hashes keep this from undoing newer changes.
            let full = if wide {
                a.rows.clone()
            } else {
                self.reader.scan(&self.columns, w.clone()).await?.rows
            };
            let own_keys = self.key_positions();
            let fix: Vec<Vec<String>> = full
                .into_iter()
                .filter(|r| off.contains(&self.key_text(r, &own_keys)))
                .collect();
            repaired += fix.len() as u64;
            self.write(&fix, None).await?;
        }
        if repaired > 0 {
            info!(connection = %conn, mapping = self.name(), repaired, "reconciliation repaired rows");
            self.status.table(self.name(), |t| t.repaired += repaired);
        }
        self.confirm_deletes(round, max_seq, shutdown).await
    }

    /// Stored keys no window returned: confirm each with a point read, then delete, unless too
    /// many vanished at once.
    async fn confirm_deletes(&self, round: i64, max_seq: i64, shutdown: &Shutdown) -> Result<(), PipelineError> {
        let conn = self.connection();
        let candidates = self.store.unseen_entities(conn, self.name(), round, max_seq).await?;
        if candidates.is_empty() {
            self.release_held();
            return Ok(());
        }
        let total = self.store.entity_count(conn, self.name()).await?.max(1) as f64;
        let share = candidates.len() as f64 / total;
        if candidates.len() > ALWAYS_DELETABLE && share > self.settings.delete_hold_share {
            let reason = format!(
                "{} of {} keys ({:.0} %) vanished from M3 in one reconciliation pass, more than the {:.0} % allowed: the deletes are held, not emitted (once M3 is known to be right, raise connection.delete_hold_share to let them through)",
                candidates.len(),
                total as u64,
                share * 100.0,
                self.settings.delete_hold_share * 100.0
            );
            warn!(connection = %conn, mapping = self.name(), held = candidates.len(), "{reason}");
            self.status.table(self.name(), |t| {
                t.held_deletes = candidates.len() as u64;
                t.held_message = Some(reason.clone());
                t.failed(reason);
            });
            return Ok(());
        }
        self.release_held();
        let key_cols = self.src.mapping.key_columns();
        let mut deletes = Vec::new();
        let mut back = Vec::new();
        for (key, _) in candidates {
            if shutdown.is_shutdown() {
                return Ok(());
            }
            let Some(parsed) = EntityKey::parse(&key, key_cols.len()) else {
                warn!(connection = %conn, mapping = self.name(), key = %key, "stored key has the wrong shape; skipped");
                continue;
            };
            match self.read_key(&parsed).await? {
                KeyRead::Found(row) => back.push(row),
                KeyRead::Absent => deletes.extend(self.delete_change(&key)),
                KeyRead::Unreadable => {
                    warn!(connection = %conn, mapping = self.name(), key = %key, "the row of a vanished key cannot be split; not deleted")
                }
            }
        }
        if !back.is_empty() {
            self.status.table(self.name(), |t| t.repaired += back.len() as u64);
            self.write(&back, None).await?;
        }
        let found = deletes.len() as u64;
        let emitted = self.commit(deletes, 0, 0, None).await?;
        info!(connection = %conn, mapping = self.name(), deletes = emitted, "reconciliation confirmed deletes");
        self.status.table(self.name(), |t| t.deletes_found += found);
        Ok(())
    }

    /// Nothing is held (any more).
    fn release_held(&self) {
        self.status.table(self.name(), |t| {
            t.held_deletes = 0;
            t.held_message = None;
        });
    }

    /// Read one row by key (the company excepted: the session's applies), laid out as
    /// `self.columns`.
    pub(crate) async fn read_key(&self, key: &EntityKey) -> Result<KeyRead, PipelineError> {
        let key_cols = self.src.mapping.key_columns();
        let mut w = Window::all();
        w.ranges.push(Range::default());
        for dim in self.reader.dims.columns.iter().skip(1) {
            let at = key_cols
                .iter()
                .position(|k| k == dim)
                .expect("dimensions are key columns");
            w.ranges.push(Range::point(&key.0[at]));
        }
        let key_idx = self.key_positions();
        let a = self.reader.read(&self.columns, &w).await?;
        let found = a
            .rows
            .into_iter()
            .find(|r| key_idx.iter().zip(&key.0).all(|(&i, v)| r[i].trim() == v));
        Ok(match found {
            Some(row) => KeyRead::Found(row),
            None if a.unsplit.is_empty() => KeyRead::Absent,
            None => KeyRead::Unreadable,
        })
    }
}

/// What a point read by key found.
pub(crate) enum KeyRead {
    /// The row, laid out as the worker's columns.
    Found(Vec<String>),
    /// M3 does not have the key.
    Absent,
    /// M3 answered a row that cannot be split: whether it is the key is unknown.
    Unreadable,
}
