//! Many connections in one process (issue 16): `--connections N` small hosted connections, each
//! with the default `Item` mapping deployed, all created through the HTTP API as a user would.
//! Figures: the RSS each connection adds once they are all polling, and the CPU the process
//! spends while they idle (nothing changes in M3; each still polls at the default interval and
//! the in-process simulator answers). The baseline of both is the same process before any
//! connection was created, measured over the same idle time in the same run.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{rss_kib, wait_for, BenchOptions, Figure, Goal};
use crate::config::Config;
use crate::App;

/// Items in each connection's simulated `MITMAS` (small: the measure is about the connections).
const ITEMS: usize = 50;

/// How long the CPU is sampled while idle.
const IDLE: Duration = Duration::from_secs(20);

/// The issue-16 goals: at most 5 MiB per connection, at most 5 % of a core while idle.
const MEMORY_GOAL: Goal = Goal::AtMost(5.0);
const IDLE_CPU_GOAL: Goal = Goal::AtMost(5.0);

/// CPU time this process has used so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Percent of one core used over `IDLE`.
async fn idle_cpu_percent() -> f64 {
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(IDLE).await;
    (cpu_time() - cpu).as_secs_f64() * 100.0 / wall.elapsed().as_secs_f64()
}

/// Start erp-bridge with no connection of its own, measure it idle, create `opts.connections`
/// connections on one simulator, wait until every one polls, and measure again.
pub(super) async fn measure(opts: &BenchOptions) -> anyhow::Result<Vec<Figure>> {
    let n = opts.connections;
    let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
        items: ITEMS,
        ..Default::default()
    });
    let running = sim.serve("127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    cfg.http.listen = "127.0.0.1:0".parse()?;
    cfg.store.url = opts.store_url.clone();
    cfg.connection.enabled = false;
    let token = format!("bench-{:016x}", rand::random::<u64>());
    cfg.auth.bootstrap_token = Some(token.clone());
    let app = App::start(cfg).await.context("bench: erp-bridge starts")?;
    let http = reqwest::Client::new();
    let api = app.api_url.clone();

    // Baseline: the process as it is, idle, with no connection.
    let cpu_before = idle_cpu_percent().await;
    let rss_before = rss_kib();

    let ionapi = sim.ionapi(&running.base_url).to_string();
    let spec = serde_json::to_string(&mapping::spec::default_item_mapping())?;
    for i in 0..n {
        let name = format!("bench-{i:03}");
        let ok = |r: reqwest::Response, what: &'static str| async move {
            let status = r.status();
            anyhow::ensure!(status.is_success(), "bench: {what}: HTTP {status}: {}", r.text().await?);
            Ok(())
        };
        ok(
            http.post(format!("{api}/api/connections"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"{name}","hosting":"hosted"}}"#))
                .send()
                .await?,
            "create a connection",
        )
        .await?;
        ok(
            http.put(format!("{api}/api/connections/{name}/ionapi"))
                .bearer_auth(&token)
                .body(ionapi.clone())
                .send()
                .await?,
            "upload the .ionapi",
        )
        .await?;
        wait_for(
            "the connection to run",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                let v: serde_json::Value = http
                    .get(format!("{api}/api/connections/{name}"))
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(if v["running"] == true {
                    Ok(())
                } else {
                    Err(v.to_string())
                })
            },
        )
        .await?;
        ok(
            http.post(format!("{api}/api/connections/{name}/mappings"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(spec.clone())
                .send()
                .await?,
            "save the mapping",
        )
        .await?;
        ok(
            http.post(format!("{api}/api/connections/{name}/mappings/Item/deploy"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await?,
            "deploy the mapping",
        )
        .await?;
    }
    wait_for(
        "every connection to poll",
        Duration::from_secs(120) + Duration::from_millis(500 * n as u64),
        Duration::from_millis(250),
        || async {
            let mut polling = 0;
            for i in 0..n {
                let v: serde_json::Value = http
                    .get(format!("{api}/api/connections/bench-{i:03}/status"))
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .json()
                    .await?;
                if v["tables"]["Item"]["phase"] == "polling" {
                    polling += 1;
                }
            }
            Ok(if polling == n {
                Ok(())
            } else {
                Err(format!("{polling} of {n} polling"))
            })
        },
    )
    .await?;
    let cpu_after = idle_cpu_percent().await;
    let per_connection = rss_kib().saturating_sub(rss_before) as f64 / 1024.0 / n.max(1) as f64;
    app.shutdown().await;
    running.shutdown().await;
    Ok(vec![
        Figure {
            name: format!("memory per connection ({n} hosted connections of {ITEMS} items, all polling)"),
            value: per_connection,
            baseline: rss_before as f64 / 1024.0,
            unit: "MiB",
            baseline_is: "RSS of the process with no connection",
            higher_is_better: false,
            skipped: None,
            goal: Some(MEMORY_GOAL),
        },
        Figure {
            name: format!(
                "idle CPU with {n} connections polling every {:?} (simulator included)",
                Config::default().connection.poll_interval
            ),
            value: cpu_after,
            baseline: cpu_before,
            unit: "% of a core",
            baseline_is: "the same process with no connection, same idle time",
            higher_is_better: false,
            skipped: None,
            goal: Some(IDLE_CPU_GOAL),
        },
    ])
}
