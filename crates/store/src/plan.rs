//! The decisions of a batch, made in memory and shared by both back ends: given what is stored
//! for the batch's keys, which changes emit a message (in order), which entities end deleted,
//! upserted (with their final hash, state, message and position) or only at a newer position.
//! Exactly what applying the changes one by one would do, against the state as it evolves; the
//! back ends then write it with a few multi-row statements.

use std::collections::{HashMap, HashSet};

use crate::model::{Applied, Change, ChangeOp};

/// An entity's final upsert: `(key, hash, state, index of its message in `emitted`, position)`.
pub(crate) type Upsert<'a> = (&'a str, i64, &'a str, usize, i64);

/// What a batch writes.
pub(crate) struct Plan<'a> {
    /// Changes whose message is appended, in order.
    pub emitted: Vec<&'a Change>,
    /// Keys to delete first (deleted in the batch, whatever comes after).
    pub deletes: Vec<&'a str>,
    /// Final states of upserted entities, in key order.
    pub upserts: Vec<Upsert<'a>>,
    /// Entities whose content stays but whose position moves on.
    pub positions: Vec<(&'a str, i64)>,
    /// The counts.
    pub applied: Applied,
}

enum Final<'a> {
    Upsert {
        hash: i64,
        state: &'a str,
        message: usize,
        position: i64,
    },
    Delete,
    Position(i64),
}

/// The distinct keys of a batch, sorted.
pub(crate) fn keys(changes: &[Change]) -> Vec<&str> {
    let mut keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Decide a batch. `stored` holds `(hash, position)` of every key that exists.
pub(crate) fn plan<'a>(changes: &'a [Change], keys: &[&'a str], stored: &HashMap<String, (i64, i64)>) -> Plan<'a> {
    let mut state: HashMap<&str, Option<(i64, i64)>> = keys.iter().map(|k| (*k, stored.get(*k).copied())).collect();
    let mut finals: HashMap<&str, Final> = HashMap::new();
    let mut deleted: HashSet<&str> = HashSet::new();
    let mut emitted: Vec<&Change> = Vec::new();
    let mut applied = Applied::default();
    for change in changes {
        let key = change.key.as_str();
        let known = state.get(key).copied().flatten();
        let stale = matches!((known, change.position), (Some((_, stored)), Some(p)) if p < stored);
        let real = !stale
            && match (&change.op, known) {
                (ChangeOp::Upsert { hash, .. }, Some((k, _))) => k != *hash as i64,
                (ChangeOp::Upsert { .. }, None) => true,
                (ChangeOp::Delete, known) => known.is_some(),
            };
        if !real {
            if let (false, Some((h, stored)), Some(p), ChangeOp::Upsert { .. }) =
                (stale, known, change.position, &change.op)
            {
                if p > stored {
                    // Same content, newer position: remember it, so older events stay stale.
                    state.insert(key, Some((h, p)));
                    match finals.get_mut(key) {
                        Some(Final::Upsert { position, .. }) => *position = p,
                        _ => {
                            finals.insert(key, Final::Position(p));
                        }
                    }
                }
            }
            if stale {
                applied.stale += 1;
            } else {
                applied.unchanged += 1;
            }
            continue;
        }
        let message = emitted.len();
        emitted.push(change);
        match &change.op {
            ChangeOp::Upsert { hash, state: s } => {
                let p = change.position.unwrap_or(0);
                let position = known.map(|(_, stored)| stored.max(p)).unwrap_or(p);
                state.insert(key, Some((*hash as i64, position)));
                finals.insert(
                    key,
                    Final::Upsert {
                        hash: *hash as i64,
                        state: s,
                        message,
                        position,
                    },
                );
            }
            ChangeOp::Delete => {
                state.insert(key, None);
                deleted.insert(key);
                finals.insert(key, Final::Delete);
            }
        }
        applied.emitted += 1;
    }
    let mut plan = Plan {
        emitted,
        deletes: keys.iter().copied().filter(|k| deleted.contains(k)).collect(),
        upserts: Vec::new(),
        positions: Vec::new(),
        applied,
    };
    for k in keys {
        match finals.get(k) {
            Some(Final::Upsert {
                hash,
                state,
                message,
                position,
            }) => plan.upserts.push((k, *hash, state, *message, *position)),
            Some(Final::Position(p)) => plan.positions.push((k, *p)),
            _ => {}
        }
    }
    plan
}

/// A self-hosted connector's messages to ingest (see `Store::ingest`): those above the stored
/// uplink `position` (the others were ingested already: their count is returned), as runs of
/// consecutive items of one mapping in their order, and the position after them.
pub(crate) fn uplink_runs(items: &[(i64, String, Change)], position: i64) -> (usize, Vec<(&str, Vec<Change>)>, i64) {
    let mut runs: Vec<(&str, Vec<Change>)> = Vec::new();
    let mut skipped = 0;
    let mut last = position;
    for (seq, mapping, change) in items {
        if *seq <= last {
            skipped += 1;
            continue;
        }
        last = *seq;
        match runs.last_mut() {
            Some((m, changes)) if *m == mapping.as_str() => changes.push(change.clone()),
            _ => runs.push((mapping.as_str(), vec![change.clone()])),
        }
    }
    (skipped, runs, last)
}

/// `n` groups of `width` placeholders: `(?, ?), (?, ?)` for SQLite, `($1, $2), ($3, $4)` from
/// `$first` for PostgreSQL.
pub(crate) fn placeholders(n: usize, width: usize, numbered_from: Option<usize>) -> String {
    let mut out = String::new();
    let mut i = numbered_from.unwrap_or(0);
    for row in 0..n {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for col in 0..width {
            if col > 0 {
                out.push_str(", ");
            }
            match numbered_from {
                Some(_) => {
                    out.push_str(&format!("${i}"));
                    i += 1;
                }
                None => out.push('?'),
            }
        }
        out.push(')');
    }
    out
}
