//! Starting and stopping connections inside this process: for each, an M3 client, its
//! connector, its mapping and command registries, and its Kafka relay and command consumer.
//! The configured connection and every connection stored through the API start the same way;
//! a self-hosted connection gets a connector that only records deployments (its mappings run
//! on the customer's connector, which calls home) and no command processing here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use m3::{ClientOptions, M3Client};
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::{CommandProcessor, RetryPolicy};
use pipeline::registry::MappingRegistry;
use pipeline::{Connector, ConnectorSettings};
use store::Store;
use studio::hub::BoxFuture;
use studio::{ConnectionRuntime, Hosting, LaunchSpec, WebhookAuth};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ConnectionConfig;

/// Starts connections and remembers their tasks so it can stop them.
pub struct Hub {
    store: Store,
    /// Tuning shared by every connection (poll intervals, page size, separator, re-sync).
    tuning: ConnectionConfig,
    kafka: kafka::KafkaSettings,
    running: Mutex<HashMap<String, Running>>,
    /// This process's name as a lease holder.
    holder: String,
}

/// How long a hosted connection's lease lasts without renewal, and how often it is renewed.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15);
const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(4);

struct Running {
    shutdown: watch::Sender<bool>,
    connector: Connector,
    remote: Option<Arc<studio::channel::RemoteState>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Hub {
    /// A hub writing to `store`, with the configured tuning and Kafka settings; `holder` names
    /// this installation in connection leases (stable across restarts, so a restarted process
    /// takes its leases back at once).
    pub fn new(store: Store, tuning: ConnectionConfig, kafka: kafka::KafkaSettings, holder: String) -> Arc<Self> {
        Arc::new(Self {
            store,
            tuning,
            kafka,
            running: Mutex::new(HashMap::new()),
            holder,
        })
    }

    /// Start one connection. Neither mappings nor command mappings are loaded here (the caller
    /// applies files first, then calls [`MappingRegistry::sync_deployments`] and reloads commands).
    pub async fn start(&self, spec: LaunchSpec) -> anyhow::Result<ConnectionRuntime> {
        let client = Arc::new(M3Client::new(
            spec.ionapi,
            ClientOptions {
                company: spec.company,
                mdp: spec.mdp,
                ..Default::default()
            },
        )?);
        let remote = spec.hosting == Hosting::SelfHosted;
        // A self-hosted connection's M3 is reached through its connector, for everything.
        let via = remote.then(pipeline::remote_mi::RemoteMi::default);
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        // A hosted connection reads M3 only while this process holds its lease, so that
        // several replicas sharing one store never poll the same tables twice.
        let lease = if remote {
            None
        } else {
            let (tx, lease_rx) = watch::channel(false);
            tasks.push(tokio::spawn(keep_lease(
                self.store.clone(),
                spec.name.clone(),
                self.holder.clone(),
                tx,
                rx.clone(),
            )));
            Some(lease_rx)
        };
        // The same tuning a self-hosted connector receives, so both run alike.
        let settings = ConnectorSettings {
            remote,
            lease,
            via: via.clone(),
            ..self.connector_tuning().to_settings(&spec.name)?
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
        let remote_state = via.clone().map(|mi| {
            processor = processor.clone().through(mi.clone());
            Arc::new(studio::channel::RemoteState::new(mi, self.connector_tuning()))
        });
        let command_registry = CommandRegistry::new(processor.clone(), self.store.clone());
        if !self.kafka.brokers.is_empty() {
            tasks.push(tokio::spawn(crate::run_kafka(
                self.kafka.clone(),
                self.store.clone(),
                spec.name.clone(),
                connector.status(),
                processor.clone(),
                rx,
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
        if let Some(old) = replaced {
            // Two starts raced (an API save and the store sync): only the newest may run.
            tracing::info!(connection = %spec.name, "connection started again: the previous run stops");
            stop_running(old).await;
        }
        tracing::info!(connection = %spec.name, hosting = spec.hosting.as_str(), "connection started");
        Ok(runtime)
    }

    /// The configured tuning as a connector takes it: a hosted connection's connector here, a
    /// self-hosted one with its configuration over the channel.
    fn connector_tuning(&self) -> channel::Tuning {
        let t = &self.tuning;
        channel::Tuning {
            poll_interval: t.poll_interval,
            reconcile_interval: t.reconcile_interval,
            overlap: t.overlap,
            page_size: t.page_size,
            separator: t.separator,
            load_parallelism: t.load_parallelism,
            delete_hold_share: t.delete_hold_share,
            full_resync: t.full_resync.clone(),
        }
    }

    /// Stop one connection: its connector finishes its current page, Kafka tasks drain, a
    /// connector channel closes.
    pub async fn stop_connection(&self, name: &str) {
        let Some(r) = self.running.lock().expect("lock").remove(name) else {
            return;
        };
        stop_running(r).await;
        tracing::info!(connection = %name, "connection stopped");
    }

    /// Stop every connection.
    pub async fn stop_all(&self) {
        let names: Vec<String> = self.running.lock().expect("lock").keys().cloned().collect();
        for n in names {
            self.stop_connection(&n).await;
        }
    }
}

/// Stop one run of a connection: its connector finishes its page, then its lease and Kafka
/// tasks end, and a connector channel closes.
async fn stop_running(r: Running) {
    if let Some(remote) = &r.remote {
        remote.close();
    }
    r.connector.shutdown().await;
    let _ = r.shutdown.send(true);
    for t in r.tasks {
        let _ = t.await;
    }
}

/// Hold (take, renew) a hosted connection's lease until `shutdown`, publishing whether this
/// process holds it; released on shutdown so another replica takes over at once.
async fn keep_lease(
    store: Store,
    connection: String,
    holder: String,
    held: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut renewed = tokio::time::Instant::now();
    let mut first = true;
    loop {
        match store.acquire_lease(&connection, &holder, LEASE_TTL).await {
            Ok(store::LeaseOutcome::Granted) => {
                renewed = tokio::time::Instant::now();
                if !*held.borrow() {
                    tracing::info!(connection = %connection, holder = %holder, "lease taken: this process reads M3 for the connection");
                    let _ = held.send(true);
                }
            }
            Ok(store::LeaseOutcome::HeldBy { holder: other, .. }) => {
                if *held.borrow() || first {
                    tracing::info!(connection = %connection, other = %other, "lease held by another process: standing by");
                }
                let _ = held.send(false);
            }
            Err(e) => {
                // Without renewal the lease may pass to another process: stop reading in time.
                tracing::warn!(connection = %connection, error = %e, "lease renewal failed");
                if renewed.elapsed() + LEASE_RENEW >= LEASE_TTL {
                    let _ = held.send(false);
                }
            }
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RENEW) => {}
            _ = shutdown.changed() => break,
        }
    }
    let _ = store.release_lease(&connection, &holder).await;
}

/// The API's way to start a stored connection: start it and restore its deployed mappings and
/// command mappings.
pub struct ApiLauncher(pub Arc<Hub>);

impl studio::Launcher for ApiLauncher {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<ConnectionRuntime, String>> {
        Box::pin(async move {
            let name = spec.name.clone();
            let rt = self.0.start(spec).await.map_err(|e| format!("{e:#}"))?;
            if let Some(reg) = &rt.command_registry {
                reg.seed_defaults().await.map_err(|e| e.to_string())?;
                reg.reload().await.map_err(|e| e.to_string())?;
            }
            if let Err(e) = rt.registry.sync_deployments().await {
                self.0.stop_connection(&name).await;
                return Err(e.to_string());
            }
            Ok(rt)
        })
    }

    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.0.stop_connection(name))
    }
}

/// Keep this process's stored connections in step with the store: other replicas create,
/// change and delete connections through their own API. New or changed ones (a different
/// `updated_at` than the one running) start or restart, deleted ones stop; `configured` (the
/// configuration file's connection) is left alone.
pub async fn sync_stored(
    store: &Store,
    vault: &vault::Vault,
    launcher: &ApiLauncher,
    connections: &studio::Connections,
    configured: &str,
) -> Result<(), store::StoreError> {
    use studio::Launcher as _;
    let _restart = connections.restarts.lock().await;
    let records = store.connections().await?;
    for rec in &records {
        if rec.name == configured {
            continue;
        }
        let running = connections.get(&rec.name);
        if running.as_ref().and_then(|r| r.revision.as_deref()) == Some(rec.updated_at.as_str()) {
            continue;
        }
        let spec = match studio::connections::launch_spec(vault, rec) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!(connection = %rec.name, error = %e, "stored connection cannot be opened");
                continue;
            }
        };
        if running.is_some() {
            connections.remove(&rec.name);
            launcher.stop(&rec.name).await;
        }
        match spec {
            Some(spec) => match launcher.launch(spec).await {
                Ok(rt) => connections.insert(rt),
                Err(e) => tracing::error!(connection = %rec.name, error = %e, "stored connection cannot start"),
            },
            None => tracing::debug!(connection = %rec.name, "stored connection waits for its .ionapi file"),
        }
    }
    for rt in connections.values() {
        if rt.revision.is_some() && !records.iter().any(|r| r.name == rt.name) {
            connections.remove(&rt.name);
            launcher.stop(&rt.name).await;
            tracing::info!(connection = %rt.name, "connection deleted elsewhere: stopped");
        }
    }
    Ok(())
}
