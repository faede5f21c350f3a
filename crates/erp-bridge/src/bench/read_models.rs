//! Measure 4: read-model HTTP latencies and throughput under concurrency (by key, a list page),
//! against `GET /healthz` on the same server and load.

use std::time::Instant;

use super::initial_load::Loaded;
use super::{percentile, BenchOptions, Figure};

/// The six read-model rows: p50, p99 and requests per second, by key and listed.
pub(super) async fn measure(opts: &BenchOptions, loaded: &Loaded) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    anyhow::ensure!(!loaded.targets.is_empty(), "bench: the simulator has no items");
    let keys: Vec<String> = loaded.targets.iter().map(|(c, i)| format!("{c}%7C{i}")).collect();
    let by_key = latency(&loaded.http, &loaded.app.api_url, opts, |i| {
        format!("/api/connections/demo/read-models/items/{}", keys[i % keys.len()])
    })
    .await?;
    let list = latency(&loaded.http, &loaded.app.api_url, opts, |_| {
        "/api/connections/demo/read-models/items?limit=50".into()
    })
    .await?;
    let health = latency(&loaded.http, &loaded.app.api_url, opts, |_| "/healthz".into()).await?;
    for (name, l) in [
        ("read model GET by key", &by_key),
        ("read model list, 50 per page", &list),
    ] {
        figures.push(Figure {
            name: format!(
                "{name}, p50 ({} rows, {})",
                loaded.bare_rows,
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
    Ok(figures)
}

/// Latency percentiles (ms) and throughput of one series of requests.
struct Latency {
    p50: f64,
    p99: f64,
    rps: f64,
}

/// `opts.requests` GETs of `base` + `path(i)` from `opts.concurrency` clients.
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
