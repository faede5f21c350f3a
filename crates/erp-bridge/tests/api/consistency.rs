//! "Change detection that never loses a change": random changes to M3 (inserts, updates of
//! mapped and unmapped columns, deletes, re-inserts, many rows in one millisecond, bursts while
//! the initial load pages), with and without gateway faults, and with the process killed by
//! SIGKILL at random points; then the consistency checker (`helpers::consistency`) compares the
//! replayed message log, the read model and M3's final table.
//!
//! Seeds are fixed per test; set `ERP_BRIDGE_TEST_SEED` to run another one (it is printed).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::consistency::{env_with_seed, free_port, seed_or, Api, Checker, Workload};
use erp_bridge::App;
use m3_sim::Faults;
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_millis(800);

/// The checker itself must fail on every kind of inconsistency (otherwise the other tests prove
/// nothing).
#[test]
fn the_checker_reports_every_kind_of_inconsistency() {
    let checker = Checker::default();
    let row = |itno: &str, name: &str| {
        [
            ("MMCONO", "100"),
            ("MMITNO", itno),
            ("MMITDS", name),
            ("MMFUDS", ""),
            ("MMSTAT", "20"),
            ("MMUNMS", "PCS"),
            ("MMITTY", "FG"),
            ("MMPUPR", "1.5"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<helpers::consistency::SimRow>()
    };
    let data = |itno: &str, name: &str| {
        json!({"company": 100, "itemNumber": itno, "name": name, "description": "", "status": "20",
               "unit": "PCS", "itemType": "FG"})
    };
    let del = |itno: &str| json!({"company": 100, "itemNumber": itno});
    let msg = |seq: i64, id: &str, ty: &str, itno: &str, data: Value| json!({"seq": seq, "id": id, "type": ty, "subject": format!("100|{itno}"), "data": data});
    let mut other_company = row("C", "Other company");
    other_company.insert("MMCONO".into(), "200".into());
    let rows = vec![row("A", "Alpha"), row("B", "Beta"), row("D", "Delta"), other_company];
    let good = vec![
        msg(1, "i1", "ItemUpdated", "A", data("A", "Old")),
        msg(2, "i2", "ItemUpdated", "B", data("B", "Beta")),
        msg(3, "i3", "ItemUpdated", "A", data("A", "Alpha")),
        msg(4, "i4", "ItemUpdated", "X", data("X", "Gone")),
        msg(5, "i5", "ItemDeleted", "X", del("X")),
        msg(6, "i6", "ItemUpdated", "D", data("D", "Delta")),
    ];
    let model: Vec<Value> = vec![data("A", "Alpha"), data("B", "Beta"), data("D", "Delta")];
    let ok = checker.check(&good, Some(&model), &rows);
    ok.assert_ok("a consistent log");
    assert_eq!(
        (ok.messages, ok.updated, ok.deleted, ok.entities, ok.expected),
        (6, 5, 1, 3, 3)
    );

    let mut bad = good.clone();
    bad[2]["data"]["name"] = json!("Stale"); // lost update of A
    bad.remove(5); // lost insert of D
    bad.remove(4); // lost delete of X
    bad.push(msg(7, "i2", "ItemUpdated", "B", data("B", "Beta"))); // duplicate emission + id
    bad.push(msg(8, "i8", "ItemDeleted", "Z", del("Z"))); // delete of an unknown entity
    bad.push(msg(9, "i9", "ItemUpdated", "Y", data("Q", "Wrong subject")));
    bad.push(msg(9, "i10", "ItemUpdated", "B", json!(null)));
    let model = vec![data("A", "Alpha"), data("B", "Beta"), data("E", "Extra")];
    let r = checker.check(&bad, Some(&model), &rows);
    let text = r.to_string();
    for needle in [
        "differs 100|A (lost update): name: log=\"Stale\" M3=\"Alpha\"",
        "missing 100|D: M3 has it",
        "extra 100|X: the replayed log holds it",
        "duplicate emission for 100|B: seq 2 and seq 7",
        "duplicate CloudEvents id i2: seq 2 (100|B) and seq 7 (100|B)",
        "seq 8: ItemDeleted for 100|Z, which the log does not hold",
        "seq 9: subject \"100|Y\" does not match",
        "log order: seq 9 (100|B) comes after seq 9",
        "data is not a JSON object",
        "read model has 100|E",
        "read model differs from the log for 100|A: name: read model=\"Alpha\" log=\"Stale\"",
        "read model lacks 100|X",
    ] {
        assert!(text.contains(needle), "the report lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("100|C"), "other companies are not compared: {text}");
}

/// Wait until the connector reports the polling phase (the initial load is done).
async fn until_polling(api: &Api) {
    helpers::eventually("the polling phase", || async {
        api.table_status().await["phase"] == "polling"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_changes_are_all_in_the_log_and_the_read_model() {
    let started = Instant::now();
    let seed = seed_or(0xC0FF_EE01);
    let env = env_with_seed(300, seed).await;
    let mut cfg = env.config();
    cfg.connection.page_size = 25;
    // A little latency makes the initial load (13 pages) last long enough for bursts to land
    // between its pages.
    env.sim.set_faults(Faults {
        latency_ms: 10,
        ..Default::default()
    });
    let mut work = Workload::new(&env.sim, seed);
    let app = App::start(cfg).await.unwrap();
    let api = Api::new(&app.api_url);
    let mut during_load = 0;
    loop {
        let phase = api.table_status().await["phase"].clone();
        if phase == "polling" || during_load >= 120 {
            break;
        }
        let n = work.rng().range(1, 8) as usize;
        work.burst(n);
        during_load += n;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(during_load > 0, "no change landed during the initial load");
    env.sim.set_faults(Faults::default());
    until_polling(&api).await;
    while work.total() < 300 {
        if work.rng().chance(0.3) {
            let n = work.rng().range(2, 40) as usize;
            work.burst(n);
        } else {
            work.one();
        }
        let pause = work.rng().below(25);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let changes_done = started.elapsed();
    let report = api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(25)).await;
    eprintln!(
        "seed {seed}: {} ({during_load} during the initial load); {report}; status {}; {:?} (changes {:?})",
        work.summary(),
        api.table_status().await,
        started.elapsed(),
        changes_done
    );
    report.assert_ok(&format!("seed {seed}, {}", work.summary()));
    app.shutdown().await;
}

/// Changes at a moderate pace for `duration`.
async fn changes_for(work: &mut Workload, duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        if work.rng().chance(0.2) {
            let n = work.rng().range(2, 12) as usize;
            work.burst(n);
        } else {
            work.one();
        }
        let pause = work.rng().range(10, 60);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_changes_under_gateway_faults_are_all_in_the_log() {
    let started = Instant::now();
    let seed = seed_or(0xC0FF_EE02);
    let env = env_with_seed(120, seed).await;
    let mut cfg = env.config();
    cfg.connection.page_size = 25;
    let mut work = Workload::new(&env.sim, seed);
    let errors = |phase: Faults| Faults {
        error_rate: 0.3,
        ..phase
    };
    // Errors from the first call on: the initial load pages through 500s.
    env.sim.set_faults(errors(Faults::default()));
    let app = App::start(cfg).await.unwrap();
    let api = Api::new(&app.api_url);
    let phases: Vec<(&str, Faults, Duration)> = vec![
        (
            "errors 30% (initial load)",
            errors(Faults::default()),
            Duration::from_secs(3),
        ),
        (
            "throttled (429, Retry-After: 1)",
            Faults {
                throttle: Some(1),
                ..Default::default()
            },
            Duration::from_secs(3),
        ),
        (
            "errors 30% (polling)",
            errors(Faults::default()),
            Duration::from_secs(3),
        ),
        (
            "latency 80 ms + errors 15%",
            Faults {
                latency_ms: 80,
                error_rate: 0.15,
                ..Default::default()
            },
            Duration::from_secs(3),
        ),
        (
            "tokens expired",
            Faults {
                expire_tokens_now: true,
                ..Default::default()
            },
            Duration::from_millis(600),
        ),
        (
            "gateway timeouts (504 after 150 ms)",
            Faults {
                gateway_timeout: Some(150),
                ..Default::default()
            },
            Duration::from_secs(3),
        ),
    ];
    let mut log = Vec::new();
    for (name, faults, max) in phases {
        // Each phase starts from a healthy connector (no backoff pending), lasts until the
        // connector has hit the fault twice (or `max`), while changes keep coming.
        let errors_before = api.table_status().await["errors"].as_u64().unwrap_or(0);
        let phase_start = Instant::now();
        let changes_before = work.total();
        env.sim.set_faults(faults);
        while phase_start.elapsed() < max {
            changes_for(&mut work, Duration::from_millis(200)).await;
            let e = api.table_status().await["errors"].as_u64().unwrap_or(0);
            if e >= errors_before + 2 {
                break;
            }
        }
        env.sim.set_faults(Faults::default());
        let errors_seen = api.table_status().await["errors"].as_u64().unwrap_or(0) - errors_before;
        // Recovery: a successful poll resets the backoff.
        let recovery = Instant::now();
        api.polls(1).await;
        log.push(format!(
            "{name}: {:?}, {} changes, {errors_seen} errors, recovered in {:?}",
            phase_start.elapsed() - recovery.elapsed(),
            work.total() - changes_before,
            recovery.elapsed()
        ));
    }
    let faults_over = started.elapsed();
    changes_for(&mut work, Duration::from_millis(300)).await;
    let report = api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(30)).await;
    let status = api.table_status().await;
    eprintln!(
        "seed {seed}: {}; phases: {}; {report}; status {status}; {:?} (faults over after {faults_over:?})",
        work.summary(),
        log.join("; "),
        started.elapsed()
    );
    report.assert_ok(&format!("seed {seed}, {}", work.summary()));
    app.shutdown().await;
}

/// A sustained error rate must slow change detection down, not stop it: a failing key
/// reconciliation (many pages, each of which may fail) must not keep polling from running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]

async fn changes_keep_flowing_under_a_sustained_error_rate() {
    let env = env_with_seed(300, 5).await;
    let mut cfg = env.config();
    cfg.connection.page_size = 25; // 13 pages per reconciliation
    let app = App::start(cfg).await.unwrap();
    let api = Api::new(&app.api_url);
    until_polling(&api).await;
    api.polls(2).await;
    env.sim.set_faults(Faults {
        error_rate: 0.3,
        ..Default::default()
    });
    // Wait until the connector has failed twice (a reconciliation is then pending).
    let before = api.table_status().await["errors"].as_u64().unwrap_or(0);
    helpers::eventually("errors", || async {
        api.table_status().await["errors"].as_u64().unwrap_or(0) >= before + 2
    })
    .await;
    let itno = env.sim.rows("MITMAS")[7]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "Changed under errors")])
        .unwrap();
    let changed = Instant::now();
    let path = format!(
        "/api/connections/demo/read-models/items/100%7C{}",
        itno.replace('|', "%7C")
    );
    let mut seen = false;
    while changed.elapsed() < Duration::from_secs(20) {
        if let Ok((200, v)) = api.get(&path, &[]).await {
            if v["name"] == "Changed under errors" {
                seen = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = api.table_status().await;
    env.sim.set_faults(Faults::default());
    assert!(
        seen,
        "a change made under a 30% error rate was not detected within 20 s; status {status}"
    );
    app.shutdown().await;
}

/// `erp-bridge up` as a child process against the simulator of this test.
struct Bridge {
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Bridge {
    fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
            .args(["up", "--config"])
            .arg(&self.config)
            .env_remove("ERP_BRIDGE_CONFIG")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("erp-bridge starts");
        self.child = Some(child);
    }

    /// SIGKILL (`Child::kill`), then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let status = c.wait().unwrap();
            assert!(!status.success(), "killed, not exited: {status}");
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let seed = seed_or(0xC0FF_EE03);
    let env = env_with_seed(300, seed).await;
    let port = free_port();
    let dir = env.dir.path();
    let config = dir.join("erp-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[connection]\nionapi_file = {ion:?}\npoll_interval = \"100ms\"\nreconcile_interval = \"300ms\"\npage_size = 25\ndelete_hold_share = 1.0\n[auth]\nbootstrap_token = {token:?}\n",
            data = dir.join("data").display().to_string(),
            ion = dir.join("m3.ionapi").display().to_string(),
            token = helpers::ADMIN_TOKEN,
        ),
    )
    .unwrap();
    let mut bridge = Bridge {
        config,
        log: dir.join("erp-bridge.log"),
        child: None,
        starts: 0,
    };
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    let mut work = Workload::new(&env.sim, seed);
    // Latency stretches the first initial load so that the first kill lands inside it.
    env.sim.set_faults(Faults {
        latency_ms: 30,
        ..Default::default()
    });
    let mut seen = Vec::new();
    for round in 0..6 {
        bridge.start();
        let life = if round == 0 {
            // Lands inside the (slowed-down) initial load.
            Duration::from_millis(work.rng().range(150, 400))
        } else {
            Duration::from_millis(work.rng().range(150, 1200))
        };
        let until = Instant::now() + life;
        while Instant::now() < until {
            if work.rng().chance(0.3) {
                let n = work.rng().range(2, 25) as usize;
                work.burst(n);
            } else {
                work.one();
            }
            let pause = work.rng().range(5, 50);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let status = api.table_status().await;
        seen.push(format!(
            "run {round}: {life:?}, phase {} at kill, {} messages this run",
            status["phase"], status["messages"]
        ));
        bridge.kill();
        if round == 0 {
            env.sim.set_faults(Faults::default());
        }
        // Changes while it is down.
        let n = work.rng().range(0, 15) as usize;
        work.burst(n);
    }
    bridge.start();
    helpers::eventually("the restarted erp-bridge to answer", || api.is_up()).await;
    let report = api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(25)).await;
    eprintln!(
        "seed {seed}: {}; {} starts; {}; {report}; {:?}",
        work.summary(),
        bridge.starts,
        seen.join("; "),
        started.elapsed()
    );
    if !report.is_ok() {
        eprintln!("erp-bridge log (tail):\n{}", bridge.log_tail());
    }
    report.assert_ok(&format!("seed {seed}, {}", work.summary()));
    bridge.kill();
}

/// Keys are written `company|itemNumber`; M3 item numbers may contain `|`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]

async fn an_item_number_with_a_pipe_is_deleted_like_any_other() {
    let env = env_with_seed(40, 11).await;
    let app = env.start().await;
    let api = Api::new(&app.api_url);
    env.loaded(&app).await;
    env.sim
        .insert(
            "MITMAS",
            &[
                ("MMCONO", "100"),
                ("MMITNO", "PIPE|1"),
                ("MMITDS", "Pipe in key"),
                ("MMSTAT", "20"),
            ],
        )
        .unwrap();
    api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(15))
        .await
        .assert_ok("after the insert");
    env.sim.delete("MITMAS", &["100", "PIPE|1"]).unwrap();
    let report = api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(10)).await;
    report.assert_ok("after the delete");
    app.shutdown().await;
}

/// The random workload (inserts, updates, deletes, re-inserts, bursts in one millisecond)
/// against a simulator in strict `modes`, during and after the initial load; then the checker.
async fn consistent_under(modes: m3_sim::SimModes, seed: u64, tune: impl FnOnce(&mut erp_bridge::config::Config)) {
    use crate::helpers::consistency::env_with_modes;
    let started = Instant::now();
    let env = env_with_modes(150, seed, modes.clone()).await;
    let mut cfg = env.config();
    cfg.connection.page_size = 40;
    tune(&mut cfg);
    let mut work = Workload::new(&env.sim, seed);
    let app = App::start(cfg).await.unwrap();
    let api = Api::new(&app.api_url);
    // Changes while the initial load reads its windows, then while polling.
    for _ in 0..10 {
        let n = work.rng().range(1, 6) as usize;
        work.burst(n);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_polling(&api).await;
    while work.total() < 200 {
        if work.rng().chance(0.3) {
            let n = work.rng().range(2, 30) as usize;
            work.burst(n);
        } else {
            work.one();
        }
        let pause = work.rng().below(25);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let settle = SETTLE + Duration::from_millis(modes.commit_delay_ms);
    let report = api.wait_consistent(&env.sim, settle, Duration::from_secs(40)).await;
    let status = api.table_status().await;
    eprintln!(
        "modes {modes:?} seed {seed}: {}; {report}; status {status}; {:?}",
        work.summary(),
        started.elapsed()
    );
    report.assert_ok(&format!("modes {modes:?}, seed {seed}, {}", work.summary()));
    assert_eq!(status["health"], "Healthy", "{status}");
    app.shutdown().await;
}

/// The strictest reading of what Infor leaves open: `order by` and company conditions refused
/// with a NOK, at most 100 rows whatever `maxrecs` says (pages of 40 asked for, so the cap is
/// learned from answers of 40), and text values holding the separator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_when_order_by_and_company_conditions_are_refused_and_rows_capped() {
    use m3_sim::modes::*;
    let modes = SimModes {
        order_by: OrderBy::Rejected,
        company_condition: CompanyCondition::Rejected,
        maxrecs: Maxrecs::Capped100,
        separator_values: SeparatorValues::Sometimes,
        ..Default::default()
    };
    consistent_under(modes, seed_or(0xC0FF_EE11), |cfg| cfg.connection.page_size = 1000).await;
}

/// `order by` and company conditions silently ignored (rows in key order), rows capped at 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_when_order_by_and_company_conditions_are_ignored() {
    use m3_sim::modes::*;
    let modes = SimModes {
        order_by: OrderBy::Ignored,
        company_condition: CompanyCondition::Ignored,
        maxrecs: Maxrecs::Capped100,
        ..Default::default()
    };
    consistent_under(modes, seed_or(0xC0FF_EE12), |_| {}).await;
}

/// Commits landing well after their change timestamp, later than the polling overlap: only
/// reconciliation can find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_when_commits_land_after_the_overlap() {
    let modes = m3_sim::SimModes {
        commit_delay_ms: 1500,
        ..Default::default()
    };
    consistent_under(modes, seed_or(0xC0FF_EE13), |cfg| {
        cfg.connection.overlap = Duration::from_millis(200);
        cfg.connection.reconcile_interval = Duration::from_millis(500);
    })
    .await;
}
