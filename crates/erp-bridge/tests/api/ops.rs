//! Operating the binary as containers and systemd do: `up`, `studio` and `connector` stop
//! cleanly on SIGTERM and SIGINT with exit code 0 (and `up` leaves a store that a restart
//! carries on from consistently); a port in use stops `up` before anything starts; log lines
//! carry no colour codes off a terminal and are JSON with `--log-format json` or
//! `ERP_BRIDGE__LOG__FORMAT=json`; `/readyz` asks M3 rather than wait out a failed step's
//! backoff; `/metrics` passes `promtool check metrics`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use m3_sim::Faults;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::consistency::{env_with_seed, free_port, Api, Workload};
use crate::helpers::{eventually, Env, ADMIN_TOKEN};

/// The quiet time after which the bridge is expected to have caught up (as the SIGKILL test).
const SETTLE: Duration = Duration::from_millis(1500);

/// An `erp-bridge` child process with its output in files.
struct Process {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Process {
    fn spawn(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Process {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_erp-bridge"));
        cmd.args(args)
            .env_remove("ERP_BRIDGE_CONFIG")
            .env_remove("ERP_BRIDGE__LOG__FORMAT")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Process {
            child: cmd.spawn().expect("erp-bridge starts"),
            out,
            err,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Send `signal`, then wait for the exit (a stuck stop fails the test after 60 s).
    async fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        let pid = self.child.id().expect("still running") as i32;
        kill(Pid::from_raw(pid), signal).expect("signal sent");
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "no exit 60 s after {signal}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            ),
        }
    }

    /// Wait for the exit of a process that stops by itself.
    async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("no exit\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr()),
        }
    }
}

/// Every line of `text` is a JSON object with a level and a message.
fn assert_json_lines(text: &str) {
    assert!(!text.trim().is_empty(), "no log lines");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "log line without level or message: {line}"
        );
    }
}

/// Plain text: log lines, and not one ANSI escape.
fn assert_plain_text(text: &str) {
    assert!(text.contains(" INFO "), "no log lines: {text}");
    assert!(!text.contains('\u{1b}'), "colour codes off a terminal: {text:?}");
}

fn up_config(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("erp-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[connection]\nionapi_file = {ion:?}\npoll_interval = \"100ms\"\nreconcile_interval = \"300ms\"\npage_size = 25\ndelete_hold_share = 1.0\n[auth]\nbootstrap_token = {token:?}\n",
            data = dir.join("data").display().to_string(),
            ion = dir.join("m3.ionapi").display().to_string(),
            token = ADMIN_TOKEN,
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_stops_cleanly_on_sigterm_and_sigint_with_exit_0_and_a_consistent_store() {
    let env = env_with_seed(120, 0x5167_7e4d).await;
    let port = free_port();
    let config = up_config(env.dir.path(), port);
    let config = config.to_str().unwrap();
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    let mut work = Workload::new(&env.sim, 0x5167_7e4d);
    // SIGTERM with text logs, then SIGINT with JSON logs; both while M3 keeps changing.
    for (round, (signal, format)) in [(Signal::SIGTERM, "text"), (Signal::SIGINT, "json")]
        .into_iter()
        .enumerate()
    {
        let mut up = Process::spawn(
            env.dir.path(),
            &format!("up-{round}"),
            &["up", "--config", config, "--log-format", format],
            &[],
        );
        eventually("erp-bridge up to answer", || api.is_up()).await;
        api.polls(2).await;
        work.burst(10);
        let status = up.stop_with(signal).await;
        let (out, err) = (up.stdout(), up.stderr());
        assert_eq!(
            status.code(),
            Some(0),
            "{signal}: {status}\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            out.contains(&format!("stopping ({signal})")) && out.contains("stopped"),
            "{out}"
        );
        match format {
            "json" => assert_json_lines(&err),
            _ => assert_plain_text(&err),
        }
        work.burst(5);
    }
    // What the clean stops left: a restart resumes and ends consistent with M3.
    let mut up = Process::spawn(env.dir.path(), "up-last", &["up", "--config", config], &[]);
    eventually("the restarted erp-bridge to answer", || api.is_up()).await;
    let report = api.wait_consistent(&env.sim, SETTLE, Duration::from_secs(25)).await;
    if !report.is_ok() {
        eprintln!("stderr:\n{}", up.stderr());
    }
    report.assert_ok(&work.summary());
    assert_eq!(up.stop_with(Signal::SIGTERM).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn studio_stops_on_sigterm_with_exit_0_and_logs_json_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{port}");
    let mut studio = Process::spawn(
        dir.path(),
        "studio",
        &["studio", "--data-dir", data.to_str().unwrap(), "--listen", &listen],
        &[("ERP_BRIDGE__LOG__FORMAT", "json")],
    );
    let api = Api::new(&format!("http://{listen}"));
    eventually("erp-bridge studio to answer", || api.is_up()).await;
    let status = studio.stop_with(Signal::SIGTERM).await;
    let err = studio.stderr();
    assert_eq!(status.code(), Some(0), "{status}\nstderr:\n{err}");
    assert_json_lines(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_port_stops_up_at_once_naming_the_address_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The embedded simulator and its connector would start first if the port came last.
    let mut up = Process::spawn(
        dir.path(),
        "up",
        &[
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ],
        &[],
    );
    let status = up.exit().await;
    let (out, err) = (up.stdout(), up.stderr());
    assert_eq!(status.code(), Some(1), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains(&format!("http.listen: cannot bind {addr}")),
        "the error names the address: {err}"
    );
    for started in ["simulator", "connector", "mapping deployed", "erp-bridge started"] {
        assert!(!err.to_lowercase().contains(started), "{started:?} in the log: {err}");
    }
    assert!(!out.contains("erp-bridge is up"), "{out}");
    assert!(!data.exists(), "nothing written: {}", data.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_self_hosted_connector_stops_on_sigterm_with_exit_0() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let admin = |method: reqwest::Method, path: &str| {
        reqwest::Client::new()
            .request(method, format!("{}{path}", app.api_url))
            .bearer_auth(ADMIN_TOKEN)
    };
    let r = admin(reqwest::Method::POST, "/api/connections")
        .header("content-type", "application/json")
        .body(r#"{"name":"edge","hosting":"self-hosted"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let ion = std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap();
    let r = admin(reqwest::Method::PUT, "/api/connections/edge/ionapi")
        .body(ion)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = admin(reqwest::Method::POST, "/api/connections/edge/bundle?format=toml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bundle = env.dir.path().join("bundle.toml");
    std::fs::write(&bundle, r.text().await.unwrap()).unwrap();
    let data = env.dir.path().join("connector-data");
    let mut connector = Process::spawn(
        env.dir.path(),
        "connector",
        &[
            "connector",
            "--bundle",
            bundle.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    eventually("the connector to call home", || async {
        let v: Value = admin(reqwest::Method::GET, "/api/connections/edge")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["connector"]["state"] == "connected"
    })
    .await;
    let status = connector.stop_with(Signal::SIGTERM).await;
    let err = connector.stderr();
    assert_eq!(status.code(), Some(0), "{status}\nstderr:\n{err}");
    assert!(err.contains("connector stopping"), "{err}");
    assert_plain_text(&err);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_probes_m3_after_a_failed_step_instead_of_waiting_out_the_backoff() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    eventually("readiness", || async { env.get(&app, "/readyz").await.0 == 200 }).await;
    // M3 throttles with `Retry-After: 600`: the failed step waits ten minutes before it retries.
    env.sim.set_faults(Faults {
        throttle: Some(600),
        ..Default::default()
    });
    eventually("a failed step", || async {
        env.table_status(&app).await["health"] == "Failing"
    })
    .await;
    let (code, v) = env.get(&app, "/readyz").await;
    assert_eq!(code, 503, "{v}");
    // M3 is back: readiness follows it (the probe answers, the mapping retries now), long
    // before the ten minutes end.
    env.sim.set_faults(Faults::default());
    eventually("readiness once M3 is back", || async {
        env.get(&app, "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(env.table_status(&app).await["health"], "Healthy");
    app.shutdown().await;
}

/// `promtool check metrics` on a scrape, when promtool is installed (Debian's `prometheus`
/// package; scripts/setup.sh installs it); otherwise the check is skipped, saying so.
fn promtool_check(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED promtool check metrics: promtool is not installed (Debian package `prometheus`; scripts/setup.sh installs it)");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_pass_promtool_in_base_units() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let r = env.http.get(format!("{}/metrics", app.api_url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4");
    let text = r.text().await.unwrap();
    for family in [
        "erp_bridge_rows_seen_total",
        "erp_bridge_messages_total",
        "erp_bridge_lag_seconds",
        "erp_bridge_mapping_failing",
        "erp_bridge_m3_up",
        "erp_bridge_webhooks_received_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing:\n{text}");
    }
    assert!(!text.contains("milliseconds"), "{text}");
    let rows = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("erp_bridge_rows_seen_total{connection=\"demo\",mapping=\"Item\",table=\"MITMAS\"} ")
        })
        .unwrap_or_else(|| panic!("rows seen of Item:\n{text}"));
    assert!(rows.parse::<u64>().unwrap() >= 20, "{rows}");
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("erp_bridge_lag_seconds{connection=\"demo\",mapping=\"Item\",table=\"MITMAS\"} "))
        .unwrap_or_else(|| panic!("lag of Item:\n{text}"))
        .parse()
        .unwrap();
    assert!((0.0..3600.0).contains(&lag), "lag in seconds: {lag}");
    promtool_check(&text);
    app.shutdown().await;
}

/// The test PostgreSQL (`ERP_BRIDGE_TEST_PG_URL`) and the CA that signed its certificate
/// (`ERP_BRIDGE_TEST_PG_CA`); scripts/pg-up.sh starts it with TLS and exports both. Fails the
/// test when they are not set.
fn pg_with_tls() -> (String, PathBuf) {
    let (Ok(url), Ok(ca)) = (
        std::env::var("ERP_BRIDGE_TEST_PG_URL"),
        std::env::var("ERP_BRIDGE_TEST_PG_CA"),
    ) else {
        panic!(
            "ERP_BRIDGE_TEST_PG_URL and ERP_BRIDGE_TEST_PG_CA are not both set: run ./scripts/test, or \
             start a throwaway PostgreSQL with TLS: eval \"$(scripts/pg-up.sh)\""
        );
    };
    (url, PathBuf::from(ca))
}

/// A fresh database on the test server; its URL.
async fn fresh_pg_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("ops_tls_{}_{}", std::process::id(), free_port());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("test PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A CA of its own (not the one that signed the server's certificate), made with openssl.
fn another_ca(dir: &Path) -> PathBuf {
    let (key, crt) = (dir.join("other-ca.key"), dir.join("other-ca.crt"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=another CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs (scripts/pg-up.sh needs it too)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    crt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_reaches_postgresql_over_tls_and_refuses_a_server_its_ca_did_not_sign() {
    use sqlx::Connection;
    let (admin, ca) = pg_with_tls();
    let db = fresh_pg_database(&admin).await;
    let verify_full = format!("{db}?sslmode=verify-full&sslrootcert={}", ca.display());

    // The connection is TLS, the server checked against the CA file and its name.
    let mut conn = sqlx::PgConnection::connect(&verify_full)
        .await
        .expect("verify-full with the CA connects");
    let (ssl,): (bool,) = sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl, "the connection is not TLS");
    conn.close().await.unwrap();

    // erp-bridge runs on that store: the initial load lands in it.
    let env = Env::new(20).await;
    let mut cfg = env.config();
    cfg.store.url = Some(verify_full.clone());
    let app = erp_bridge::App::start(cfg.clone())
        .await
        .expect("erp-bridge starts with its store over TLS");
    env.loaded(&app).await;
    app.shutdown().await;

    // `require`: TLS without checking the certificate (managed services without a CA file).
    let store = store::Store::connect(&format!("{db}?sslmode=require"))
        .await
        .expect("sslmode=require connects");
    store.ping().await.unwrap();

    // A CA that did not sign the server's certificate: refused, saying why.
    cfg.store.url = Some(format!(
        "{db}?sslmode=verify-full&sslrootcert={}",
        another_ca(env.dir.path()).display()
    ));
    let err = match erp_bridge::App::start(cfg).await {
        Ok(_) => panic!("a server certificate from another CA is accepted"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("another CA: {err}");
    assert!(
        err.contains("store.url") && err.to_lowercase().contains("certificate"),
        "the error names the store and the certificate: {err}"
    );
}
