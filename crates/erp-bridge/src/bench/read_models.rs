//! Measure 4: read-model HTTP latencies and throughput under concurrency (by key, the first
//! list page and a page at the end of the table), against `GET /healthz` on the same server and
//! load, each with its issue-16/18 goal for the store measured.

use std::time::Instant;

use super::initial_load::Loaded;
use super::{percentile, BenchOptions, Figure, Goal};

/// What the figures are compared with.
const HEALTH: &str = "GET /healthz, same server and load";
const FIRST_PAGE: &str = "the first list page, same run";

/// The goals of one store, against `/healthz` (SQLite) or absolute in ms and req/s (PostgreSQL,
/// which has none for the throughput by key).
struct Goals {
    key_p99: Goal,
    key_rps: Option<Goal>,
    list_p99: Goal,
    list_rps: Goal,
}

/// The read-model rows: p50, p99 and requests per second by key and for the first list page;
/// p50 and p99 of a page at the end of the table, against the first page.
pub(super) async fn measure(opts: &BenchOptions, loaded: &Loaded) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    anyhow::ensure!(!loaded.targets.is_empty(), "bench: the simulator has no items");
    let postgres = opts.store_url.as_deref().is_some_and(|u| u.starts_with("postgres"));
    let (store, goals) = if postgres {
        (
            "PostgreSQL",
            Goals {
                key_p99: Goal::AtMost(5.0),
                key_rps: None,
                list_p99: Goal::AtMost(15.0),
                list_rps: Goal::AtLeast(1000.0),
            },
        )
    } else {
        (
            "SQLite",
            Goals {
                key_p99: Goal::RatioAtMost(3.0),
                key_rps: Some(Goal::RatioAtLeast(0.5)),
                list_p99: Goal::RatioAtMost(6.0),
                list_rps: Goal::RatioAtLeast(0.25),
            },
        )
    };
    let keys: Vec<String> = loaded.targets.iter().map(|(c, i)| format!("{c}%7C{i}")).collect();
    let base = &loaded.app.api_url;
    let list_url = "/api/connections/demo/read-models/items?limit=50";
    // The deep page: after the 51st item from the end, so it holds the last 50 items.
    let deep_after = loaded.tail.front().map(|(c, i)| format!("{c}%7C{i}"));
    let deep_url = deep_after.map(|a| format!("{list_url}&after={a}"));
    // Once before measuring, for the planner statistics and caches of both list forms.
    for url in std::iter::once(list_url.to_string()).chain(deep_url.clone()) {
        latency(&loaded.http, base, 1, 100, |_| url.clone()).await?;
    }
    let health = latency(&loaded.http, base, opts.concurrency, opts.requests, |_| {
        "/healthz".into()
    })
    .await?;
    let by_key = latency(&loaded.http, base, opts.concurrency, opts.requests, |i| {
        format!("/api/connections/demo/read-models/items/{}", keys[i % keys.len()])
    })
    .await?;
    let list = latency(&loaded.http, base, opts.concurrency, opts.requests, |_| list_url.into()).await?;
    let deep = match &deep_url {
        Some(url) => Some(latency(&loaded.http, base, opts.concurrency, opts.requests, |_| url.clone()).await?),
        None => None,
    };
    let key_goals = [None, Some(goals.key_p99), goals.key_rps];
    let list_goals = [None, Some(goals.list_p99), Some(goals.list_rps)];
    for (name, l, [p50_goal, p99_goal, rps_goal]) in [
        ("read model GET by key", &by_key, key_goals),
        ("read model list, 50 per page, first page", &list, list_goals),
    ] {
        let first = figures.is_empty();
        figures.push(Figure {
            name: if first {
                format!("{name}, p50 ({} rows, {store})", loaded.bare_rows)
            } else {
                format!("{name}, p50")
            },
            value: l.p50,
            baseline: health.p50,
            unit: "ms",
            baseline_is: HEALTH,
            higher_is_better: false,
            skipped: None,
            goal: p50_goal,
        });
        figures.push(Figure {
            name: format!("{name}, p99"),
            value: l.p99,
            baseline: health.p99,
            unit: "ms",
            baseline_is: HEALTH,
            higher_is_better: false,
            skipped: None,
            goal: p99_goal,
        });
        figures.push(Figure {
            name: format!("{name}, {} concurrent clients", opts.concurrency),
            value: l.rps,
            baseline: health.rps,
            unit: "req/s",
            baseline_is: HEALTH,
            higher_is_better: true,
            skipped: None,
            goal: rps_goal,
        });
    }
    let deep_name = "read model list, 50 per page, the last page (keyset seek)";
    match deep {
        Some(d) => {
            for (what, value, baseline) in [("p50", d.p50, list.p50), ("p99", d.p99, list.p99)] {
                figures.push(Figure {
                    name: format!("{deep_name}, {what}"),
                    value,
                    baseline,
                    unit: "ms",
                    baseline_is: FIRST_PAGE,
                    higher_is_better: false,
                    skipped: None,
                    goal: Some(Goal::RatioAtMost(1.5)),
                });
            }
            figures.push(Figure {
                name: format!("{deep_name}, {} concurrent clients", opts.concurrency),
                value: d.rps,
                baseline: health.rps,
                unit: "req/s",
                baseline_is: HEALTH,
                higher_is_better: true,
                skipped: None,
                goal: Some(goals.list_rps),
            });
        }
        None => figures.push(Figure::skipped(
            deep_name.into(),
            "ms",
            FIRST_PAGE,
            false,
            "no items".into(),
        )),
    }
    Ok(figures)
}

/// Latency percentiles (ms) and throughput of one series of requests.
struct Latency {
    p50: f64,
    p99: f64,
    rps: f64,
}

/// `requests` GETs of `base` + `path(i)` from `concurrency` clients.
async fn latency(
    http: &reqwest::Client,
    base: &str,
    concurrency: usize,
    requests: usize,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Latency> {
    let paths: Vec<String> = (0..requests).map(path).collect();
    let per = requests.div_ceil(concurrency);
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
    let mut all = Vec::with_capacity(requests);
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
