//! The running product: configuration -> store -> [`runtime::Hub`] -> Studio's router -> HTTP
//! server, plus (for the demo) the embedded M3 simulator. Tests start the same [`App`] on port 0.
//! What a connection does while it runs is the `runtime` crate's; what the API answers is
//! studio's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use m3::IonApi;
use pipeline::ShutdownTrigger;
use runtime::{instance_id, ConnectionRuntime, Hosting, Hub, LaunchSpec, WebhookAuth};
use store::Store;
use studio::AppState;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::{Config, ConnectionConfig};

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
    /// The admin token created by this start (first start only): shown once.
    pub admin_token: Option<String>,
    /// Stops the HTTP server.
    server_stop: ShutdownTrigger,
    /// Stops the replica sync.
    sync_stop: ShutdownTrigger,
    /// Stops the outbox pruning task.
    prune_stop: ShutdownTrigger,
    prune: JoinHandle<()>,
    hub: Arc<Hub>,
    server: JoinHandle<()>,
    sync: JoinHandle<()>,
    simulator: Option<EmbeddedSim>,
    /// Held while the app runs; released when it is dropped.
    _folder_lock: runtime::FolderLock,
}

/// The demo's simulator: its server, workload and snapshot file.
struct EmbeddedSim {
    sim: m3_sim::Simulator,
    running: m3_sim::RunningSim,
    workload: JoinHandle<()>,
    autosave: JoinHandle<()>,
    snapshot: PathBuf,
}

impl App {
    /// Start everything `cfg` describes.
    pub async fn start(mut cfg: Config) -> anyhow::Result<App> {
        // The HTTP port is taken before anything starts (store, simulator, connectors), so that a
        // port in use stops the start at once, with nothing to undo.
        let listener =
            listen(cfg.http.listen).with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
        let api_addr = listener.local_addr()?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir: cannot create {}", cfg.data_dir.display()))?;
        // One process per data folder: a second one is refused here, naming the holder's pid.
        let folder_lock = runtime::FolderLock::acquire(&cfg.data_dir)?;
        let store = match &cfg.store.url {
            Some(url) => Store::connect(url).await.context("store.url")?,
            None => Store::open(&cfg.data_dir.join("erp-bridge.db")).await?,
        };

        let vault = open_vault(&cfg, &store).await?;
        let holder = instance_id(&cfg.data_dir, "instance-id")?;
        // Messages' `dataschema` and the schemas' `$id` are absolute URIs under this base.
        let schema_base_url = cfg.http.schema_base_url(api_addr);
        cfg.kafka.schema_base_url = schema_base_url.clone();
        let hub = Hub::new(store.clone(), tuning(&cfg.connection), cfg.kafka.clone(), holder);
        let (ionapi_file, simulator, configured) = if cfg.connection.enabled {
            let (ionapi_file, simulator) = match &cfg.connection.ionapi_file {
                Some(f) => (f.clone(), None),
                None => {
                    let sim = start_simulator(&cfg).await?;
                    if cfg.connection.webhook_token.is_none() {
                        // The simulator pushes webhooks to us; give them a credential of their own.
                        cfg.connection.webhook_token = Some(studio::auth::random_hex(32));
                    }
                    (cfg.data_dir.join("m3-simulator.ionapi"), Some(sim))
                }
            };
            let runtime = start_configured(&cfg, &hub, &ionapi_file).await?;
            (ionapi_file, simulator, Some(runtime))
        } else {
            info!("connection.enabled = false: only connections created through the API run here");
            (PathBuf::new(), None, None)
        };
        let c = &cfg.connection;
        let configured_name = if c.enabled { c.name.as_str() } else { "" };
        let connections = Arc::new(runtime::Connections::new(configured));
        // Connections created through the API (here or on another replica sharing the store):
        // started when their `.ionapi` is saved, kept in step with the store.
        if c.enabled && store.connection(&c.name).await?.is_some() {
            tracing::warn!(connection = %c.name, "stored connection shadowed by the configured one of the same name");
        }
        hub.sync_stored(&connections, configured_name, &vault).await?;

        let (prune_stop, prune_shutdown) = ShutdownTrigger::new();
        let prune = tokio::spawn(runtime::retention::run(
            store.clone(),
            cfg.outbox.policy(!cfg.kafka.brokers.is_empty()),
            cfg.outbox.prune_interval,
            prune_shutdown,
        ));
        let admin_token = studio::auth::bootstrap(&store, cfg.auth.bootstrap_token.as_deref()).await?;
        if !cfg.auth.enabled {
            tracing::warn!("auth.enabled = false: the API answers anyone who can reach it");
        }
        let state = AppState {
            store,
            connections,
            auth: Arc::new(studio::auth::Auth::new(cfg.auth.enabled)),
            vault: Some(vault.clone()),
            hub: Some(hub.clone()),
            public_url: cfg.http.public_url.clone(),
            schema_base_url,
            contact_email: cfg.http.contact_email.clone(),
            kafka: cfg.kafka.clone(),
            outbound: studio::Outbound {
                allowed_hosts: cfg.outbound.allowed_hosts.clone(),
            },
        };
        let (sync_stop, sync_shutdown) = ShutdownTrigger::new();
        let sync = tokio::spawn(hub.clone().keep_in_sync(
            state.connections.clone(),
            configured_name.to_string(),
            vault.clone(),
            sync_shutdown,
        ));
        let (server_stop, mut server_shutdown) = ShutdownTrigger::new();
        let limits = cfg.http.limits();
        let server = tokio::spawn(async move {
            let shutdown = async move { server_shutdown.recv().await };
            if let Err(e) = studio::server::serve(listener, studio::router(state), limits, shutdown).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        if let (Some(sim), Some(token)) = (&simulator, &c.webhook_token) {
            sim.sim.subscribe(m3_sim::WebhookSubscription {
                subscription: "M3:MITMAS:CUD".into(),
                url: format!("http://{api_addr}/webhooks/{}/MITMAS", c.name),
                auth: m3_sim::WebhookAuth::Bearer { token: token.clone() },
            });
        }
        info!(api = %api_addr, "erp-bridge started");
        Ok(App {
            api_url: format!("http://{api_addr}"),
            api_addr,
            simulator_url: simulator.as_ref().map(|s| s.running.base_url.clone()),
            ionapi_file,
            connection: c.name.clone(),
            kafka_topics: (!cfg.kafka.brokers.is_empty()).then(|| cfg.kafka.topics(&c.name)),
            admin_token,
            server_stop,
            sync_stop,
            prune_stop,
            prune,
            hub,
            server,
            sync,
            simulator,
            _folder_lock: folder_lock,
        })
    }

    /// Stop cleanly: connector tasks finish their current page, the server drains, the simulator
    /// saves its tables and stops.
    pub async fn shutdown(self) {
        self.sync_stop.fire();
        let _ = self.sync.await;
        self.prune_stop.fire();
        let _ = self.prune.await;
        self.hub.stop_all().await;
        self.server_stop.fire();
        let _ = self.server.await;
        if let Some(s) = self.simulator {
            s.workload.abort();
            s.autosave.abort();
            if let Err(e) = s.sim.save(&s.snapshot) {
                tracing::warn!(error = %e, "simulator snapshot not saved");
            }
            s.running.shutdown().await;
        }
    }
}

/// Start the connection of the configuration file: its `.ionapi`, webhook credentials, command
/// and mapping files.
async fn start_configured(cfg: &Config, hub: &Hub, ionapi_file: &std::path::Path) -> anyhow::Result<ConnectionRuntime> {
    let c = &cfg.connection;
    let text = std::fs::read_to_string(ionapi_file)
        .with_context(|| format!("connection.ionapi_file: cannot read {}", ionapi_file.display()))?;
    let ion = IonApi::parse(&text).with_context(|| format!("connection.ionapi_file {}", ionapi_file.display()))?;
    let mut runtime = hub
        .start(LaunchSpec {
            name: c.name.clone(),
            hosting: Hosting::Hosted,
            ionapi: Some(ion),
            mdp: None,
            company: c.company,
            webhook_token: None,
            revision: None,
        })
        .await?;
    runtime.webhook_auth = WebhookAuth {
        bearer: c.webhook_token.clone().map(m3::Secret::new),
        basic: c
            .webhook_username
            .clone()
            .zip(c.webhook_password.clone().map(m3::Secret::new)),
    };
    if let Some(reg) = &runtime.command_registry {
        runtime::files::load_commands(reg, cfg.commands_dir.as_deref()).await?;
    }
    runtime::files::load_mappings(&runtime.registry, cfg.mappings_dir.as_deref()).await?;
    Ok(runtime)
}

/// The key that seals stored secrets: `ERP_BRIDGE_SECRET_KEY` or `secrets.key` (64 hex digits
/// or base64), else the key file (`secrets.key_file`, default `<data_dir>/secret.key`),
/// generated on first start with a warning. `ERP_BRIDGE_PREVIOUS_KEYS` (comma-separated) and
/// `secrets.previous_keys` hold keys being rotated out: values sealed with them are sealed
/// again with the current key at start.
async fn open_vault(cfg: &Config, store: &Store) -> anyhow::Result<vault::Vault> {
    let env_key = std::env::var("ERP_BRIDGE_SECRET_KEY")
        .ok()
        .or_else(|| cfg.secrets.key.clone());
    let mut previous: Vec<String> = std::env::var("ERP_BRIDGE_PREVIOUS_KEYS")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    previous.extend(cfg.secrets.previous_keys.iter().cloned());
    let key_file = cfg
        .secrets
        .key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("secret.key"));
    let (vault, source) = vault::Vault::load_or_create(env_key.as_deref(), &key_file, &previous)
        .context("secrets: cannot load the key (ERP_BRIDGE_SECRET_KEY or secrets.key_file)")?;
    match source {
        vault::KeySource::Generated(path) => tracing::warn!(
            key_file = %path.display(), key_id = %vault.key_id(),
            "secrets: generated a new key; back it up, or set ERP_BRIDGE_SECRET_KEY in production: without it stored credentials cannot be opened"
        ),
        vault::KeySource::File(path) => {
            info!(key_file = %path.display(), key_id = %vault.key_id(), "secrets: key loaded")
        }
        vault::KeySource::Env => info!(key_id = %vault.key_id(), "secrets: key from ERP_BRIDGE_SECRET_KEY"),
    }
    let mut resealed = 0;
    for mut rec in store.connections().await? {
        let mut changed = false;
        for (field, sealed) in rec.secrets.iter_mut() {
            if vault.is_stale(sealed) {
                *sealed = vault
                    .reseal(sealed, &runtime::stored::aad(&rec.name, field))
                    .with_context(|| format!("secrets: connection {} field {field}", rec.name))?;
                changed = true;
                resealed += 1;
            }
        }
        if changed {
            store.update_connection(&rec).await?;
        }
    }
    if resealed > 0 {
        info!(values = resealed, key_id = %vault.key_id(), "secrets: sealed again with the current key (rotation)");
    }
    Ok(vault)
}

/// The demo's M3: restored from its snapshot in the data folder (or seeded), serving on
/// loopback, with simulated users and a generated `.ionapi` file.
async fn start_simulator(cfg: &Config) -> anyhow::Result<EmbeddedSim> {
    let snapshot = cfg.data_dir.join("m3-simulator.json");
    let sim = m3_sim::Simulator::open(
        m3_sim::SimConfig {
            items: cfg.simulator.items,
            seed: cfg.simulator.seed,
            ..Default::default()
        },
        &snapshot,
    )
    .with_context(|| format!("simulator snapshot {}", snapshot.display()))?;
    let running = sim.serve(cfg.simulator.listen).await.context("simulator.listen")?;
    let path = cfg.data_dir.join("m3-simulator.ionapi");
    let text = serde_json::to_string_pretty(&sim.ionapi(&running.base_url))?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let workload = sim.start_workload(cfg.simulator.changes_per_second);
    let autosave = sim.autosave(snapshot.clone(), std::time::Duration::from_secs(2));
    Ok(EmbeddedSim {
        sim,
        running,
        workload,
        autosave,
        snapshot,
    })
}

/// The configured tuning as every connector takes it: a hosted connection's here, a
/// self-hosted one's with its configuration over the channel.
fn tuning(c: &ConnectionConfig) -> channel::Tuning {
    channel::Tuning {
        poll_interval: c.poll_interval,
        reconcile_interval: c.reconcile_interval,
        overlap: c.overlap,
        page_size: c.page_size,
        separator: c.separator,
        load_parallelism: c.load_parallelism,
        delete_hold_share: c.delete_hold_share,
        full_resync: c.full_resync.clone(),
    }
}

/// Connections the kernel queues for the API while `http.max_connections` are open (Linux caps
/// it at `net.core.somaxconn`, 4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// The API's listening socket, with a queue of [`LISTEN_BACKLOG`] connections. The server takes
/// a permit before each accept (`studio::server`), so beyond `http.max_connections` new ones
/// wait in this queue; tokio's `TcpListener::bind` queues 1,024, and when that queue is full
/// the kernel drops new handshakes: under a flood of slow clients a health probe then failed
/// after half a minute of retransmissions instead of waiting its turn.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does on Unix: a restart can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
