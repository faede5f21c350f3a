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
}

struct Running {
    shutdown: watch::Sender<bool>,
    connector: Connector,
    remote: Option<Arc<studio::channel::RemoteState>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A started connection: what the API needs, plus its registries for start-up loading.
pub struct Started {
    /// The API's handle.
    pub runtime: ConnectionRuntime,
    /// The command processor (shared with the Kafka consumer).
    pub processor: Option<CommandProcessor>,
}

impl Hub {
    /// A hub writing to `store`, with the configured tuning and Kafka settings.
    pub fn new(store: Store, tuning: ConnectionConfig, kafka: kafka::KafkaSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            tuning,
            kafka,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Start one connection. Mappings are not restored here (the caller loads files first,
    /// then calls [`MappingRegistry::restore`]); command mappings of a hosted connection are.
    pub async fn start(&self, spec: LaunchSpec) -> anyhow::Result<Started> {
        let t = &self.tuning;
        let client = Arc::new(M3Client::new(
            spec.ionapi,
            ClientOptions {
                company: spec.company,
                mdp: spec.mdp,
                ..Default::default()
            },
        )?);
        let remote = spec.hosting == Hosting::SelfHosted;
        let settings = ConnectorSettings {
            connection: spec.name.clone(),
            poll_interval: t.poll_interval,
            reconcile_interval: t.reconcile_interval,
            page_size: t.page_size,
            overlap: t.overlap,
            separator: t.separator,
            full_resync: t
                .full_resync
                .as_deref()
                .map(pipeline::schedule::Schedule::parse)
                .transpose()?,
            remote,
        };
        let connector = Connector::new(client.clone(), self.store.clone(), settings);
        let registry = MappingRegistry::new(connector.clone(), self.store.clone());
        let (processor, command_registry) = if remote {
            (None, None)
        } else {
            // The command mappings come from the store (and `commands_dir`); the registry swaps
            // them into this processor and every clone of it (HTTP API, Kafka consumer).
            let processor = CommandProcessor::new(
                client.clone(),
                self.store.clone(),
                &spec.name,
                Vec::new(),
                RetryPolicy::default(),
            );
            let reg = CommandRegistry::new(processor.clone(), self.store.clone());
            (Some(processor), Some(reg))
        };
        let remote_state = remote.then(|| Arc::new(studio::channel::RemoteState::default()));
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
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
            commands: processor.clone(),
            command_registry,
            webhook_auth: WebhookAuth {
                bearer: spec.webhook_token,
                basic: None,
            },
            remote: remote_state.clone(),
        };
        self.running.lock().expect("lock").insert(
            spec.name.clone(),
            Running {
                shutdown,
                connector,
                remote: remote_state,
                tasks,
            },
        );
        tracing::info!(connection = %spec.name, hosting = spec.hosting.as_str(), "connection started");
        Ok(Started { runtime, processor })
    }

    /// Stop one connection: its connector finishes its current page, Kafka tasks drain, a
    /// connector channel closes.
    pub async fn stop_connection(&self, name: &str) {
        let Some(r) = self.running.lock().expect("lock").remove(name) else {
            return;
        };
        let _ = r.shutdown.send(true);
        if let Some(remote) = &r.remote {
            remote.close();
        }
        r.connector.shutdown().await;
        for t in r.tasks {
            let _ = t.await;
        }
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

/// The API's way to start a stored connection: start it and restore its deployed mappings and
/// command mappings.
pub struct ApiLauncher(pub Arc<Hub>);

impl studio::Launcher for ApiLauncher {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<ConnectionRuntime, String>> {
        Box::pin(async move {
            let name = spec.name.clone();
            let started = self.0.start(spec).await.map_err(|e| format!("{e:#}"))?;
            let rt = started.runtime;
            if let Some(reg) = &rt.command_registry {
                reg.seed_defaults().await.map_err(|e| e.to_string())?;
                reg.reload().await.map_err(|e| e.to_string())?;
            }
            if let Err(e) = rt.registry.restore().await {
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
