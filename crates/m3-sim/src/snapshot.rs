//! Snapshots of the simulated database for the demo: one compact JSON file with every table's
//! column names and rows (stored, normalized values) and the LMTS clock. Tokens, faults and
//! webhook subscriptions are not kept.
//!
//! ```json
//! {"format":"m3-sim-snapshot/1","tenant":"ERPBRIDGE_DEMO","company":100,"savedAt":1767225600000,
//!  "lastMs":1767225599000,"tables":{"MITMAS":{"columns":["MMCONO","MMITNO",...],"rows":[["100","A000001",...]]}}}
//! ```
//!
//! Rows are matched to the current schema by column name, so a snapshot survives added or
//! removed columns (missing ones are blank); tables missing from the snapshot keep their seed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::db::{self, Db};
use crate::error::SimError;

/// The `format` value of snapshot files.
pub const FORMAT: &str = "m3-sim-snapshot/1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotOut<'a> {
    format: &'static str,
    tenant: &'a str,
    company: u32,
    saved_at: i64,
    last_ms: i64,
    tables: BTreeMap<&'a str, TableOut<'a>>,
}

#[derive(Serialize)]
struct TableOut<'a> {
    columns: Vec<&'a str>,
    rows: Vec<&'a Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotIn {
    format: String,
    #[serde(default)]
    last_ms: i64,
    tables: BTreeMap<String, TableIn>,
}

#[derive(Deserialize)]
struct TableIn {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Serializes the database (caller holds the lock); also answers the generation it shows.
pub(crate) fn serialize(db: &Db, tenant: &str, company: u32) -> Result<(Vec<u8>, u64), SimError> {
    let tables = db
        .tables
        .iter()
        .map(|(name, t)| {
            (
                name.as_str(),
                TableOut {
                    columns: t.schema.def.columns.iter().map(|c| c.name.as_str()).collect(),
                    rows: t.rows.values().collect(),
                },
            )
        })
        .collect();
    let snap = SnapshotOut {
        format: FORMAT,
        tenant,
        company,
        saved_at: db::now_ms(),
        last_ms: db.last_ms,
        tables,
    };
    let bytes = serde_json::to_vec(&snap).map_err(|e| SimError::Snapshot {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok((bytes, db.generation))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io_err(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Replaces the rows of `db` (already seeded) by those of the snapshot file at `path`.
pub(crate) fn load_into(db: &mut Db, path: &Path) -> Result<(), SimError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let invalid = |message: String| SimError::Snapshot {
        path: path.display().to_string(),
        message,
    };
    let snap: SnapshotIn = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if snap.format != FORMAT {
        return Err(invalid(format!("format '{}', expected '{FORMAT}'", snap.format)));
    }
    let mut max_lmts = snap.last_ms;
    let mut loaded = 0usize;
    for (name, t) in snap.tables {
        let Some(data) = db.tables.get(&name) else {
            tracing::warn!(table = %name, "snapshot table unknown to the simulator, skipped");
            continue;
        };
        let schema = data.schema.clone();
        let map: Vec<Option<usize>> = t.columns.iter().map(|c| schema.def.column_index(c)).collect();
        let lmts = schema.column_pos(&format!("{}LMTS", schema.def.prefix));
        let mut rows = BTreeMap::new();
        for (i, r) in t.rows.into_iter().enumerate() {
            if r.len() != map.len() {
                return Err(invalid(format!(
                    "{name} row {i} has {} values, {} columns",
                    r.len(),
                    map.len()
                )));
            }
            let mut row: Vec<String> = schema.def.columns.iter().map(db::blank).collect();
            for (v, pos) in r.into_iter().zip(&map) {
                if let Some(p) = pos {
                    row[*p] = v;
                }
            }
            if let Some(ms) = lmts.and_then(|p| row[p].parse::<i64>().ok()) {
                max_lmts = max_lmts.max(ms);
            }
            rows.insert(db::row_key(&schema, &row), row);
        }
        loaded += rows.len();
        if let Some(data) = db.tables.get_mut(&name) {
            data.rows.replace_all(rows);
        }
    }
    db.last_ms = db.last_ms.max(max_lmts);
    db.generation += 1;
    tracing::info!(path = %path.display(), rows = loaded, last_ms = db.last_ms, "snapshot loaded");
    Ok(())
}
