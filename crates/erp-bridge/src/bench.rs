//! `erp-bridge bench`: end-to-end figures on this machine, each next to a baseline measured in the
//! same run, printed as one table. Everything runs in-process on loopback: the simulator, the
//! connector, the store and the HTTP API.

use std::time::{Duration, Instant};

use anyhow::Context;
use mapping::CompiledMapping;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::config::Config;
use crate::App;

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
}

/// A target a figure is held to, printed beside it with whether this run met it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// `value / baseline` at most this.
    RatioAtMost(f64),
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
            Goal::RatioAtMost(_) => return None,
            Goal::MegabytesAtMost(mb) if f.unit == "MiB" => (f.value, mb * 1e6 / MIB),
            Goal::MegabytesAtMost(_) => return None,
        };
        (!got.is_nan()).then_some(got <= limit)
    }

    fn describe(&self) -> String {
        match *self {
            Goal::RatioAtMost(r) => format!("<= {r:.2}x"),
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

use mapping::spec::WIDE_ITEM_COLUMNS as COLUMNS;

/// The baseline's serialisation: the same 20 trimmed values as a JSON object, no typing.
struct Plain<'a>(&'a [&'a str]);

impl Serialize for Plain<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(COLUMNS.len()))?;
        for ((_, name), v) in COLUMNS.iter().zip(self.0) {
            m.serialize_entry(name, v.trim())?;
        }
        m.end()
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
    let running = sim.serve("127.0.0.1:0".parse()?).await?;
    // The added latency covers the bare paging and the load, nothing after them.
    if opts.latency_ms > 0 {
        sim.set_faults(m3_sim::Faults {
            latency_ms: opts.latency_ms,
            ..Default::default()
        });
    }
    let export_calls = || sim.mi_calls("EXPORTMI", "Select");

    let table = mapping::catalog::standard_table("MITMAS").context("catalogue")?;

    // 1. (Mapping on one core is measured last, see `mapping_measure`.)
    // 2. Initial load through EXPORTMI -> mapping -> outbox, against bare EXPORTMI paging.
    let dir = tempfile::tempdir()?;
    let ion_path = dir.path().join("m3.ionapi");
    std::fs::write(&ion_path, sim.ionapi(&running.base_url).to_string())?;
    let ion = m3::IonApi::parse(&std::fs::read_to_string(&ion_path)?)?;
    let client = std::sync::Arc::new(m3::M3Client::new(ion, m3::ClientOptions::default())?);
    let item = CompiledMapping::compile(&mapping::spec::default_item_mapping(), &table)?;
    let mut sel = item.columns();
    sel.push("MMLMTS".into());
    let page = 5000u32;
    let calls_before = export_calls();
    let start = Instant::now();
    let mut after: Option<String> = None;
    let mut bare_rows = 0usize;
    let cono_at = sel.iter().position(|c| c == "MMCONO").context("MMCONO selected")?;
    let itno_at = sel.iter().position(|c| c == "MMITNO").context("MMITNO selected")?;
    // The items the steady-state measure changes: the first ones in key order.
    let mut targets: Vec<(String, String)> = Vec::with_capacity(opts.changes);
    loop {
        let cond = after
            .as_ref()
            .map(|a| format!(" where MMITNO > '{a}'"))
            .unwrap_or_default();
        let q = format!("{} from MITMAS{cond} order by MMITNO", sel.join(", "));
        let got = client.export_select(&q, '~', sel.len(), page).await?;
        bare_rows += got.len();
        for r in got.iter().take(opts.changes - targets.len()) {
            targets.push((r[cono_at].trim().to_string(), r[itno_at].trim().to_string()));
        }
        after = got.last().map(|r| r[itno_at].clone());
        if (got.len() as u32) < page {
            break;
        }
    }
    let bare = start.elapsed();
    let bare_calls = export_calls() - calls_before;
    // What the load's way of reading costs without the rest of the load: its windows and
    // splits, as many at once, no mapping, no store (before erp-bridge starts, so that its
    // polling does not compete).
    let parallel = opts
        .load_parallelism
        .unwrap_or(Config::default().connection.load_parallelism);
    let calls_before = export_calls();
    let windows = windowed_reads(&client, &table, &item, &sel, page, parallel).await?;
    let windowed_calls = export_calls() - calls_before;
    anyhow::ensure!(
        windows.rows == bare_rows,
        "bench: windowed reads returned {} rows, bare paging {bare_rows}",
        windows.rows
    );
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    cfg.http.listen = "127.0.0.1:0".parse()?;
    cfg.store.url = opts.store_url.clone();
    cfg.connection.ionapi_file = Some(ion_path.clone());
    cfg.connection.page_size = page;
    cfg.connection.poll_interval = Duration::from_millis(50);
    cfg.connection.reconcile_interval = Duration::from_secs(3600);
    cfg.connection.load_parallelism = parallel;
    // The API needs a token: start with a bootstrap admin token of our own.
    let token = format!("bench-{:016x}", rand::random::<u64>());
    cfg.auth.bootstrap_token = Some(token.clone());
    // Peaks from here on belong to the load (and what follows), not to the seeding.
    let peak_reset = reset_peak_rss();
    let rss_before_load = rss_kib();
    let calls_before = export_calls();
    let start = Instant::now();
    let app = App::start(cfg.clone()).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().context("token header")?,
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()?;
    let status_url = format!("{}/api/connections/demo/status", app.api_url);
    let table_status = || async {
        let r = http
            .get(&status_url)
            .send()
            .await
            .with_context(|| format!("GET {status_url}"))?;
        let code = r.status();
        let v: serde_json::Value = r.json().await.with_context(|| format!("GET {status_url}: body"))?;
        anyhow::ensure!(code.is_success(), "GET {status_url}: HTTP {code}: {v}");
        let t = v["tables"]["Item"].clone();
        anyhow::ensure!(t.is_object(), "GET {status_url}: no status for mapping `Item`: {v}");
        anyhow::Ok(t)
    };
    // Generous timeouts (a minute plus 1 ms per row) that still end a stuck run with a reason.
    let load_timeout = Duration::from_secs(60) + Duration::from_millis(bare_rows as u64);
    wait_for(
        &format!("the initial load of {bare_rows} rows"),
        load_timeout,
        Duration::from_millis(20),
        || async {
            let s = table_status().await?;
            let done = s["phase"] == "polling" && s["rows_seen"].as_u64().unwrap_or(0) >= bare_rows as u64;
            Ok(if done { Ok(()) } else { Err(s.to_string()) })
        },
    )
    .await?;
    let load = start.elapsed();
    let load_calls = export_calls() - calls_before;
    let load_peak = peak_rss_kib();
    let rss_after_load = rss_kib();
    if opts.latency_ms > 0 {
        sim.set_faults(m3_sim::Faults::default());
    }
    figures.push(Figure {
        name: format!(
            "initial load of {bare_rows} rows ({} ms added per call, {} windows in parallel, \
             {load_calls} EXPORTMI calls; bare: {bare_calls} calls of {page} rows)",
            opts.latency_ms, parallel
        ),
        value: load.as_secs_f64(),
        baseline: bare.as_secs_f64(),
        unit: "s",
        baseline_is: "bare sequential EXPORTMI paging of the same table (`where key > last order by key`, same page size), same latency",
        higher_is_better: false,
        skipped: None,
        goal: load_goal(opts.latency_ms),
    });
    figures.push(Figure {
        name: format!(
            "windowed reads alone: the load's windows and splits, {parallel} at once, no mapping or store \
             ({windowed_calls} EXPORTMI calls: {} read whole, {} split, {} rows read and dropped; \
             slowest call {:.0} ms)",
            windows.whole,
            windows.split,
            windows.dropped,
            windows.slowest.as_secs_f64() * 1000.0
        ),
        value: windows.took.as_secs_f64(),
        baseline: bare.as_secs_f64(),
        unit: "s",
        baseline_is: "bare sequential EXPORTMI paging of the same table (`where key > last order by key`, same page size), same latency",
        higher_is_better: false,
        skipped: None,
        goal: None,
    });
    figures.push(Figure {
        name: if peak_reset {
            "peak RSS growth during the load".into()
        } else {
            "peak RSS growth during the load (peak not resettable: upper bound)".into()
        },
        value: load_peak.saturating_sub(rss_before_load) as f64 / 1024.0,
        baseline: rss_sim.saturating_sub(rss_start) as f64 / 1024.0,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: Some(LOAD_RSS_GOAL),
    });
    figures.push(Figure {
        name: "RSS growth during the load (VmRSS after - before)".into(),
        value: rss_after_load.saturating_sub(rss_before_load) as f64 / 1024.0,
        baseline: rss_sim.saturating_sub(rss_start) as f64 / 1024.0,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: Some(LOAD_RSS_GOAL),
    });
    if opts.measures == Measures::InitialLoad {
        app.shutdown().await;
        running.shutdown().await;
        return Ok(figures);
    }

    // 3. Steady state: a burst of changes through poll -> map -> outbox.
    let before = table_status().await?["messages"].as_u64().unwrap_or(0);
    let start = Instant::now();
    for (i, (cono, itno)) in targets.iter().enumerate() {
        sim.update("MITMAS", &[cono, itno], &[("MMITDS", &format!("bench {i}"))])?;
    }
    let expected = before + targets.len() as u64;
    wait_for(
        &format!("{} changes to reach the outbox (messages >= {expected})", targets.len()),
        Duration::from_secs(60) + Duration::from_millis(targets.len() as u64),
        Duration::from_millis(10),
        || async {
            let s = table_status().await?;
            let done = s["messages"].as_u64().unwrap_or(0) >= expected;
            Ok(if done { Ok(()) } else { Err(s.to_string()) })
        },
    )
    .await?;
    let pipeline_rate = targets.len() as f64 / start.elapsed().as_secs_f64();
    figures.push(Figure {
        name: if opts.latency_ms > 0 {
            format!(
                "steady state, {} changes: poll -> map -> outbox (no added latency; the baseline's paging had {} ms)",
                targets.len(),
                opts.latency_ms
            )
        } else {
            format!("steady state, {} changes: poll -> map -> outbox", targets.len())
        },
        value: pipeline_rate,
        baseline: bare_rows as f64 / bare.as_secs_f64(),
        unit: "changes/s",
        baseline_is: "bare EXPORTMI read rate (rows/s)",
        higher_is_better: true,
        skipped: None,
        goal: None,
    });

    // 4. HTTP latencies under concurrency, against /healthz on the same server.
    anyhow::ensure!(!targets.is_empty(), "bench: the simulator has no items");
    let keys: Vec<String> = targets.iter().map(|(c, i)| format!("{c}%7C{i}")).collect();
    let by_key = latency(&http, &app.api_url, &opts, |i| {
        format!("/api/connections/demo/read-models/items/{}", keys[i % keys.len()])
    })
    .await?;
    let list = latency(&http, &app.api_url, &opts, |_| {
        "/api/connections/demo/read-models/items?limit=50".into()
    })
    .await?;
    let health = latency(&http, &app.api_url, &opts, |_| "/healthz".into()).await?;
    for (name, l) in [
        ("read model GET by key", &by_key),
        ("read model list, 50 per page", &list),
    ] {
        figures.push(Figure {
            name: format!(
                "{name}, p50 ({} rows, {})",
                bare_rows,
                if opts.store_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
                    "PostgreSQL"
                } else {
                    "SQLite"
                }
            ),
            value: l.p50,
            baseline: health.p50,
            unit: "ms",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: false,
            skipped: None,
            goal: None,
        });
        figures.push(Figure {
            name: format!("{name}, p99"),
            value: l.p99,
            baseline: health.p99,
            unit: "ms",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: false,
            skipped: None,
            goal: None,
        });
        figures.push(Figure {
            name: format!("{name}, {} concurrent clients", opts.concurrency),
            value: l.rps,
            baseline: health.rps,
            unit: "req/s",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: true,
            skipped: None,
            goal: None,
        });
    }
    figures.push(Figure {
        name: "peak RSS of the process, load to end (simulator included)".into(),
        value: peak_rss_kib() as f64 / 1024.0,
        baseline: rss_sim.saturating_sub(rss_start) as f64 / 1024.0,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: None,
    });
    app.shutdown().await;

    // 5. Outbox -> Kafka: the relay publishes the outbox the load and the changes filled.
    figures.push(kafka_measure(&opts, &cfg).await);

    // 6. Webhook change -> outbox latency, erp-bridge restarted with slow polling.
    if opts.webhook_changes == 0 {
        figures.push(Figure::skipped(
            "webhook change -> outbox message".into(),
            "ms",
            WEBHOOK_BASELINE,
            false,
            "skipped (--webhook-changes 0)".into(),
        ));
    } else {
        figures.extend(webhook_measure(&sim, &cfg, &http, &targets, opts.webhook_changes).await?);
    }
    running.shutdown().await;
    // Last, with the connector stopped: the copies of the rows it needs do not inflate the
    // memory figures above.
    figures.insert(0, mapping_measure(&sim, &table)?);
    Ok(figures)
}

/// What [`windowed_reads`] did.
struct Windowed {
    took: Duration,
    rows: usize,
    /// Windows read whole (answers below the cap).
    whole: usize,
    /// Windows split because their answer may have been cut.
    split: usize,
    /// Rows of split windows' answers (read, then dropped).
    dropped: usize,
    /// The longest single call.
    slowest: Duration,
}

/// The initial load's reads without its writes: the whole table in windows of the change
/// timestamp (`pipeline::source::window`, as the load uses it), `parallel` calls at once, a
/// window whose answer may have been cut split and its parts read instead.
async fn windowed_reads(
    client: &std::sync::Arc<m3::M3Client>,
    table: &mapping::catalog::Table,
    item: &CompiledMapping,
    select: &[String],
    page: u32,
    parallel: usize,
) -> anyhow::Result<Windowed> {
    use pipeline::source::window::{Density, Dimensions, RowCap, Window};

    let dims = Dimensions::of(table, &item.key_columns());
    let dims_at: Vec<usize> = dims
        .columns
        .iter()
        .map(|c| {
            select
                .iter()
                .position(|s| s == c)
                .with_context(|| format!("{c} selected"))
        })
        .collect::<anyhow::Result<_>>()?;
    let cap = RowCap::default();
    let mut density = Density::default();
    let mut pending = vec![Window::all()];
    let mut in_flight = tokio::task::JoinSet::new();
    let mut done = Windowed {
        took: Duration::ZERO,
        rows: 0,
        whole: 0,
        split: 0,
        dropped: 0,
        slowest: Duration::ZERO,
    };
    let start = Instant::now();
    loop {
        while in_flight.len() < parallel.max(1) {
            let Some(w) = pending.pop() else { break };
            let query = dims.query(&table.name, select, &w);
            let (client, columns) = (client.clone(), select.len());
            in_flight.spawn(async move {
                let t = Instant::now();
                let rows = client.export_select(&query, '~', columns, page).await;
                (w, rows, t.elapsed())
            });
        }
        let Some(next) = in_flight.join_next().await else { break };
        let (w, rows, took) = next.context("a window read panicked")?;
        let rows = rows?;
        done.slowest = done.slowest.max(took);
        if cap.may_be_cut(rows.len(), page as usize) {
            let sample: Vec<Vec<String>> = dims_at
                .iter()
                .map(|&i| rows.iter().map(|r| r[i].clone()).collect())
                .collect();
            let parts = density.parts(&w, &rows, dims_at[0], parallel);
            if let Some(kids) = dims.split(&w, &sample, parts) {
                done.split += 1;
                done.dropped += rows.len();
                pending.extend(kids);
                continue;
            }
        }
        density.record(&w, rows.len());
        done.whole += 1;
        done.rows += rows.len();
    }
    done.took = start.elapsed();
    Ok(done)
}

/// Mapping on one core, against plain serde re-serialisation of the same rows.
fn mapping_measure(sim: &m3_sim::Simulator, table: &mapping::catalog::Table) -> anyhow::Result<Figure> {
    let spec = mapping::spec::wide_item_mapping();
    let compiled = CompiledMapping::compile(&spec, table)?;
    let cols = compiled.columns();
    let rows: Vec<Vec<String>> = sim
        .rows("MITMAS")
        .into_iter()
        .map(|r| cols.iter().map(|c| r.get(c).cloned().unwrap_or_default()).collect())
        .collect();
    let refs: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
    let time_rows = |f: &dyn Fn(&[&str]) -> usize| {
        let start = Instant::now();
        let mut n = 0usize;
        let mut sink = 0usize;
        while start.elapsed() < Duration::from_millis(1500) {
            for r in &refs {
                sink = sink.wrapping_add(f(r));
            }
            n += refs.len();
        }
        std::hint::black_box(sink);
        n as f64 / start.elapsed().as_secs_f64()
    };
    let mapped = time_rows(&|r| compiled.apply(r).map(|p| p.payload.len()).unwrap_or(0));
    let plain = time_rows(&|r| serde_json::to_string(&Plain(r)).map(|s| s.len()).unwrap_or(0));
    Ok(Figure {
        name: "mapping, 20 columns, one core".into(),
        value: mapped,
        baseline: plain,
        unit: "rows/s",
        baseline_is: "serde_json of the same trimmed values",
        higher_is_better: true,
        skipped: None,
        goal: None,
    })
}

const WEBHOOK_BASELINE: &str =
    "the simulator's POST of the same event to a bare loopback axum endpoint answering 200, same detector";
const RELAY_BASELINE: &str =
    "bare rdkafka FutureProducer (the relay's settings), same records, same broker, before and after the relay";

/// Messages the bare producer of the relay measure keeps in flight (the relay: one batch of 500).
const BARE_IN_FLIGHT: usize = 5_000;

/// How often the latency detectors look (see [`observe`]).
const DETECT_EVERY: Duration = Duration::from_micros(200);

/// Sleep with sub-millisecond precision (tokio's timer has 1 ms granularity) without blocking a
/// runtime worker.
async fn fine_sleep(d: Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
}

/// Check `seen` every [`DETECT_EVERY`] until it is true; fail after `timeout` naming `what`.
async fn observe<F, Fut>(what: &str, timeout: Duration, mut seen: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while !seen().await? {
        if Instant::now() >= deadline {
            anyhow::bail!("bench: timed out after {timeout:?} waiting for {what}");
        }
        fine_sleep(DETECT_EVERY).await;
    }
    Ok(())
}

/// A handle of the bench's own on the store erp-bridge uses with `cfg` (as `App::start` opens it).
async fn open_store(cfg: &Config) -> anyhow::Result<store::Store> {
    Ok(match &cfg.store.url {
        Some(url) => store::Store::connect(url).await?,
        None => store::Store::open(&cfg.data_dir.join("erp-bridge.db")).await?,
    })
}

/// Webhook change -> message in the outbox, one change at a time, against the simulator's bare
/// delivery of the same event to a trivial endpoint. erp-bridge is restarted on the same store
/// with a poll interval of an hour, so only the webhook path can produce the messages. Both
/// detectors poll every [`DETECT_EVERY`]: the outbox's last sequence number (SQLite, through a
/// store handle of the bench's own) and the endpoint's hit counter.
async fn webhook_measure(
    sim: &m3_sim::Simulator,
    cfg: &Config,
    http: &reqwest::Client,
    targets: &[(String, String)],
    n: usize,
) -> anyhow::Result<Vec<Figure>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    anyhow::ensure!(!targets.is_empty(), "bench: no items to change");
    let token = format!("hook-{:016x}", rand::random::<u64>());
    let mut cfg = cfg.clone();
    cfg.connection.poll_interval = Duration::from_secs(3600);
    cfg.connection.webhook_token = Some(token.clone());
    let app = App::start(cfg.clone()).await?;
    let status_url = format!("{}/api/connections/{}/status", app.api_url, app.connection);
    // The first poll after the start (it re-reads the overlap window) must be over.
    wait_for(
        "the first poll after the restart",
        Duration::from_secs(120),
        Duration::from_millis(20),
        || async {
            let v: serde_json::Value = http.get(&status_url).send().await?.json().await?;
            let t = &v["tables"]["Item"];
            let done = t["phase"] == "polling" && !t["last_poll"].is_null();
            Ok(if done { Ok(()) } else { Err(v.to_string()) })
        },
    )
    .await?;
    let store = open_store(&cfg).await?;
    let bridge_url = format!("{}/webhooks/{}/MITMAS", app.api_url, app.connection);

    let hits = std::sync::Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    // Blocks of changes, alternately to the bare endpoint and to erp-bridge, so that both see
    // the same load on this shared machine.
    const BLOCK: usize = 50;
    let timeout = Duration::from_secs(10);
    let first_seq = store.last_seq().await?;
    let (mut bare, mut bridge) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut done = 0;
    let result: anyhow::Result<()> = async {
        while done < n {
            let len = BLOCK.min(n - done);
            for to_bridge in [false, true] {
                let id = sim.subscribe(m3_sim::WebhookSubscription {
                    subscription: "M3:MITMAS:CUD".into(),
                    url: if to_bridge {
                        bridge_url.clone()
                    } else {
                        hook_url.clone()
                    },
                    auth: m3_sim::WebhookAuth::Bearer { token: token.clone() },
                });
                // Let the subscription's sender task start and build its HTTP client.
                tokio::time::sleep(Duration::from_millis(20)).await;
                for i in done..done + len {
                    let (cono, itno) = &targets[i % targets.len()];
                    let text = format!("{} {i}", if to_bridge { "webhook" } else { "webhook baseline" });
                    let change = [("MMITDS", text.as_str())];
                    let took = if to_bridge {
                        let before = store.last_seq().await?;
                        let t = Instant::now();
                        sim.update("MITMAS", &[cono, itno], &change)?;
                        observe(&format!("the message of webhook change {i}"), timeout, || async {
                            Ok(store.last_seq().await? > before)
                        })
                        .await?;
                        t.elapsed()
                    } else {
                        let before = hits.load(Ordering::SeqCst);
                        let t = Instant::now();
                        sim.update("MITMAS", &[cono, itno], &change)?;
                        observe(&format!("the bare delivery of change {i}"), timeout, || async {
                            Ok(hits.load(Ordering::SeqCst) > before)
                        })
                        .await?;
                        t.elapsed()
                    };
                    if to_bridge { &mut bridge } else { &mut bare }.push(took);
                    // Paced: the response of this call is back before the next change is made.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                sim.unsubscribe(id);
            }
            done += len;
        }
        Ok(())
    }
    .await;
    server.abort();
    let made = store.last_seq().await? - first_seq;
    app.shutdown().await;
    result?;
    anyhow::ensure!(
        made == n as i64,
        "bench: {n} webhook changes made {made} messages (was something else writing to the outbox?)"
    );
    bare.sort();
    bridge.sort();
    Ok(vec![
        Figure {
            name: format!("webhook change -> outbox message, p50 ({n} changes one at a time, polling off)"),
            value: percentile(&bridge, 0.50),
            baseline: percentile(&bare, 0.50),
            unit: "ms",
            baseline_is: WEBHOOK_BASELINE,
            higher_is_better: false,
            skipped: None,
            goal: None,
        },
        Figure {
            name: "webhook change -> outbox message, p99".into(),
            value: percentile(&bridge, 0.99),
            baseline: percentile(&bare, 0.99),
            unit: "ms",
            baseline_is: WEBHOOK_BASELINE,
            higher_is_better: false,
            skipped: None,
            goal: None,
        },
    ])
}

/// A tansu broker started for the run: a free loopback port, SQLite storage in a temporary
/// folder; killed on drop.
struct Tansu {
    child: std::process::Child,
    brokers: String,
    _state: tempfile::TempDir,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `TANSU_BIN`, else the broker `scripts/tansu-build.sh` builds, if it is there.
fn tansu_bin() -> Option<std::path::PathBuf> {
    if let Some(b) = std::env::var_os("TANSU_BIN") {
        return Some(b.into());
    }
    let bin = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/tansu-0.6.0/bin/tansu");
    bin.exists().then_some(bin)
}

async fn start_tansu(bin: &std::path::Path) -> anyhow::Result<Tansu> {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = tempfile::tempdir()?;
    let log_path = state.path().join("tansu.log");
    let log = std::fs::File::create(&log_path)?;
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .current_dir(state.path())
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env_remove("STORAGE_ENGINE")
        .env_remove("CLUSTER_ID")
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "sqlite://tansu.db",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let mut tansu = Tansu {
        child,
        brokers: format!("127.0.0.1:{port}"),
        _state: state,
    };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&tansu.brokers).await.is_ok() {
            return Ok(tansu);
        }
        if let Some(status) = tansu.child.try_wait()? {
            anyhow::bail!("{} exited ({status}): {}", bin.display(), log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "{} did not open {} within 10 s: {}",
        bin.display(),
        tansu.brokers,
        log()
    )
}

/// The relay measure's row: figures, or why there are none. Never fails the bench.
async fn kafka_measure(opts: &BenchOptions, cfg: &Config) -> Figure {
    let name = "outbox -> Kafka relay".to_string();
    let skipped = |why: String| Figure::skipped(name.clone(), "msgs/s", RELAY_BASELINE, true, why);
    let mut tansu = None;
    let brokers = match (&opts.kafka_brokers, tansu_bin()) {
        (Some(b), _) => b.clone(),
        (None, Some(bin)) => match start_tansu(&bin).await {
            Ok(t) => tansu.insert(t).brokers.clone(),
            Err(e) => return skipped(format!("skipped (tansu did not start: {e:#})")),
        },
        (None, None) => return skipped("skipped (no broker)".into()),
    };
    let result = relay_measure(cfg, &brokers).await;
    drop(tansu);
    match result {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "bench: the Kafka relay measure failed");
            skipped(format!("failed: {e:#}"))
        }
    }
}

/// Outbox -> Kafka: the relay (`kafka::Relay`, as `up` runs it) publishes every message the
/// load and the changes left in the outbox, timed from its creation until it has reported all
/// of them acknowledged; against a bare producer with the same settings sending the same
/// records (key, CloudEvents headers, value) from memory to a topic with as many partitions
/// ([`bare_send`]), once before and once after the relay.
async fn relay_measure(cfg: &Config, brokers: &str) -> anyhow::Result<Figure> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let conn = cfg.connection.name.as_str();
    let store = open_store(cfg).await?;
    let count = store.unpublished_count(conn).await? as usize;
    anyhow::ensure!(count > 0, "the outbox is empty");
    let records: Vec<(String, rdkafka::message::OwnedHeaders, Vec<u8>)> = store
        .unpublished(conn, u32::try_from(count)?)
        .await?
        .iter()
        .map(|m| {
            let (headers, value) = kafka::cloudevents::encode(m, false);
            (m.subject.clone(), headers, value)
        })
        .collect();
    anyhow::ensure!(records.len() == count, "read {} of {count} messages", records.len());
    let avg_value = records.iter().map(|r| r.2.len()).sum::<usize>() / count;

    // Topics of their own for this run (a given broker may be shared).
    let prefix = format!("erp-bridge-bench-{:08x}", rand::random::<u32>());
    let settings = kafka::KafkaSettings {
        brokers: brokers.to_string(),
        topic_prefix: prefix.clone(),
        ..Default::default()
    };
    let relay_topic = settings.topics(conn).events;
    let bare_topic = format!("{prefix}.baseline");
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let new: Vec<NewTopic> = [&relay_topic, &bare_topic]
        .into_iter()
        .map(|t| {
            NewTopic::new(
                t,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in tokio::time::timeout(Duration::from_secs(30), admin.create_topics(&new, &opts))
        .await
        .context("creating the topics: no answer in 30 s")??
    {
        r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }
    let timeout = Duration::from_secs(120) + Duration::from_millis(5 * count as u64);

    // The bare producer before and after the relay, so that a broker (or a machine) that
    // speeds up or slows down as the run goes on favours neither side.
    let bare_before = bare_send(&settings, &bare_topic, &records, timeout).await?;
    let status = pipeline::StatusBoard::default();
    let (stop, stopped) = pipeline::ShutdownTrigger::new();
    let start = Instant::now();
    let relay = kafka::Relay::new(&settings, store.clone(), conn, status.clone())?;
    let task = tokio::spawn(relay.run(stopped));
    let published = wait_for(
        &format!("the relay to publish {count} messages"),
        timeout,
        Duration::from_millis(5),
        || async {
            let r = status.snapshot().relay.unwrap_or_default();
            Ok(if r.published >= count as u64 {
                Ok(r.published)
            } else {
                Err(format!(
                    "published {}, healthy {}, last error {:?}",
                    r.published, r.healthy, r.last_error
                ))
            })
        },
    )
    .await;
    let relayed = start.elapsed();
    stop.fire();
    let _ = task.await;
    published?;
    let left = store.unpublished_count(conn).await?;
    anyhow::ensure!(
        left == 0,
        "{left} messages still unpublished after the relay reported all"
    );
    let bare_after = bare_send(&settings, &bare_topic, &records, timeout).await?;
    drop(records);
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    Ok(Figure {
        name: format!(
            "outbox -> Kafka relay, {count} messages (value {avg_value} B average, CloudEvents binary mode; \
             bare producer before / after the relay: {:.0} / {:.0} msgs/s)",
            rate(bare_before),
            rate(bare_after)
        ),
        value: rate(relayed),
        baseline: 2.0 * count as f64 / (bare_before + bare_after).as_secs_f64(),
        unit: "msgs/s",
        baseline_is: RELAY_BASELINE,
        higher_is_better: true,
        skipped: None,
        goal: None,
    })
}

/// The relay measure's baseline: a bare producer with the relay's settings (a new one, as the
/// relay's is) sends `records` to `topic`, [`BARE_IN_FLIGHT`] at most in flight; returns the
/// time until the broker acknowledged the last one.
async fn bare_send(
    settings: &kafka::KafkaSettings,
    topic: &str,
    records: &[(String, rdkafka::message::OwnedHeaders, Vec<u8>)],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::future_producer::OwnedDeliveryResult;
    use rdkafka::producer::FutureRecord;

    fn delivered<E>(d: Result<OwnedDeliveryResult, E>) -> anyhow::Result<()> {
        match d {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(anyhow::anyhow!("baseline delivery failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("baseline delivery cancelled")),
        }
    }
    let start = Instant::now();
    let producer = kafka::relay::producer(settings)?;
    let send_all = async {
        let mut inflight = std::collections::VecDeque::new();
        for (key, headers, value) in records {
            // A bounded window, as a well-behaved producer keeps: with all the records queued at
            // once, a slow broker lets the last ones expire (`message.timeout.ms`) in the queue.
            if inflight.len() >= BARE_IN_FLIGHT {
                if let Some(d) = inflight.pop_front() {
                    delivered(d.await)?;
                }
            }
            loop {
                let record = FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value)
                    .headers(headers.clone());
                match producer.send_result(record) {
                    Ok(d) => {
                        inflight.push_back(d);
                        break;
                    }
                    // Local queue full: wait for the oldest delivery, then try again.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        let d = inflight
                            .pop_front()
                            .context("producer queue full with nothing in flight")?;
                        delivered(d.await)?;
                    }
                    Err((e, _)) => anyhow::bail!("baseline send failed: {e}"),
                }
            }
        }
        while let Some(d) = inflight.pop_front() {
            delivered(d.await)?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, send_all)
        .await
        .with_context(|| format!("baseline: {} messages not acknowledged in {timeout:?}", records.len()))??;
    Ok(start.elapsed())
}

struct Latency {
    p50: f64,
    p99: f64,
    rps: f64,
}

async fn latency(
    http: &reqwest::Client,
    base: &str,
    opts: &BenchOptions,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Latency> {
    let paths: Vec<String> = (0..opts.requests).map(path).collect();
    let per = opts.requests.div_ceil(opts.concurrency);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for chunk in paths.chunks(per) {
        let chunk: Vec<String> = chunk.to_vec();
        let http = http.clone();
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(chunk.len());
            for p in chunk {
                let t = Instant::now();
                let r = http.get(format!("{base}{p}")).send().await?;
                anyhow::ensure!(r.status().is_success(), "{p}: HTTP {}", r.status());
                r.bytes().await?;
                times.push(t.elapsed());
            }
            anyhow::Ok(times)
        }));
    }
    let mut all = Vec::with_capacity(opts.requests);
    for t in tasks {
        all.extend(t.await??);
    }
    let rps = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    Ok(Latency {
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        rps,
    })
}

/// The figures as a Markdown table.
pub fn table(figures: &[Figure]) -> String {
    let mut out =
        String::from("| measure | value | baseline | ratio | goal | baseline is |\n|---|---:|---:|---:|---|---|\n");
    for f in figures {
        if let Some(why) = &f.skipped {
            out.push_str(&format!("| {} | {why} | – | – | – | {} |\n", f.name, f.baseline_is));
            continue;
        }
        let goal = match f.goal {
            None => "–".to_string(),
            Some(g) => match g.met(f) {
                Some(true) => format!("{}: met", g.describe()),
                Some(false) => format!("{}: **missed**", g.describe()),
                None => format!("{}: no figure", g.describe()),
            },
        };
        let ratio = if f.baseline > 0.0 {
            f.value / f.baseline
        } else {
            f64::NAN
        };
        out.push_str(&format!(
            "| {} | {:.3} {} | {:.3} {} | {:.2}{} | {goal} | {} |\n",
            f.name,
            f.value,
            f.unit,
            f.baseline,
            f.unit,
            ratio,
            if f.higher_is_better {
                " (higher is better)"
            } else {
                " (lower is better)"
            },
            f.baseline_is
        ));
    }
    out
}
