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
}

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
}

impl Figure {
    /// A row for a measure that did not run, saying why.
    fn skipped(name: String, unit: &'static str, baseline_is: &'static str, higher_is_better: bool, why: String) -> Figure {
        Figure {
            name,
            value: f64::NAN,
            baseline: f64::NAN,
            unit,
            baseline_is,
            higher_is_better,
            skipped: Some(why),
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

    let table = mapping::catalog::standard_table("MITMAS").context("catalogue")?;

    // 1. (Mapping on one core is measured last, see `mapping_measure`.)
    // 2. Initial load through EXPORTMI -> mapping -> outbox, against bare EXPORTMI paging.
    let dir = tempfile::tempdir()?;
    let ion_path = dir.path().join("m3.ionapi");
    std::fs::write(&ion_path, sim.ionapi(&running.base_url).to_string())?;
    let ion = m3::IonApi::parse(&std::fs::read_to_string(&ion_path)?)?;
    let client = m3::M3Client::new(ion, m3::ClientOptions::default())?;
    let item = CompiledMapping::compile(&mapping::spec::default_item_mapping(), &table)?;
    let mut sel = item.columns();
    sel.push("MMLMTS".into());
    let page = 5000u32;
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
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    cfg.http.listen = "127.0.0.1:0".parse()?;
    cfg.connection.ionapi_file = Some(ion_path.clone());
    cfg.connection.page_size = page;
    cfg.connection.poll_interval = Duration::from_millis(50);
    cfg.connection.reconcile_interval = Duration::from_secs(3600);
    // The API needs a token: start with a bootstrap admin token of our own.
    let token = format!("bench-{:016x}", rand::random::<u64>());
    cfg.auth.bootstrap_token = Some(token.clone());
    // Peaks from here on belong to the load (and what follows), not to the seeding.
    let peak_reset = reset_peak_rss();
    let rss_before_load = rss_kib();
    let start = Instant::now();
    let app = App::start(cfg).await?;
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
    figures.push(Figure {
        name: format!("initial load of {bare_rows} rows"),
        value: load.as_secs_f64(),
        baseline: bare.as_secs_f64(),
        unit: "s",
        baseline_is: "bare EXPORTMI paging of the same rows",
        higher_is_better: false,
        skipped: None,
    });
    let load_peak = peak_rss_kib();
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
    });

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
        name: format!("steady state, {} changes: poll -> map -> outbox", targets.len()),
        value: pipeline_rate,
        baseline: bare_rows as f64 / bare.as_secs_f64(),
        unit: "changes/s",
        baseline_is: "bare EXPORTMI read rate (rows/s)",
        higher_is_better: true,
        skipped: None,
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
            name: format!("{name}, p50 ({} rows)", bare_rows),
            value: l.p50,
            baseline: health.p50,
            unit: "ms",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: false,
            skipped: None,
        });
        figures.push(Figure {
            name: format!("{name}, p99"),
            value: l.p99,
            baseline: health.p99,
            unit: "ms",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: false,
            skipped: None,
        });
        figures.push(Figure {
            name: format!("{name}, {} concurrent clients", opts.concurrency),
            value: l.rps,
            baseline: health.rps,
            unit: "req/s",
            baseline_is: "GET /healthz, same server and load",
            higher_is_better: true,
            skipped: None,
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
    });
    app.shutdown().await;
    running.shutdown().await;
    // Last, with the connector stopped: the copies of the rows it needs do not inflate the
    // memory figures above.
    figures.insert(0, mapping_measure(&sim, &table)?);
    Ok(figures)
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
    })
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
    let mut out = String::from("| measure | value | baseline | ratio | baseline is |\n|---|---:|---:|---:|---|\n");
    for f in figures {
        if let Some(why) = &f.skipped {
            out.push_str(&format!("| {} | {why} | – | – | {} |\n", f.name, f.baseline_is));
            continue;
        }
        let ratio = if f.baseline > 0.0 {
            f.value / f.baseline
        } else {
            f64::NAN
        };
        out.push_str(&format!(
            "| {} | {:.3} {} | {:.3} {} | {:.2}{} | {} |\n",
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
