//! A faithful fake Infor M3 behind an ION API gateway, embedded as a library in tests and in
//! the demo: OAuth2 token endpoint, MI REST v1/v2 (MMS200MI, CRS610MI, EXPORTMI, MRS001MI),
//! the Metadata Publisher, simulated users changing items, and fault injection.
//!
//! Wire formats follow `shared/m3/WIRE.md`; table schemas are the standard catalogue of the
//! `mapping` crate plus a few customer extensions visible only through MDP.
//!
//! Also: programs CRS620MI (suppliers) and OIS100MI (order heads and lines, read-only);
//! snapshots for the demo ([`Simulator::open`], [`Simulator::save`], [`Simulator::autosave`]);
//! Event Hub style webhooks ([`Simulator::subscribe`], admin routes `/admin/webhooks`); and
//! the on-premises MDP shape with HTTP Basic ([`SimConfig::mdp_basic_auth`]).
//!
//! A webhook POST (`Content-Type: application/json`) carries one event; `elements` lists every
//! column of the table (custom ones included) in schema order, values trimmed:
//! `C` has `value` only (the inserted row), `U` has `value` (after) and `oldValue` (before),
//! `D` has `value` and `oldValue` both set to the deleted row. `sentTimestamp` is RFC 3339
//! UTC with milliseconds; `trackingId` a random UUID v4, the same for every subscriber.
//! ```json
//! {"publisher":"M3","documentName":"MITMAS","operation":"U",
//!  "trackingId":"2f1c9a4e-8b7d-4c21-9e3a-5d6f7a8b9c0d","sentTimestamp":"2026-01-15T10:20:30.123Z",
//!  "elements":[{"name":"MMCONO","value":"100","oldValue":"100"},
//!              {"name":"MMITNO","value":"A000001","oldValue":"A000001"},
//!              {"name":"MMITDS","value":"Bolt M8","oldValue":"Bolt"}, ...]}
//! ```
//!
//! Admin routes (no token): `GET /admin/health`; `GET`/`POST /admin/faults` ([`Faults`]);
//! `GET`/`POST`/`DELETE /admin/webhooks`, `DELETE /admin/webhooks/{id}`; `GET`/`POST
//! /admin/modes` ([`SimModes`], also [`SimConfig::modes`], [`Simulator::set_modes`]): strict
//! modes for what Infor does not document, so a client can be tested against each
//! possibility. `POST` takes the whole JSON (missing fields get their default, unknown ones
//! are a 400) and answers the modes now in force:
//! ```json
//! {"order_by":"ignored","company_condition":"rejected","maxrecs":"capped_100",
//!  "mdp_text_types":"alternative","commit_delay_ms":300,"separator_values":"sometimes"}
//! ```
//! - `order_by`: `honoured` | `ignored` (rows in key order) | `rejected` (NOK);
//! - `company_condition` (xxCONO inside `where`): `honoured` | `ignored` (counts as true; the
//!   session company still applies) | `rejected` (NOK "Filters including company selections
//!   are not supported");
//! - `maxrecs`: `honoured` | `capped_100` (lists and EXPORTMI give at most 100 rows, `0`
//!   included);
//! - `mdp_text_types`: `standard` | `alternative` (MDP `dataType` `NChar`/`VarGraphic`/
//!   `Graphic` for text, `Numeric`/`Packed` for numbers);
//! - `commit_delay_ms`: late commits; a write keeps its LMTS but is visible to reads and
//!   webhooks only this much later (pending writes are committed by a save);
//! - `separator_values`: `never` | `sometimes` (item texts with `~|;,`).
//!
//! Rows of a query without `order by` come back in key order in every mode.

mod commit;
mod db;
mod error;
pub mod export_query;
mod http;
pub mod mi;
pub mod modes;
mod rows;
mod seed;
mod snapshot;
mod webhook;
mod workload;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use error::SimError;
pub use modes::SimModes;
pub use snapshot::FORMAT as SNAPSHOT_FORMAT;
pub use webhook::{SubscriptionId, WebhookAuth, WebhookSubscription, WEBHOOK_TIMEOUT};

use db::Db;

/// User recorded in CHID for direct operations through [`Simulator`]'s methods.
pub const DIRECT_USER: &str = "TEST";
/// User recorded in CHID for MI transactions.
pub const MI_USER: &str = "MIUSER";

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Tenant id (`ti`), part of every API path.
    pub tenant: String,
    /// The default company (session company when a call gives no `cono`).
    pub company: u32,
    /// Number of items (MITMAS rows) seeded.
    pub items: usize,
    /// Seed of the deterministic data and workload.
    pub seed: u64,
    /// Lifetime of access tokens.
    pub token_lifetime: Duration,
    /// OAuth2 client id (`ci`).
    pub client_id: String,
    /// OAuth2 client secret (`cs`).
    pub client_secret: String,
    /// Service account access key (`saak`), `<tenant>#...`.
    pub saak: String,
    /// Service account secret key (`sask`).
    pub sask: String,
    /// On-premises MDP shape: when set, `/{tenant}/M3/mdprest/...` also accepts HTTP Basic
    /// with this user and password (the bearer token keeps working). Default `None`.
    pub mdp_basic_auth: Option<(String, String)>,
    /// The strict modes at start (default: today's behaviour); see [`SimModes`]. Seeded
    /// items follow `separator_values` as given here.
    pub modes: SimModes,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        let tenant = "ERPBRIDGE_DEMO".to_string();
        SimConfig {
            client_id: format!("{tenant}~q7Rk2VwXy9LmN3bT8sHjC4dF6gPzA1eU5oKi0"),
            client_secret: "Zt9-XbQ2rW7kLm4NvYc8HsJ1dGf6PaE3uTyR0iOp5qSxBn_MhKlVj".to_string(),
            saak: format!("{tenant}#Ko3dPq8Xw1Ys6Tz9Rv2Nb5Mc7Lf4Jh0Gk-aE2uI8oQyWtV"),
            sask: "mB4xT9rQ2wE7yU1iO6pA3sD8fG5hJ0kL-zX2cV7bN4mQ9wE1rT6yU3iO8pA5sD0fG".to_string(),
            tenant,
            company: 100,
            items: 1000,
            seed: 42,
            token_lifetime: Duration::from_secs(2 * 60 * 60),
            mdp_basic_auth: None,
            modes: SimModes::default(),
        }
    }
}

/// Faults the simulated gateway injects into API calls (MI, including EXPORTMI, and MDP; not
/// the token endpoint or admin routes), plus webhook faults.
///
/// JSON (`GET`/`POST /admin/faults`), every field optional:
/// `{"latency_ms":0,"error_rate":0.0,"throttle":null,"expire_tokens_now":false,
///   "drop_webhooks":0.0,"gateway_timeout":null,"mdp_down":false,"execute_then_timeout":null}`.
///
/// Order of the checks on an API call: `latency_ms` delay, token check (401), `throttle` (429),
/// `mdp_down` (503, MDP routes only), `gateway_timeout` (504), `error_rate` (500).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Extra latency (milliseconds) added to every API call.
    pub latency_ms: u64,
    /// Share (0.0..=1.0) of API calls answered with HTTP 500.
    pub error_rate: f64,
    /// When set, every API call is answered 429 with `Retry-After: <seconds>`.
    pub throttle: Option<u64>,
    /// When set, every API call waits this many milliseconds and is then answered HTTP 504
    /// like the ION API gateway when M3 does not answer in time; the call is not executed.
    pub gateway_timeout: Option<u64>,
    /// When set, every MI call (v1, v2, bulk) is executed, then answered HTTP 504 after this
    /// many milliseconds, like the ION API gateway giving up on an M3 that did run the
    /// transaction but answered too late: the client cannot know it ran. Checked after the
    /// other faults (a call they refuse is not executed).
    pub execute_then_timeout: Option<u64>,
    /// When true, the Metadata Publisher routes (`/M3/mdprest/...`) answer HTTP 503 (MI keeps
    /// working).
    pub mdp_down: bool,
    /// Share (0.0..=1.0) of webhook posts silently dropped (never sent, nothing logged above
    /// debug), like a lost fire-and-forget call.
    pub drop_webhooks: f64,
    /// One-shot: when true, every access token issued so far expires now (refresh tokens stay
    /// valid). Not kept in the stored faults.
    pub expire_tokens_now: bool,
}

/// Shared state behind every [`Simulator`] clone.
pub(crate) struct Inner {
    pub cfg: SimConfig,
    /// The database: reads (EXPORTMI, Get, List transactions) share it, writes take it alone.
    pub db: RwLock<Db>,
    pub auth: Mutex<http::AuthState>,
    pub faults: Mutex<Faults>,
    pub hub: Arc<webhook::Hub>,
    /// MI calls executed and records they returned, by (program, transaction): see
    /// [`Simulator::mi_calls`] and [`Simulator::mi_records`].
    pub mi_calls: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

/// Locks a mutex, recovering from poisoning (a panicked holder cannot corrupt string rows).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a read-write lock for reading, recovering from poisoning (as [`lock`]).
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

/// Takes a read-write lock for writing, recovering from poisoning (as [`lock`]).
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// The simulated M3. Cheap to clone; all clones share the same database.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("tenant", &self.inner.cfg.tenant)
            .field("company", &self.inner.cfg.company)
            .finish_non_exhaustive()
    }
}

/// A running HTTP server of a simulator. Dropping it stops the server too.
#[derive(Debug)]
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`, without trailing slash.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// Stops accepting connections and waits (at most 5 s) for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
        tracing::info!(addr = %self.addr, "simulator stopped");
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Simulator {
    /// A simulator with deterministic seed data (MITMAS with `cfg.items` items, plus small
    /// OCUSMA, CIDMAS, MITWHL, MITBAL, OOHEAD, OOLINE and CUGEX1 tables).
    pub fn new(cfg: SimConfig) -> Simulator {
        let mut db = Db::new();
        seed::seed(&mut db, cfg.seed, cfg.company, cfg.items);
        seed::mark_separators(&mut db, cfg.modes.separator_values);
        Simulator::with_db(cfg, db)
    }

    /// A simulator whose data is the snapshot at `path` if that file exists (every table's
    /// rows and the LMTS clock; tokens, faults and webhooks are not kept), else seeded like
    /// [`Simulator::new`]. Writes after a restart get an LMTS >= every saved one.
    pub fn open(cfg: SimConfig, path: &Path) -> Result<Simulator, SimError> {
        let mut db = Db::new();
        seed::seed(&mut db, cfg.seed, cfg.company, cfg.items);
        seed::mark_separators(&mut db, cfg.modes.separator_values);
        if path.exists() {
            snapshot::load_into(&mut db, path)?;
        } else {
            tracing::info!(path = %path.display(), "no snapshot yet, seeded");
        }
        Ok(Simulator::with_db(cfg, db))
    }

    fn with_db(cfg: SimConfig, mut db: Db) -> Simulator {
        let hub = Arc::new(webhook::Hub::new());
        db.hub = Some(hub.clone());
        db.modes = cfg.modes.clone();
        let wake = Arc::new(tokio::sync::Notify::new());
        db.commits.wake = Some(wake.clone());
        let sim = Simulator {
            inner: Arc::new(Inner {
                cfg,
                db: RwLock::new(db),
                auth: Mutex::new(http::AuthState::default()),
                faults: Mutex::new(Faults::default()),
                hub,
                mi_calls: Mutex::new(BTreeMap::new()),
            }),
        };
        commit::spawn_committer(Arc::downgrade(&sim.inner), wake);
        sim
    }

    /// The strict modes in force (see [`SimModes`]).
    pub fn modes(&self) -> SimModes {
        read(&self.inner.db).modes.clone()
    }

    /// Sets the strict modes. A new `commit_delay_ms` applies to later writes (pending ones
    /// keep their time); `separator_values` applies to later workload changes.
    pub fn set_modes(&self, modes: SimModes) {
        tracing::info!(?modes, "modes set");
        write(&self.inner.db).modes = modes;
    }

    /// Writes a snapshot of all tables to `path` atomically (temporary file in the same
    /// directory, then rename). Compact JSON, format [`SNAPSHOT_FORMAT`].
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        save_inner(&self.inner, path).map(|_| ())
    }

    /// Saves to `path` every `every` when something changed since the last save by this task
    /// (the first check is after one period). Errors are logged. Abort the handle to stop;
    /// the task also ends when every `Simulator` clone is dropped. Call [`Simulator::save`]
    /// at shutdown to keep the last changes.
    pub fn autosave(&self, path: PathBuf, every: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut saved = weak.upgrade().map(|i| read(&i.db).generation);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                if Some(read(&inner.db).generation) == saved {
                    continue;
                }
                let path = path.clone();
                match tokio::task::spawn_blocking(move || save_inner(&inner, &path)).await {
                    Ok(Ok(generation)) => saved = Some(generation),
                    Ok(Err(e)) => tracing::warn!(%e, "autosave failed"),
                    Err(e) => tracing::warn!(%e, "autosave task failed"),
                }
            }
            tracing::debug!("autosave stopped");
        })
    }

    /// Subscribes a webhook (Event Hub style, see [`WebhookSubscription`]). Every later write
    /// to the table with a subscribed operation (direct API, MI transactions, workload) is
    /// POSTed as JSON, fire-and-forget. An invalid filter (see
    /// [`WebhookSubscription::filter`]) gives a subscription that never fires (and a warning);
    /// use [`Simulator::try_subscribe`] to get the error instead.
    pub fn subscribe(&self, sub: WebhookSubscription) -> SubscriptionId {
        match sub.filter() {
            Ok((table, ops)) => self.inner.hub.subscribe(sub, table, ops),
            Err(e) => {
                tracing::warn!(%e, "webhook subscription never fires");
                self.inner.hub.subscribe(sub, String::new(), Vec::new())
            }
        }
    }

    /// Like [`Simulator::subscribe`], but rejects a bad filter, an unknown table or a URL that
    /// is not http(s).
    pub fn try_subscribe(&self, sub: WebhookSubscription) -> Result<SubscriptionId, SimError> {
        let (table, ops) = sub.filter()?;
        if !read(&self.inner.db).tables.contains_key(&table) {
            return Err(SimError::InvalidSubscription(format!("table {table} does not exist")));
        }
        match url::Url::parse(&sub.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(SimError::InvalidSubscription(format!(
                    "'{}' is not an http(s) URL",
                    sub.url
                )))
            }
        }
        Ok(self.inner.hub.subscribe(sub, table, ops))
    }

    /// Removes a subscription (events already queued are still sent); false if unknown.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.inner.hub.unsubscribe(id)
    }

    /// The current webhook subscriptions.
    pub fn subscriptions(&self) -> Vec<(SubscriptionId, WebhookSubscription)> {
        self.inner.hub.list()
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// Binds `addr` (port 0 picks a free port) and serves the ION API on tokio.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            addr.ip()
        };
        let base_url = format!("http://{}", SocketAddr::new(host, addr.port()));
        let router = http::router(self.inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(%e, "simulator server failed");
            }
        });
        tracing::info!(%base_url, tenant = %self.inner.cfg.tenant, "simulator serving");
        Ok(RunningSim {
            base_url,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// A complete `.ionapi` document for a backend service account, pointing at `base_url`.
    pub fn ionapi(&self, base_url: &str) -> serde_json::Value {
        let c = &self.inner.cfg;
        let base = base_url.trim_end_matches('/');
        serde_json::json!({
            "ti": c.tenant,
            "cn": "erp-bridge",
            "dt": "12",
            "ci": c.client_id,
            "cs": c.client_secret,
            "iu": base,
            "pu": format!("{base}/{}/as/", c.tenant),
            "oa": "authorization.oauth2",
            "ot": "token.oauth2",
            "or": "revoke_token.oauth2",
            "ev": "U1455348127",
            "v": "1.0",
            "saak": c.saak,
            "sask": c.sask,
        })
    }

    /// Starts simulated users changing MITMAS at about `changes_per_second` (80% updates,
    /// 12% inserts, 8% deletes). `0.0` starts nothing (the task ends at once). Abort the
    /// handle to stop; the task also ends when every `Simulator` clone is dropped.
    pub fn start_workload(&self, changes_per_second: f64) -> JoinHandle<()> {
        workload::start(Arc::downgrade(&self.inner), changes_per_second)
    }

    /// Sets the faults the gateway injects (see [`Faults`]).
    pub fn set_faults(&self, faults: Faults) {
        http::set_faults(&self.inner, faults);
    }

    /// How many times the MI transaction `program/transaction` was executed over HTTP (v1, v2
    /// and bulk calls that passed the gateway's checks, answered NOK or not).
    pub fn mi_calls(&self, program: &str, transaction: &str) -> u64 {
        self.mi_counts(program, transaction).0
    }

    /// How many records the calls counted by [`Simulator::mi_calls`] returned (rows of a list
    /// or `EXPORTMI/Select`; none for a NOK).
    pub fn mi_records(&self, program: &str, transaction: &str) -> u64 {
        self.mi_counts(program, transaction).1
    }

    fn mi_counts(&self, program: &str, transaction: &str) -> (u64, u64) {
        lock(&self.inner.mi_calls)
            .get(&(program.to_string(), transaction.to_string()))
            .copied()
            .unwrap_or((0, 0))
    }

    /// The faults currently injected.
    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    /// Inserts a row as an M3 user would (user `TEST`): values by full column name, others
    /// blank/0, company defaults to the configured company. Audit fields are set.
    pub fn insert(&self, table: &str, values: &[(&str, &str)]) -> Result<(), SimError> {
        let mut db = write(&self.inner.db);
        db.insert(table, values, DIRECT_USER, self.inner.cfg.company)
            .map(|_| ())
    }

    /// Updates the row with this key (values in primary-key order, e.g. `["100","A000123"]`).
    /// Bumps CHNO and LMTS even when nothing changes.
    pub fn update(&self, table: &str, key: &[&str], changes: &[(&str, &str)]) -> Result<(), SimError> {
        let mut db = write(&self.inner.db);
        let schema = db.table(table)?.schema.clone();
        let key = Db::make_key(&schema, key)?;
        db.update(table, &key, changes, DIRECT_USER).map(|_| ())
    }

    /// Deletes the row with this key.
    pub fn delete(&self, table: &str, key: &[&str]) -> Result<(), SimError> {
        let mut db = write(&self.inner.db);
        let schema = db.table(table)?.schema.clone();
        let key = Db::make_key(&schema, key)?;
        db.delete(table, &key, DIRECT_USER).map(|_| ())
    }

    /// Every row of a table (all companies), trimmed values by full column name, in
    /// primary-key order. Unknown tables give an empty list. Like every read, it sees only
    /// committed writes (see [`SimModes::commit_delay_ms`]).
    pub fn rows(&self, table: &str) -> Vec<BTreeMap<String, String>> {
        let mut db = write(&self.inner.db);
        db.settle();
        let Ok(data) = db.table(table) else {
            return Vec::new();
        };
        data.rows.values().map(|r| row_map(&data.schema, r)).collect()
    }

    /// One row by key (values in primary-key order), as reads see it (committed writes).
    pub fn get(&self, table: &str, key: &[&str]) -> Option<BTreeMap<String, String>> {
        let mut db = write(&self.inner.db);
        db.settle();
        let data = db.table(table).ok()?;
        let key = Db::make_key(&data.schema, key).ok()?;
        data.rows.get(&key).map(|r| row_map(&data.schema, r))
    }

    /// A row as writers see it: with late commits ([`SimModes::commit_delay_ms`]) the newest
    /// write, committed or not (what [`Simulator::get`] shows only once it is committed).
    pub fn get_latest(&self, table: &str, key: &[&str]) -> Option<BTreeMap<String, String>> {
        let db = read(&self.inner.db);
        let data = db.table(table).ok()?;
        let schema = data.schema.clone();
        let key = Db::make_key(&schema, key).ok()?;
        db.latest(table, &key).map(|r| row_map(&schema, r))
    }

    /// Names of the tables the simulator has (standard catalogue plus custom ones).
    pub fn tables(&self) -> Vec<String> {
        read(&self.inner.db).tables.keys().cloned().collect()
    }
}

fn save_inner(inner: &Inner, path: &Path) -> Result<u64, SimError> {
    let (bytes, generation) = {
        let mut db = write(&inner.db);
        db.commit_all();
        snapshot::serialize(&db, &inner.cfg.tenant, inner.cfg.company)?
    };
    snapshot::write_atomic(path, &bytes)?;
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "snapshot saved");
    Ok(generation)
}

fn row_map(schema: &db::TableSchema, row: &[String]) -> BTreeMap<String, String> {
    schema
        .def
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), v.trim().to_string()))
        .collect()
}
