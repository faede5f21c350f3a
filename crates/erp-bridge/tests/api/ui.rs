//! Studio in a real browser: each test starts erp-bridge against the simulator and runs one
//! `ui-tests/*.spec.mjs` (Debian's Chromium driven by playwright-core) against it.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`), Node.js, and
//! `npm ci --prefix ui-tests` run once from the workspace root.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{self, Env};

/// `ui-tests/`, after checking that `npm ci --prefix ui-tests` has put `needs` (a path under
/// `node_modules`) there.
fn ui_tests(needs: &str) -> PathBuf {
    let ui_tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui-tests");
    assert!(
        ui_tests.join("node_modules").join(needs).exists(),
        "{}/node_modules lacks {needs}: run `npm ci --prefix ui-tests` from the workspace root first",
        ui_tests.display()
    );
    ui_tests
}

/// Where the browser tests put their screenshots.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
}

/// Runs `node ui-tests/<spec> <args>` (output into `env`'s directory, named after `what`) and
/// fails, with its output, unless it exits 0 within 240 s. The app runs on this runtime: node is
/// waited for without blocking it.
async fn run_spec(env: &Env, ui_tests: &Path, spec: &str, args: &[&OsStr], what: &str) {
    let stdout_path = env.dir.path().join(format!("{spec}.stdout"));
    let stderr_path = env.dir.path().join(format!("{spec}.stderr"));
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(ui_tests.join(spec))
        .args(args)
        .current_dir(ui_tests)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("node starts (is Node.js installed?)");
    let deadline = started + Duration::from_secs(240);
    let outcome = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!("{stdout}");
    let elapsed = started.elapsed().as_secs_f64();
    match outcome {
        Some(s) if s.success() => {}
        Some(s) => panic!("the {what} browser test failed ({s}) after {elapsed:.1} s:\n{stdout}\n{stderr}"),
        None => panic!("the {what} browser test did not finish within 240 s:\n{stdout}\n{stderr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_works_in_a_real_browser() {
    let ui_tests = ui_tests("playwright-core");
    let env = Env::new(200).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let ionapi = env.dir.path().join("m3.ionapi");
    let args = [app.api_url.as_ref(), ionapi.as_os_str(), helpers::ADMIN_TOKEN.as_ref()];
    run_spec(&env, &ui_tests, "studio.spec.mjs", &args, "Studio").await;
    app.shutdown().await;
}

/// The status lights and connection setup (issue 15) in a real browser: a self-hosted connector
/// calls home, polls a deployed mapping and is stopped; then `ui-tests/status.spec.mjs` checks
/// every light and setup step against it. Screenshots go to `target/ui-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lights_and_connection_setup_in_a_real_browser() {
    let ui_tests = ui_tests("playwright-core");
    let shots = screenshots();
    let env = Env::new(50).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let ionapi = env.dir.path().join("m3.ionapi");
    let http = helpers::http_client();
    let api = |p: &str| format!("{}{p}", app.api_url);

    // A self-hosted connection whose connector calls home, polls, and is then stopped.
    let r = http
        .post(api("/api/connections"))
        .json(&serde_json::json!({"name": "edge", "hosting": "self-hosted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .put(api("/api/connections/edge/ionapi"))
        .body(std::fs::read_to_string(&ionapi).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle_text = http
        .post(api("/api/connections/edge/bundle?format=toml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bundle = env.dir.path().join("bundle.toml");
    std::fs::write(&bundle, bundle_text).unwrap();
    let log = env.dir.path().join("connector.log");
    let mut connector = tokio::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
        .arg("connector")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--data-dir")
        .arg(env.dir.path().join("connector"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("erp-bridge connector starts");
    let spec = mapping::spec::default_item_mapping();
    let r = http
        .post(api("/api/connections/edge/mappings"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(api("/api/connections/edge/mappings/Item/deploy"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = || async {
        http.get(api("/api/connections/edge/status"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    helpers::eventually("the connector to poll and report Healthy", || async {
        let s = status().await;
        s["status"]["state"] == "Healthy" && s["tables"]["Item"]["phase"] == "polling"
    })
    .await;
    connector.kill().await.unwrap();
    helpers::eventually("the stopped connector to show Disconnected", || async {
        status().await["status"]["state"] == "Disconnected"
    })
    .await;

    let args = [
        app.api_url.as_ref(),
        ionapi.as_os_str(),
        helpers::ADMIN_TOKEN.as_ref(),
        shots.as_os_str(),
        "edge".as_ref(),
    ];
    run_spec(&env, &ui_tests, "status.spec.mjs", &args, "status").await;
    app.shutdown().await;
}

/// Accessibility, layout, tokens, contracts, the command form, the mapping editor and the Consume
/// page (issue 15) in a real browser: `ui-tests/a11y.spec.mjs` visits every view at 390 and
/// 1440 px, runs axe-core (0 serious or critical violations), checks that nothing scrolls
/// sideways at 390 px, and checks each defect of the issue. Screenshots go to
/// `target/ui-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_is_accessible_and_fits_390_px_in_a_real_browser() {
    let ui_tests = ui_tests("axe-core/axe.min.js");
    let shots = screenshots();
    let env = Env::new(50).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let args = [app.api_url.as_ref(), helpers::ADMIN_TOKEN.as_ref(), shots.as_os_str()];
    run_spec(&env, &ui_tests, "a11y.spec.mjs", &args, "accessibility").await;
    app.shutdown().await;
}
