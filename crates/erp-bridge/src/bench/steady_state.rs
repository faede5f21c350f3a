//! Measure 3: steady state, a burst of item changes through poll -> map -> outbox, against the
//! bare EXPORTMI read rate.

use std::time::{Duration, Instant};

use super::initial_load::{item_status, Loaded};
use super::{wait_for, BenchOptions, Figure};

/// Change the first items one after the other and time until the outbox holds all of their
/// messages.
pub(super) async fn measure(opts: &BenchOptions, sim: &m3_sim::Simulator, loaded: &Loaded) -> anyhow::Result<Figure> {
    let before = item_status(&loaded.http, &loaded.status_url).await?["messages"]
        .as_u64()
        .unwrap_or(0);
    let start = Instant::now();
    for (i, (cono, itno)) in loaded.targets.iter().enumerate() {
        sim.update("MITMAS", &[cono, itno], &[("MMITDS", &format!("bench {i}"))])?;
    }
    let expected = before + loaded.targets.len() as u64;
    wait_for(
        &format!(
            "{} changes to reach the outbox (messages >= {expected})",
            loaded.targets.len()
        ),
        Duration::from_secs(60) + Duration::from_millis(loaded.targets.len() as u64),
        Duration::from_millis(10),
        || async {
            let s = item_status(&loaded.http, &loaded.status_url).await?;
            let done = s["messages"].as_u64().unwrap_or(0) >= expected;
            Ok(if done { Ok(()) } else { Err(s.to_string()) })
        },
    )
    .await?;
    let pipeline_rate = loaded.targets.len() as f64 / start.elapsed().as_secs_f64();
    Ok(Figure {
        name: if opts.latency_ms > 0 {
            format!(
                "steady state, {} changes: poll -> map -> outbox (no added latency; the baseline's paging had {} ms)",
                loaded.targets.len(),
                opts.latency_ms
            )
        } else {
            format!("steady state, {} changes: poll -> map -> outbox", loaded.targets.len())
        },
        value: pipeline_rate,
        baseline: loaded.bare_rows as f64 / loaded.bare.as_secs_f64(),
        unit: "changes/s",
        baseline_is: "bare EXPORTMI read rate (rows/s)",
        higher_is_better: true,
        skipped: None,
        goal: None,
    })
}
