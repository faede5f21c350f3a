//! Shared test support: a simulated M3 on port 0, erp-bridge on port 0, HTTP helpers, and a real
//! Kafka-protocol broker (tansu) started per test.

pub mod consistency;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use erp_bridge::config::Config;
use erp_bridge::App;
use m3_sim::{RunningSim, SimConfig, Simulator};
use serde_json::Value;

/// The admin token every test app is started with (`auth.bootstrap_token`).
pub const ADMIN_TOKEN: &str = "ebt_testadmin.0123456789abcdef0123456789abcdef";

/// An HTTP client that authenticates as admin.
pub fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub struct Env {
    pub sim: Simulator,
    /// Never read: held so that the simulator serves until the `Env` is dropped.
    #[allow(dead_code)]
    pub running: RunningSim,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn new(items: usize) -> Env {
        let sim = Simulator::new(SimConfig {
            items,
            seed: 7,
            ..Default::default()
        });
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ion = sim.ionapi(&running.base_url);
        std::fs::write(dir.path().join("m3.ionapi"), ion.to_string()).unwrap();
        Env {
            sim,
            running,
            dir,
            http: http_client(),
        }
    }

    pub fn config(&self) -> Config {
        config_for(self.dir.path(), &self.dir.path().join("m3.ionapi"))
    }

    pub async fn start(&self) -> App {
        App::start(self.config()).await.expect("app starts")
    }

    pub async fn get(&self, app: &App, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", app.api_url)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, app: &App, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", app.api_url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every message in the log, oldest first.
    pub async fn all_messages(&self, app: &App) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (s, v) = self
                .get(app, &format!("/api/connections/demo/messages?after={after}&limit=1000"))
                .await;
            assert_eq!(s, 200, "{v}");
            let page = v["messages"].as_array().unwrap().clone();
            if page.is_empty() {
                return out;
            }
            after = v["next"].as_i64().unwrap();
            out.extend(page);
        }
    }

    pub async fn status(&self, app: &App) -> Value {
        self.get(app, "/api/connections/demo/status").await.1
    }

    pub async fn table_status(&self, app: &App) -> Value {
        self.status(app).await["tables"]["Item"].clone()
    }

    /// Wait until the connector has finished `n` more polls than now.
    pub async fn polls(&self, app: &App, n: usize) {
        for _ in 0..n {
            let before = self.table_status(app).await["last_poll"].clone();
            eventually("a poll to finish", || async {
                self.table_status(app).await["last_poll"] != before
            })
            .await;
        }
    }

    pub async fn loaded(&self, app: &App) {
        eventually("the initial load to finish", || async {
            let s = self.table_status(app).await;
            s["phase"] == "polling" && !s["last_poll"].is_null()
        })
        .await;
    }
}

pub fn config_for(dir: &Path, ionapi: &Path) -> Config {
    let mut cfg = Config {
        data_dir: dir.join("data"),
        ..Default::default()
    };
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.auth.bootstrap_token = Some(ADMIN_TOKEN.into());
    cfg.connection.ionapi_file = Some(ionapi.to_path_buf());
    cfg.connection.poll_interval = Duration::from_millis(100);
    cfg.connection.reconcile_interval = Duration::from_millis(300);
    // The random workloads delete a large share of small tables on purpose; the hold on mass
    // disappearances has tests of its own.
    cfg.connection.delete_hold_share = 1.0;
    cfg.connection.page_size = 40; // several pages, so paging is exercised
    cfg
}

/// Wait (up to 60 s) for a condition; fail naming what was awaited.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn of_subject<'a>(messages: &'a [Value], key: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["subject"] == key).collect()
}

pub fn key_path(key: &str) -> String {
    key.replace('|', "%7C")
}

/// A tansu broker on a free loopback port with SQLite storage in its own folder; killed on drop.
pub struct TestBroker {
    pub port: u16,
    state: tempfile::TempDir,
    child: Option<Child>,
}

fn tansu_bin() -> PathBuf {
    if let Ok(b) = std::env::var("TANSU_BIN") {
        let bin = PathBuf::from(b);
        assert!(
            bin.is_file(),
            "TANSU_BIN={} is not a file (./scripts/test builds tansu with scripts/tansu-build.sh)",
            bin.display()
        );
        return bin;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let bin = PathBuf::from(home).join(".cache/tansu-0.6.0/bin/tansu");
    assert!(
        bin.exists(),
        "tansu broker not found at {} (set TANSU_BIN, or build it with scripts/tansu-build.sh)",
        bin.display()
    );
    bin
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = TestBroker {
            port,
            state: tempfile::tempdir().unwrap(),
            child: None,
        };
        b.resume().await;
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port and storage.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.state.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu_bin())
            .current_dir(self.state.path())
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env_remove("CLUSTER_ID")
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "tansu did not open {addr}: {}",
            std::fs::read_to_string(self.state.path().join("tansu.log")).unwrap_or_default()
        );
    }

    /// Kill the broker (like an outage); storage is kept.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
