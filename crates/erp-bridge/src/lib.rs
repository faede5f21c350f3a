//! Assembles erp-bridge: store, connector, HTTP API and (for the demo) the embedded M3 simulator.
//! `main.rs` only parses the command line; tests start the same [`App`] on port 0.

pub mod config;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use m3::{ClientOptions, IonApi, M3Client};
use mapping::catalog;
use pipeline::commands::{default_commands, CommandProcessor, RetryPolicy};
use pipeline::{Connector, ConnectorSettings, MappingSource};
use store::Store;
use studio::{AppState, ConnectionRuntime, WebhookAuth};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::Config;

/// Start the Kafka side of a connection: create its topics (retrying while the broker is away),
/// then run the outbox relay and the command consumer until shutdown.
async fn run_kafka(
    settings: kafka::KafkaSettings,
    store: Store,
    connection: String,
    status: pipeline::StatusBoard,
    processor: CommandProcessor,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        match kafka::ensure_topics(&settings, &connection).await {
            Ok(topics) => {
                info!(connection = %connection, events = %topics.events, commands = %topics.commands, "kafka topics ready");
                break;
            }
            Err(e) => {
                failures += 1;
                let wait = std::time::Duration::from_millis((500u64 << failures.min(6)).min(30_000));
                tracing::warn!(connection = %connection, error = %e, retry_in = ?wait, "kafka: cannot create topics; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
    let relay = match kafka::Relay::new(&settings, store, &connection, status) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(connection = %connection, error = %e, "kafka relay cannot start");
            return;
        }
    };
    let consumer = match kafka::CommandConsumer::new(&settings, &connection, processor) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(connection = %connection, error = %e, "kafka command consumer cannot start");
            return;
        }
    };
    let r = tokio::spawn(relay.run(shutdown.clone()));
    let c = tokio::spawn(consumer.run(shutdown));
    let _ = tokio::join!(r, c);
}

/// A running erp-bridge.
pub struct App {
    /// Base URL of the HTTP API.
    pub api_url: String,
    /// Address the API listens on.
    pub api_addr: SocketAddr,
    /// Base URL of the embedded simulator, when it runs.
    pub simulator_url: Option<String>,
    /// The `.ionapi` file the connector authenticates with.
    pub ionapi_file: PathBuf,
    /// The connection's name.
    pub connection: String,
    /// Kafka topics of the connection, when Kafka is configured.
    pub kafka_topics: Option<kafka::Topics>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    simulator: Option<(m3_sim::RunningSim, JoinHandle<()>)>,
}

impl App {
    /// Start everything `cfg` describes.
    pub async fn start(cfg: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir: cannot create {}", cfg.data_dir.display()))?;
        let store = Store::open(&cfg.data_dir.join("erp-bridge.db")).await?;

        let (ionapi_file, simulator) = match &cfg.connection.ionapi_file {
            Some(f) => (f.clone(), None),
            None => {
                let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
                    items: cfg.simulator.items,
                    seed: cfg.simulator.seed,
                    ..Default::default()
                });
                let running = sim.serve(cfg.simulator.listen).await.context("simulator.listen")?;
                let path = cfg.data_dir.join("m3-simulator.ionapi");
                let text = serde_json::to_string_pretty(&sim.ionapi(&running.base_url))?;
                std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                let workload = sim.start_workload(cfg.simulator.changes_per_second);
                (path, Some((running, workload)))
            }
        };
        let text = std::fs::read_to_string(&ionapi_file)
            .with_context(|| format!("connection.ionapi_file: cannot read {}", ionapi_file.display()))?;
        let ion = IonApi::parse(&text).with_context(|| format!("connection.ionapi_file {}", ionapi_file.display()))?;
        let client = Arc::new(M3Client::new(
            ion,
            ClientOptions {
                company: cfg.connection.company,
                ..Default::default()
            },
        )?);

        let spec = mapping::spec::default_item_mapping();
        let table = catalog::standard_table(&spec.table).context("default mapping table")?;
        let source = MappingSource::new(&spec, table)?;
        let c = &cfg.connection;
        let settings = ConnectorSettings {
            connection: c.name.clone(),
            poll_interval: c.poll_interval,
            reconcile_interval: c.reconcile_interval,
            page_size: c.page_size,
            overlap: c.overlap,
            separator: c.separator,
        };
        let processor = CommandProcessor::new(
            client.clone(),
            store.clone(),
            &c.name,
            default_commands(),
            RetryPolicy::default(),
        );
        let mappings = vec![source.mapping.clone()];
        let connector = Connector::new(client, store.clone(), settings, vec![source]);
        let runtime = ConnectionRuntime {
            name: c.name.clone(),
            mappings,
            status: connector.status(),
            commands: Some(processor.clone()),
            ingest: Some(connector.ingest()),
            webhook_auth: WebhookAuth {
                bearer: c.webhook_token.clone().map(m3::Secret::new),
                basic: c
                    .webhook_username
                    .clone()
                    .zip(c.webhook_password.clone().map(m3::Secret::new)),
            },
        };
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = connector.spawn(rx.clone());
        if !cfg.kafka.brokers.is_empty() {
            tasks.push(tokio::spawn(run_kafka(
                cfg.kafka.clone(),
                store.clone(),
                c.name.clone(),
                runtime.status.clone(),
                processor,
                rx.clone(),
            )));
        }

        let state = AppState {
            store,
            connections: Arc::new(BTreeMap::from([(c.name.clone(), runtime)])),
        };
        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
        let api_addr = listener.local_addr()?;
        let mut srx = rx;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = srx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, studio::router(state))
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        info!(api = %api_addr, "erp-bridge started");
        Ok(App {
            api_url: format!("http://{api_addr}"),
            api_addr,
            simulator_url: simulator.as_ref().map(|(s, _)| s.base_url.clone()),
            ionapi_file,
            connection: c.name.clone(),
            kafka_topics: (!cfg.kafka.brokers.is_empty()).then(|| cfg.kafka.topics(&c.name)),
            shutdown,
            tasks,
            server,
            simulator,
        })
    }

    /// Stop cleanly: connector tasks finish their current page, the server drains, the simulator stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.server.await;
        if let Some((sim, workload)) = self.simulator {
            workload.abort();
            sim.shutdown().await;
        }
    }
}
