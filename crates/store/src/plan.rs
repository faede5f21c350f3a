//! The decisions of a batch, made in memory and shared by both back ends: given what is stored
//! for the batch's keys, which changes emit a message (in order), which entities end deleted,
//! upserted (with their final hash, state, message and position) or only at a newer position.
//! Exactly what applying the changes one by one would do, against the state as it evolves; the
//! back ends then write it with a few multi-row statements. Also shared: the ids messages are
//! stored with (an update or delete names the version it replaces), and the position windows' condition.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::model::{Applied, Change, ChangeOp};

/// An entity as stored when a batch starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    /// Content hash.
    pub hash: i64,
    /// Source position (0: unknown).
    pub position: i64,
    /// Log position of the message that wrote this version.
    pub seq: i64,
}

/// Which version of an entity a change replaces: what makes the message id of an update or a delete
/// differ from that of another change of the same key (deleted, re-created, deleted again; A -> B -> A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// The stored version, written by the message at this log position (never reused).
    Stored(i64),
    /// A version written earlier in the same plan, by its emitted message of this index.
    Written(usize),
}

/// A change whose message is appended.
pub(crate) struct Emitted<'a> {
    /// The change.
    pub change: &'a Change,
    /// For an update or a delete, the version it replaces.
    pub removes: Option<Version>,
}

/// How the transaction applying a plan numbers its messages, so that a delete of a version the
/// same transaction wrote gets an id that no other transaction's delete gets, and the same id when
/// an uncommitted transaction is replayed: the connection's last log position before the
/// transaction (read under the connection's write lock, so a replay reads the same) and the
/// messages the transaction wrote before this plan.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    /// The connection's highest `seq` before the transaction; read by the back end before the
    /// transaction writes a message (it is `None` until needed).
    pub before: Option<i64>,
    /// Messages the transaction appended so far.
    pub written: usize,
}

/// An entity's final upsert: `(key, hash, state, index of its message in `emitted`, position)`.
pub(crate) type Upsert<'a> = (&'a str, i64, &'a str, usize, i64);

/// What a batch writes.
pub(crate) struct Plan<'a> {
    /// Changes whose message is appended, in order.
    pub emitted: Vec<Emitted<'a>>,
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

/// Decide a batch. `stored` holds every key that exists.
pub(crate) fn plan<'a>(changes: &'a [Change], keys: &[&'a str], stored: &HashMap<String, Stored>) -> Plan<'a> {
    // Per key: (hash, position, version) as the changes so far leave it.
    let mut state: HashMap<&str, Option<(i64, i64, Version)>> = keys
        .iter()
        .map(|k| {
            let s = stored.get(*k).map(|s| (s.hash, s.position, Version::Stored(s.seq)));
            (*k, s)
        })
        .collect();
    let mut finals: HashMap<&str, Final> = HashMap::new();
    let mut deleted: HashSet<&str> = HashSet::new();
    let mut emitted: Vec<Emitted> = Vec::new();
    let mut applied = Applied::default();
    for change in changes {
        let key = change.key.as_str();
        let known = state.get(key).copied().flatten();
        let stale = matches!((known, change.position), (Some((_, stored, _)), Some(p)) if p < stored);
        let real = !stale
            && match (&change.op, known) {
                (ChangeOp::Upsert { hash, .. }, Some((k, _, _))) => k != *hash as i64,
                (ChangeOp::Upsert { .. }, None) => true,
                (ChangeOp::Delete, known) => known.is_some(),
            };
        if !real {
            if let (false, Some((h, stored, version)), Some(p), ChangeOp::Upsert { .. }) =
                (stale, known, change.position, &change.op)
            {
                if p > stored {
                    // Same content, newer position: remember it, so older events stay stale.
                    state.insert(key, Some((h, p, version)));
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
        emitted.push(Emitted {
            change,
            // Both a delete and an update replace the version stored (a first upsert replaces
            // none and keeps the caller's id).
            removes: known.map(|(_, _, version)| version),
        });
        match &change.op {
            ChangeOp::Upsert { hash, state: s } => {
                let p = change.position.unwrap_or(0);
                let position = known.map(|(_, stored, _)| stored.max(p)).unwrap_or(p);
                state.insert(key, Some((*hash as i64, position, Version::Written(message))));
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

impl<'a> Plan<'a> {
    /// Whether a change replaces a version written in the same plan (its id then needs
    /// [`Numbering::before`]).
    pub(crate) fn needs_numbering(&self) -> bool {
        self.emitted
            .iter()
            .any(|e| !matches!(e.removes, Some(Version::Stored(_))))
    }

    /// Count a plan its back end has written: its outcomes into the transaction's `applied`,
    /// its messages into the transaction's numbering.
    pub(crate) fn written(&self, applied: &mut Applied, numbering: &mut Numbering) {
        numbering.written += self.emitted.len();
        applied.emitted += self.applied.emitted;
        applied.unchanged += self.applied.unchanged;
        applied.stale += self.applied.stale;
    }

    /// The CloudEvents id of each emitted message, derived from the caller's and what the change
    /// replaces: the stored version for an update or a delete, or for an entity's first version
    /// its place in this transaction. So every change of a key gets its own id (a key deleted
    /// twice, re-created with its old content and timestamp, A -> B -> A within one timestamp)
    /// while a replay of the same transaction gets the same ones.
    pub(crate) fn message_ids(&self, numbering: &Numbering) -> Vec<Cow<'a, str>> {
        self.emitted
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let id = e.change.message.id.as_str();
                match e.removes {
                    // An entity's first version (new, or re-created after a delete, perhaps
                    // with the very content and timestamp it had before): named by its place
                    // in this transaction's numbering, which no other transaction shares.
                    None => Cow::Owned(event_id(&[
                        id,
                        "first",
                        &numbering.before.unwrap_or(0).to_string(),
                        &(numbering.written + i).to_string(),
                    ])),
                    Some(Version::Stored(seq)) => Cow::Owned(event_id(&[id, "deletes-stored", &seq.to_string()])),
                    Some(Version::Written(index)) => Cow::Owned(event_id(&[
                        id,
                        "deletes-written",
                        &numbering.before.unwrap_or(0).to_string(),
                        &(numbering.written + index).to_string(),
                    ])),
                }
            })
            .collect()
    }
}

/// A stable id shaped as a UUID (8-4-4-4-12 hex digits): the 128-bit xxh3 of `parts` joined by
/// the unit separator. The same parts always give the same id.
pub fn event_id(parts: &[&str]) -> String {
    let hex = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(parts.join("\u{1f}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The key of a source dead letter's raw row: its 128-bit xxh3, in hex.
pub(crate) fn raw_hash(raw: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))
}

/// A stored source position as the API gives it: 0 means unknown.
pub(crate) fn known_position(p: i64) -> Option<i64> {
    (p != 0).then_some(p)
}

/// The position condition of [`crate::Store::window_entities`] (`from <= position < to`, an
/// unknown position, stored as 0, only when `from` is open), with its bound values in order;
/// `param` yields the next placeholder.
pub(crate) fn window_condition(
    from: Option<i64>,
    to: Option<i64>,
    mut param: impl FnMut() -> String,
) -> (String, Vec<i64>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    if let Some(f) = from {
        sql.push_str(&format!(" AND position >= {} AND position <> 0", param()));
        binds.push(f);
    }
    if let Some(t) = to {
        if from.is_none() && t <= 0 {
            // Unknown positions (0) belong to an open-start window whatever its end.
            sql.push_str(&format!(" AND (position < {} OR position = 0)", param()));
        } else {
            sql.push_str(&format!(" AND position < {}", param()));
        }
        binds.push(t);
    }
    (sql, binds)
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
