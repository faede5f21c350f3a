//! The connector of one connection: deploys and undeploys mappings, each run by its own
//! `Worker` (`source::worker`) (initial load, polling, reconciliation beside it), and
//! hands webhook hints to the workers of their table. Every write is one store transaction:
//! messages, entity state and cursor together.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use m3::M3Client;
use mapping::catalog::Table;
use mapping::{CompiledMapping, MappingSpec};
use serde::Serialize;
use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::error::PipelineError;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::source::event::ChangeHint;
use crate::source::reader::Reader;
use crate::source::window::{Dimensions, RowCap};
use crate::source::worker::Worker;
use crate::status::{StatusBoard, TableStatus};

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
    /// `EXPORTMI` column separator. Rows whose values hold it are read again with another one;
    /// what still cannot be split becomes a source dead letter.
    pub separator: char,
    /// Windows the initial load reads at once (within the gateway's quota).
    pub load_parallelism: usize,
    /// Share of a mapping's keys that may vanish in one reconciliation pass before the deletes
    /// are held and reported instead of emitted (0.0..=1.0).
    pub delete_hold_share: f64,
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
            load_parallelism: 8,
            delete_hold_share: 0.1,
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
    /// The row cap M3's answers were seen to have (shared: one gateway).
    row_cap: Arc<RowCap>,
}

struct Running {
    worker: Arc<Worker>,
    stop: ShutdownTrigger,
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
                row_cap: Arc::default(),
            }),
        }
    }

    /// The status board the connector reports into.
    pub fn status(&self) -> StatusBoard {
        self.inner.status.clone()
    }

    /// Retry now every mapping waiting after a failed step (M3 was seen back); the others go on
    /// as they were.
    pub fn retry_failed_now(&self) {
        for w in self.workers() {
            w.retry.notify_waiters();
        }
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
        let dims = Dimensions::of(&src.table, &src.mapping.key_columns());
        for c in std::iter::once(&lmts).chain(&dims.columns) {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        let lmts_index = columns.iter().position(|c| *c == lmts).expect("added above");
        inner.status.table(&name, |t| {
            *t = TableStatus {
                table: src.table.name.clone(),
                ..Default::default()
            }
        });
        let reader = Reader {
            client: inner.client.clone(),
            table: src.table.clone(),
            dims,
            page_size: inner.settings.page_size,
            separator: inner.settings.separator,
            cap: inner.row_cap.clone(),
            status: inner.status.clone(),
        };
        let worker = Arc::new(Worker {
            store: inner.store.clone(),
            settings: inner.settings.clone(),
            status: inner.status.clone(),
            src,
            columns,
            lmts_index,
            reader,
            dead_keys: Mutex::new(Default::default()),
            retry: tokio::sync::Notify::new(),
            polled: Mutex::new(Default::default()),
        });
        let (stop, shutdown): (ShutdownTrigger, Shutdown) = ShutdownTrigger::new();
        let task = if inner.settings.remote {
            // A self-hosted connector reads M3; this side only knows what is deployed.
            tokio::spawn(async {})
        } else {
            tokio::spawn(worker.clone().run(shutdown))
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
                r.stop.fire();
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
            r.stop.fire();
        }
        for r in all {
            let _ = r.task.await;
        }
    }

    /// Whether any deployed mapping reads `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.workers().iter().any(|w| w.src.table.name == table)
    }

    /// Act on webhook hints: every deployed mapping of a hint's table reads the row from M3
    /// and writes what M3 has (or deletes the key if M3 no longer has it).
    pub async fn hints(&self, hints: &[ChangeHint]) -> Result<WebhookOutcome, PipelineError> {
        let mut outcome = WebhookOutcome::default();
        let workers = self.workers();
        for hint in hints {
            for w in workers.iter().filter(|w| w.src.table.name == hint.table) {
                outcome.mappings += 1;
                outcome.messages += w.hint(hint).await?;
                outcome.read_back = true;
            }
            self.inner.status.update(|s| s.webhooks.received += 1);
        }
        Ok(outcome)
    }

    /// Count a refused (unauthenticated) webhook call.
    pub fn count_unauthorized(&self) {
        self.inner.status.update(|s| s.webhooks.unauthorized += 1);
    }
}

/// What webhook hints did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookOutcome {
    /// Mappings on the hints' tables.
    pub mappings: usize,
    /// Messages appended.
    pub messages: usize,
    /// Whether rows were read from M3 (always, when a mapping reads the table).
    pub read_back: bool,
}
