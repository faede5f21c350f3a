//! Measure 6: webhook change -> outbox message, one change at a time with polling off, against
//! the simulator's bare delivery of the same event to a trivial endpoint.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::App;

use super::{open_store, percentile, wait_for, Figure, Goal};

/// What the webhook measure's baseline is.
const WEBHOOK_BASELINE: &str =
    "the simulator's POST of the same event to a bare loopback axum endpoint answering 200, same detector";

/// How often the latency detectors look (see [`observe`]).
const DETECT_EVERY: Duration = Duration::from_micros(200);

/// The measure's rows: figures, or one row saying it was skipped (`n` = 0).
pub(super) async fn figures(
    sim: &m3_sim::Simulator,
    cfg: &Config,
    http: &reqwest::Client,
    targets: &[(String, String)],
    n: usize,
) -> anyhow::Result<Vec<Figure>> {
    if n == 0 {
        return Ok(vec![Figure::skipped(
            "webhook change -> outbox message".into(),
            "ms",
            WEBHOOK_BASELINE,
            false,
            "skipped (--webhook-changes 0)".into(),
        )]);
    }
    measure(sim, cfg, http, targets, n).await
}

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

/// Webhook change -> message in the outbox, one change at a time, against the simulator's bare
/// delivery of the same event to a trivial endpoint. erp-bridge is restarted on the same store
/// with a poll interval of an hour, so only the webhook path can produce the messages. Both
/// detectors poll every [`DETECT_EVERY`]: the outbox's last sequence number (SQLite, through a
/// store handle of the bench's own) and the endpoint's hit counter.
async fn measure(
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
            // Issue 16.
            goal: Some(Goal::RatioAtMost(1.5)),
        },
    ])
}
