//! The hub: starts, restarts and stops the connections of this process. For each, an M3
//! client, its connector, its mapping and command registries, its lease (hosted) or channel
//! state (self-hosted), and its Kafka relay and command consumer. The configured connection
//! and every stored connection start the same way; a self-hosted connection gets a connector
//! that only records deployments (its mappings run on the customer's connector, which calls
//! home) and its M3 calls go through that connector. [`Hub::keep_in_sync`] keeps a replica's
//! connections in step with the store by their stored revision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m3::{ClientOptions, M3Client};
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::{CommandProcessor, RetryPolicy};
use pipeline::registry::MappingRegistry;
use pipeline::remote_mi::RemoteMi;
use pipeline::{Connector, ConnectorSettings, Shutdown, ShutdownTrigger};
use store::{Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connection::{ConnectionRuntime, Connections, Hosting, LaunchSpec, WebhookAuth};
use crate::lease::{keep_lease, LeasePolicy, Share, REPLICA_TTL};
use crate::remote::RemoteState;
use crate::RuntimeError;

/// How often a replica compares its connections with the store.
const SYNC_EVERY: Duration = Duration::from_secs(3);

/// Starts connections and remembers their tasks so it can stop them.
pub struct Hub {
    store: Store,
    /// Tuning shared by every connection, hosted here or sent to a self-hosted connector.
    tuning: channel::Tuning,
    kafka: kafka::KafkaSettings,
    running: Mutex<HashMap<String, Running>>,
    /// This process's name as a lease holder.
    holder: String,
    lease: LeasePolicy,
    /// This replica's fair share of the hosted connections, dealt by [`Hub::share_leases`].
    share: watch::Sender<Share>,
    /// The live replicas at the last heartbeat (`None` before the first).
    replicas: Mutex<Option<Vec<String>>>,
}

struct Running {
    shutdown: ShutdownTrigger,
    connector: Connector,
    remote: Option<Arc<RemoteState>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Hub {
    /// A hub writing to `store`, with the configured tuning and Kafka settings (no brokers =
    /// no Kafka); `holder` names this installation in connection leases (stable across
    /// restarts, so a restarted process takes its leases back at once).
    pub fn new(store: Store, tuning: channel::Tuning, kafka: kafka::KafkaSettings, holder: String) -> Arc<Self> {
        Arc::new(Self {
            store,
            tuning,
            kafka,
            running: Mutex::new(HashMap::new()),
            holder,
            lease: LeasePolicy::STANDARD,
            share: watch::Sender::new(Share::Any),
            replicas: Mutex::new(None),
        })
    }

    /// Start one connection. Neither mappings nor command mappings are loaded here (the caller
    /// applies files first, then calls [`MappingRegistry::sync_deployments`] and reloads
    /// commands; [`Hub::launch`] does both from the store).
    ///
    /// A self-hosted connection starts without its `.ionapi` file too: its connector can call
    /// home at once, and receives the file over its channel once it is saved (the connection
    /// restarts then, as on every stored change).
    pub async fn start(&self, spec: LaunchSpec) -> Result<ConnectionRuntime, RuntimeError> {
        let remote = spec.hosting == Hosting::SelfHosted;
        let configured = spec.ionapi.is_some();
        let ionapi = match spec.ionapi {
            Some(ion) => ion,
            None if remote => no_credentials(),
            None => return Err(RuntimeError::NoCredentials(spec.name)),
        };
        let client = Arc::new(M3Client::new(
            ionapi,
            ClientOptions {
                company: spec.company,
                mdp: spec.mdp,
                ..Default::default()
            },
        )?);
        // A self-hosted connection's M3 is reached through its connector, for everything.
        let via = remote.then(RemoteMi::default);
        let (shutdown, stop) = ShutdownTrigger::new();
        let mut tasks = Vec::new();
        // A hosted connection reads M3 only while this process holds its lease, so that
        // several replicas sharing one store never poll the same tables twice.
        let lease = if remote {
            None
        } else {
            let (tx, lease_rx) = watch::channel(false);
            tasks.push(tokio::spawn(keep_lease(
                self.lease,
                self.store.clone(),
                spec.name.clone(),
                self.holder.clone(),
                tx,
                self.share.subscribe(),
                stop.clone(),
            )));
            Some(lease_rx)
        };
        // The same tuning a self-hosted connector receives, so both run alike.
        let settings = ConnectorSettings {
            remote,
            lease,
            via: via.clone(),
            ..self.tuning.to_settings(&spec.name)?
        };
        let connector = Connector::new(client.clone(), self.store.clone(), settings);
        let registry = MappingRegistry::new(connector.clone(), self.store.clone());
        // The command mappings come from the store (and `commands_dir`); the registry swaps
        // them into this processor and every clone of it (HTTP API, Kafka consumer). A
        // self-hosted connection's transactions run on its connector, over its channel.
        let mut processor = CommandProcessor::new(
            client.clone(),
            self.store.clone(),
            &spec.name,
            Vec::new(),
            RetryPolicy::default(),
        );
        let remote_state = via.map(|mi| {
            processor = processor.clone().through(mi.clone());
            Arc::new(RemoteState::new(mi, self.tuning.clone()))
        });
        let command_registry = CommandRegistry::new(processor.clone(), self.store.clone());
        if !remote {
            tasks.push(tokio::spawn(probe_while_idle(connector.clone(), stop.clone())));
        }
        if !self.kafka.brokers.is_empty() {
            tasks.push(tokio::spawn(crate::relay::run(
                self.kafka.clone(),
                self.store.clone(),
                spec.name.clone(),
                connector.status(),
                processor.clone(),
                stop,
            )));
        }
        let runtime = ConnectionRuntime {
            name: spec.name.clone(),
            connector: connector.clone(),
            registry,
            commands: Some(processor),
            command_registry: Some(command_registry),
            webhook_auth: WebhookAuth {
                bearer: spec.webhook_token,
                basic: None,
            },
            remote: remote_state.clone(),
            revision: spec.revision.clone(),
            configured,
        };
        let replaced = self.running.lock().expect("lock").insert(
            spec.name.clone(),
            Running {
                shutdown,
                connector,
                remote: remote_state,
                tasks,
            },
        );
        self.deal();
        if let Some(old) = replaced {
            // Two starts raced (an API save and the store sync): only the newest may run.
            tracing::info!(connection = %spec.name, "connection started again: the previous run stops");
            stop_running(old).await;
        }
        tracing::info!(connection = %spec.name, hosting = spec.hosting.as_str(), "connection started");
        Ok(runtime)
    }

    /// Start a stored connection and restore its deployed mappings and command mappings from
    /// the store; the caller inserts the runtime into [`Connections`].
    pub async fn launch(&self, spec: LaunchSpec) -> Result<ConnectionRuntime, RuntimeError> {
        let name = spec.name.clone();
        let rt = self.start(spec).await?;
        if let Some(reg) = &rt.command_registry {
            reg.seed_defaults().await?;
            reg.reload().await?;
        }
        if let Err(e) = rt.registry.sync_deployments().await {
            self.stop_connection(&name).await;
            return Err(e.into());
        }
        Ok(rt)
    }

    /// Stop one connection: its connector finishes its current page, Kafka tasks drain, a
    /// connector channel closes. A no-op when it does not run.
    pub async fn stop_connection(&self, name: &str) {
        let Some(r) = self.running.lock().expect("lock").remove(name) else {
            return;
        };
        stop_running(r).await;
        self.deal();
        tracing::info!(connection = %name, "connection stopped");
    }

    /// Stop every connection.
    pub async fn stop_all(&self) {
        let names: Vec<String> = self.running.lock().expect("lock").keys().cloned().collect();
        for n in names {
            self.stop_connection(&n).await;
        }
    }

    /// Bring `connections` in step with the store once: other replicas create, change and
    /// delete connections through their own API. New or changed ones (a different stored
    /// revision, `updated_at`, than the one running) start or restart, deleted ones stop;
    /// `configured` (the configuration file's connection) is left alone. A stored connection's
    /// secrets are opened with `vault` into its [`LaunchSpec`] ([`crate::stored::launch_spec`];
    /// none for a hosted connection while it has no `.ionapi` file, a self-hosted one runs
    /// without it).
    pub async fn sync_stored(
        &self,
        connections: &Connections,
        configured: &str,
        vault: &vault::Vault,
    ) -> Result<(), StoreError> {
        let _restart = connections.restarts.lock().await;
        let records = self.store.connections().await?;
        for rec in &records {
            if rec.name == configured {
                continue;
            }
            let running = connections.get(&rec.name);
            if running.as_ref().and_then(|r| r.revision.as_deref()) == Some(rec.updated_at.as_str()) {
                continue;
            }
            let spec = match crate::stored::launch_spec(vault, rec) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::error!(connection = %rec.name, error = %e, "stored connection cannot be opened");
                    continue;
                }
            };
            if running.is_some() {
                connections.remove(&rec.name);
                self.stop_connection(&rec.name).await;
            }
            match spec {
                Some(spec) => match self.launch(spec).await {
                    Ok(rt) => connections.insert(rt),
                    Err(e) => {
                        tracing::error!(connection = %rec.name, error = %e.chain(), "stored connection cannot start")
                    }
                },
                None => tracing::debug!(connection = %rec.name, "stored connection waits for its .ionapi file"),
            }
        }
        for rt in connections.values() {
            if rt.revision.is_some() && !records.iter().any(|r| r.name == rt.name) {
                connections.remove(&rt.name);
                self.stop_connection(&rt.name).await;
                tracing::info!(connection = %rt.name, "connection deleted elsewhere: stopped");
            }
        }
        Ok(())
    }

    /// Until `shutdown`, every few seconds: [`Hub::sync_stored`], then the deployments and
    /// command mappings made through another replica's API. A round under way when shutdown
    /// comes is dropped (the connections are stopped next, by [`Hub::stop_all`]).
    pub async fn keep_in_sync(
        self: Arc<Self>,
        connections: Arc<Connections>,
        configured: String,
        vault: vault::Vault,
        mut shutdown: Shutdown,
    ) {
        let share = tokio::spawn(self.clone().share_leases(shutdown.clone()));
        self.sync_rounds(connections, configured, vault, &mut shutdown).await;
        let _ = share.await;
    }

    /// Until `shutdown`, every renewal period: announce this replica in the store, read the
    /// live replicas and deal the hosted connections among them ([`Share::deal`]); each
    /// connection's lease loop takes or hands over its lease by that deal. On shutdown the
    /// replica leaves, so the others deal its connections among themselves at once.
    async fn share_leases(self: Arc<Self>, mut shutdown: Shutdown) {
        while !shutdown.is_shutdown() {
            match self.store.replica_heartbeat(&self.holder, REPLICA_TTL).await {
                Ok(replicas) => {
                    *self.replicas.lock().expect("lock") = Some(replicas);
                    self.deal();
                }
                Err(e) => tracing::warn!(error = %e, "replicas: cannot renew this replica's heartbeat"),
            }
            shutdown.sleep(self.lease.renew_every).await;
        }
        let _ = self.store.replica_leave(&self.holder).await;
    }

    /// Deal the hosted connections running here among the replicas last seen (a no-op before
    /// the first heartbeat): after every heartbeat, and when a connection starts or stops.
    fn deal(&self) {
        let Some(replicas) = self.replicas.lock().expect("lock").clone() else {
            return;
        };
        let hosted: std::collections::BTreeSet<String> = self
            .running
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, r)| r.remote.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        let share = Share::deal(&hosted, &replicas, &self.holder);
        self.share.send_if_modified(|current| {
            if *current == share {
                return false;
            }
            tracing::info!(replicas = replicas.len(), share = ?share, "hosted connections dealt among the replicas");
            *current = share;
            true
        });
    }

    async fn sync_rounds(
        &self,
        connections: Arc<Connections>,
        configured: String,
        vault: vault::Vault,
        shutdown: &mut Shutdown,
    ) {
        loop {
            shutdown.sleep(SYNC_EVERY).await;
            if shutdown.is_shutdown() {
                return;
            }
            let round = async {
                if let Err(e) = self.sync_stored(&connections, &configured, &vault).await {
                    tracing::warn!(error = %e, "connections: cannot read the store; retrying");
                }
                for rt in connections.values() {
                    if let Err(e) = rt.registry.sync_deployments().await {
                        tracing::warn!(connection = %rt.name, error = %e, "mappings: cannot sync deployments");
                    }
                    if let Some(commands) = &rt.command_registry {
                        if let Err(e) = commands.reload().await {
                            tracing::warn!(connection = %rt.name, error = %e, "command mappings: cannot reload");
                        }
                    }
                }
            };
            tokio::select! {
                _ = round => {}
                _ = shutdown.recv() => return,
            }
        }
    }
}

/// The client credentials of a self-hosted connection whose `.ionapi` file is not saved yet. Never
/// used to call anything: a self-hosted connection reaches M3 only through its connector
/// ([`RemoteMi`]), and the connector gets no configuration before the file is saved. The URLs
/// point to a reserved domain that never resolves.
fn no_credentials() -> m3::IonApi {
    m3::IonApi {
        tenant: String::new(),
        app_name: String::new(),
        client_id: String::new(),
        client_secret: m3::Secret::new(""),
        gateway_url: "https://ionapi-not-configured.invalid".into(),
        auth_url: "https://ionapi-not-configured.invalid/".into(),
        token_path: "token.oauth2".into(),
        revoke_path: "revoke_token.oauth2".into(),
        saak: String::new(),
        sask: m3::Secret::new(""),
    }
}

/// Stop one run of a connection: its connector finishes its page, then its lease and Kafka
/// tasks end, and a connector channel closes.
async fn stop_running(r: Running) {
    if let Some(remote) = &r.remote {
        remote.close();
    }
    r.connector.shutdown().await;
    r.shutdown.fire();
    for t in r.tasks {
        let _ = t.await;
    }
}

/// How often a connection with no mapping deployed checks M3 again (see [`probe_while_idle`]).
pub const IDLE_PROBE_EVERY: Duration = Duration::from_secs(60);

/// Check M3 at start, then every [`IDLE_PROBE_EVERY`] while no mapping is deployed (deployed
/// mappings report connectivity themselves), so that the connection's light shows its state
/// before a message type is deployed.
pub async fn probe_while_idle(connector: Connector, mut stop: Shutdown) {
    let board = connector.status();
    let mut first = true;
    loop {
        if first || connector.mappings().is_empty() {
            // A stop never waits for M3's answer.
            let m3 = connector.m3();
            tokio::select! {
                _ = stop.recv() => return,
                _ = pipeline::status::probe(&m3, &board) => {}
            }
        }
        first = false;
        tokio::select! {
            _ = stop.recv() => return,
            _ = tokio::time::sleep(IDLE_PROBE_EVERY) => {}
        }
    }
}
