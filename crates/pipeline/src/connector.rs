//! The hosted connector: one task per deployed mapping running the initial load, then polling on
//! the `(LMTS, key)` cursor with an overlap window, plus periodic key reconciliation to find
//! deletes. Every page is one store transaction: messages, entity state and cursor together.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use m3::{M3Client, M3Error};
use mapping::catalog::{ColumnKind, Table};
use mapping::{CompiledMapping, EntityKey, MappingSpec};
use rand::Rng;
use serde::{Deserialize, Serialize};
use store::{Batch, Change, ChangeOp, Cursor, NewMessage, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use crate::error::PipelineError;
use crate::query::paged_select;
use crate::status::{Connectivity, StatusBoard, TableStatus};

/// Tuning of the connector loops.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Connection name (appears in topics, CloudEvents source and API paths).
    pub connection: String,
    /// Pause between polls of a table when it is caught up.
    pub poll_interval: Duration,
    /// Pause between key reconciliations (delete detection).
    pub reconcile_interval: Duration,
    /// Rows per `EXPORTMI/Select` page.
    pub page_size: u32,
    /// How far before the stored cursor each poll re-reads, for changes committed out of order.
    pub overlap: Duration,
    /// `EXPORTMI` column separator; must not occur in the data.
    pub separator: char,
    /// Cron schedule of a full re-sync (re-read every row; only differences are emitted).
    pub full_resync: Option<crate::schedule::Schedule>,
    /// The mappings run on a self-hosted connector elsewhere: this one records what is deployed
    /// (for the API and the connector's configuration) but reads nothing from M3.
    pub remote: bool,
    /// The connection's lease in the store, when several processes share it: mappings read M3
    /// only while this is `true` (the others stand by). `None` = always read.
    pub lease: Option<watch::Receiver<bool>>,
    /// For a self-hosted connection: the API's M3 calls (table search, previews) go through
    /// its connector (see [`crate::remote_mi`]).
    pub via: Option<crate::remote_mi::RemoteMi>,
}

impl ConnectorSettings {
    /// Defaults for a connection name.
    pub fn new(connection: &str) -> Self {
        Self {
            connection: connection.to_string(),
            poll_interval: Duration::from_secs(2),
            reconcile_interval: Duration::from_secs(30),
            page_size: 1000,
            overlap: Duration::from_secs(5),
            separator: '~',
            full_resync: None,
            remote: false,
            lease: None,
            via: None,
        }
    }
}

/// A deployed mapping and the table it reads.
#[derive(Debug, Clone)]
pub struct MappingSource {
    /// The compiled mapping.
    pub mapping: Arc<CompiledMapping>,
    /// Its table's metadata.
    pub table: Arc<Table>,
    /// Fingerprint of the mapping definition; a changed mapping starts a new initial load.
    pub fingerprint: String,
}

impl MappingSource {
    /// Compile a mapping against its table.
    pub fn new(spec: &MappingSpec, table: Table) -> Result<Self, mapping::MappingError> {
        let mapping = CompiledMapping::compile(spec, &table)?;
        Ok(Self {
            mapping: Arc::new(mapping),
            table: Arc::new(table),
            fingerprint: Self::fingerprint_of(spec),
        })
    }

    /// The fingerprint of a mapping definition (its canonical JSON, hashed).
    pub fn fingerprint_of(spec: &MappingSpec) -> String {
        let canonical = serde_json::to_string(spec).expect("mapping specs serialise");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()))
    }
}

/// Where a mapping's source stands; stored as the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
enum Position {
    /// Reading all rows in key order; `after` is the last key read, `high_water` the newest
    /// change timestamp when the load started (polling resumes from there).
    InitialLoad {
        after: Option<Vec<String>>,
        high_water: i64,
        /// A scheduled full re-sync (content hashes kept: only real differences are emitted).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Polling changes with a timestamp at or after `lmts` minus the overlap.
    Polling { lmts: i64 },
}

/// The connector of one connection: one task per deployed mapping. Cheap to clone; mappings
/// are deployed and undeployed while it runs.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<M3Client>,
    store: Store,
    settings: Arc<ConnectorSettings>,
    status: StatusBoard,
    running: RwLock<BTreeMap<String, Running>>,
    /// Bumped whenever the set of deployed mappings changes.
    changes: watch::Sender<u64>,
}

struct Running {
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Connector {
    /// A connector with no mappings deployed yet.
    pub fn new(client: Arc<M3Client>, store: Store, settings: ConnectorSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                store,
                settings: Arc::new(settings),
                status: StatusBoard::default(),
                running: RwLock::new(BTreeMap::new()),
                changes: watch::channel(0).0,
            }),
        }
    }

    /// The status board the connector reports into.
    pub fn status(&self) -> StatusBoard {
        self.inner.status.clone()
    }

    /// The M3 client it reads with.
    pub fn client(&self) -> Arc<M3Client> {
        self.inner.client.clone()
    }

    /// How the API reaches this connection's M3: directly, or through its self-hosted connector.
    pub fn m3(&self) -> crate::remote_mi::M3Access {
        match &self.inner.settings.via {
            Some(r) => crate::remote_mi::M3Access::Remote(r.clone()),
            None => crate::remote_mi::M3Access::Direct(self.inner.client.clone()),
        }
    }

    /// Notified whenever a mapping is deployed or undeployed (the value counts changes).
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Whether the mappings run on a self-hosted connector (see [`ConnectorSettings::remote`]).
    pub fn is_remote(&self) -> bool {
        self.inner.settings.remote
    }

    /// The connection name.
    pub fn connection(&self) -> &str {
        &self.inner.settings.connection
    }

    /// The deployed mappings, by name.
    pub fn mappings(&self) -> Vec<Arc<CompiledMapping>> {
        let running = self.inner.running.read().expect("lock");
        running.values().map(|r| r.worker.src.mapping.clone()).collect()
    }

    /// The fingerprint of every deployed mapping's definition, by name.
    pub fn fingerprints(&self) -> BTreeMap<String, String> {
        let running = self.inner.running.read().expect("lock");
        running
            .iter()
            .map(|(n, r)| (n.clone(), r.worker.src.fingerprint.clone()))
            .collect()
    }

    fn workers(&self) -> Vec<Arc<Worker>> {
        let running = self.inner.running.read().expect("lock");
        running.values().map(|r| r.worker.clone()).collect()
    }

    /// Start (or restart with a new definition) the task of a mapping. A changed definition has a
    /// new fingerprint, so its table is exported again.
    pub async fn deploy(&self, src: MappingSource) {
        let name = src.mapping.name.to_string();
        self.undeploy(&name).await;
        let inner = &self.inner;
        let mut columns = src.mapping.columns();
        let lmts = src.table.column_for_field("LMTS");
        let lmts_index = match columns.iter().position(|c| *c == lmts) {
            Some(i) => i,
            None => {
                columns.push(lmts);
                columns.len() - 1
            }
        };
        inner.status.table(&name, |t| {
            *t = TableStatus {
                table: src.table.name.clone(),
                ..Default::default()
            }
        });
        let worker = Arc::new(Worker {
            client: inner.client.clone(),
            store: inner.store.clone(),
            settings: inner.settings.clone(),
            status: inner.status.clone(),
            src,
            columns,
            lmts_index,
            reconcile_progress: std::sync::Mutex::new(None),
        });
        let (stop, rx) = watch::channel(false);
        let task = if inner.settings.remote {
            // A self-hosted connector reads M3; this side only knows what is deployed.
            tokio::spawn(async {})
        } else {
            tokio::spawn(worker.clone().run(rx))
        };
        info!(connection = %inner.settings.connection, mapping = %name, remote = inner.settings.remote, "mapping deployed");
        inner
            .running
            .write()
            .expect("lock")
            .insert(name, Running { worker, stop, task });
        inner.changes.send_modify(|n| *n += 1);
    }

    /// Stop a mapping's task (after its current page). Returns whether it was deployed.
    pub async fn undeploy(&self, name: &str) -> bool {
        let old = self.inner.running.write().expect("lock").remove(name);
        match old {
            Some(r) => {
                let _ = r.stop.send(true);
                let _ = r.task.await;
                self.inner.status.update(|s| {
                    s.tables.remove(name);
                });
                self.inner.changes.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// Stop every mapping's task.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = std::mem::take(&mut *self.inner.running.write().expect("lock"))
            .into_values()
            .collect();
        for r in &all {
            let _ = r.stop.send(true);
        }
        for r in all {
            let _ = r.task.await;
        }
    }

    /// Whether any deployed mapping reads `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.workers().iter().any(|w| w.src.table.name == table)
    }

    /// Apply one webhook event to every deployed mapping of its table.
    pub async fn webhook(&self, event: &WebhookEvent) -> Result<WebhookOutcome, PipelineError> {
        let mut outcome = WebhookOutcome::default();
        for w in self
            .workers()
            .iter()
            .filter(|w| w.src.table.name == event.document_name)
        {
            outcome.mappings += 1;
            let (messages, read_back) = w.webhook(event).await?;
            outcome.messages += messages;
            outcome.read_back |= read_back;
        }
        self.inner.status.update(|s| s.webhooks.received += 1);
        Ok(outcome)
    }

    /// Count a refused (unauthenticated) webhook call.
    pub fn count_unauthorized(&self) {
        self.inner.status.update(|s| s.webhooks.unauthorized += 1);
    }
}

/// One M3 Event Hub style event, as a webhook delivers it (shared/m3 WIRE.md section 6).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// `M3`.
    #[serde(default)]
    pub publisher: String,
    /// The table (`MITMAS`).
    pub document_name: String,
    /// `C` create, `U` update, `D` delete.
    pub operation: String,
    /// Event Hub's id of the event.
    #[serde(default)]
    pub tracking_id: String,
    /// Column values: after image in `value`, before image in `oldValue`.
    pub elements: Vec<WebhookElement>,
}

/// One column of a webhook event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookElement {
    /// Full column name (`MMITNO`).
    pub name: String,
    /// Value after the change.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Value before the change.
    #[serde(default)]
    pub old_value: Option<serde_json::Value>,
}

/// What a webhook event did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookOutcome {
    /// Mappings on the event's table.
    pub mappings: usize,
    /// Messages appended.
    pub messages: usize,
    /// Whether a row had to be read back from M3 (the event lacked mapped columns).
    pub read_back: bool,
}

struct Worker {
    client: Arc<M3Client>,
    store: Store,
    settings: Arc<ConnectorSettings>,
    status: StatusBoard,
    src: MappingSource,
    /// Columns selected from M3: the mapping's, then the timestamp if unmapped.
    columns: Vec<String>,
    lmts_index: usize,
    /// Where an interrupted key reconciliation stopped.
    reconcile_progress: std::sync::Mutex<Option<ReconcileRound>>,
}

/// When the periodic jobs of a worker are due next.
struct Timers {
    next_reconcile: Instant,
    next_resync: Option<chrono::DateTime<chrono::Utc>>,
}

/// A key reconciliation in progress.
struct ReconcileRound {
    round: i64,
    max_seq: i64,
    after: Option<Vec<String>>,
}

fn element_text(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

impl Worker {
    fn name(&self) -> &str {
        self.src.mapping.name.as_str()
    }

    /// Apply a webhook event: `D` deletes the key; `C`/`U` map the after image, read back from
    /// M3 when the event lacks mapped columns. The entity's position guard drops late events.
    #[instrument(skip_all, fields(connection = %self.settings.connection, table = %self.src.table.name))]
    async fn webhook(&self, event: &WebhookEvent) -> Result<(usize, bool), PipelineError> {
        let after: HashMap<String, String> = event
            .elements
            .iter()
            .filter_map(|e| element_text(&e.value).map(|v| (e.name.to_ascii_uppercase(), v)))
            .collect();
        let before: HashMap<String, String> = event
            .elements
            .iter()
            .filter_map(|e| element_text(&e.old_value).map(|v| (e.name.to_ascii_uppercase(), v)))
            .collect();
        let key_cols = self.src.mapping.key_columns();
        let lmts_col = &self.columns[self.lmts_index];
        let m = &self.src.mapping;
        if event.operation == "D" {
            let image = |c: &String| {
                before
                    .get(c)
                    .filter(|v| !v.trim().is_empty())
                    .or_else(|| after.get(c))
                    .map(|v| v.trim().to_string())
            };
            let Some(key) = key_cols.iter().map(image).collect::<Option<Vec<_>>>() else {
                return Err(PipelineError::Webhook(format!(
                    "delete event lacks key columns {}",
                    key_cols.join(", ")
                )));
            };
            let position = image(lmts_col).and_then(|v| v.parse::<i64>().ok());
            let key = EntityKey(key);
            let payload = m
                .deleted_payload(&key)
                .map_err(|e| PipelineError::Webhook(e.to_string()))?;
            let key = key.to_string();
            let change = Change {
                message: self.message(
                    &m.deleted_type(),
                    &key,
                    &format!("webhook-delete:{}", position.unwrap_or(0)),
                    0,
                    payload,
                ),
                key,
                op: ChangeOp::Delete,
                position,
            };
            let emitted = self.commit(vec![change], 1, 0, None).await?;
            return Ok((emitted, false));
        }
        let complete = self.columns.iter().all(|c| after.contains_key(c));
        let rows = if complete {
            vec![self.columns.iter().map(|c| after[c].clone()).collect::<Vec<_>>()]
        } else {
            let Some(key) = key_cols
                .iter()
                .map(|c| after.get(c).cloned())
                .collect::<Option<Vec<_>>>()
            else {
                return Err(PipelineError::Webhook(format!(
                    "event lacks key columns {}",
                    key_cols.join(", ")
                )));
            };
            for (c, v) in key_cols.iter().zip(&key) {
                let numeric = self
                    .src
                    .table
                    .column(c)
                    .is_some_and(|col| col.kind != ColumnKind::Alpha);
                if numeric && !crate::query::is_number(v.trim()) {
                    return Err(PipelineError::Webhook(format!(
                        "column {c}: expected a number, got {v:?}"
                    )));
                }
            }
            let q = crate::query::paged_select(
                &self.src.table,
                &self.columns,
                &key_cols,
                None,
                Some(&crate::query::equals_condition(&self.src.table, &key_cols, &key)),
            );
            self.select(&q, self.columns.len()).await?
        };
        let (changes, rejected) = self.changes_for(&rows);
        let emitted = self.commit(changes, rows.len(), rejected, None).await?;
        Ok((emitted, !complete))
    }

    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut timers = Timers {
            next_reconcile: Instant::now() + self.settings.reconcile_interval,
            next_resync: self
                .settings
                .full_resync
                .as_ref()
                .and_then(|s| s.next_after(chrono::Utc::now())),
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Some(lease) = &self.settings.lease {
                let held = *lease.borrow();
                if !held {
                    // Another process holds the connection: stand by until the lease is ours.
                    self.status.table(self.name(), |t| t.phase = "standby".into());
                    let mut lease = lease.clone();
                    tokio::select! {
                        _ = lease.wait_for(|held| *held) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            let wait = match self.step(&mut timers).await {
                Ok(more) => {
                    failures = 0;
                    if more {
                        Duration::ZERO
                    } else {
                        self.settings.poll_interval
                    }
                }
                Err(e) => {
                    failures += 1;
                    let retry_after = match &e {
                        PipelineError::M3(m) => m.retry_after(),
                        _ => None,
                    };
                    let wait = retry_after.unwrap_or_else(|| backoff(failures));
                    warn!(connection = %self.settings.connection, mapping = self.name(), error = %e, retry_in = ?wait, "step failed; retrying");
                    self.status.table(self.name(), |t| {
                        t.errors += 1;
                        t.last_error = Some(e.to_string());
                    });
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One unit of work. Returns whether more work is waiting right away.
    async fn step(&self, timers: &mut Timers) -> Result<bool, PipelineError> {
        let stored = self.store.cursor(&self.settings.connection, self.name()).await?;
        let position = match stored {
            Some(c) if c.fingerprint == self.src.fingerprint => {
                serde_json::from_value(c.position).map_err(|e| PipelineError::Cursor {
                    mapping: self.name().to_string(),
                    detail: e.to_string(),
                })?
            }
            other => {
                if other.is_some() {
                    info!(connection = %self.settings.connection, mapping = self.name(), "mapping changed; re-exporting");
                }
                Position::InitialLoad {
                    after: None,
                    high_water: self.max_lmts().await?,
                    resync: false,
                }
            }
        };
        match position {
            Position::InitialLoad {
                after,
                high_water,
                resync,
            } => self.initial_load_page(after, high_water, resync).await,
            Position::Polling { lmts } if timers.next_resync.is_some_and(|t| chrono::Utc::now() >= t) => {
                // Scheduled safety net: read the whole table again from here; the cursor keeps
                // `lmts`, so polling resumes where it was once the pass is done.
                timers.next_resync = self
                    .settings
                    .full_resync
                    .as_ref()
                    .and_then(|s| s.next_after(chrono::Utc::now()));
                info!(connection = %self.settings.connection, mapping = self.name(), next = ?timers.next_resync, "scheduled full re-sync starts");
                let next = Position::InitialLoad {
                    after: None,
                    high_water: lmts,
                    resync: true,
                };
                self.write(&[], next).await?;
                Ok(true)
            }
            Position::Polling { lmts } => {
                let next_reconcile = &mut timers.next_reconcile;
                // Poll first: a failing reconciliation must not stop change detection.
                self.poll(lmts).await?;
                if Instant::now() >= *next_reconcile {
                    match self.reconcile().await {
                        Ok(()) => *next_reconcile = Instant::now() + self.settings.reconcile_interval,
                        Err(e) => {
                            warn!(connection = %self.settings.connection, mapping = self.name(), error = %e, "key reconciliation failed; it resumes where it stopped at the next step");
                            self.status.table(self.name(), |t| {
                                t.errors += 1;
                                t.last_error = Some(e.to_string());
                            });
                        }
                    }
                }
                Ok(false)
            }
        }
    }

    /// One `EXPORTMI` page. A transient failure (500, 504, 429, timeout) is retried in place a
    /// few times with a short jittered pause (Retry-After honoured up to 5 s) before the step
    /// fails and the loop's longer backoff takes over: sporadic gateway errors then cost
    /// milliseconds, not seconds.
    async fn select(&self, query: &str, columns: usize) -> Result<Vec<Vec<String>>, PipelineError> {
        self.fetch(query, columns, self.settings.page_size).await
    }

    async fn fetch(&self, query: &str, columns: usize, maxrecs: u32) -> Result<Vec<Vec<String>>, PipelineError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let r = self
                .client
                .export_select(query, self.settings.separator, columns, maxrecs)
                .await;
            self.observe(&r);
            match r {
                Err(e) if e.is_transient() && attempt < 3 => {
                    let pause = match e.retry_after() {
                        Some(d) if d <= Duration::from_secs(5) => d,
                        Some(_) => return Err(e.into()),
                        None => {
                            let base = 200u64 << (attempt - 1);
                            Duration::from_millis(rand::thread_rng().gen_range(base / 2..=base))
                        }
                    };
                    tokio::time::sleep(pause).await;
                }
                other => return Ok(other?),
            }
        }
    }

    fn observe<T>(&self, r: &Result<T, M3Error>) {
        let (state, message) = match r {
            Ok(_) => (Connectivity::Healthy, None),
            Err(e @ M3Error::Authentication { .. }) => (Connectivity::AuthenticationFailed, Some(e.to_string())),
            Err(e @ M3Error::NotAuthorised { .. }) => (Connectivity::AuthorizationFailed, Some(e.to_string())),
            Err(e) if e.is_transient() => (Connectivity::Failing, Some(e.to_string())),
            // M3 answered (NOK or odd shape): it is reachable.
            Err(e) => (Connectivity::Healthy, Some(e.to_string())),
        };
        self.status.update(|s| {
            s.m3 = state;
            if message.is_some() {
                s.m3_message = message;
            }
        });
    }

    async fn max_lmts(&self) -> Result<i64, PipelineError> {
        let lmts = self.src.table.column_for_field("LMTS");
        let q = format!("{lmts} from {} order by {lmts} desc", self.src.table.name);
        Ok(self
            .fetch(&q, 1, 1)
            .await?
            .first()
            .and_then(|row| row[0].trim().parse::<i64>().ok())
            .unwrap_or(0))
    }

    #[instrument(skip_all, fields(connection = %self.settings.connection, table = %self.src.table.name))]
    async fn initial_load_page(
        &self,
        after: Option<Vec<String>>,
        high_water: i64,
        resync: bool,
    ) -> Result<bool, PipelineError> {
        let phase = if resync { "full-resync" } else { "initial-load" };
        self.status.table(self.name(), |t| t.phase = phase.into());
        let keys = self.src.mapping.key_columns();
        let q = paged_select(&self.src.table, &self.columns, &keys, after.as_deref(), None);
        let rows = self.select(&q, self.columns.len()).await?;
        let full = rows.len() as u32 >= self.settings.page_size;
        let key_idx: Vec<usize> = keys
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| c == k)
                    .expect("key columns are selected")
            })
            .collect();
        let next = if full {
            let last = rows.last().expect("a full page has rows");
            Position::InitialLoad {
                after: Some(key_idx.iter().map(|&i| last[i].trim().to_string()).collect()),
                high_water,
                resync,
            }
        } else {
            info!(connection = %self.settings.connection, mapping = self.name(), phase, "pass done; polling");
            Position::Polling { lmts: high_water }
        };
        self.write(&rows, next).await?;
        Ok(full)
    }

    #[instrument(skip_all, fields(connection = %self.settings.connection, table = %self.src.table.name))]
    async fn poll(&self, cursor_lmts: i64) -> Result<(), PipelineError> {
        self.status.table(self.name(), |t| t.phase = "polling".into());
        let lmts_col = self.columns[self.lmts_index].clone();
        let start = cursor_lmts - self.settings.overlap.as_millis() as i64;
        let mut order = vec![lmts_col.clone()];
        order.extend(self.src.mapping.key_columns());
        let order_idx: Vec<usize> = order
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| c == k)
                    .expect("order columns are selected")
            })
            .collect();
        let since = format!("{lmts_col} >= {start}");
        let mut after: Option<Vec<String>> = None;
        let mut newest = cursor_lmts;
        let mut newest_seen = None;
        loop {
            let q = paged_select(&self.src.table, &self.columns, &order, after.as_deref(), Some(&since));
            let rows = self.select(&q, self.columns.len()).await?;
            let full = rows.len() as u32 >= self.settings.page_size;
            if let Some(last) = rows.last() {
                after = Some(order_idx.iter().map(|&i| last[i].trim().to_string()).collect());
                let t = parse_lmts(&last[self.lmts_index]);
                newest = newest.max(t);
                newest_seen = Some(t);
            }
            self.write(&rows, Position::Polling { lmts: newest }).await?;
            if !full {
                break;
            }
        }
        let now = chrono::Utc::now();
        self.status.table(self.name(), |t| {
            t.last_poll = Some(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            // Lag: age of the newest change this poll found beyond the cursor; caught up = 0.
            if let Some(seen) = newest_seen.filter(|&s| s > cursor_lmts) {
                t.lag_ms = Some((now.timestamp_millis() - seen).max(0));
            } else {
                t.lag_ms = Some(0);
            }
        });
        Ok(())
    }

    /// Map rows into changes and write them with the cursor, in one transaction.
    async fn write(&self, rows: &[Vec<String>], next: Position) -> Result<(), PipelineError> {
        let (changes, rejected) = self.changes_for(rows);
        let cursor = Cursor {
            fingerprint: self.src.fingerprint.clone(),
            position: serde_json::to_value(&next).expect("positions serialise"),
        };
        self.commit(changes, rows.len(), rejected, Some(cursor)).await?;
        Ok(())
    }

    /// Rows (laid out as `self.columns`) -> changes: `...Updated` for rows in the filter,
    /// `...Deleted` for rows outside it. Rows that cannot be mapped are counted and skipped.
    fn changes_for(&self, rows: &[Vec<String>]) -> (Vec<Change>, u64) {
        let m = &self.src.mapping;
        let mut changes = Vec::with_capacity(rows.len());
        let mut rejected = 0u64;
        for row in rows {
            let refs: Vec<&str> = row.iter().map(String::as_str).collect();
            let lmts = parse_lmts(&row[self.lmts_index]);
            if !m.matches(&refs) {
                // Outside the filter: for consumers the entity is gone (a no-op if it never matched).
                let key = m.key_of(&refs);
                if let Ok(payload) = m.deleted_payload(&key) {
                    let key = key.to_string();
                    let position = format!("{lmts}:filtered");
                    changes.push(Change {
                        message: self.message(&m.deleted_type(), &key, &position, lmts, payload),
                        key,
                        op: ChangeOp::Delete,
                        position: Some(lmts),
                    });
                }
                continue;
            }
            match m.apply(&refs) {
                Ok(p) => {
                    let key = p.key.to_string();
                    let position = format!("{lmts}:{:016x}", p.hash);
                    changes.push(Change {
                        message: self.message(&m.updated_type(), &key, &position, lmts, p.payload.clone()),
                        key,
                        op: ChangeOp::Upsert {
                            hash: p.hash,
                            state: p.payload,
                        },
                        position: Some(lmts),
                    });
                }
                Err(e) => {
                    rejected += 1;
                    warn!(connection = %self.settings.connection, mapping = self.name(), key = %m.key_of(&refs), error = %e, "row cannot be mapped; skipped");
                    self.status.table(self.name(), |t| t.last_error = Some(e.to_string()));
                }
            }
        }
        (changes, rejected)
    }

    /// Write changes (and the cursor, if any) in one store transaction; returns messages emitted.
    async fn commit(
        &self,
        changes: Vec<Change>,
        rows: usize,
        rejected: u64,
        cursor: Option<Cursor>,
    ) -> Result<usize, PipelineError> {
        let batch = Batch {
            connection: self.settings.connection.clone(),
            mapping: self.name().to_string(),
            changes,
            cursor,
        };
        let applied = self.store.apply_batch(&batch).await?;
        self.status.table(self.name(), |t| {
            t.rows_seen += rows as u64;
            t.messages += applied.emitted as u64;
            t.unchanged += applied.unchanged as u64;
            t.stale += applied.stale as u64;
            t.rejected_rows += rejected;
        });
        Ok(applied.emitted)
    }

    fn message(&self, ty: &str, key: &str, position: &str, lmts: i64, payload: String) -> NewMessage {
        let conn = &self.settings.connection;
        let time = chrono::DateTime::from_timestamp_millis(lmts)
            .filter(|_| lmts > 0)
            .unwrap_or_else(chrono::Utc::now);
        NewMessage {
            id: event_id(&[conn, self.name(), key, position]),
            ty: ty.to_string(),
            source: format!("erp-bridge/{conn}/{}", self.src.table.name),
            subject: key.to_string(),
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            dataschema: format!("/api/connections/{conn}/schemas/{ty}"),
            payload,
        }
    }

    /// Find deletes: list every key in M3 (keys only, paged), mark them seen, and emit
    /// `...Deleted` for stored keys that were not seen and did not change during the listing.
    #[instrument(skip_all, fields(connection = %self.settings.connection, table = %self.src.table.name))]
    async fn reconcile(&self) -> Result<(), PipelineError> {
        let conn = &self.settings.connection;
        let keys = self.src.mapping.key_columns();
        // A round interrupted by an M3 failure resumes at its last page: its round number and
        // log position still keep entities changed since it began out of the verdict.
        let resumed = self.reconcile_progress.lock().expect("lock").take();
        let (round, max_seq, mut after) = match resumed {
            Some(r) => (r.round, r.max_seq, r.after),
            None => (
                chrono::Utc::now().timestamp_millis(),
                self.store.last_seq().await?,
                None,
            ),
        };
        loop {
            let q = paged_select(&self.src.table, &keys, &keys, after.as_deref(), None);
            let rows = match self.select(&q, keys.len()).await {
                Ok(rows) => rows,
                Err(e) => {
                    *self.reconcile_progress.lock().expect("lock") = Some(ReconcileRound { round, max_seq, after });
                    return Err(e);
                }
            };
            let full = rows.len() as u32 >= self.settings.page_size;
            let page: Vec<String> = rows
                .iter()
                .map(|r| EntityKey(r.iter().map(|v| v.trim().to_string()).collect()).to_string())
                .collect();
            self.store.mark_seen(conn, self.name(), round, &page).await?;
            after = rows.last().map(|r| r.iter().map(|v| v.trim().to_string()).collect());
            if !full {
                break;
            }
        }
        let gone = self.store.unseen_keys(conn, self.name(), round, max_seq).await?;
        if gone.is_empty() {
            return Ok(());
        }
        let m = &self.src.mapping;
        let mut changes = Vec::with_capacity(gone.len());
        for key in gone {
            let Some(parsed) = EntityKey::parse(&key, keys.len()) else {
                warn!(connection = %conn, mapping = self.name(), key = %key, "stored key has the wrong shape; skipped");
                continue;
            };
            let payload = match m.deleted_payload(&parsed) {
                Ok(p) => p,
                Err(e) => {
                    warn!(connection = %conn, mapping = self.name(), key = %key, error = %e, "deleted key cannot be mapped; skipped");
                    continue;
                }
            };
            changes.push(Change {
                message: self.message(&m.deleted_type(), &key, &format!("deleted:{round}"), 0, payload),
                key,
                op: ChangeOp::Delete,
                position: None,
            });
        }
        let found = changes.len() as u64;
        let emitted = self.commit(changes, 0, 0, None).await?;
        info!(connection = %conn, mapping = self.name(), deletes = emitted, "key reconciliation found deletes");
        self.status.table(self.name(), |t| t.deletes_found += found);
        Ok(())
    }
}

fn parse_lmts(v: &str) -> i64 {
    v.trim().parse().unwrap_or(0)
}

/// A stable CloudEvents id: the same change always yields the same id, formatted as a UUID.
pub fn event_id(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    let h = xxhash_rust::xxh3::xxh3_128(joined.as_bytes());
    let b = h.to_be_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 60 s, +-25 %.
/// Pause after failed connector steps: 1 s, doubling, at most 60 s.
const STEP_BACKOFF: crate::backoff::Backoff =
    crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

fn backoff(failures: u32) -> Duration {
    STEP_BACKOFF.delay(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(event_id(&["a", "b"]), event_id(&["a", "b"]));
        assert_ne!(event_id(&["a", "b"]), event_id(&["ab", ""]));
        assert_eq!(event_id(&["a"]).len(), 36);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(1250));
        assert!(backoff(3) >= Duration::from_millis(3000));
        assert!(backoff(30) <= Duration::from_millis(75_000));
    }

    #[test]
    fn positions_round_trip_as_tagged_json() {
        let p = Position::InitialLoad {
            after: Some(vec!["100".into(), "A1".into()]),
            high_water: 7,
            resync: false,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "initial-load");
        assert!(
            v.get("resync").is_none(),
            "cursors stored before re-syncs existed still read"
        );
        assert_eq!(serde_json::from_value::<Position>(v).unwrap(), p);
    }
}
