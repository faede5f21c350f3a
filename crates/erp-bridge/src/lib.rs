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
use pipeline::{Connector, ConnectorSettings, MappingSource};
use store::Store;
use studio::{AppState, ConnectionRuntime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::Config;

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
                let running = sim
                    .serve(cfg.simulator.listen)
                    .await
                    .context("simulator.listen")?;
                let path = cfg.data_dir.join("m3-simulator.ionapi");
                let text = serde_json::to_string_pretty(&sim.ionapi(&running.base_url))?;
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let workload = sim.start_workload(cfg.simulator.changes_per_second);
                (path, Some((running, workload)))
            }
        };
        let text = std::fs::read_to_string(&ionapi_file).with_context(|| {
            format!(
                "connection.ionapi_file: cannot read {}",
                ionapi_file.display()
            )
        })?;
        let ion = IonApi::parse(&text)
            .with_context(|| format!("connection.ionapi_file {}", ionapi_file.display()))?;
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
        let runtime = ConnectionRuntime {
            name: c.name.clone(),
            mappings: vec![source.mapping.clone()],
            status: Default::default(),
        };
        let connector = Connector::new(client, store.clone(), settings, vec![source]);
        let runtime = ConnectionRuntime {
            status: connector.status(),
            ..runtime
        };
        let (shutdown, rx) = watch::channel(false);
        let tasks = connector.spawn(rx.clone());

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
