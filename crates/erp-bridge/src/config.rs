//! Configuration: typed, with defaults, then an optional TOML file, then `ERP_BRIDGE__...`
//! environment variables (`ERP_BRIDGE__HTTP__LISTEN=0.0.0.0:8080`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything `erp-bridge up` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder holding the store (`erp-bridge.db`) and generated files.
    pub data_dir: PathBuf,
    /// HTTP API.
    pub http: HttpConfig,
    /// The M3 connection.
    pub connection: ConnectionConfig,
    /// The embedded M3 simulator, used when `connection.ionapi_file` is not set.
    pub simulator: SimulatorConfig,
    /// Kafka; disabled while `kafka.brokers` is empty (the outbox is then the message log).
    pub kafka: kafka::KafkaSettings,
    /// Folder of mapping files (`*.json`, `*.toml`) applied and deployed at start (GitOps).
    pub mappings_dir: Option<PathBuf>,
    /// Folder of command mapping files (`*.json`, `*.toml`, one command each) applied at start
    /// (GitOps): a new or changed file becomes a new version; a broken one stops the start.
    pub commands_dir: Option<PathBuf>,
    /// API authentication.
    pub auth: AuthConfig,
    /// Encryption of stored secrets.
    pub secrets: SecretsConfig,
    /// The store.
    pub store: StoreConfig,
}

/// Where everything durable lives.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host/db` to share one store between several processes, or
    /// `sqlite://path`; unset: SQLite at `<data_dir>/erp-bridge.db`.
    pub url: Option<String>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        let url = self.url.as_deref().map(|u| match url::Url::parse(u) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("<redacted>"));
                parsed.to_string()
            }
            _ => u.to_string(),
        });
        f.debug_struct("StoreConfig").field("url", &url).finish()
    }
}

/// Encryption of stored secrets (connection credentials) with a rotatable key. Set the key
/// through the environment (`ERP_BRIDGE_SECRET_KEY` or `ERP_BRIDGE__SECRETS__KEY`), not in a
/// file that is checked in.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The key: 64 hex digits or base64 of 32 bytes. Unset: `key_file`.
    pub key: Option<String>,
    /// File holding the key when `key` is unset; default `<data_dir>/secret.key`, generated on
    /// first start (with a warning).
    pub key_file: Option<PathBuf>,
    /// Keys being rotated out: values sealed with them open, and are sealed again with the
    /// current key at start (`ERP_BRIDGE_PREVIOUS_KEYS`, comma-separated, also works).
    pub previous_keys: Vec<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .field("previous_keys", &format!("<{} redacted>", self.previous_keys.len()))
            .finish()
    }
}

/// API authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether `/api` needs bearer tokens (leave on; off only for local experiments).
    pub enabled: bool,
    /// An admin token to create on first start instead of a generated one (for automation).
    pub bootstrap_token: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bootstrap_token: None,
        }
    }
}

/// HTTP API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Studio's URL as self-hosted connectors reach it (written into connector bundles);
    /// the URL of the request that downloads the bundle when unset.
    pub public_url: Option<String>,
}

/// One M3 connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Run this connection; `false` = only connections created through the API run here (a
    /// Studio replica without an M3 of its own, see `erp-bridge studio`).
    pub enabled: bool,
    /// Connection name, used in API paths and CloudEvents sources.
    pub name: String,
    /// `.ionapi` file of a real M3; unset = start the embedded simulator and generate one.
    pub ionapi_file: Option<PathBuf>,
    /// Company (`cono`) to read; the service account's default when unset.
    pub company: Option<u32>,
    /// Pause between polls of a caught-up table.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Pause between key reconciliations (delete detection).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How far before the stored cursor each poll re-reads.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// Rows per `EXPORTMI` page.
    pub page_size: u32,
    /// `EXPORTMI` column separator. Rows whose values hold it are read again with another one;
    /// what still cannot be split becomes a source dead letter.
    pub separator: char,
    /// Windows the initial load reads at once (keep within the ION gateway's quota).
    pub load_parallelism: usize,
    /// Share of a mapping's keys (0.0 to 1.0) that may vanish in one reconciliation pass
    /// before the deletes are held and reported instead of emitted.
    pub delete_hold_share: f64,
    /// Bearer token M3 must send on webhook calls (`/webhooks/{connection}/{TABLE}`).
    pub webhook_token: Option<String>,
    /// Basic-auth user M3 may send on webhook calls instead (with `webhook_password`).
    pub webhook_username: Option<String>,
    /// Basic-auth password for webhook calls.
    pub webhook_password: Option<String>,
    /// Cron schedule (UTC, `minute hour day month weekday`) of a full re-sync that re-reads
    /// every row as a safety net, e.g. `"30 2 * * *"`; off when unset.
    pub full_resync: Option<String>,
}

/// The embedded simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Address of the simulated ION API gateway; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Number of seeded items in `MITMAS`.
    pub items: usize,
    /// Seed of the generated data.
    pub seed: u64,
    /// Changes per second made by simulated M3 users (0 = none).
    pub changes_per_second: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            connection: ConnectionConfig::default(),
            simulator: SimulatorConfig::default(),
            kafka: kafka::KafkaSettings::default(),
            mappings_dir: None,
            commands_dir: None,
            auth: AuthConfig::default(),
            secrets: SecretsConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            public_url: None,
        }
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "demo".into(),
            ionapi_file: None,
            company: None,
            poll_interval: Duration::from_secs(2),
            reconcile_interval: Duration::from_secs(30),
            overlap: Duration::from_secs(5),
            page_size: 1000,
            separator: '~',
            load_parallelism: 4,
            delete_hold_share: 0.1,
            webhook_token: None,
            webhook_username: None,
            webhook_password: None,
            full_resync: None,
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            items: 1000,
            seed: 42,
            changes_per_second: 3.0,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then `file` (if given, it must exist), then `ERP_BRIDGE__...` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError(format!("file {} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("ERP_BRIDGE__").split("__"));
        let cfg: Config = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.connection;
        mapping::ConnectionName::parse(&c.name).map_err(|e| ConfigError(e.in_field("connection.name").to_string()))?;
        if !(1..=100_000).contains(&c.page_size) {
            return Err(ConfigError(format!(
                "connection.page_size: expected 1 to 100000, got {}",
                c.page_size
            )));
        }
        if !(1..=32).contains(&c.load_parallelism) {
            return Err(ConfigError(format!(
                "connection.load_parallelism: expected 1 to 32, got {}",
                c.load_parallelism
            )));
        }
        if !(0.0..=1.0).contains(&c.delete_hold_share) {
            return Err(ConfigError(format!(
                "connection.delete_hold_share: expected 0.0 to 1.0, got {}",
                c.delete_hold_share
            )));
        }
        if let Some(s) = &c.full_resync {
            pipeline::schedule::Schedule::parse(s).map_err(|e| ConfigError(format!("connection.full_resync: {e}")))?;
        }
        if let Some(t) = &self.auth.bootstrap_token {
            if t.len() < 16 {
                return Err(ConfigError(
                    "auth.bootstrap_token: expected at least 16 characters".into(),
                ));
            }
        }
        if c.webhook_username.is_some() != c.webhook_password.is_some() {
            return Err(ConfigError(
                "connection.webhook_username and connection.webhook_password: set both or neither".into(),
            ));
        }
        if !(self.simulator.changes_per_second >= 0.0 && self.simulator.changes_per_second.is_finite()) {
            return Err(ConfigError(format!(
                "simulator.changes_per_second: expected a number >= 0, got {}",
                self.simulator.changes_per_second
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[connection]\npoll_interval = \"250ms\"\nname = \"prod\"\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.connection.poll_interval, Duration::from_millis(250));
        assert_eq!(c.connection.name, "prod");
        assert_eq!(c.connection.page_size, 1000);
        std::fs::write(&f, "[connection]\npol_interval = \"1s\"\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("pol_interval"), "{err}");
        std::fs::write(&f, "[connection]\nname = \"Bad Name\"\n").unwrap();
        assert!(Config::load(Some(&f))
            .unwrap_err()
            .to_string()
            .contains("connection.name"));
    }
}
