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
    /// Outbound calls driven by user input (live checks of `.ionapi` files and MDP URLs).
    pub outbound: OutboundConfig,
    /// Logging.
    pub log: LogConfig,
    /// Retention of the outbox (the message log of the embedded default).
    pub outbox: OutboxConfig,
}

/// Where the server may call when a user asks it to check a URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Hosts of ION API gateways, authorization servers and Metadata Publishers the checks may
    /// call: exact names or `*.example.com`; empty (the default) = any host.
    pub allowed_hosts: Vec<String>,
}

/// Retention of the outbox, the message log the relay publishes from and `/messages` serves.
/// By default nothing is removed. With a limit set, a pruning task removes the oldest messages
/// in small transactions (SQLite then gives the space back to the file system); a message the
/// Kafka relay has not acknowledged (Kafka configured) is never removed. A reader asking
/// `/messages?after=N` for a removed position gets 410 with the earliest position held.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Remove messages older than this (`"7d"`, `"12h"`); unset (default): no age limit.
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Keep the log's estimated size under this many bytes, oldest first; unset (default): no
    /// size limit.
    pub max_bytes: Option<u64>,
    /// `"delete"` (default): what is beyond the limits goes. `"compact"`: the latest message of
    /// every (connection, mapping, key) whose entity exists stays, like Kafka log compaction, so
    /// the log read from the start (`after=0`) rebuilds the current state; deletes are kept for
    /// the retention only.
    pub mode: store::OutboxMode,
    /// Pause between pruning passes (default 1 minute).
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retention: None,
            max_bytes: None,
            mode: store::OutboxMode::Delete,
            prune_interval: Duration::from_secs(60),
        }
    }
}

impl OutboxConfig {
    /// The store's policy; `kafka`: whether a relay runs (its unacknowledged messages stay).
    pub fn policy(&self, kafka: bool) -> store::RetentionPolicy {
        store::RetentionPolicy {
            max_age: self.retention,
            max_bytes: self.max_bytes,
            mode: self.mode,
            keep_unpublished: kafka,
        }
    }
}

/// Logging settings (the level filter is `RUST_LOG`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (colour only on a terminal) or `json` (one object per line, for log collectors);
    /// `--log-format` overrides it.
    pub format: LogFormat,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colour only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, spans).
    Json,
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
    /// Who runs this erp-bridge (`integration-team@example.com`): the contact of its AsyncAPI
    /// documents. Unset: `postmaster@<host of public_url>` when that host is a domain name,
    /// else the documents name no contact.
    pub contact_email: Option<String>,
    /// Connections served at once (1 to 100000); beyond it new ones wait in the listen queue.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, counted from the connection's
    /// opening or from the previous response: also the idle timeout of kept-alive connections.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a request, its body included, may take before it is answered 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl HttpConfig {
    /// The absolute base URL of the JSON Schemas messages point to (`dataschema`, `$id`):
    /// `public_url`, else `http://<bound>` (the address the API listens on; with port 0, the
    /// port it got).
    pub fn schema_base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }

    /// The server's limits as studio takes them.
    pub fn limits(&self) -> studio::server::ServerLimits {
        studio::server::ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
        }
    }
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
            outbound: OutboundConfig::default(),
            log: LogConfig::default(),
            outbox: OutboxConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            public_url: None,
            contact_email: None,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
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
            load_parallelism: 8,
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

    /// The `log` section alone, from the same sources as [`Config::load`] (the binary sets up
    /// logging before the rest is read and checked).
    pub fn load_log(file: Option<&Path>) -> Result<LogConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file.filter(|f| f.exists()) {
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("ERP_BRIDGE__").split("__"));
        fig.extract_inner("log").map_err(|e| ConfigError(e.to_string()))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        if !(1..=100_000).contains(&h.max_connections) {
            return Err(ConfigError(format!(
                "http.max_connections: expected 1 to 100000, got {}",
                h.max_connections
            )));
        }
        for (name, d) in [
            ("http.header_read_timeout", h.header_read_timeout),
            ("http.request_timeout", h.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError(format!("{name}: expected a duration above 0")));
            }
        }
        if let Some(e) = &h.contact_email {
            let valid = e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
            if !valid {
                return Err(ConfigError(format!(
                    "http.contact_email: expected an address like team@example.com, got {e:?}"
                )));
            }
        }
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
        if self.outbox.retention == Some(Duration::ZERO) {
            return Err(ConfigError(
                "outbox.retention: expected a duration above 0, or unset".into(),
            ));
        }
        if self.outbox.max_bytes == Some(0) {
            return Err(ConfigError(
                "outbox.max_bytes: expected a number above 0, or unset".into(),
            ));
        }
        if self.outbox.prune_interval < Duration::from_secs(1) {
            return Err(ConfigError(format!(
                "outbox.prune_interval: expected at least 1s, got {:?}",
                self.outbox.prune_interval
            )));
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
    fn the_log_format_is_read_from_the_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        assert_eq!(Config::load(None).unwrap().log.format, LogFormat::Text);
        std::fs::write(&f, "[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().log.format, LogFormat::Json);
        assert_eq!(Config::load_log(Some(&f)).unwrap().format, LogFormat::Json);
        std::fs::write(&f, "[log]\nformat = \"xml\"\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("xml") && err.contains("format"), "{err}");
    }

    #[test]
    fn a_full_resync_that_never_fires_is_refused_naming_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[connection]\nfull_resync = \"0 0 30 2 *\"\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(
            err.contains("connection.full_resync") && err.contains("day of month field \"30\" and month field \"2\""),
            "{err}"
        );
    }

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

    #[test]
    fn outbox_retention_is_off_by_default_and_typed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let c = Config::load(None).unwrap();
        assert!(!c.outbox.policy(false).is_active());
        std::fs::write(
            &f,
            "[outbox]\nretention = \"7d\"\nmax_bytes = 1000000\nmode = \"compact\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        let p = c.outbox.policy(true);
        assert_eq!(p.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(p.max_bytes, Some(1_000_000));
        assert_eq!(p.mode, store::OutboxMode::Compact);
        assert!(p.keep_unpublished);
        for bad in ["mode = \"shrink\"", "retention = \"0s\"", "max_bytes = 0", "keep = 1"] {
            std::fs::write(&f, format!("[outbox]\n{bad}\n")).unwrap();
            let err = Config::load(Some(&f)).unwrap_err().to_string();
            assert!(
                err.contains("outbox") || err.contains("keep") || err.contains("shrink"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_schema_base_url_is_the_public_url_else_the_bound_address_and_contacts_are_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let c = Config::load(None).unwrap();
        assert_eq!(c.http.schema_base_url(bound), "http://127.0.0.1:41234");
        std::fs::write(
            &f,
            "[http]\npublic_url = \"https://bridge.example.com/\"\ncontact_email = \"team@example.com\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.http.schema_base_url(bound), "https://bridge.example.com");
        assert_eq!(c.http.contact_email.as_deref(), Some("team@example.com"));
        for bad in ["team", "@example.com", "team@localhost", "team@example."] {
            std::fs::write(&f, format!("[http]\ncontact_email = \"{bad}\"\n")).unwrap();
            let err = Config::load(Some(&f)).unwrap_err().to_string();
            assert!(err.contains("http.contact_email"), "{bad}: {err}");
        }
    }
}
