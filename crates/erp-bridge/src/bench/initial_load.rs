//! Measure 2: the initial load through EXPORTMI -> mapping -> outbox against bare sequential
//! EXPORTMI paging of the same table; the load's windowed reads alone; and the process's memory
//! during the load. It leaves erp-bridge running for the measures that follow ([`Loaded`]).

use std::time::{Duration, Instant};

use anyhow::Context;
use mapping::CompiledMapping;

use crate::config::Config;
use crate::App;

use super::{load_goal, peak_rss_kib, reset_peak_rss, rss_kib, wait_for, BenchOptions, Figure, LOAD_RSS_GOAL};

/// What the initial load leaves for the later measures: erp-bridge running on the loaded store.
pub(super) struct Loaded {
    /// The temporary folder of the `.ionapi` file and the data folder (removed on drop).
    pub dir: tempfile::TempDir,
    /// The configuration erp-bridge runs with.
    pub cfg: Config,
    /// The running erp-bridge.
    pub app: App,
    /// An HTTP client sending the bench's admin token.
    pub http: reqwest::Client,
    /// The connection's status URL.
    pub status_url: String,
    /// The items the steady-state measure changes: the first ones in key order.
    pub targets: Vec<(String, String)>,
    /// The last [`TAIL`] items in key order (the read-model bench lists the deep page after the first).
    pub tail: std::collections::VecDeque<(String, String)>,
    /// Rows of the table (as the bare paging read them).
    pub bare_rows: usize,
    /// How long the bare paging took.
    pub bare: Duration,
    /// How long a bare reader took to read a burst of `targets.len()` changes (the steady
    /// state's baseline, measured before erp-bridge started).
    pub bare_poll: Duration,
}

/// How many of the last items [`Loaded::tail`] keeps: one more than a read-model page of 50.
pub(super) const TAIL: usize = 51;

/// The status of the `Item` mapping, from the connection's status.
pub(super) async fn item_status(http: &reqwest::Client, status_url: &str) -> anyhow::Result<serde_json::Value> {
    let r = http
        .get(status_url)
        .send()
        .await
        .with_context(|| format!("GET {status_url}"))?;
    let code = r.status();
    let v: serde_json::Value = r.json().await.with_context(|| format!("GET {status_url}: body"))?;
    anyhow::ensure!(code.is_success(), "GET {status_url}: HTTP {code}: {v}");
    let t = v["tables"]["Item"].clone();
    anyhow::ensure!(t.is_object(), "GET {status_url}: no status for mapping `Item`: {v}");
    anyhow::Ok(t)
}

/// Page the table bare, read it in the load's windows, then start erp-bridge on it and time its
/// initial load; push the four figures. `sim_mib` is the seeded simulator's RSS, the memory
/// figures' baseline.
pub(super) async fn measure(
    opts: &BenchOptions,
    sim: &m3_sim::Simulator,
    table: &mapping::catalog::Table,
    base_url: &str,
    sim_mib: f64,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<Loaded> {
    let export_calls = || sim.mi_calls("EXPORTMI", "Select");

    let dir = tempfile::tempdir()?;
    let ion_path = dir.path().join("m3.ionapi");
    std::fs::write(&ion_path, sim.ionapi(base_url).to_string())?;
    let ion = m3::IonApi::parse(&std::fs::read_to_string(&ion_path)?)?;
    let client = std::sync::Arc::new(m3::M3Client::new(ion, m3::ClientOptions::default())?);
    let item = CompiledMapping::compile(&mapping::spec::default_item_mapping(), table)?;
    let mut sel = item.columns();
    sel.push("MMLMTS".into());
    let page = 5000u32;
    let calls_before = export_calls();
    let start = Instant::now();
    let mut after: Option<String> = None;
    let mut bare_rows = 0usize;
    let cono_at = sel.iter().position(|c| c == "MMCONO").context("MMCONO selected")?;
    let itno_at = sel.iter().position(|c| c == "MMITNO").context("MMITNO selected")?;
    let lmts_at = sel.len() - 1;
    let mut newest: i64 = 0;
    // The items the steady-state measure changes: the first ones in key order.
    let mut targets: Vec<(String, String)> = Vec::with_capacity(opts.changes);
    let mut tail = std::collections::VecDeque::with_capacity(TAIL + 1);
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
        for r in got.iter().skip(got.len().saturating_sub(TAIL)) {
            tail.push_back((r[cono_at].trim().to_string(), r[itno_at].trim().to_string()));
            if tail.len() > TAIL {
                tail.pop_front();
            }
        }
        newest = got
            .iter()
            .filter_map(|r| r[lmts_at].trim().parse::<i64>().ok())
            .fold(newest, i64::max);
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
    let windows = windowed_reads(&client, table, &item, &sel, page, parallel).await?;
    let windowed_calls = export_calls() - calls_before;
    anyhow::ensure!(
        windows.rows == bare_rows,
        "bench: windowed reads returned {} rows, bare paging {bare_rows}",
        windows.rows
    );
    // The steady state's baseline, before erp-bridge starts (its load then reads these rows
    // as they are after the burst), without the added latency, like the steady state itself.
    let steady = matches!(opts.measures, super::Measures::All | super::Measures::SteadyState);
    let bare_poll = if targets.is_empty() || !steady {
        Duration::ZERO
    } else {
        sim.set_faults(m3_sim::Faults::default());
        let took = super::steady_state::bare_poll(sim, &client, &targets, newest).await;
        sim.set_faults(m3_sim::Faults {
            latency_ms: opts.latency_ms,
            ..Default::default()
        });
        took?
    };
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
    // Generous timeouts (a minute plus 1 ms per row) that still end a stuck run with a reason.
    let load_timeout = Duration::from_secs(60) + Duration::from_millis(bare_rows as u64);
    wait_for(
        &format!("the initial load of {bare_rows} rows"),
        load_timeout,
        Duration::from_millis(20),
        || async {
            let s = item_status(&http, &status_url).await?;
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
        baseline: sim_mib,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: Some(LOAD_RSS_GOAL),
    });
    figures.push(Figure {
        name: "RSS growth during the load (VmRSS after - before)".into(),
        value: rss_after_load.saturating_sub(rss_before_load) as f64 / 1024.0,
        baseline: sim_mib,
        unit: "MiB",
        baseline_is: "RSS of the seeded simulator itself",
        higher_is_better: false,
        skipped: None,
        goal: Some(LOAD_RSS_GOAL),
    });
    Ok(Loaded {
        dir,
        cfg,
        app,
        http,
        status_url,
        targets,
        tail,
        bare_rows,
        bare,
        bare_poll,
    })
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
    use pipeline::source::splitter::Splitter;
    use pipeline::source::window::{Dimensions, RowCap, Window};

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
    let mut splitter = Splitter::new();
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
        let Some(next) = in_flight.join_next().await else {
            pending = splitter.take_parked();
            if pending.is_empty() {
                break;
            }
            continue;
        };
        let (w, rows, took) = next.context("a window read panicked")?;
        let rows = rows?;
        done.slowest = done.slowest.max(took);
        if cap.may_be_cut(rows.len(), page as usize) {
            let sample: Vec<Vec<String>> = dims_at
                .iter()
                .map(|&i| rows.iter().map(|r| r[i].clone()).collect())
                .collect();
            if let Some(kids) = splitter.cut(&dims, &w, &sample) {
                done.split += 1;
                done.dropped += rows.len();
                pending.extend(kids);
                continue;
            }
        }
        pending.extend(splitter.whole(&dims, &w, rows.len()));
        done.whole += 1;
        done.rows += rows.len();
    }
    done.took = start.elapsed();
    Ok(done)
}
