//! The bodies of the binary's subcommands, once parsed: `up` and `studio` start an [`App`] and
//! print where it answers, `connector` runs a self-hosted connector, `sim` the M3 simulator
//! alone, `bench` the measures. Each runs until SIGINT (Ctrl-C) or SIGTERM (containers, systemd),
//! then stops cleanly and returns `Ok`, or returns the error that stopped it; the binary chooses
//! the exit code.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::bench::{self, BenchOptions};
use crate::config::Config;
use crate::App;

/// `erp-bridge up`: the whole product with `cfg`, until SIGINT or SIGTERM.
pub async fn up(cfg: Config) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
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
    let signal = stop.recv().await;
    println!("stopping ({signal})...");
    app.shutdown().await;
    println!("stopped; the next start resumes from the stored cursor");
    Ok(())
}

/// `erp-bridge studio`: Studio and the API without a connection of its own, until SIGINT or
/// SIGTERM.
pub async fn studio(mut cfg: Config) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    cfg.connection.enabled = false;
    let app = App::start(cfg).await?;
    println!("erp-bridge Studio is up (no connection of its own; set one up in Studio)");
    println!("  Studio (web UI):      {}/studio/", app.api_url);
    println!("  health / readiness:   {0}/healthz  {0}/readyz", app.api_url);
    print_admin_token(&app);
    println!("Press Ctrl-C to stop.");
    let signal = stop.recv().await;
    println!("stopping ({signal})...");
    app.shutdown().await;
    println!("stopped");
    Ok(())
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

/// `erp-bridge connector`: the self-hosted connector of `bundle`, until SIGINT or SIGTERM.
/// [`connector_exit_code`] tells the binary's exit code from its error.
pub async fn connector(bundle: runtime::connector::Bundle, data_dir: PathBuf) -> anyhow::Result<()> {
    let mut signals = StopSignals::install()?;
    let (stop, shutdown) = pipeline::ShutdownTrigger::new();
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::info!(%signal, "connector stopping");
        stop.fire();
    });
    runtime::connector::run(bundle, data_dir, shutdown).await
}

/// The signals that ask for a clean stop: SIGINT (Ctrl-C) and SIGTERM (`kill`, containers,
/// systemd). Installed before anything starts, so that a signal during the start is not lost
/// and does not kill the process.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Take over SIGINT and SIGTERM.
    pub fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Wait for one of them; its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The exit code of a connector stopped by `e`: 3 when Studio refused its token, else 1.
pub fn connector_exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<runtime::connector::ConnectorExit>().is_some() {
        3
    } else {
        1
    }
}

/// `erp-bridge sim`: the M3 simulator alone on `listen`, `items` seeded, simulated users making
/// `changes_per_second`; prints its `.ionapi` file and runs until SIGINT or SIGTERM.
pub async fn sim(listen: SocketAddr, items: usize, changes_per_second: f64) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
        items,
        ..Default::default()
    });
    let running = sim.serve(listen).await.with_context(|| format!("--listen {listen}"))?;
    println!("M3 simulator at {}", running.base_url);
    println!("{}", serde_json::to_string_pretty(&sim.ionapi(&running.base_url))?);
    let workload = sim.start_workload(changes_per_second);
    stop.recv().await;
    workload.abort();
    running.shutdown().await;
    Ok(())
}

/// `erp-bridge bench`: run the measures and print the table. On error the binary exits at once
/// (returning would wait for a stuck blocking task, the seeding, forever).
pub async fn bench(opts: BenchOptions) -> anyhow::Result<()> {
    let figures = bench::run(opts).await?;
    println!("{}", bench::table(&figures));
    Ok(())
}
