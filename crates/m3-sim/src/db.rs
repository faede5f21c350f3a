//! The simulated M3 database: table schemas (the standard catalogue plus a few customer
//! extensions only MDP knows about), rows stored as normalized strings in primary-key order,
//! and the audit fields (RGDT, RGTM, LMDT, CHNO, CHID, LMTS) maintained on every write.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use mapping::catalog::{self, Column, ColumnKind, Table};

use crate::commit::CommitQueue;
use crate::error::SimError;
use crate::modes::SimModes;
use crate::rows::Rows;
use crate::webhook::Op;

/// Scale of the fixed-point decimals used for numeric comparisons (9 decimals).
const DEC_SCALE: i128 = 1_000_000_000;

/// A table's schema plus what MDP says about it.
#[derive(Debug, Clone)]
pub(crate) struct TableSchema {
    /// Columns and primary key; includes custom columns.
    pub def: Table,
    /// Names of columns that are customer extensions (not in the standard catalogue).
    pub custom_columns: HashSet<String>,
    /// MDP `tableCategory`.
    pub category: &'static str,
    /// MDP `tableMaintainedBy`.
    pub maintained_by: &'static str,
    /// Indexes by number (`00` is the primary key), with their columns.
    pub indexes: Vec<(String, Vec<String>)>,
    /// Positions of the primary-key columns in `def.columns`.
    pub key_pos: Vec<usize>,
}

impl TableSchema {
    fn new(
        def: Table,
        custom: &[&str],
        category: &'static str,
        maintained_by: &'static str,
        extra_indexes: &[(&str, &[&str])],
    ) -> TableSchema {
        let key_pos = def
            .primary_key
            .iter()
            .map(|k| def.column_index(k).expect("key column in table"))
            .collect();
        let mut indexes = vec![("00".to_string(), def.primary_key.clone())];
        for (num, fields) in extra_indexes {
            indexes.push((
                num.to_string(),
                fields.iter().map(|f| def.column_for_field(f)).collect(),
            ));
        }
        TableSchema {
            custom_columns: custom.iter().map(|c| c.to_string()).collect(),
            def,
            category,
            maintained_by,
            indexes,
            key_pos,
        }
    }

    /// Column by full name, or its four-letter field name.
    pub fn column_pos(&self, name: &str) -> Option<usize> {
        self.def.column_index(name)
    }

    /// The column at a position.
    pub fn col(&self, pos: usize) -> &Column {
        &self.def.columns[pos]
    }

    /// The position of the company column (always first).
    pub fn cono_pos(&self) -> usize {
        self.key_pos[0]
    }
}

/// One value of a primary key, ordered like M3 orders its indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyPart {
    /// A numeric key value (fixed point, 9 decimals).
    Num(i128),
    /// An alphanumeric key value (trimmed).
    Str(String),
}

/// One table's rows.
#[derive(Debug, Clone)]
pub(crate) struct TableData {
    pub schema: Arc<TableSchema>,
    /// The rows by key, with their LMTS index; changed only through [`Rows`]' methods.
    pub rows: Rows,
}

/// Which write the audit fields are set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Insert,
    Update,
}

/// The whole database, guarded by one mutex in [`crate::Simulator`].
#[derive(Debug)]
pub(crate) struct Db {
    pub tables: BTreeMap<String, TableData>,
    /// The last LMTS handed out; LMTS never goes backwards.
    pub last_ms: i64,
    /// Bumped on every write (insert, update, delete, load); autosave compares it.
    pub generation: u64,
    /// Where change events go (webhooks); `None` while seeding.
    pub hub: Option<Arc<crate::webhook::Hub>>,
    /// The strict modes in force (see [`SimModes`]).
    pub modes: SimModes,
    /// Writes waiting for their late commit ([`SimModes::commit_delay_ms`]).
    pub commits: CommitQueue,
}

/// The schemas of every table the simulator has, in MDP order.
pub(crate) fn schemas() -> Vec<TableSchema> {
    let mut out = Vec::new();
    for t in catalog::standard_tables() {
        let s = match t.name.as_str() {
            "MITMAS" => {
                let mut t = t;
                // Customer extensions on the item master, visible only through MDP.
                let custom = [
                    ("ZZCO", "Country of origin (custom)", ColumnKind::Alpha, 3, 0),
                    ("ZZQC", "Quality class (custom)", ColumnKind::Alpha, 2, 0),
                ];
                for (f, d, k, l, dec) in custom {
                    t.columns.push(Column {
                        name: format!("MM{f}"),
                        description: d.to_string(),
                        kind: k,
                        length: l,
                        decimals: dec,
                    });
                }
                TableSchema::new(
                    t,
                    &["MMZZCO", "MMZZQC"],
                    "Master file",
                    "MMS001",
                    &[("10", &["CONO", "ITDS", "ITNO"]), ("20", &["CONO", "LMDT", "ITNO"])],
                )
            }
            "OCUSMA" => TableSchema::new(t, &[], "Master file", "CRS610", &[("10", &["CONO", "CUNM", "CUNO"])]),
            "CIDMAS" => TableSchema::new(t, &[], "Master file", "CRS620", &[("10", &["CONO", "SUNM", "SUNO"])]),
            "OOHEAD" => TableSchema::new(
                t,
                &[],
                "Transaction file",
                "OIS100",
                &[("10", &["CONO", "CUNO", "ORNO"])],
            ),
            "OOLINE" => TableSchema::new(
                t,
                &[],
                "Transaction file",
                "OIS101",
                &[("10", &["CONO", "ITNO", "ORNO", "PONR", "POSX"])],
            ),
            "MITBAL" => TableSchema::new(t, &[], "Master file", "MMS002", &[("10", &["CONO", "ITNO", "WHLO"])]),
            "MITWHL" => TableSchema::new(t, &[], "Master file", "MMS005", &[]),
            _ => TableSchema::new(t, &[], "Master file", "", &[]),
        };
        out.push(s);
    }
    out.push(cugex1());
    out
}

/// `CUGEX1`: M3's generic customer-extension table (key: file + up to 8 key values).
fn cugex1() -> TableSchema {
    use ColumnKind::{Alpha as A, Date as D, Numeric as N};
    let defs: &[(&str, &str, ColumnKind, u16, u8)] = &[
        ("CONO", "Company", N, 3, 0),
        ("FILE", "File", A, 10, 0),
        ("PK01", "Primary key 1", A, 30, 0),
        ("PK02", "Primary key 2", A, 30, 0),
        ("PK03", "Primary key 3", A, 30, 0),
        ("PK04", "Primary key 4", A, 30, 0),
        ("PK05", "Primary key 5", A, 30, 0),
        ("PK06", "Primary key 6", A, 30, 0),
        ("PK07", "Primary key 7", A, 30, 0),
        ("PK08", "Primary key 8", A, 30, 0),
        ("A030", "Alpha field 30 positions 0", A, 30, 0),
        ("A130", "Alpha field 30 positions 1", A, 30, 0),
        ("N096", "Numeric field 9+6 positions 0", N, 15, 6),
        ("DAT1", "Date field 1", D, 8, 0),
        ("CHB1", "Check box 1", N, 1, 0),
        ("RGDT", "Entry date", D, 8, 0),
        ("RGTM", "Entry time", N, 6, 0),
        ("LMDT", "Change date", D, 8, 0),
        ("CHNO", "Change number", N, 3, 0),
        ("CHID", "Changed by", A, 10, 0),
        ("LMTS", "Timestamp", N, 18, 0),
    ];
    let columns: Vec<Column> = defs
        .iter()
        .map(|&(f, d, k, l, dec)| Column {
            name: format!("F1{f}"),
            description: d.to_string(),
            kind: k,
            length: l,
            decimals: dec,
        })
        .collect();
    let key = [
        "CONO", "FILE", "PK01", "PK02", "PK03", "PK04", "PK05", "PK06", "PK07", "PK08",
    ];
    let def = Table {
        name: "CUGEX1".into(),
        prefix: "F1".into(),
        description: "User-defined fields - extension table".into(),
        primary_key: key.iter().map(|f| format!("F1{f}")).collect(),
        columns,
    };
    let names: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    TableSchema::new(def, &names, "Customer extension", "CUSEXTMI", &[])
}

/// Parses an M3 numeric string into fixed point with 9 decimals; `None` if not a number.
pub(crate) fn parse_dec(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if int.len() > 27 {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v * 10 + i128::from(b - b'0');
    }
    let mut f: i128 = 0;
    let mut scale = DEC_SCALE;
    for b in frac.bytes().take(9) {
        scale /= 10;
        f += i128::from(b - b'0') * scale;
    }
    let v = v * DEC_SCALE + f;
    Some(if neg { -v } else { v })
}

/// Normalizes a value for a column: alpha trimmed at the end, numerics without padding or
/// leading/trailing zeros, dates `yyyyMMdd` or `0`.
pub(crate) fn normalize(col: &Column, raw: &str) -> Result<String, SimError> {
    let bad = |reason: &str| SimError::InvalidValue {
        column: col.name.clone(),
        value: raw.to_string(),
        reason: reason.to_string(),
    };
    match col.kind {
        ColumnKind::Alpha => {
            let v = raw.trim_end();
            if v.chars().count() > usize::from(col.length) {
                return Err(bad(&format!("longer than {} characters", col.length)));
            }
            Ok(v.to_string())
        }
        ColumnKind::Numeric => {
            let v = raw.trim();
            if v.is_empty() {
                return Ok("0".into());
            }
            let (neg, body) = match v.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, v.strip_prefix('+').unwrap_or(v)),
            };
            let (int, frac) = body.split_once('.').unwrap_or((body, ""));
            if (int.is_empty() && frac.is_empty())
                || !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad("not numeric"));
            }
            let int = int.trim_start_matches('0');
            let frac = frac.trim_end_matches('0');
            let max_int = usize::from(col.length.saturating_sub(u16::from(col.decimals)));
            if int.len() > max_int {
                return Err(bad(&format!("more than {max_int} integer digits")));
            }
            if frac.len() > usize::from(col.decimals) {
                return Err(bad(&format!("more than {} decimals", col.decimals)));
            }
            let int = if int.is_empty() { "0" } else { int };
            let mut out = String::new();
            if neg && (int != "0" || !frac.is_empty()) {
                out.push('-');
            }
            out.push_str(int);
            if !frac.is_empty() {
                out.push('.');
                out.push_str(frac);
            }
            Ok(out)
        }
        ColumnKind::Date => {
            let v = raw.trim();
            if v.is_empty() || v.bytes().all(|b| b == b'0') {
                return Ok("0".into());
            }
            if v.len() != 8 || NaiveDate::parse_from_str(v, "%Y%m%d").is_err() {
                return Err(bad("not a date yyyyMMdd"));
            }
            Ok(v.to_string())
        }
    }
}

/// The blank value of a column (`""` or `0`).
pub(crate) fn blank(col: &Column) -> String {
    match col.kind {
        ColumnKind::Alpha => String::new(),
        _ => "0".to_string(),
    }
}

/// `yyyyMMdd` and `HHmmss` of an epoch-milliseconds instant (UTC).
pub(crate) fn date_time_of(ms: i64) -> (String, String) {
    let dt = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    (
        dt.format("%Y%m%d").to_string(),
        dt.format("%H%M%S").to_string().trim_start_matches('0').to_string(),
    )
}

/// The current wall clock in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Db {
    /// An empty database with every table of [`schemas`].
    pub fn new() -> Db {
        let tables = schemas()
            .into_iter()
            .map(|s| {
                let lmts_pos = s.column_pos(&s.def.column_for_field("LMTS"));
                (
                    s.def.name.clone(),
                    TableData {
                        schema: Arc::new(s),
                        rows: Rows::new(lmts_pos),
                    },
                )
            })
            .collect();
        Db {
            tables,
            last_ms: 0,
            generation: 0,
            hub: None,
            modes: SimModes::default(),
            commits: CommitQueue::default(),
        }
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Result<&TableData, SimError> {
        self.tables
            .get(name)
            .ok_or_else(|| SimError::UnknownTable(name.to_string()))
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut TableData, SimError> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| SimError::UnknownTable(name.to_string()))
    }

    /// The next LMTS: now, but never earlier than the last one handed out (ties allowed).
    pub fn stamp(&mut self) -> i64 {
        let ms = now_ms().max(self.last_ms);
        self.last_ms = ms;
        ms
    }

    /// Builds a key from values in primary-key order.
    pub fn make_key(schema: &TableSchema, key: &[&str]) -> Result<Vec<KeyPart>, SimError> {
        if key.len() != schema.key_pos.len() {
            return Err(SimError::KeyArity {
                table: schema.def.name.clone(),
                expected: schema.key_pos.len(),
                got: key.len(),
            });
        }
        schema
            .key_pos
            .iter()
            .zip(key)
            .map(|(&p, v)| {
                let col = schema.col(p);
                let v = normalize(col, v)?;
                Ok(key_part(col, &v))
            })
            .collect()
    }

    /// Inserts a row; values by full column name, the rest blank. Audit fields are set.
    pub fn insert(
        &mut self,
        table: &str,
        values: &[(&str, &str)],
        user: &str,
        default_cono: u32,
    ) -> Result<Vec<String>, SimError> {
        let schema = self.table(table)?.schema.clone();
        let mut row: Vec<String> = schema.def.columns.iter().map(blank).collect();
        row[schema.cono_pos()] = default_cono.to_string();
        for (name, value) in values {
            let pos = schema.column_pos(name).ok_or_else(|| SimError::UnknownColumn {
                table: table.to_string(),
                column: name.to_string(),
            })?;
            row[pos] = normalize(schema.col(pos), value)?;
        }
        let key = row_key(&schema, &row);
        if self.latest(table, &key).is_some() {
            return Err(SimError::DuplicateKey {
                table: table.to_string(),
                key: key_text(&schema, &row),
            });
        }
        let ms = self.stamp();
        set_audit(&schema, &mut row, ms, user, WriteKind::Insert);
        tracing::debug!(table, key = %key_text(&schema, &row), user, "insert");
        self.commit(schema, key, Op::Create, None, Some(row.clone()));
        Ok(row)
    }

    /// Updates a row found by key; changes by full column name. Always bumps CHNO and LMTS.
    pub fn update(
        &mut self,
        table: &str,
        key: &[KeyPart],
        changes: &[(&str, &str)],
        user: &str,
    ) -> Result<Vec<String>, SimError> {
        let schema = self.table(table)?.schema.clone();
        let mut normalized = Vec::with_capacity(changes.len());
        for (name, value) in changes {
            let pos = schema.column_pos(name).ok_or_else(|| SimError::UnknownColumn {
                table: table.to_string(),
                column: name.to_string(),
            })?;
            if schema.key_pos.contains(&pos) {
                return Err(SimError::KeyChange(name.to_string()));
            }
            normalized.push((pos, normalize(schema.col(pos), value)?));
        }
        let before = self.latest(table, key).cloned().ok_or_else(|| SimError::NotFound {
            table: table.to_string(),
            key: key_parts_text(key),
        })?;
        let ms = self.stamp();
        let mut row = before.clone();
        for (pos, v) in normalized {
            row[pos] = v;
        }
        set_audit(&schema, &mut row, ms, user, WriteKind::Update);
        tracing::debug!(table, key = %key_parts_text(key), user, "update");
        self.commit(schema, key.to_vec(), Op::Update, Some(before), Some(row.clone()));
        Ok(row)
    }

    /// Deletes a row found by key.
    pub fn delete(&mut self, table: &str, key: &[KeyPart], user: &str) -> Result<Vec<String>, SimError> {
        let schema = self.table(table)?.schema.clone();
        let row = self.latest(table, key).cloned().ok_or_else(|| SimError::NotFound {
            table: table.to_string(),
            key: key_parts_text(key),
        })?;
        tracing::debug!(table, key = %key_parts_text(key), user, "delete");
        self.commit(schema, key.to_vec(), Op::Delete, Some(row.clone()), None);
        Ok(row)
    }

    /// The newest image of a row as writes see it: a pending (not yet committed) write's
    /// image if there is one, else the committed row.
    pub fn latest(&self, table: &str, key: &[KeyPart]) -> Option<&Vec<String>> {
        match self.commits.newest(table, key) {
            Some(image) => image,
            None => self.tables.get(table)?.rows.get(key),
        }
    }

    /// Records a write: bumps the generation, then applies it at once, or queues it for its
    /// late commit when [`SimModes::commit_delay_ms`] is set (or earlier writes still wait).
    fn commit(
        &mut self,
        schema: Arc<TableSchema>,
        key: Vec<KeyPart>,
        op: Op,
        before: Option<Vec<String>>,
        after: Option<Vec<String>>,
    ) {
        self.generation += 1;
        let delay = self.modes.commit_delay_ms;
        if delay == 0 && self.commits.is_empty() {
            self.apply(&schema, key, op, before, after);
        } else {
            self.commits
                .push(schema, key, op, before, after, Duration::from_millis(delay));
        }
    }

    /// Makes a write visible: changes the table and hands the change to the webhook hub.
    fn apply(
        &mut self,
        schema: &TableSchema,
        key: Vec<KeyPart>,
        op: Op,
        before: Option<Vec<String>>,
        after: Option<Vec<String>>,
    ) {
        if let Some(hub) = &self.hub {
            hub.emit(schema, op, before.as_deref(), after.as_deref());
        }
        if let Some(data) = self.tables.get_mut(&schema.def.name) {
            match after {
                Some(row) => {
                    data.rows.insert(key, row);
                }
                None => {
                    data.rows.remove(&key);
                }
            }
        }
    }

    /// Commits every pending write that is due; called before every read.
    /// Whether a pending write is due (then [`Db::settle`] must run before a read answers).
    pub fn has_due(&self) -> bool {
        self.commits.next_due().is_some_and(|due| due <= Instant::now())
    }

    pub fn settle(&mut self) {
        if !self.commits.is_empty() {
            self.commit_until(Some(Instant::now()));
        }
    }

    /// Commits every pending write, due or not (before a save).
    pub fn commit_all(&mut self) {
        self.commit_until(None);
    }

    fn commit_until(&mut self, now: Option<Instant>) {
        while let Some(p) = self.commits.pop_due(now) {
            self.generation += 1;
            let schema = p.schema.clone();
            self.apply(&schema, p.key, p.op, p.before, p.after);
        }
    }

    /// Inserts a fully built row as is (seeding), keeping its audit fields.
    pub fn load(&mut self, table: &str, row: Vec<String>) -> Result<(), SimError> {
        let data = self.table_mut(table)?;
        let key = row_key(&data.schema, &row);
        data.rows.insert(key, row);
        self.generation += 1;
        Ok(())
    }
}

/// The key part of one stored (normalized) value.
pub(crate) fn key_part(col: &Column, value: &str) -> KeyPart {
    match col.kind {
        ColumnKind::Alpha => KeyPart::Str(value.trim().to_string()),
        _ => KeyPart::Num(parse_dec(value).unwrap_or(0)),
    }
}

/// The primary key of a stored row.
pub(crate) fn row_key(schema: &TableSchema, row: &[String]) -> Vec<KeyPart> {
    schema
        .key_pos
        .iter()
        .map(|&p| key_part(schema.col(p), &row[p]))
        .collect()
}

fn key_text(schema: &TableSchema, row: &[String]) -> String {
    schema
        .key_pos
        .iter()
        .map(|&p| row[p].as_str())
        .collect::<Vec<_>>()
        .join("/")
}

fn key_parts_text(key: &[KeyPart]) -> String {
    key.iter()
        .map(|k| match k {
            KeyPart::Str(s) => s.clone(),
            KeyPart::Num(n) => {
                let int = n / DEC_SCALE;
                let frac = (n % DEC_SCALE).abs();
                if frac == 0 {
                    int.to_string()
                } else {
                    let f = format!("{frac:09}");
                    format!("{int}.{}", f.trim_end_matches('0'))
                }
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sets the audit columns of a row for a write at `ms` by `user`.
pub(crate) fn set_audit(schema: &TableSchema, row: &mut [String], ms: i64, user: &str, kind: WriteKind) {
    let p = &schema.def.prefix;
    let pos = |f: &str| schema.column_pos(&format!("{p}{f}"));
    let (date, time) = date_time_of(ms);
    let time = if time.is_empty() { "0".into() } else { time };
    if kind == WriteKind::Insert {
        if let Some(i) = pos("RGDT") {
            row[i] = date.clone();
        }
        if let Some(i) = pos("RGTM") {
            row[i] = time;
        }
    }
    if let Some(i) = pos("LMDT") {
        row[i] = date;
    }
    if let Some(i) = pos("CHNO") {
        row[i] = match kind {
            WriteKind::Insert => "1".to_string(),
            _ => {
                let n = row[i].parse::<u32>().unwrap_or(0) + 1;
                // CHNO is N3: it wraps like M3's does.
                (if n > 999 { 1 } else { n }).to_string()
            }
        };
    }
    if let Some(i) = pos("CHID") {
        row[i] = user.chars().take(10).collect();
    }
    if let Some(i) = pos("LMTS") {
        row[i] = ms.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_normalization() {
        let col = Column {
            name: "MMPUPR".into(),
            description: String::new(),
            kind: ColumnKind::Numeric,
            length: 17,
            decimals: 6,
        };
        assert_eq!(normalize(&col, " 0012.5000 ").unwrap(), "12.5");
        assert_eq!(normalize(&col, "").unwrap(), "0");
        assert_eq!(normalize(&col, "-0.0").unwrap(), "0");
        assert_eq!(normalize(&col, "-3").unwrap(), "-3");
        assert!(normalize(&col, "1.1234567").is_err());
        assert!(normalize(&col, "abc").is_err());
        assert_eq!(parse_dec("12.5"), Some(12_500_000_000));
        assert!(parse_dec("1764000000000").unwrap() > parse_dec("999").unwrap());
    }

    #[test]
    fn audit_on_insert_and_update() {
        let mut db = Db::new();
        let row = db
            .insert("MITMAS", &[("MMITNO", "X1"), ("MMITDS", "Thing")], "TEST", 100)
            .unwrap();
        let s = db.table("MITMAS").unwrap().schema.clone();
        let get = |row: &[String], c: &str| row[s.column_pos(c).unwrap()].clone();
        assert_eq!(get(&row, "MMCHNO"), "1");
        assert_eq!(get(&row, "MMCONO"), "100");
        let key = Db::make_key(&s, &["100", "X1"]).unwrap();
        let row2 = db.update("MITMAS", &key, &[], "TEST").unwrap();
        assert_eq!(get(&row2, "MMCHNO"), "2");
        assert!(get(&row2, "MMLMTS").parse::<i64>().unwrap() >= get(&row, "MMLMTS").parse().unwrap());
        assert!(db.insert("MITMAS", &[("MMITNO", "X1")], "TEST", 100).is_err());
    }
}
