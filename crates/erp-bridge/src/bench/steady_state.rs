//! Measure 3: steady state. A burst of item changes made at the source's pace (one after the
//! other on a thread of their own, as M3's users and programs make them) through poll -> map ->
//! outbox, against a bare reader of the same kind of burst.
//!
//! The baseline ([`bare_poll`]) runs before erp-bridge starts: the same number of changes made
//! the same way, while a bare loop of EXPORTMI calls (`where MMLMTS >= <newest seen> order by
//! MMLMTS`, 5,000 rows a call, no pause between calls, no mapping, no store) reads them; it is
//! done when it has read every changed item with its new value. Both are timed from the first
//! change to the last change read (the bare reader) or in the outbox (erp-bridge), so both
//! include the time M3 takes to make the changes, and the ratio says how closely erp-bridge
//! follows the source. The bulk read rate of the initial load's bare paging is in the row's name
//! for comparison with earlier runs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::initial_load::{item_status, Loaded};
use super::{wait_for, BenchOptions, Figure, Goal};

/// The goal of issue 16: at least 0.9x the bare reader's rate.
const GOAL: Goal = Goal::RatioAtLeast(0.9);

/// Make `targets.len()` changes (`MMITDS = "<tag> <i>"`) one after the other on a blocking thread.
fn make_changes(
    sim: &m3_sim::Simulator,
    targets: &[(String, String)],
    tag: &str,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (sim, targets, tag) = (sim.clone(), targets.to_vec(), tag.to_string());
    tokio::task::spawn_blocking(move || {
        for (i, (cono, itno)) in targets.iter().enumerate() {
            sim.update("MITMAS", &[cono, itno], &[("MMITDS", &format!("{tag} {i}"))])?;
        }
        Ok(())
    })
}

/// The baseline: how long a bare EXPORTMI reader takes to read a burst of changes, from the
/// first change until it has read every one (see the module documentation).
pub(super) async fn bare_poll(
    sim: &m3_sim::Simulator,
    client: &m3::M3Client,
    targets: &[(String, String)],
    newest: i64,
) -> anyhow::Result<Duration> {
    const PAGE: u32 = 5000;
    let tag = "bare";
    // The reader starts at the newest change timestamp before the burst.
    let mut from = newest;
    let wanted: HashSet<&str> = targets.iter().map(|(_, itno)| itno.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(wanted.len());
    let start = Instant::now();
    let changes = make_changes(sim, targets, tag);
    let deadline = start + Duration::from_secs(60) + Duration::from_millis(targets.len() as u64);
    while seen.len() < wanted.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "bench: the bare reader read {} of {} changes before its deadline",
            seen.len(),
            wanted.len()
        );
        let q = format!("MMITNO, MMITDS, MMLMTS from MITMAS where MMLMTS >= {from} order by MMLMTS");
        let rows = client.export_select(&q, '~', 3, PAGE).await?;
        for r in &rows {
            let itno = r[0].trim();
            if r[1].trim().starts_with(tag) && wanted.contains(itno) {
                seen.insert(itno.to_string());
            }
            if let Ok(t) = r[2].trim().parse::<i64>() {
                from = from.max(t);
            }
        }
    }
    let took = start.elapsed();
    changes.await.context("bench: the changes panicked")??;
    Ok(took)
}

/// Change the first items one after the other and time until the outbox holds all of their
/// messages.
pub(super) async fn measure(opts: &BenchOptions, sim: &m3_sim::Simulator, loaded: &Loaded) -> anyhow::Result<Figure> {
    let before = item_status(&loaded.http, &loaded.status_url).await?["messages"]
        .as_u64()
        .unwrap_or(0);
    let start = Instant::now();
    let changes = make_changes(sim, &loaded.targets, "bench");
    let expected = before + loaded.targets.len() as u64;
    wait_for(
        &format!(
            "{} changes to reach the outbox (messages >= {expected})",
            loaded.targets.len()
        ),
        Duration::from_secs(60) + Duration::from_millis(loaded.targets.len() as u64),
        Duration::from_millis(2),
        || async {
            let s = item_status(&loaded.http, &loaded.status_url).await?;
            let done = s["messages"].as_u64().unwrap_or(0) >= expected;
            Ok(if done { Ok(()) } else { Err(s.to_string()) })
        },
    )
    .await?;
    let took = start.elapsed();
    changes.await.context("bench: the changes panicked")??;
    let n = loaded.targets.len() as f64;
    let bulk = loaded.bare_rows as f64 / loaded.bare.as_secs_f64();
    let poll = loaded.cfg.connection.poll_interval.as_millis();
    Ok(Figure {
        name: format!(
            "steady state, {} changes made one after the other: poll (every {poll} ms) -> map -> outbox{} \
             (for comparison, the bare bulk read rate of the initial load's paging: {bulk:.0} rows/s)",
            loaded.targets.len(),
            if opts.latency_ms > 0 { ", no added latency" } else { "" },
        ),
        value: n / took.as_secs_f64(),
        baseline: n / loaded.bare_poll.as_secs_f64(),
        unit: "changes/s",
        baseline_is: "a bare EXPORTMI reader (`where MMLMTS >= newest seen order by MMLMTS`, no pause, no mapping or store) of the same number of changes made the same way",
        higher_is_better: true,
        skipped: None,
        goal: Some(GOAL),
    })
}
