//! The `erp-bridge` command line: `up` (the whole product, with the embedded M3 simulator by
//! default), `sim` (the simulator alone), `bench` and `mapping` (`lint`, `schema` offline;
//! `list`, `apply`, `preview`, `schema` against a server: see [`cli`]).

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use erp_bridge::config::Config;
use erp_bridge::App;

#[derive(Parser)]
#[command(name = "erp-bridge", version, about = "Bridge Infor M3 to messages and read models")]
struct Cli {
    /// TOML configuration file (settings can also come from ERP_BRIDGE__SECTION__KEY variables).
    #[arg(long, global = true, env = "ERP_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run erp-bridge: connector, store and API; starts an embedded M3 simulator unless
    /// `connection.ionapi_file` is configured.
    Up {
        #[command(flatten)]
        server: ServerArgs,
        /// Changes per second made by simulated M3 users.
        #[arg(long)]
        changes_per_second: Option<f64>,
        /// Items seeded into the simulator.
        #[arg(long)]
        items: Option<usize>,
        /// `.ionapi` file of a real M3 (instead of the simulator).
        #[arg(long)]
        ionapi: Option<PathBuf>,
    },
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
    Bench {
        /// Items in the simulated item table.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Changes in the steady-state measure.
        #[arg(long, default_value_t = 20_000)]
        changes: usize,
        /// HTTP requests per latency measure.
        #[arg(long, default_value_t = 5_000)]
        requests: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Item changes pushed one at a time as webhooks, for the change-to-message latency
        /// (0: skip the measure).
        #[arg(long, default_value_t = 500)]
        webhook_changes: usize,
        /// Kafka bootstrap servers for the outbox -> Kafka relay measure. Without it a tansu broker
        /// is started from TANSU_BIN or ~/.cache/tansu-0.6.0/bin/tansu if there is one, else the
        /// measure is skipped.
        #[arg(long)]
        kafka_brokers: Option<String>,
        /// The store to measure: `postgres://...` of an empty database; default: SQLite in a
        /// temporary folder.
        #[arg(long)]
        store_url: Option<String>,
        /// Milliseconds the simulator waits before answering every API call during the bare
        /// paging and the initial load (ION's gateway is remote; issue 17 measures with 100).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Windows the initial load reads at once (`connection.load_parallelism`, 1 to 32);
        /// default: the configuration's.
        #[arg(long)]
        load_parallelism: Option<usize>,
        /// Run only these measures.
        #[arg(long, value_enum)]
        only: Option<BenchOnly>,
    },
    /// Mapping tools: offline checks, and mapping management on a running erp-bridge.
    Mapping {
        /// Base URL of the erp-bridge HTTP API.
        #[arg(long, global = true, env = "ERP_BRIDGE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API token (read for `list`, `preview` and `schema`; read-write for `apply`).
        #[arg(long, global = true, env = "ERP_BRIDGE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Connection name.
        #[arg(long, global = true, default_value = "demo")]
        connection: String,
        #[command(subcommand)]
        command: MappingCommand,
    },
}

/// `bench --only`: a subset of the measures.
#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchOnly {
    /// The bare EXPORTMI paging and the initial load, with its memory figures.
    InitialLoad,
}

#[derive(Subcommand)]
enum MappingCommand {
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
struct ServerArgs {
    /// Folder for the store (when SQLite) and generated files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Kafka bootstrap servers; messages are then published and commands consumed.
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// The store: `postgres://user:password@host/db` (several processes can share it) or
    /// `sqlite://path`; default `<data_dir>/erp-bridge.db`.
    #[arg(long, env = "ERP_BRIDGE_STORE", hide_env_values = true)]
    store: Option<String>,
}

impl ServerArgs {
    /// Override the configuration with the flags given.
    fn apply(self, cfg: &mut Config) {
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

/// Print the admin token of a first start (shown once), or where to find it.
fn print_admin_token(app: &App) {
    match &app.admin_token {
        Some(t) => {
            println!("  admin API token (shown once; Studio asks for it):");
            println!("      {t}");
        }
        None => println!("  API tokens: use the admin token printed on the first start (data_dir is kept)"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            server,
            changes_per_second,
            items,
            ionapi,
        } => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            server.apply(&mut cfg);
            if let Some(c) = changes_per_second {
                anyhow::ensure!(
                    c >= 0.0 && c.is_finite(),
                    "--changes-per-second: expected a number >= 0, got {c}"
                );
                cfg.simulator.changes_per_second = c;
            }
            if let Some(i) = items {
                cfg.simulator.items = i;
            }
            if let Some(f) = ionapi {
                cfg.connection.ionapi_file = Some(f);
            }
            let app = App::start(cfg).await?;
            let c = &app.connection;
            println!("erp-bridge is up");
            println!("  Studio (web UI):                {}/studio/", app.api_url);
            if let Some(sim) = &app.simulator_url {
                println!("  M3 simulator (ION API gateway): {sim}");
            }
            println!("  .ionapi file in use:            {}", app.ionapi_file.display());
            println!("  health / readiness:             {0}/healthz  {0}/readyz", app.api_url);
            println!(
                "  status:                         {}/api/connections/{c}/status",
                app.api_url
            );
            println!(
                "  messages (CloudEvents):         {}/api/connections/{c}/messages?after=0&limit=20",
                app.api_url
            );
            println!(
                "  read model:                     {}/api/connections/{c}/read-models/items?limit=20",
                app.api_url
            );
            println!(
                "  JSON Schema:                    {}/api/connections/{c}/schemas/ItemUpdated",
                app.api_url
            );
            println!(
                "  commands (POST):                {}/api/connections/{c}/commands",
                app.api_url
            );
            println!(
                "  OpenAPI / AsyncAPI:             {0}/api/connections/{c}/openapi.json  {0}/api/connections/{c}/asyncapi",
                app.api_url
            );
            if let Some(t) = &app.kafka_topics {
                println!(
                    "  kafka topics:                   {} {} {} {}",
                    t.events, t.commands, t.receipts, t.deadletter
                );
            }
            print_admin_token(&app);
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            println!("stopping...");
            app.shutdown().await;
            println!("stopped; the next start resumes from the stored cursor");
        }
        Command::Studio { server } => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            cfg.connection.enabled = false;
            server.apply(&mut cfg);
            let app = App::start(cfg).await?;
            println!("erp-bridge Studio is up (no connection of its own; set one up in Studio)");
            println!("  Studio (web UI):      {}/studio/", app.api_url);
            println!("  health / readiness:   {0}/healthz  {0}/readyz", app.api_url);
            print_admin_token(&app);
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            app.shutdown().await;
        }
        Command::Connector { bundle, data_dir } => {
            let bundle = runtime::connector::Bundle::load(&bundle)?;
            let (stop, shutdown) = pipeline::ShutdownTrigger::new();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                stop.fire();
            });
            if let Err(e) = runtime::connector::run(bundle, data_dir, shutdown).await {
                eprintln!("error: {e:#}");
                let refused = e.downcast_ref::<runtime::connector::ConnectorExit>().is_some();
                std::process::exit(if refused { 3 } else { 1 });
            }
        }
        Command::Sim {
            listen,
            items,
            changes_per_second,
        } => {
            let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
                items,
                ..Default::default()
            });
            let running = sim.serve(listen).await.with_context(|| format!("--listen {listen}"))?;
            println!("M3 simulator at {}", running.base_url);
            println!("{}", serde_json::to_string_pretty(&sim.ionapi(&running.base_url))?);
            let workload = sim.start_workload(changes_per_second);
            tokio::signal::ctrl_c().await?;
            workload.abort();
            running.shutdown().await;
        }
        Command::Bench {
            items,
            changes,
            requests,
            concurrency,
            webhook_changes,
            kafka_brokers,
            store_url,
            latency_ms,
            load_parallelism,
            only,
        } => {
            if let Some(p) = load_parallelism {
                anyhow::ensure!((1..=32).contains(&p), "--load-parallelism: expected 1 to 32, got {p}");
            }
            anyhow::ensure!(changes <= items, "--changes: at most --items ({items}), got {changes}");
            anyhow::ensure!(concurrency >= 1, "--concurrency: expected at least 1");
            anyhow::ensure!(changes >= 1, "--changes: expected at least 1");
            anyhow::ensure!(requests >= 1, "--requests: expected at least 1");
            let result = erp_bridge::bench::run(erp_bridge::bench::BenchOptions {
                items,
                changes,
                requests,
                concurrency,
                webhook_changes,
                kafka_brokers,
                store_url,
                latency_ms,
                load_parallelism,
                measures: match only {
                    None => erp_bridge::bench::Measures::All,
                    Some(BenchOnly::InitialLoad) => erp_bridge::bench::Measures::InitialLoad,
                },
            })
            .await;
            match result {
                Ok(figures) => println!("{}", erp_bridge::bench::table(&figures)),
                Err(e) => {
                    // Exit now: returning would wait for a stuck blocking task (seeding) forever.
                    eprintln!("error: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        Command::Mapping {
            url,
            token,
            connection,
            command,
        } => {
            let remote = cli::RemoteOptions { url, token, connection };
            // Plain one-line errors for the mapping tools (no backtrace, exit status 1).
            if let Err(e) = mapping_command(&remote, command).await {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// `erp-bridge mapping <command>`.
async fn mapping_command(remote: &cli::RemoteOptions, command: MappingCommand) -> anyhow::Result<()> {
    match command {
        MappingCommand::Lint { files } => {
            let mut failed = 0;
            for f in &files {
                match cli::lint(f) {
                    Ok(summary) => println!("{}: ok ({summary})", f.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", f.display());
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} of {} mapping files have errors", files.len());
        }
        MappingCommand::List => print!("{}", cli::list(remote).await?),
        MappingCommand::Apply { files, no_deploy } => cli::apply(remote, &files, !no_deploy).await?,
        MappingCommand::Preview { file, limit } => println!("{}", cli::preview(remote, &file, limit).await?),
        MappingCommand::Schema { files, out } => {
            let written = if files.is_empty() {
                cli::schema_remote(remote, &out).await?
            } else {
                cli::schema_files(&files, &out, &remote.connection)?
            };
            for w in written {
                println!("wrote {}", w.display());
            }
        }
    }
    Ok(())
}
