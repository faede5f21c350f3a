//! The `erp-bridge` command line: its clap definitions, and the conversion of what was given
//! into the library's configuration and options (flags over the configuration file, checked),
//! and the log output.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use erp_bridge::bench::{BenchOptions, Measures};
use erp_bridge::config::{Config, LogFormat};
use erp_bridge::mapping_client::{MappingTask, RemoteOptions};

#[derive(Parser)]
#[command(name = "erp-bridge", version, about = "Bridge Infor M3 to messages and read models")]
pub struct Cli {
    /// TOML configuration file (settings can also come from ERP_BRIDGE__SECTION__KEY variables).
    #[arg(long, global = true, env = "ERP_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `text` (colour only on a terminal) or `json` (for log collectors);
    /// default `log.format` of the configuration (`ERP_BRIDGE__LOG__FORMAT`), else `text`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run erp-bridge: connector, store and API; starts an embedded M3 simulator unless
    /// `connection.ionapi_file` is configured.
    Up(UpArgs),
    /// Run Studio and the API without a connection of its own: only connections created
    /// through the API (or another replica sharing the store) run here.
    Studio {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a self-hosted connector: reads M3 on this network and calls home to Studio with the
    /// bundle downloaded from Studio (exit code 3 when Studio refuses its token).
    Connector {
        /// The `bundle.toml` downloaded from Studio.
        #[arg(long)]
        bundle: PathBuf,
        /// Folder for the connector's local store (cursors, messages not yet acknowledged).
        #[arg(long, default_value = "connector-data")]
        data_dir: PathBuf,
    },
    /// Run the M3 simulator alone and print its `.ionapi` file.
    Sim {
        /// Listen address of the simulated ION API gateway.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Items to seed.
        #[arg(long, default_value_t = 1000)]
        items: usize,
        /// Changes per second made by simulated users.
        #[arg(long, default_value_t = 3.0)]
        changes_per_second: f64,
    },
    /// Measure throughput and latency end to end on this machine, each against a baseline
    /// measured in the same run; prints a Markdown table.
    Bench(BenchArgs),
    /// Mapping tools: offline checks, and mapping management on a running erp-bridge.
    Mapping(MappingArgs),
}

/// Send log lines to stderr in `flag`'s format, else the configuration's (`log.format` in
/// `config` or `ERP_BRIDGE__LOG__FORMAT`; a configuration that cannot be read is reported by the
/// command that loads it): colour only when stderr is a terminal. `RUST_LOG` filters.
pub fn init_logging(flag: Option<LogFormat>, config: Option<&Path>) {
    use std::io::IsTerminal;
    let format = flag.unwrap_or_else(|| Config::load_log(config).map(|l| l.format).unwrap_or_default());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// `bench --only`: a subset of the measures.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchOnly {
    /// The bare EXPORTMI paging and the initial load, with its memory figures.
    InitialLoad,
    /// The initial load (to fill the store), then the read-model HTTP latencies.
    ReadModels,
    /// The initial load (to fill the store), then the steady state with its bare reader.
    SteadyState,
    /// Many small connections in one process: memory per connection and idle CPU.
    Connections,
}

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Validate mapping files (JSON or TOML) against the standard M3 catalogue.
    Lint {
        /// Mapping files.
        files: Vec<PathBuf>,
    },
    /// List the server's mappings: table, fields, latest and deployed version.
    List,
    /// Create or update each file's mapping on the server, then deploy it.
    Apply {
        /// Mapping files (JSON or TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Save the new versions without deploying them.
        #[arg(long)]
        no_deploy: bool,
    },
    /// Print the messages a mapping file would produce from the first rows of its table.
    Preview {
        /// Mapping file (JSON or TOML).
        file: PathBuf,
        /// Rows to map.
        #[arg(long, default_value_t = 5)]
        limit: u32,
    },
    /// Write JSON Schemas: of the given mapping files (offline, against the standard catalogue),
    /// or without files, the server's `asyncapi.json` and every message schema in it.
    Schema {
        /// Mapping files; none: fetch from the server.
        files: Vec<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// What `up` and `studio` share: where data lives, where to listen, the store and Kafka.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Folder for the store (when SQLite) and generated files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Kafka bootstrap servers; messages are then published and commands consumed.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// The store: `postgres://user:password@host/db` (several processes can share it) or
    /// `sqlite://path`; default `<data_dir>/erp-bridge.db`.
    #[arg(long, env = "ERP_BRIDGE_STORE", hide_env_values = true)]
    pub store: Option<String>,
}

impl ServerArgs {
    /// Override the configuration with the flags given.
    pub fn apply(self, cfg: &mut Config) {
        if let Some(d) = self.data_dir {
            cfg.data_dir = d;
        }
        if let Some(l) = self.listen {
            cfg.http.listen = l;
        }
        if let Some(b) = self.kafka_brokers {
            cfg.kafka.brokers = b;
        }
        if let Some(url) = self.store {
            cfg.store.url = Some(url);
        }
    }
}

/// `erp-bridge up`.
#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Changes per second made by simulated M3 users.
    #[arg(long)]
    pub changes_per_second: Option<f64>,
    /// Items seeded into the simulator.
    #[arg(long)]
    pub items: Option<usize>,
    /// `.ionapi` file of a real M3 (instead of the simulator).
    #[arg(long)]
    pub ionapi: Option<PathBuf>,
}

impl UpArgs {
    /// The configuration of `config` (a file, or none), with these flags applied.
    pub fn config(self, config: Option<&Path>) -> anyhow::Result<Config> {
        let mut cfg = Config::load(config)?;
        self.server.apply(&mut cfg);
        if let Some(c) = self.changes_per_second {
            anyhow::ensure!(
                c >= 0.0 && c.is_finite(),
                "--changes-per-second: expected a number >= 0, got {c}"
            );
            cfg.simulator.changes_per_second = c;
        }
        if let Some(i) = self.items {
            cfg.simulator.items = i;
        }
        if let Some(f) = self.ionapi {
            cfg.connection.ionapi_file = Some(f);
        }
        Ok(cfg)
    }
}

/// `erp-bridge bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Items in the simulated item table.
    #[arg(long, default_value_t = 100_000)]
    pub items: usize,
    /// Changes in the steady-state measure.
    #[arg(long, default_value_t = 20_000)]
    pub changes: usize,
    /// HTTP requests per latency measure.
    #[arg(long, default_value_t = 5_000)]
    pub requests: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Item changes pushed one at a time as webhooks, for the change-to-message latency
    /// (0: skip the measure).
    #[arg(long, default_value_t = 500)]
    pub webhook_changes: usize,
    /// Kafka bootstrap servers for the outbox -> Kafka relay measure. Without it a tansu broker
    /// is started from TANSU_BIN or ~/.cache/tansu-0.6.0/bin/tansu if there is one, else the
    /// measure is skipped.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// The store to measure: `postgres://...` of an empty database; default: SQLite in a
    /// temporary folder.
    #[arg(long)]
    pub store_url: Option<String>,
    /// Milliseconds the simulator waits before answering every API call during the bare
    /// paging and the initial load (ION's gateway is remote; issue 17 measures with 100).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Windows the initial load reads at once (`connection.load_parallelism`, 1 to 32);
    /// default: the configuration's.
    #[arg(long)]
    pub load_parallelism: Option<usize>,
    /// Hosted connections in the many-connections measure (0: skip it).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Run only these measures.
    #[arg(long, value_enum)]
    pub only: Option<BenchOnly>,
}

impl BenchArgs {
    /// The bench's options, checked.
    pub fn options(self) -> anyhow::Result<BenchOptions> {
        let BenchArgs {
            items,
            changes,
            requests,
            concurrency,
            webhook_changes,
            kafka_brokers,
            store_url,
            latency_ms,
            load_parallelism,
            connections,
            only,
        } = self;
        if let Some(p) = load_parallelism {
            anyhow::ensure!((1..=32).contains(&p), "--load-parallelism: expected 1 to 32, got {p}");
        }
        anyhow::ensure!(changes <= items, "--changes: at most --items ({items}), got {changes}");
        anyhow::ensure!(concurrency >= 1, "--concurrency: expected at least 1");
        anyhow::ensure!(changes >= 1, "--changes: expected at least 1");
        anyhow::ensure!(requests >= 1, "--requests: expected at least 1");
        Ok(BenchOptions {
            items,
            changes,
            requests,
            concurrency,
            webhook_changes,
            kafka_brokers,
            store_url,
            latency_ms,
            load_parallelism,
            connections,
            measures: match only {
                None => Measures::All,
                Some(BenchOnly::InitialLoad) => Measures::InitialLoad,
                Some(BenchOnly::ReadModels) => Measures::ReadModels,
                Some(BenchOnly::SteadyState) => Measures::SteadyState,
                Some(BenchOnly::Connections) => Measures::Connections,
            },
        })
    }
}

/// `erp-bridge mapping`.
#[derive(clap::Args)]
pub struct MappingArgs {
    /// Base URL of the erp-bridge HTTP API.
    #[arg(long, global = true, env = "ERP_BRIDGE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token (read for `list`, `preview` and `schema`; read-write for `apply`).
    #[arg(long, global = true, env = "ERP_BRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Connection name.
    #[arg(long, global = true, default_value = "demo")]
    pub connection: String,
    #[command(subcommand)]
    pub command: MappingCommand,
}

impl MappingArgs {
    /// Where the server is, and the subcommand.
    pub fn task(self) -> (RemoteOptions, MappingTask) {
        let remote = RemoteOptions {
            url: self.url,
            token: self.token,
            connection: self.connection,
        };
        let task = match self.command {
            MappingCommand::Lint { files } => MappingTask::Lint { files },
            MappingCommand::List => MappingTask::List,
            MappingCommand::Apply { files, no_deploy } => MappingTask::Apply {
                files,
                deploy: !no_deploy,
            },
            MappingCommand::Preview { file, limit } => MappingTask::Preview { file, limit },
            MappingCommand::Schema { files, out } => MappingTask::Schema { files, out },
        };
        (remote, task)
    }
}
