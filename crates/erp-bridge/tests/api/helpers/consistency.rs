//! A reusable consistency checker for change detection, and a deterministic random workload.
//!
//! The oracle: M3's final table (the simulator's rows) mapped through the same default mapping
//! the product deploys must equal the state obtained by replaying the message log (last
//! `ItemUpdated` per subject is the state, `ItemDeleted` removes it), which must equal the read
//! model. The log must also hold no duplicate emission (two consecutive messages of one subject
//! with the same type and data), no delete of an entity the log does not hold, unique CloudEvents
//! ids, strictly increasing sequence numbers, and subjects that match the key fields of the data.
//!
//! Everything works through public interfaces: the HTTP API of an in-process [`erp_bridge::App`]
//! or of a child `erp-bridge` process ([`Api`]), and the simulator's public API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use m3_sim::{SimConfig, Simulator};
use mapping::{CompiledMapping, EntityKey};
use serde_json::Value;

use super::Env;

/// One simulator row: trimmed values by full column name.
pub type SimRow = BTreeMap<String, String>;

/// Compares a message log and a read model with M3's table, through a compiled mapping.
pub struct Checker {
    mapping: CompiledMapping,
    /// Full name of the company column (`MMCONO`).
    company_column: String,
    /// The company the connection reads (EXPORTMI answers for the session company only).
    company: String,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new("100")
    }
}

impl Checker {
    /// The default `Item` mapping on `MITMAS`, compiled exactly as the product compiles it.
    pub fn new(company: &str) -> Self {
        let spec = mapping::spec::default_item_mapping();
        let table = mapping::catalog::standard_table(&spec.table).expect("MITMAS is in the catalogue");
        let mapping = CompiledMapping::compile(&spec, &table).expect("the default mapping compiles");
        Self {
            company_column: table.column_for_field("CONO"),
            mapping,
            company: company.to_string(),
        }
    }

    /// The state M3's rows should produce: key -> `ItemUpdated` data. Rows of other companies
    /// and rows outside the mapping's filter are absent; rows the mapping rejects are returned
    /// separately (the connector skips them, so their keys are not compared).
    pub fn expected(&self, rows: &[SimRow]) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
        let columns = self.mapping.columns();
        let mut state = BTreeMap::new();
        let mut rejected = BTreeMap::new();
        for row in rows {
            if row.get(&self.company_column).map(String::as_str) != Some(self.company.as_str()) {
                continue;
            }
            let values: Vec<&str> = columns
                .iter()
                .map(|c| row.get(c).map(String::as_str).unwrap_or(""))
                .collect();
            if !self.mapping.matches(&values) {
                continue;
            }
            let key = self.mapping.key_of(&values).to_string();
            match self.mapping.apply(&values) {
                Ok(p) => {
                    let data: Value = serde_json::from_str(&p.payload)
                        .unwrap_or_else(|e| panic!("mapping produced invalid JSON for {key}: {e}: {}", p.payload));
                    state.insert(p.key.to_string(), data);
                }
                Err(e) => {
                    rejected.insert(key, e.to_string());
                }
            }
        }
        (state, rejected)
    }

    /// The entity key (`100|A000001`) named by the key fields of a message's data.
    fn key_of_data(&self, data: &Value) -> Option<String> {
        let parts: Option<Vec<String>> = self
            .mapping
            .key_field_names()
            .iter()
            .map(|f| match data.get(*f)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
        parts.map(|p| EntityKey(p).to_string())
    }

    /// Replay a message log (oldest first) into state, recording every log-level problem.
    pub fn replay(&self, messages: &[Value], report: &mut Report) -> BTreeMap<String, Value> {
        let updated = self.mapping.updated_type();
        let deleted = self.mapping.deleted_type();
        let mut state: BTreeMap<String, Value> = BTreeMap::new();
        let mut last: HashMap<String, (i64, String, Value)> = HashMap::new();
        let mut ids: HashMap<String, (i64, String)> = HashMap::new();
        let mut prev_seq = i64::MIN;
        for m in messages {
            report.messages += 1;
            let seq = m["seq"].as_i64().unwrap_or(-1);
            let subject = m["subject"].as_str().unwrap_or_default().to_string();
            let ty = m["type"].as_str().unwrap_or_default().to_string();
            let data = m["data"].clone();
            if seq <= prev_seq {
                report.problem(format!("log order: seq {seq} ({subject}) comes after seq {prev_seq}"));
            }
            prev_seq = seq;
            match m["id"].as_str() {
                None | Some("") => report.problem(format!("seq {seq} ({subject}): no CloudEvents id")),
                Some(id) => {
                    if let Some((other, other_subject)) = ids.insert(id.to_string(), (seq, subject.clone())) {
                        report.problem(format!(
                            "duplicate CloudEvents id {id}: seq {other} ({other_subject}) and seq {seq} ({subject}); consumers deduplicating on id drop one of them"
                        ));
                    }
                }
            }
            if !data.is_object() {
                report.problem(format!(
                    "seq {seq} ({subject}, {ty}): data is not a JSON object: {data}"
                ));
                continue;
            }
            match self.key_of_data(&data) {
                Some(k) if k == subject => {}
                k => report.problem(format!(
                    "seq {seq}: subject {subject:?} does not match the key fields of the data ({k:?}): {data}"
                )),
            }
            if let Some((pseq, pty, pdata)) = last.get(&subject) {
                if *pty == ty && *pdata == data {
                    report.problem(format!(
                        "duplicate emission for {subject}: seq {pseq} and seq {seq} are both {ty} with identical data {data}"
                    ));
                }
            }
            if ty == updated {
                report.updated += 1;
                state.insert(subject.clone(), data.clone());
            } else if ty == deleted {
                report.deleted += 1;
                if state.remove(&subject).is_none() {
                    report.problem(format!(
                        "seq {seq}: {deleted} for {subject}, which the log does not hold (never created, or already deleted)"
                    ));
                }
                // The key fields of the last state (the subject's text is ambiguous when a key
                // value contains the separator `|`).
                let expected = last
                    .get(&subject)
                    .filter(|(_, pty, _)| *pty == updated)
                    .map(|(_, _, pdata)| {
                        let fields = self.mapping.key_field_names();
                        Value::Object(
                            fields
                                .iter()
                                .filter_map(|f| pdata.get(*f).map(|v| (f.to_string(), v.clone())))
                                .collect(),
                        )
                    })
                    .or_else(|| {
                        EntityKey::parse(&subject, self.mapping.key_columns().len())
                            .and_then(|k| self.mapping.deleted_payload(&k).ok())
                            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
                    });
                if expected.as_ref() != Some(&data) {
                    report.problem(format!(
                        "seq {seq}: {deleted} for {subject} carries {data}, expected the key fields {}",
                        expected
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "(subject is not a key)".into())
                    ));
                }
            } else {
                report.problem(format!("seq {seq} ({subject}): unexpected message type {ty:?}"));
            }
            last.insert(subject, (seq, ty, data));
        }
        state
    }

    /// The full check: log invariants, replayed log == M3 through the mapping, and (when given)
    /// read model == replayed log.
    pub fn check(&self, messages: &[Value], read_model: Option<&[Value]>, rows: &[SimRow]) -> Report {
        let mut report = Report::default();
        let replayed = self.replay(messages, &mut report);
        let (expected, rejected) = self.expected(rows);
        report.entities = replayed.len();
        report.expected = expected.len();
        for (k, e) in &rejected {
            report
                .notes
                .push(format!("M3 row {k} cannot be mapped ({e}); not compared"));
        }
        let keys: BTreeSet<&String> = replayed.keys().chain(expected.keys()).collect();
        for k in keys {
            if rejected.contains_key(k) {
                continue;
            }
            match (expected.get(k), replayed.get(k)) {
                (Some(m3), None) => report.problem(format!(
                    "missing {k}: M3 has it ({m3}) but the replayed log does not (lost insert, or spurious delete)"
                )),
                (None, Some(log)) => report.problem(format!(
                    "extra {k}: the replayed log holds it ({log}) but M3 does not (lost delete)"
                )),
                (Some(m3), Some(log)) if m3 != log => report.problem(format!(
                    "differs {k} (lost update): {}",
                    field_diff("log", log, "M3", m3)
                )),
                _ => {}
            }
        }
        if let Some(items) = read_model {
            let mut model: BTreeMap<String, Value> = BTreeMap::new();
            for item in items {
                match self.key_of_data(item) {
                    Some(k) => {
                        if model.insert(k.clone(), item.clone()).is_some() {
                            report.problem(format!("read model lists {k} twice"));
                        }
                    }
                    None => report.problem(format!("read model item without key fields: {item}")),
                }
            }
            report.read_model = Some(model.len());
            let keys: BTreeSet<&String> = replayed.keys().chain(model.keys()).collect();
            for k in keys {
                match (replayed.get(k), model.get(k)) {
                    (Some(log), None) => {
                        report.problem(format!("read model lacks {k}, which the replayed log holds ({log})"))
                    }
                    (None, Some(rm)) => report.problem(format!(
                        "read model has {k} ({rm}), which the replayed log does not hold"
                    )),
                    (Some(log), Some(rm)) if log != rm => report.problem(format!(
                        "read model differs from the log for {k}: {}",
                        field_diff("read model", rm, "log", log)
                    )),
                    _ => {}
                }
            }
        }
        report
    }
}

/// `field: a=.. b=..` for every field whose values differ.
fn field_diff(a_name: &str, a: &Value, b_name: &str, b: &Value) -> String {
    let empty = serde_json::Map::new();
    let ao = a.as_object().unwrap_or(&empty);
    let bo = b.as_object().unwrap_or(&empty);
    let fields: BTreeSet<&String> = ao.keys().chain(bo.keys()).collect();
    fields
        .into_iter()
        .filter(|f| ao.get(*f) != bo.get(*f))
        .map(|f| {
            let show = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_else(|| "(absent)".into());
            format!("{f}: {a_name}={} {b_name}={}", show(ao.get(f)), show(bo.get(f)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a check found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Every violation, precise enough to debug from.
    pub problems: Vec<String>,
    /// Remarks that are not violations.
    pub notes: Vec<String>,
    /// Messages in the log.
    pub messages: usize,
    /// `ItemUpdated` messages.
    pub updated: usize,
    /// `ItemDeleted` messages.
    pub deleted: usize,
    /// Entities in the replayed log.
    pub entities: usize,
    /// Entities M3's rows should produce.
    pub expected: usize,
    /// Items in the read model, when it was checked.
    pub read_model: Option<usize>,
}

impl Report {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Panic with every problem unless the check passed.
    pub fn assert_ok(&self, context: &str) {
        assert!(self.is_ok(), "{context}: {self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages ({} updated, {} deleted), {} entities replayed, {} expected from M3",
            self.messages, self.updated, self.deleted, self.entities, self.expected
        )?;
        if let Some(n) = self.read_model {
            write!(f, ", {n} in the read model")?;
        }
        if self.problems.is_empty() {
            write!(f, "; consistent")?;
        } else {
            write!(f, "; {} PROBLEMS:", self.problems.len())?;
            for p in self.problems.iter().take(60) {
                write!(f, "\n  - {p}")?;
            }
            if self.problems.len() > 60 {
                write!(f, "\n  ... and {} more", self.problems.len() - 60)?;
            }
        }
        for n in self.notes.iter().take(10) {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

/// The HTTP API of a running erp-bridge (in-process or a child process), connection `demo`.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http: super::http_client(),
        }
    }

    /// GET a path with query pairs; `Err` when the server cannot be reached or answers non-JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<(u16, Value), String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let s = r.status().as_u16();
        let v = r.json().await.map_err(|e| e.to_string())?;
        Ok((s, v))
    }

    async fn get_ok(&self, path: &str, query: &[(&str, String)]) -> Value {
        match self.get(path, query).await {
            Ok((200, v)) => v,
            other => panic!("GET {path} {query:?}: {other:?}"),
        }
    }

    /// Whether `/healthz` answers.
    pub async fn is_up(&self) -> bool {
        matches!(self.get("/healthz", &[]).await, Ok((200, _)))
    }

    /// Every message of the log, oldest first (paged by `after`).
    pub async fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let v = self
                .get_ok(
                    "/api/connections/demo/messages",
                    &[("after", after.to_string()), ("limit", "1000".into())],
                )
                .await;
            let page = v["messages"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return out;
            }
            after = v["next"].as_i64().expect("next");
            out.extend(page);
        }
    }

    /// Every item of the read model, in key order (paged by `after`).
    pub async fn read_model(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![("limit", "1000".to_string())];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let v = self.get_ok("/api/connections/demo/read-models/items", &q).await;
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            match v["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => return out,
            }
        }
    }

    /// Status of the `Item` mapping (`Value::Null` while the server is unreachable).
    pub async fn table_status(&self) -> Value {
        match self.get("/api/connections/demo/status", &[]).await {
            Ok((200, v)) => v["tables"]["Item"].clone(),
            _ => Value::Null,
        }
    }

    /// Wait until `n` more polls have finished than now (60 s at most).
    pub async fn polls(&self, n: usize) {
        for _ in 0..n {
            let before = self.table_status().await["last_poll"].clone();
            super::eventually("a poll to finish", || async {
                let s = self.table_status().await;
                !s.is_null() && !s["last_poll"].is_null() && s["last_poll"] != before
            })
            .await;
        }
    }

    /// One check of log, read model and M3's current rows.
    pub async fn check(&self, checker: &Checker, sim: &Simulator) -> Report {
        let messages = self.messages().await;
        let model = self.read_model().await;
        checker.check(&messages, Some(&model), &sim.rows("MITMAS"))
    }

    /// After the last change: wait for a few polls, then check until the check passes and still
    /// passes after `settle` (long enough for another key reconciliation and polls), or until
    /// `timeout`. Returns the last report; a lost change never converges, so it fails here.
    pub async fn wait_consistent(&self, sim: &Simulator, settle: Duration, timeout: Duration) -> Report {
        let checker = Checker::default();
        let deadline = Instant::now() + timeout;
        self.polls(3).await;
        loop {
            let report = self.check(&checker, sim).await;
            if report.is_ok() {
                tokio::time::sleep(settle).await;
                self.polls(2).await;
                let again = self.check(&checker, sim).await;
                if again.is_ok() || Instant::now() >= deadline {
                    return again;
                }
            } else if Instant::now() >= deadline {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A simulated M3 with `items` items from `seed`, served on port 0, with its `.ionapi` file
/// written to the temp dir (like [`Env::new`], with a chosen seed).
pub async fn env_with_seed(items: usize, seed: u64) -> Env {
    env_with_modes(items, seed, Default::default()).await
}

/// Like [`env_with_seed`], with the simulator in strict `modes`.
pub async fn env_with_modes(items: usize, seed: u64, modes: m3_sim::SimModes) -> Env {
    let sim = Simulator::new(SimConfig {
        items,
        seed,
        modes,
        ..Default::default()
    });
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ion = sim.ionapi(&running.base_url);
    std::fs::write(dir.path().join("m3.ionapi"), ion.to_string()).unwrap();
    Env {
        sim,
        running,
        dir,
        http: super::http_client(),
    }
}

/// The seed of a test: `ERP_BRIDGE_TEST_SEED` when set (to replay a failure), else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("ERP_BRIDGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: small, deterministic, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "Bolt",
    "Nut",
    "Washer",
    "Schraube",
    "Ø8",
    "äöü",
    "\"quoted\"",
    "back\\slash",
    "50%",
    "<a>&b",
    "日本",
    "🙂",
    "O'Neil",
    "x/y.z",
    "M8x40",
    "tab\there",
    "ÉLAN",
    "null",
    "{json}",
    "€",
];
const STATUSES: &[&str] = &["10", "20", "50", "80", "90"];
const UNITS: &[&str] = &["PCS", "KG", "M", "L", "BOX"];
const TYPES: &[&str] = &["FG", "RM", "SP", "A", "001"];
const MAPPED: &[&str] = &["MMITDS", "MMFUDS", "MMSTAT", "MMUNMS", "MMITTY"];
const UNMAPPED: &[&str] = &["MMPUPR", "MMITGR", "MMRESP", "MMSAPR", "MMNEWE"];

/// Random but reproducible changes to `MITMAS` through the simulator's public API: inserts
/// (with quotes, slashes, non-ASCII in keys and names), updates of mapped and unmapped columns,
/// updates that change nothing, A->B->A flips, deletes, and re-inserts of deleted keys (some
/// with their exact former content).
pub struct Workload {
    sim: Simulator,
    rng: Rng,
    live: Vec<String>,
    dead: Vec<(String, SimRow)>,
    next: u64,
    tag: String,
    /// Changes made, by kind.
    pub counts: BTreeMap<&'static str, usize>,
}

impl Workload {
    pub fn new(sim: &Simulator, seed: u64) -> Workload {
        let live = sim
            .rows("MITMAS")
            .into_iter()
            .filter(|r| r["MMCONO"] == "100")
            .map(|r| r["MMITNO"].clone())
            .collect();
        Workload {
            sim: sim.clone(),
            rng: Rng::new(seed),
            live,
            dead: Vec::new(),
            next: 0,
            tag: format!("{:02}", seed % 100),
            counts: BTreeMap::new(),
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Changes made so far.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    fn text(&mut self, max_chars: usize) -> String {
        let n = self.rng.range(1, 4);
        let words: Vec<&str> = (0..n).map(|_| *self.rng.pick(WORDS)).collect();
        let s: String = words.join(" ").chars().take(max_chars).collect();
        s.trim().to_string()
    }

    fn value(&mut self, column: &str) -> String {
        match column {
            "MMITDS" => self.text(30),
            "MMFUDS" => self.text(60),
            "MMSTAT" => self.rng.pick(STATUSES).to_string(),
            "MMUNMS" => self.rng.pick(UNITS).to_string(),
            "MMITTY" => self.rng.pick(TYPES).to_string(),
            "MMPUPR" | "MMSAPR" => format!("{}.{:02}", self.rng.below(10_000), self.rng.below(100)),
            "MMNEWE" => format!("{}.{:03}", self.rng.below(1000), self.rng.below(1000)),
            "MMITGR" => format!("G{}", self.rng.below(100)),
            "MMRESP" => format!("USER{}", self.rng.below(10)),
            other => panic!("no generator for {other}"),
        }
    }

    fn new_itno(&mut self) -> String {
        self.next += 1;
        let n = self.next;
        let t = &self.tag;
        match self.rng.below(8) {
            0 => format!("Q{t}/{n}.A"),
            1 => format!("Q{t}'{n}"),
            2 => format!("Qä{t}-{n}"),
            3 => format!("Q{t} {n}"),
            4 => format!("q{t}-{n}"),
            _ => format!("Q{t}-{n:05}"),
        }
    }

    fn pick_live(&mut self) -> Option<String> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        Some(self.live[i].clone())
    }

    fn update(&mut self, itno: &str, changes: &[(String, String)]) {
        let refs: Vec<(&str, &str)> = changes.iter().map(|(c, v)| (c.as_str(), v.as_str())).collect();
        self.sim
            .update("MITMAS", &["100", itno], &refs)
            .unwrap_or_else(|e| panic!("update {itno} {changes:?}: {e}"));
    }

    fn insert_row(&mut self, itno: &str, values: &[(String, String)]) {
        let mut all: Vec<(&str, &str)> = vec![("MMCONO", "100"), ("MMITNO", itno)];
        all.extend(
            values
                .iter()
                .filter(|(c, _)| c != "MMCONO" && c != "MMITNO")
                .map(|(c, v)| (c.as_str(), v.as_str())),
        );
        self.sim
            .insert("MITMAS", &all)
            .unwrap_or_else(|e| panic!("insert {itno} {values:?}: {e}"));
        self.live.push(itno.to_string());
    }

    /// One random change.
    pub fn one(&mut self) {
        let roll = self.rng.below(100);
        match roll {
            0..=39 => {
                let Some(itno) = self.pick_live() else {
                    return self.insert();
                };
                let n = self.rng.range(1, 4) as usize;
                let changes: Vec<(String, String)> = (0..n)
                    .map(|_| {
                        let c = *self.rng.pick(MAPPED);
                        (c.to_string(), self.value(c))
                    })
                    .collect();
                self.update(&itno, &changes);
                self.count("update-mapped");
            }
            40..=54 => {
                let Some(itno) = self.pick_live() else {
                    return self.insert();
                };
                let c = *self.rng.pick(UNMAPPED);
                let v = self.value(c);
                self.update(&itno, &[(c.to_string(), v)]);
                self.count("update-unmapped");
            }
            55..=59 => {
                // Bumps LMTS, changes nothing.
                let Some(itno) = self.pick_live() else {
                    return self.insert();
                };
                let current = self.sim.get_latest("MITMAS", &["100", &itno]).expect("live row");
                self.update(&itno, &[("MMITDS".into(), current["MMITDS"].clone())]);
                self.count("update-same");
            }
            60..=64 => {
                // A -> B -> A back to back: the final state equals the start.
                let Some(itno) = self.pick_live() else {
                    return self.insert();
                };
                let current = self.sim.get_latest("MITMAS", &["100", &itno]).expect("live row");
                let b = self.value("MMSTAT");
                self.update(&itno, &[("MMSTAT".into(), b)]);
                self.update(&itno, &[("MMSTAT".into(), current["MMSTAT"].clone())]);
                self.count("flip");
            }
            65..=81 => self.insert(),
            82..=94 => {
                if self.live.len() <= 10 {
                    return self.insert();
                }
                let i = self.rng.below(self.live.len() as u64) as usize;
                let itno = self.live.swap_remove(i);
                let row = self.sim.get_latest("MITMAS", &["100", &itno]).expect("live row");
                self.sim
                    .delete("MITMAS", &["100", &itno])
                    .unwrap_or_else(|e| panic!("delete {itno}: {e}"));
                self.dead.push((itno, row));
                self.count("delete");
            }
            _ => {
                if self.dead.is_empty() {
                    return self.insert();
                }
                let i = self.rng.below(self.dead.len() as u64) as usize;
                let (itno, row) = self.dead.swap_remove(i);
                let values: Vec<(String, String)> = if self.rng.chance(0.5) {
                    // The exact former content (mapped and unmapped columns).
                    MAPPED
                        .iter()
                        .chain(UNMAPPED)
                        .map(|c| (c.to_string(), row[*c].clone()))
                        .collect()
                } else {
                    MAPPED.iter().map(|c| (c.to_string(), self.value(c))).collect()
                };
                self.insert_row(&itno, &values);
                self.count("reinsert");
            }
        }
    }

    /// A new item with random mapped and unmapped values.
    pub fn insert(&mut self) {
        let itno = self.new_itno();
        let values: Vec<(String, String)> = MAPPED
            .iter()
            .chain(&UNMAPPED[..2])
            .map(|c| (c.to_string(), self.value(c)))
            .collect();
        self.insert_row(&itno, &values);
        self.count("insert");
    }

    /// `n` changes back to back (many share one millisecond, so one LMTS).
    pub fn burst(&mut self, n: usize) {
        for _ in 0..n {
            self.one();
        }
    }

    pub fn summary(&self) -> String {
        format!("{} changes {:?}", self.total(), self.counts)
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
