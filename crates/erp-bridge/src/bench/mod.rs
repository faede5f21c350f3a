//! `erp-bridge bench`: end-to-end figures on this machine, each next to a baseline measured in the
//! same run, printed as one table. Everything runs in-process on loopback: the simulator, the
//! connector, the store and the HTTP API.
//!
//! This module holds the options, the figures and their goals, and the run order ([`run`]);
//! each measure has its file: [`initial_load`] (with the windowed reads alone and the memory
//! figures), [`steady_state`], [`read_models`] (HTTP latencies), [`relay`] (outbox -> Kafka),
//! [`webhook`], [`mapping_rate`] and [`connections`] (many connections in one process);
//! [`report`] prints the table.

mod connections;
mod initial_load;
mod mapping_rate;
mod read_models;
mod relay;
mod report;
mod steady_state;
mod webhook;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;

pub use report::table;

/// Bench settings.
pub struct BenchOptions {
    /// Items in the simulated `MITMAS`.
    pub items: usize,
    /// Changes for the steady-state measure.
    pub changes: usize,
    /// HTTP requests per latency measure.
    pub requests: usize,
    /// Concurrent HTTP clients.
    pub concurrency: usize,
    /// Item changes pushed one at a time as webhooks for the change-to-message latency (0: skip).
    pub webhook_changes: usize,
    /// Kafka bootstrap servers for the relay measure. Unset: a tansu broker is started from
    /// `TANSU_BIN` or `~/.cache/tansu-0.6.0/bin/tansu` when there is one, else the measure is skipped.
    pub kafka_brokers: Option<String>,
    /// The store erp-bridge writes and serves read models from (`postgres://...` of an empty
    /// database); unset: a SQLite file in a temporary folder.
    pub store_url: Option<String>,
    /// Milliseconds the simulator waits before answering every API call, during the bare
    /// paging and the initial load (ION's gateway is remote); 0: none. Reset to 0 once the
    /// load is done, so the later measures run as without it.
    pub latency_ms: u64,
    /// `connection.load_parallelism` of the measured load (windows read at once); `None`: the
    /// configuration's default.
    pub load_parallelism: Option<usize>,
    /// Hosted connections of the many-connections measure (0: skip it).
    pub connections: usize,
    /// Which measures run.
    pub measures: Measures,
}

/// Which measures a run makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Measures {
    /// Every measure.
    #[default]
    All,
    /// The bare paging and the initial load with its memory figures only.
    InitialLoad,
    /// The initial load (its figures included), then the read-model latencies only.
    ReadModels,
    /// The initial load (its figures included), then the steady state only.
    SteadyState,
    /// Only the many-connections measure (memory per connection, idle CPU).
    Connections,
}

/// A target a figure is held to, printed beside it with whether this run met it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// `value / baseline` at most this.
    RatioAtMost(f64),
    /// `value / baseline` at least this (throughput).
    RatioAtLeast(f64),
    /// The value itself, in the figure's unit, at most this.
    AtMost(f64),
    /// The value itself, in the figure's unit, at least this.
    AtLeast(f64),
    /// The value itself, in MiB, at most this many megabytes (10^6 bytes).
    MegabytesAtMost(f64),
}

impl Goal {
    /// Whether `f` meets the goal; `None` when the figure has no value (skipped, or NaN).
    pub fn met(&self, f: &Figure) -> Option<bool> {
        if f.skipped.is_some() {
            return None;
        }
        let (got, limit) = match *self {
            Goal::RatioAtMost(r) if f.baseline > 0.0 => (f.value / f.baseline, r),
            // `-got <= -limit` is `got >= limit`.
            Goal::RatioAtLeast(r) if f.baseline > 0.0 => (-(f.value / f.baseline), -r),
            Goal::RatioAtMost(_) | Goal::RatioAtLeast(_) => return None,
            Goal::AtMost(v) => (f.value, v),
            Goal::AtLeast(v) => (-f.value, -v),
            Goal::MegabytesAtMost(mb) if f.unit == "MiB" => (f.value, mb * 1e6 / MIB),
            Goal::MegabytesAtMost(_) => return None,
        };
        (!got.is_nan()).then_some(got <= limit)
    }

    fn describe(&self) -> String {
        match *self {
            Goal::RatioAtMost(r) => format!("<= {r:.2}x"),
            Goal::RatioAtLeast(r) => format!(">= {r:.2}x"),
            Goal::AtMost(v) => format!("<= {v}"),
            Goal::AtLeast(v) => format!(">= {v}"),
            Goal::MegabytesAtMost(mb) => format!("<= {mb} MB ({:.1} MiB)", mb * 1e6 / MIB),
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The issue-17 goal of the initial load for `latency_ms` of added latency: at most 0.5x bare
/// paging with 100 ms or more, at most 1.0x with none; none stated in between.
pub fn load_goal(latency_ms: u64) -> Option<Goal> {
    match latency_ms {
        0 => Some(Goal::RatioAtMost(1.0)),
        100.. => Some(Goal::RatioAtMost(0.5)),
        _ => None,
    }
}

/// The issue-17 bound on the process's RSS growth during the initial load.
pub const LOAD_RSS_GOAL: Goal = Goal::MegabytesAtMost(100.0);

/// One line of the result table.
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its baseline.
    pub baseline: f64,
    /// Unit of both.
    pub unit: &'static str,
    /// What the baseline is.
    pub baseline_is: &'static str,
    /// Whether bigger is better (throughput) or smaller (latency, time).
    pub higher_is_better: bool,
    /// Why the measure did not run (the row then shows this instead of figures).
    pub skipped: Option<String>,
    /// The target the figure is held to, if any.
    pub goal: Option<Goal>,
}

impl Figure {
    /// A row for a measure that did not run, saying why.
    fn skipped(
        name: String,
        unit: &'static str,
        baseline_is: &'static str,
        higher_is_better: bool,
        why: String,
    ) -> Figure {
        Figure {
            name,
            value: f64::NAN,
            baseline: f64::NAN,
            unit,
            baseline_is,
            higher_is_better,
            skipped: Some(why),
            goal: None,
        }
    }
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB; 0 where unknown.
pub fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// Current resident set size (`VmRSS`), in KiB; 0 where unknown.
fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

/// Reset the peak RSS to the current RSS (Linux `clear_refs` 5), so that the peak of one phase
/// can be read on its own. Returns whether the kernel accepted it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Poll `check` every `every` until it yields `Ok(Ok(_))`, or fail after `timeout` naming `what`
/// and the last state `check` described (`Ok(Err(state))`). Errors of `check` end the wait.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            Ok(v) => return Ok(v),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            anyhow::bail!("bench: timed out after {timeout:?} waiting for {what}; last status: {last}");
        }
        tokio::time::sleep(every).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Run every measure and return the figures.
pub async fn run(opts: BenchOptions) -> anyhow::Result<Vec<Figure>> {
    if opts.measures == Measures::Connections {
        return connections::measure(&opts).await;
    }
    let mut figures = Vec::new();
    let rss_start = rss_kib();
    // Seeding is CPU-bound and cannot be interrupted: run it on a blocking thread and give up
    // (the process then exits) if it takes far longer than it should.
    let items = opts.items;
    let seed_timeout = Duration::from_secs(60) + Duration::from_micros(100 * items as u64);
    let seeding = tokio::task::spawn_blocking(move || {
        m3_sim::Simulator::new(m3_sim::SimConfig {
            items,
            ..Default::default()
        })
    });
    let sim = tokio::time::timeout(seed_timeout, seeding)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "bench: the M3 simulator did not finish seeding {items} items in {seed_timeout:?} \
                 (its item-number generator runs out of unique mixed item numbers above about \
                 500,000 items; try a smaller --items)"
            )
        })?
        .context("bench: seeding the simulator")?;
    let rss_sim = rss_kib();
    // The baseline of the memory figures: what the seeded simulator itself takes.
    let sim_mib = rss_sim.saturating_sub(rss_start) as f64 / 1024.0;
    let running = sim.serve("127.0.0.1:0".parse()?).await?;
    // The added latency covers the bare paging and the load, nothing after them.
    if opts.latency_ms > 0 {
        sim.set_faults(m3_sim::Faults {
            latency_ms: opts.latency_ms,
            ..Default::default()
        });
    }

    let table = mapping::catalog::standard_table("MITMAS").context("catalogue")?;

    // 1. (Mapping on one core is measured last, see `mapping_rate`.)
    // 2. Initial load through EXPORTMI -> mapping -> outbox, against bare EXPORTMI paging.
    let loaded = initial_load::measure(&opts, &sim, &table, &running.base_url, sim_mib, &mut figures).await?;
    if opts.measures == Measures::InitialLoad {
        loaded.app.shutdown().await;
        running.shutdown().await;
        return Ok(figures);
    }
    if opts.measures == Measures::ReadModels {
        figures.extend(read_models::measure(&opts, &loaded).await?);
        loaded.app.shutdown().await;
        running.shutdown().await;
        return Ok(figures);
    }

    // 3. Steady state: a burst of changes through poll -> map -> outbox.
    figures.push(steady_state::measure(&opts, &sim, &loaded).await?);
    if opts.measures == Measures::SteadyState {
        loaded.app.shutdown().await;
        running.shutdown().await;
        return Ok(figures);
    }

    // 4. HTTP latencies under concurrency, against /healthz on the same server.
    figures.extend(read_models::measure(&opts, &loaded).await?);
    figures.push(Figure {
        name: "peak RSS of the process, load to end (simulator included)".into(),
        value: peak_rss_kib() as f64 / 1024.0,
        baseline: sim_mib,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: None,
    });
    let initial_load::Loaded {
        dir: _dir,
        cfg,
        app,
        http,
        targets,
        ..
    } = loaded;
    app.shutdown().await;

    // 5. Outbox -> Kafka: the relay publishes the outbox the load and the changes filled.
    figures.push(relay::measure(&opts, &cfg).await);

    // 6. Webhook change -> outbox latency, erp-bridge restarted with slow polling.
    figures.extend(webhook::figures(&sim, &cfg, &http, &targets, opts.webhook_changes).await?);
    running.shutdown().await;
    // Last, with the connector stopped: the copies of the rows it needs do not inflate the
    // memory figures above.
    figures.insert(0, mapping_rate::measure(&sim, &table)?);
    // Many small connections: only in a process of their own (`--only connections`), since
    // the memory the measures above freed would hide the growth they cause.
    if opts.connections > 0 {
        figures.push(Figure::skipped(
            format!(
                "memory per connection and idle CPU ({} hosted connections)",
                opts.connections
            ),
            "MiB",
            "the same process with no connection",
            false,
            "run `bench --only connections` (a process of its own)".into(),
        ));
    }
    Ok(figures)
}

/// A handle of the bench's own on the store erp-bridge uses with `cfg` (as `App::start` opens it).
async fn open_store(cfg: &Config) -> anyhow::Result<store::Store> {
    Ok(match &cfg.store.url {
        Some(url) => store::Store::connect(url).await?,
        None => store::Store::open(&cfg.data_dir.join("erp-bridge.db")).await?,
    })
}
