//! Assembles erp-bridge: store, connector, HTTP API and (for the demo) the embedded M3 simulator.
//! `main.rs` only parses the command line; tests start the same [`App`] on port 0.

pub mod bench;
pub mod config;
pub mod hub;
pub mod remote;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use m3::IonApi;
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::{CommandProcessor, CommandSpec};
use pipeline::registry::MappingRegistry;
use store::Store;
use studio::{AppState, LaunchSpec, WebhookAuth};
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
                let wait =
                    pipeline::Backoff::new(std::time::Duration::from_secs(1), std::time::Duration::from_secs(30))
                        .delay(failures);
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
    let r = tokio::spawn(relay.run(shutdown.clone()));
    match kafka::CommandConsumer::new(&settings, &connection, processor) {
        Ok(consumer) => consumer.run(shutdown).await,
        Err(e) => tracing::error!(connection = %connection, error = %e, "kafka command consumer cannot start"),
    }
    let _ = r.await;
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
    /// The admin token created by this start (first start only): shown once.
    pub admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    hub: Arc<hub::Hub>,
    server: JoinHandle<()>,
    sync: JoinHandle<()>,
    simulator: Option<EmbeddedSim>,
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
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir: cannot create {}", cfg.data_dir.display()))?;
        let store = match &cfg.store.url {
            Some(url) => Store::connect(url).await.context("store.url")?,
            None => Store::open(&cfg.data_dir.join("erp-bridge.db")).await?,
        };

        let vault = open_vault(&cfg, &store).await?;
        let holder = instance_id(&cfg.data_dir, "instance-id")?;
        let hub = hub::Hub::new(store.clone(), cfg.connection.clone(), cfg.kafka.clone(), holder);
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
        let connections = Arc::new(studio::Connections::new(configured));
        // Connections created through the API (here or on another replica sharing the store):
        // started when their `.ionapi` is saved, kept in step with the store.
        let launcher = Arc::new(hub::ApiLauncher(hub.clone()));
        if c.enabled && store.connection(&c.name).await?.is_some() {
            tracing::warn!(connection = %c.name, "stored connection shadowed by the configured one of the same name");
        }
        hub::sync_stored(&store, &vault, &launcher, &connections, configured_name).await?;
        let (shutdown, rx) = watch::channel(false);

        let admin_token = studio::auth::bootstrap(&store, cfg.auth.bootstrap_token.as_deref()).await?;
        if !cfg.auth.enabled {
            tracing::warn!("auth.enabled = false: the API answers anyone who can reach it");
        }
        let state = AppState {
            store,
            connections,
            auth: Arc::new(studio::auth::Auth::new(cfg.auth.enabled)),
            vault: Some(vault.clone()),
            launcher: Some(launcher.clone()),
            public_url: cfg.http.public_url.clone(),
        };
        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
        let api_addr = listener.local_addr()?;
        let sync = {
            let (store, vault, launcher, connections, name) = (
                state.store.clone(),
                vault.clone(),
                launcher.clone(),
                state.connections.clone(),
                configured_name.to_string(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    if let Err(e) = hub::sync_stored(&store, &vault, &launcher, &connections, &name).await {
                        tracing::warn!(error = %e, "connections: cannot read the store; retrying");
                    }
                    // Deployments made through another replica's API.
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
                }
            })
        };
        let mut srx = rx;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = srx.wait_for(|stop| *stop).await;
            };
            let app = studio::router(state).into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
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
            shutdown,
            hub,
            server,
            sync,
            simulator,
        })
    }

    /// Stop cleanly: connector tasks finish their current page, the server drains, the simulator
    /// saves its tables and stops.
    pub async fn shutdown(self) {
        self.sync.abort();
        let _ = self.sync.await;
        self.hub.stop_all().await;
        let _ = self.shutdown.send(true);
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

/// The stable id of this installation (its name as a lease holder), kept in `data_dir/file`.
pub fn instance_id(data_dir: &std::path::Path, file: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "erp-bridge".into());
    let id = format!("{host}-{}", studio::auth::random_hex(8));
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// Start the connection of the configuration file: its `.ionapi`, webhook credentials, command
/// and mapping files.
async fn start_configured(
    cfg: &Config,
    hub: &hub::Hub,
    ionapi_file: &std::path::Path,
) -> anyhow::Result<studio::ConnectionRuntime> {
    let c = &cfg.connection;
    let text = std::fs::read_to_string(ionapi_file)
        .with_context(|| format!("connection.ionapi_file: cannot read {}", ionapi_file.display()))?;
    let ion = IonApi::parse(&text).with_context(|| format!("connection.ionapi_file {}", ionapi_file.display()))?;
    let mut runtime = hub
        .start(LaunchSpec {
            name: c.name.clone(),
            hosting: studio::Hosting::Hosted,
            ionapi: ion,
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
        load_commands(reg, cfg.commands_dir.as_deref()).await?;
    }
    load_mappings(&runtime.registry, cfg.mappings_dir.as_deref()).await?;
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
                    .reseal(sealed, &studio::connections::aad(&rec.name, field))
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

/// Mappings at start-up: files of `mappings_dir` (GitOps: a changed file becomes a new version
/// and is deployed), the default `Item` mapping on a first start, then whatever is deployed.
async fn load_mappings(registry: &MappingRegistry, dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        for spec in mapping_files(dir)? {
            let (spec, file) = spec;
            let by = format!("file:{file}");
            let json = serde_json::to_value(&spec)?;
            let latest = registry.list().await?.into_iter().find(|m| m.latest.name == spec.name);
            let changed = latest.as_ref().map(|m| m.latest.spec != json).unwrap_or(true);
            if changed {
                let result = match &latest {
                    None => registry.create(&spec, &by).await,
                    Some(_) => registry.update(&spec.name, &spec, &by).await,
                };
                result.with_context(|| format!("mappings_dir: {file}"))?;
                registry.record_deployment(&spec.name, None, &by).await?;
                info!(file = %file, mapping = %spec.name, "mapping file applied");
            } else if latest.and_then(|m| m.deployed_version).is_none() {
                registry.record_deployment(&spec.name, None, &by).await?;
            }
        }
    } else if registry.list().await?.is_empty() {
        let spec = mapping::spec::default_item_mapping();
        registry.create(&spec, "erp-bridge (default)").await?;
        registry
            .record_deployment(&spec.name, None, "erp-bridge (default)")
            .await?;
    }
    registry.sync_deployments().await?;
    Ok(())
}

/// Extensions of definition files (mappings, command mappings).
const SPEC_EXTENSIONS: [&str; 4] = ["json", "toml", "yaml", "yml"];

/// Every definition file of a folder (`*.json`, `*.toml`, `*.yaml`, `*.yml`), parsed strictly,
/// in name order; `setting` names the configuration key in errors.
fn spec_files<T: serde::de::DeserializeOwned>(
    dir: &std::path::Path,
    setting: &str,
) -> anyhow::Result<Vec<(T, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{setting}: cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| SPEC_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.display().to_string();
            Ok((parse_spec_file(&p).with_context(|| setting.to_string())?, name))
        })
        .collect()
}

/// Parse one definition file by its extension (JSON, TOML or YAML) strictly; errors name the
/// file and the key.
pub fn parse_spec_file<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| fail(&e)),
        Some("yaml" | "yml") => serde_yaml::from_str(&text).map_err(|e| fail(&e)),
        _ => serde_json::from_str(&text).map_err(|e| fail(&e)),
    }
}

/// Every mapping file of a folder, in name order.
pub fn mapping_files(dir: &std::path::Path) -> anyhow::Result<Vec<(mapping::MappingSpec, String)>> {
    spec_files(dir, "mappings_dir")
}

/// Parse one mapping file (JSON, TOML or YAML) strictly; errors name the file and the key.
pub fn parse_mapping_file(path: &std::path::Path) -> anyhow::Result<mapping::MappingSpec> {
    parse_spec_file(path)
}

/// Command mappings at start-up: the defaults on a first start (no command mapping ever stored
/// for the connection), then the files of `commands_dir` (GitOps: a new or changed file becomes
/// a new version, validated; a broken file stops the start naming it), then every stored
/// command mapping is loaded into the processor.
async fn load_commands(registry: &CommandRegistry, dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    registry.seed_defaults().await?;
    if let Some(dir) = dir {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (spec, file) in command_files(dir)? {
            if let Some(first) = seen.insert(spec.name.clone(), file.clone()) {
                anyhow::bail!(
                    "commands_dir: {file}: command `{}` is defined in {first} already",
                    spec.name
                );
            }
            let by = format!("file:{file}");
            let json = serde_json::to_value(&spec)?;
            let latest = registry.latest(&spec.name).await?;
            if latest.as_ref().is_some_and(|v| v.spec == json) {
                continue;
            }
            let saved = match latest {
                None => registry.create(&spec, &by).await,
                Some(_) => registry.update(&spec.name, &spec, &by).await,
            }
            .with_context(|| format!("commands_dir: {file}"))?;
            for w in &saved.warnings {
                tracing::warn!(file = %file, command = %spec.name, warning = %w, "command file applied unchecked");
            }
            info!(file = %file, command = %spec.name, version = saved.version, "command file applied");
        }
    }
    let n = registry.reload().await?;
    info!(commands = n, "command mappings loaded");
    Ok(())
}

/// Every command mapping file of a folder, in name order; errors name the file.
pub fn command_files(dir: &std::path::Path) -> anyhow::Result<Vec<(CommandSpec, String)>> {
    spec_files(dir, "commands_dir")
}
