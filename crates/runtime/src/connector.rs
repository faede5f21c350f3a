//! The self-hosted connector (`erp-bridge connector --bundle bundle.toml`), the client side of
//! the channel. It runs on the customer's network, calls home to Studio over one outbound
//! WebSocket, receives its configuration (M3 credentials, deployed mappings) and every change
//! to it, reads M3 with the same connector code as a hosted connection (into a local store in
//! its data folder), and sends its messages and status home. While Studio is away it keeps
//! polling: messages wait in the local outbox until Studio acknowledges them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use channel::{ConnectorConfig, FromConnector, ToConnector, UplinkItem};
use futures_util::{SinkExt, StreamExt};
use m3::{ClientOptions, IonApi, M3Client, MdpEndpoint, Secret};
use pipeline::registry::MappingRegistry;
use pipeline::{Backoff, Connector, Shutdown};
use serde::Deserialize;
use serde_json::Value;
use store::Store;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tracing::{info, warn};

/// Reconnection to Studio after a failed or dropped channel.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));

/// The bundle Studio hands out for a self-hosted connection.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Studio's URL (`https://studio.example.com`).
    pub studio_url: String,
    /// Connection name.
    pub connection: String,
    /// The connector token (scope `connector`, bound to the connection).
    pub token: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("studio_url", &self.studio_url)
            .field("connection", &self.connection)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Bundle {
    /// Read a `bundle.toml`; errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Bundle> {
        let text = std::fs::read_to_string(path).with_context(|| format!("bundle {}: cannot read", path.display()))?;
        let b: Bundle = toml::from_str(&text).map_err(|e| anyhow::anyhow!("bundle {}: {e}", path.display()))?;
        let url = url::Url::parse(&b.studio_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "bundle {}: studio_url: expected an http(s) URL, got {:?}",
                    path.display(),
                    b.studio_url
                )
            })?;
        if b.connection.is_empty() || b.token.is_empty() {
            anyhow::bail!("bundle {}: connection and token must not be empty", path.display());
        }
        let _ = url;
        Ok(b)
    }

    fn channel_url(&self) -> String {
        let base = self.studio_url.trim_end_matches('/');
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", base.trim_start_matches("http://"))
        };
        format!("{ws}{}", channel::channel_path(&self.connection))
    }
}

/// Why the connector stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorExit {
    /// Studio refused the token (revoked, wrong, or for another connection).
    #[error("Studio refused the connector token ({0}); download a new bundle in Studio")]
    TokenRefused(String),
}

/// What runs locally for the current configuration.
struct Active {
    /// Fingerprint of the credentials it was built with.
    credentials: u64,
    connector: Connector,
    registry: MappingRegistry,
    deployed: BTreeMap<String, Value>,
}

struct Local {
    store: Store,
    connection: String,
    active: Option<Active>,
    /// Where the last configuration is kept (sealed) for a restart while Studio is away.
    saved: SavedConfig,
}

/// The last configuration from Studio, sealed in the data folder with a key derived from the
/// bundle's token, so that a connector restarted while Studio is away resumes polling at once.
/// (It holds M3 credentials: the token that opens it sits in `bundle.toml` on the same host,
/// so it is as safe as that file; a new bundle's token cannot open an older file.)
struct SavedConfig {
    path: PathBuf,
    vault: vault::Vault,
    aad: String,
}

impl SavedConfig {
    fn new(data_dir: &Path, bundle: &Bundle) -> anyhow::Result<SavedConfig> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("erp-bridge connector configuration\n{}", bundle.token).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(SavedConfig {
            path: data_dir.join("configuration.sealed"),
            vault: vault::Vault::new(vault::Key::parse(&hex)?, Vec::new()),
            aad: format!("connector/{}/configuration", bundle.connection),
        })
    }

    fn save(&self, cfg: &ConnectorConfig) {
        let Ok(json) = serde_json::to_vec(cfg) else { return };
        let sealed = self.vault.seal(&json, &self.aad);
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, sealed).and_then(|_| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!(path = %self.path.display(), error = %e, "connector: configuration not saved locally");
        }
    }

    fn load(&self) -> Option<ConnectorConfig> {
        let sealed = std::fs::read_to_string(&self.path).ok()?;
        match self.vault.open(&sealed, &self.aad) {
            Ok(json) => serde_json::from_slice(&json).ok(),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "connector: saved configuration unreadable (another bundle?); waiting for Studio");
                None
            }
        }
    }
}

impl Local {
    /// Apply a configuration: rebuild the M3 client when credentials changed, then deploy new or
    /// changed mappings and undeploy removed ones.
    async fn apply(&mut self, cfg: ConnectorConfig) -> anyhow::Result<()> {
        let fingerprint = xxhash_rust::xxh3::xxh3_64(
            serde_json::to_string(&(&cfg.ionapi, &cfg.mdp, cfg.company, &cfg.settings))
                .unwrap_or_default()
                .as_bytes(),
        );
        if self.active.as_ref().map(|a| a.credentials) != Some(fingerprint) {
            if let Some(old) = self.active.take() {
                old.connector.shutdown().await;
            }
            let ion = IonApi::parse(&cfg.ionapi).context("configuration from Studio: .ionapi")?;
            let mdp = match &cfg.mdp {
                None => None,
                Some(m) => Some(MdpEndpoint {
                    url: url::Url::parse(&m.url).context("configuration: mdp.url")?,
                    username: m.username.clone(),
                    password: Secret::new(m.password.clone()),
                }),
            };
            let client = Arc::new(M3Client::new(
                ion,
                ClientOptions {
                    company: cfg.company,
                    mdp,
                    ..Default::default()
                },
            )?);
            let settings = cfg.settings.to_settings(&self.connection).context("configuration")?;
            let connector = Connector::new(client, self.store.clone(), settings);
            let registry = MappingRegistry::new(connector.clone(), self.store.clone());
            self.active = Some(Active {
                credentials: fingerprint,
                connector,
                registry,
                deployed: BTreeMap::new(),
            });
            info!(connection = %self.connection, "connector: M3 credentials received");
        }
        let active = self.active.as_mut().expect("set above");
        let mut wanted = BTreeMap::new();
        for spec in cfg.mappings {
            let name = spec["name"].as_str().unwrap_or_default().to_string();
            wanted.insert(name, spec);
        }
        for (name, spec) in &wanted {
            if active.deployed.get(name) == Some(spec) {
                continue;
            }
            let parsed = match MappingRegistry::parse(spec) {
                Ok(p) => p,
                Err(e) => {
                    warn!(connection = %self.connection, mapping = %name, error = %e, "connector: mapping refused");
                    continue;
                }
            };
            match active.registry.validate(&parsed).await {
                Ok(src) => {
                    active.connector.deploy(src).await;
                    active.deployed.insert(name.clone(), spec.clone());
                }
                Err(e) => {
                    warn!(connection = %self.connection, mapping = %name, error = %e, "connector: mapping cannot run");
                    active
                        .connector
                        .status()
                        .table(name, |t| t.last_error = Some(e.to_string()));
                }
            }
        }
        let gone: Vec<String> = active
            .deployed
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            active.connector.undeploy(&name).await;
            active.deployed.remove(&name);
        }
        Ok(())
    }

    /// The M3 client of the current configuration.
    fn client(&self) -> Option<Arc<M3Client>> {
        self.active.as_ref().map(|a| a.connector.client())
    }

    fn status(&self) -> pipeline::ConnectorStatus {
        self.active
            .as_ref()
            .map(|a| a.connector.status().snapshot())
            .unwrap_or_default()
    }
}

/// Run the connector until `shutdown` or until Studio refuses its token.
pub async fn run(bundle: Bundle, data_dir: PathBuf, mut shutdown: Shutdown) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir).with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let holder = crate::lease::instance_id(&data_dir, "connector-id")?;
    let store = Store::open(&data_dir.join("connector.db")).await?;
    let mut local = Local {
        store,
        connection: bundle.connection.clone(),
        active: None,
        saved: SavedConfig::new(&data_dir, &bundle)?,
    };
    info!(connection = %bundle.connection, studio = %bundle.studio_url, holder = %holder, "connector starting");
    if let Some(cfg) = local.saved.load() {
        // Studio may be away: go on with the last configuration until it answers.
        match local.apply(cfg).await {
            Ok(()) => info!(connection = %bundle.connection, "connector: polling with the saved configuration"),
            Err(e) => {
                warn!(connection = %bundle.connection, error = %format!("{e:#}"), "connector: saved configuration not usable")
            }
        }
    }
    let mut failures = 0u32;
    loop {
        let outcome = session(&bundle, &holder, &mut local, &mut shutdown).await;
        if shutdown.is_shutdown() {
            break;
        }
        match outcome {
            Ok(()) => failures = 0,
            Err(e) => match e.downcast::<ConnectorExit>() {
                Ok(exit) => {
                    if let Some(a) = local.active.take() {
                        a.connector.shutdown().await;
                    }
                    return Err(exit.into());
                }
                Err(e) => {
                    failures += 1;
                    warn!(connection = %bundle.connection, error = %format!("{e:#}"), "connector: channel to Studio down; retrying");
                }
            },
        }
        shutdown.sleep(RECONNECT.delay(failures.max(1))).await;
        if shutdown.is_shutdown() {
            break;
        }
    }
    if let Some(a) = local.active.take() {
        a.connector.shutdown().await;
    }
    info!(connection = %bundle.connection, "connector stopped");
    Ok(())
}

/// One connection to Studio: hello, configuration, then messages and status until it drops.
async fn session(bundle: &Bundle, holder: &str, local: &mut Local, shutdown: &mut Shutdown) -> anyhow::Result<()> {
    let mut request = bundle.channel_url().into_client_request()?;
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", bundle.token)
            .parse()
            .context("token: not a valid header value")?,
    );
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if status == 401 || status == 403 {
                return Err(ConnectorExit::TokenRefused(format!("HTTP {status}: {body}")).into());
            }
            anyhow::bail!("Studio answered HTTP {status}: {body}");
        }
        Err(e) => return Err(anyhow::anyhow!("cannot reach Studio: {e}")),
    };
    let hello = FromConnector::Hello {
        holder: holder.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    ws.send(Message::Text(hello.encode()?.into())).await?;
    let conn = local.connection.clone();
    let mut in_flight: Option<(i64, tokio::time::Instant)> = None;
    // MI calls run concurrently; their answers come back here to be sent.
    let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<FromConnector>(64);
    let mut configured = false;
    let mut outbox = tokio::time::interval(Duration::from_millis(200));
    let mut status = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.recv() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => anyhow::bail!("Studio closed the channel"),
                    Some(Err(e)) => anyhow::bail!("channel error: {e}"),
                    Some(Ok(_)) => continue,
                };
                match ToConnector::decode(&text) {
                    Ok(ToConnector::Config(cfg)) => {
                        let n = cfg.mappings.len();
                        local.saved.save(&cfg);
                        local.apply(cfg).await?;
                        configured = true;
                        info!(connection = %conn, mappings = n, "connector: configuration applied");
                    }
                    Ok(ToConnector::Call { id, call }) => {
                        let client = local.client();
                        let tx = answers_tx.clone();
                        tokio::spawn(async move {
                            let result = match client {
                                Some(c) => call.run(&c).await.map_err(|e| pipeline::remote_mi::MiFailure::from_error(&e)),
                                None => Err(pipeline::remote_mi::MiFailure {
                                    nok: None,
                                    transient: true,
                                    message: "the connector has no configuration yet".into(),
                                }),
                            };
                            let _ = tx.send(FromConnector::CallResult { id, result }).await;
                        });
                    }
                    Ok(ToConnector::Ack { up_to }) => {
                        local.store.mark_published(&conn, up_to).await?;
                        in_flight = None;
                    }
                    Ok(ToConnector::Refused { code, reason }) => {
                        if code.is_final() {
                            return Err(ConnectorExit::TokenRefused(reason).into());
                        }
                        anyhow::bail!("Studio refused the connector: {reason}");
                    }
                    Err(e) => warn!(connection = %conn, error = %e, "connector: frame from Studio not understood"),
                }
            }
            _ = outbox.tick(), if configured => {
                // One batch in flight; resent when Studio does not acknowledge it in time.
                if in_flight.is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(30)) {
                    continue;
                }
                let mut rows = local.store.unpublished(&conn, channel::BATCH_MAX_ITEMS).await?;
                // Keep a frame well under Studio's limit, whatever the payload sizes.
                rows.truncate(channel::fitting_batch(rows.iter().map(|m| m.payload.len())));
                let Some(last) = rows.last().map(|m| m.seq) else { continue };
                let items: Vec<UplinkItem> = rows.into_iter().map(UplinkItem::from).collect();
                ws.send(Message::Text(FromConnector::Messages { items }.encode()?.into())).await?;
                in_flight = Some((last, tokio::time::Instant::now()));
            }
            Some(answer) = answers.recv() => {
                ws.send(Message::Text(answer.encode()?.into())).await?;
            }
            _ = status.tick() => {
                let frame = FromConnector::Status { status: local.status() };
                ws.send(Message::Text(frame.encode()?.into())).await?;
            }
        }
    }
}
