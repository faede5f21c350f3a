//! Studio in a real browser: starts erp-bridge against the simulator and runs
//! `ui-tests/studio.spec.mjs` (Debian's Chromium driven by playwright-core) against it.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`), Node.js, and
//! `npm ci --prefix ui-tests` run once from the workspace root.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{self, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_works_in_a_real_browser() {
    let ui_tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui-tests");
    assert!(
        ui_tests.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules is missing: run `npm ci --prefix ui-tests` from the workspace root first",
        ui_tests.display()
    );
    let env = Env::new(200).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let ionapi = env.dir.path().join("m3.ionapi");
    let stdout_path = env.dir.path().join("ui-test.stdout");
    let stderr_path = env.dir.path().join("ui-test.stderr");
    let started = Instant::now();
    // The app runs on this runtime: wait for node without blocking it.
    let mut child = Command::new("node")
        .arg(ui_tests.join("studio.spec.mjs"))
        .arg(&app.api_url)
        .arg(&ionapi)
        .arg(helpers::ADMIN_TOKEN)
        .current_dir(&ui_tests)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("node starts (is Node.js installed?)");
    let deadline = started + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
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
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("the Studio browser test failed ({s}) after {elapsed:.1} s:\n{stdout}\n{stderr}"),
        None => panic!("the Studio browser test did not finish within 240 s:\n{stdout}\n{stderr}"),
    }
    app.shutdown().await;
}
