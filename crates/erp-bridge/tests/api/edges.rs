//! The edges held against a hostile or careless client (issue 18): the HTTP server's limits
//! (half-open connections), throttling that only ever slows down failures, outbound checks
//! that never echo what a remote server said, bounded re-exports, a required deploy body,
//! repeated query parameters refused, and our JSON error everywhere.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Env, ADMIN_TOKEN};
use erp_bridge::App;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client without default credentials, bound to `local` (any 127.x.y.z is this host, so
/// tests can come from several source addresses).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(local.parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get_with(http: &reqwest::Client, app: &App, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut r = http.get(format!("{}{path}", app.api_url));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Open `n` connections to `addr` that send half a request head and never finish it; each is
/// held (client side) until `release` fires. `connected` counts those whose half head was sent.
fn hold_half_open(
    addr: SocketAddr,
    n: usize,
    connected: Arc<AtomicUsize>,
    release: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let connected = connected.clone();
        let mut release = release.clone();
        set.spawn(async move {
            let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n").await.is_err() {
                return;
            }
            connected.fetch_add(1, Ordering::Relaxed);
            let mut buf = [0u8; 256];
            tokio::select! {
                // The server closing it (header read timeout) is what it should do; the
                // client keeps its end (and its file handle) until the test releases it.
                _ = async { while s.read(&mut buf).await.is_ok_and(|n| n > 0) {} } => {}
                _ = release.wait_for(|r| *r) => {}
            }
            let _ = release.wait_for(|r| *r).await;
            drop(s);
        });
    }
    set
}

/// Raise this process's file budget (server and clients alike) to `budget`, failing the test if
/// the hard limit does not allow it.
fn raise_open_files(budget: u64) {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard >= budget,
        "RLIMIT_NOFILE hard limit {hard} is below the {budget} this test needs"
    );
    rlimit::setrlimit(rlimit::Resource::NOFILE, budget, hard).unwrap();
}

/// The app with `http.max_connections` and `http.header_read_timeout` set (the environment
/// must outlive it).
async fn start_with_limits(max_connections: usize, header_read_timeout: Duration) -> (Env, App) {
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.http.max_connections = max_connections;
    cfg.http.header_read_timeout = header_read_timeout;
    let app = App::start(cfg).await.unwrap();
    (env, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_ten_thousand_half_open_connections_are_held() {
    // The file budget of this process (server and clients alike): the 10,000 client ends plus
    // 2,000. A server that kept every half-open connection would need 10,000 more.
    const HELD: usize = 10_000;
    raise_open_files((HELD + 2_000) as u64);
    let (_env, app) = start_with_limits(1000, Duration::from_secs(1)).await;
    let connected = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let mut held = hold_half_open(app.api_addr, HELD, connected.clone(), released);

    let healthz = || async {
        // A fresh client each time: no pooled connection to reuse.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let r = http.get(format!("{}/healthz", app.api_url)).send().await;
        r.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
    };
    // While the connections are being opened...
    crate::helpers::eventually("2,000 half-open connections", || async {
        connected.load(Ordering::Relaxed) >= 2_000
    })
    .await;
    assert_eq!(healthz().await, Ok(200));
    // ...and once all of them were opened and are held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while connected.load(Ordering::Relaxed) < HELD && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        connected.load(Ordering::Relaxed),
        HELD,
        "every slow client got a connection in turn"
    );
    assert_eq!(healthz().await, Ok(200));
    let _ = release.send(true);
    while held.join_next().await.is_some() {}
    app.shutdown().await;
}

/// Beyond `http.max_connections`, new connections wait in the kernel's queue (of 4,096) for
/// their turn instead of having their handshakes dropped: with one connection allowed and held,
/// 2,000 more all connect at once. Tokio's default queue (1,024) completed about 1,025 of them;
/// the rest retransmitted, and under a flood a health probe failed after 33 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_maximum_wait_in_a_deep_queue() {
    const WAITING: usize = 2_000;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map(|s| s.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    assert!(
        somaxconn > WAITING,
        "net.core.somaxconn is {somaxconn}: this test needs a queue of more than {WAITING}"
    );
    raise_open_files((WAITING + 1_000) as u64);
    let (_env, app) = start_with_limits(1, Duration::from_secs(30)).await;
    // The one connection allowed, held open without a request.
    let _held = tokio::net::TcpStream::connect(app.api_addr).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..WAITING {
        let addr = app.api_addr;
        set.spawn(async move {
            // A handshake the kernel queued completes at once; a dropped one is retransmitted
            // after a second.
            tokio::time::timeout(Duration::from_millis(900), tokio::net::TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut waiting = Vec::new();
    while let Some(r) = set.join_next().await {
        waiting.extend(r.unwrap());
    }
    assert_eq!(waiting.len(), WAITING, "connections queued for their turn");
    drop(waiting);
    app.shutdown().await;
}

#[tokio::test]
async fn a_valid_token_is_never_refused_because_of_others_failures() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let http = client_from("127.0.0.1");
    let mut codes = Vec::new();
    for i in 0..30 {
        let bad = format!("Bearer ebt_guess{i}.wrong");
        codes.push(get_with(&http, &app, "/api/connections", Some(&bad)).await.0);
    }
    assert_eq!(codes[0], 401);
    assert_eq!(
        *codes.last().unwrap(),
        429,
        "failures from one address are throttled: {codes:?}"
    );
    // The same address (a shared proxy), a valid token: served.
    let ok = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(get_with(&http, &app, "/api/connections", Some(&ok)).await.0, 200);
    // The scheme is case-insensitive (RFC 9110), and not a failure.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let (s, v) = get_with(
            &http,
            &app,
            "/api/connections",
            Some(&format!("{scheme} {ADMIN_TOKEN}")),
        )
        .await;
        assert_eq!(s, 200, "{scheme}: {v}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn failures_are_throttled_per_source_and_per_presented_token_id() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let first = client_from("127.0.0.2");
    let second = client_from("127.0.0.3");
    let mut codes = Vec::new();
    for _ in 0..25 {
        codes.push(
            get_with(&first, &app, "/api/connections", Some("Bearer ebt_victim.guess"))
                .await
                .0,
        );
    }
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    // Another source guessing the same token id: throttled by the token id.
    let (s, v) = get_with(&second, &app, "/api/connections", Some("Bearer ebt_victim.other")).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "too_many_failures");
    // That source with another id: its own first failure, a plain 401.
    assert_eq!(
        get_with(&second, &app, "/api/connections", Some("Bearer ebt_other.guess"))
            .await
            .0,
        401
    );
    app.shutdown().await;
}

#[tokio::test]
async fn webhook_credential_failures_are_throttled_but_valid_credentials_pass() {
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.connection.webhook_token = Some("webhook-secret-token".into());
    let app = App::start(cfg).await.unwrap();
    let http = client_from("127.0.0.4");
    let push = |auth: &'static str| {
        let http = http.clone();
        let url = format!("{}/webhooks/demo/MITMAS", app.api_url);
        async move {
            let r = http
                .post(url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut codes = Vec::new();
    for _ in 0..25 {
        codes.push(push("Bearer wrong").await.0);
    }
    assert_eq!(codes[0], 401);
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    // Valid credentials (lower-case scheme) get past authentication: the empty event is a 400.
    let (s, v) = push("bearer webhook-secret-token").await;
    assert_eq!(s, 400, "{v}");
    app.shutdown().await;
}

/// A raw HTTP/1.1 exchange, for requests reqwest will not send (bad UTF-8, huge targets).
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn assert_json_error(status: u16, expected: u16, head: &str, body: &str) -> Value {
    assert_eq!(status, expected, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{head}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
    assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
    v
}

#[tokio::test]
async fn every_error_is_our_json_error() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let addr = app.api_addr;
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    // 404: no such path (public and under /api).
    let (s, h, b) = raw(
        addr,
        b"GET /no/such/path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_json_error(s, 404, &h, &b);
    let req = format!("GET /api/nothing-here HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let (s, h, b) = raw(addr, req.as_bytes()).await;
    assert_json_error(s, 404, &h, &b);
    // 405, with the allowed methods.
    let (s, h, b) = raw(
        addr,
        b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let v = assert_json_error(s, 405, &h, &b);
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    // 413: a body over 1 MiB.
    let big = "x".repeat(1024 * 1024 + 10);
    let req = format!(
        "POST /api/connections/demo/mappings HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    let (s, h, b) = raw(addr, req.as_bytes()).await;
    let v = assert_json_error(s, 413, &h, &b);
    assert!(v["error"]["message"].as_str().unwrap().contains("1048576"), "{v}");
    // 414: a 16 KiB request target.
    let long = "a".repeat(16 * 1024);
    let req =
        format!("GET /api/connections/demo/messages?x={long} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let (s, h, b) = raw(addr, req.as_bytes()).await;
    assert_json_error(s, 414, &h, &b);
    // 400: a query string that is not UTF-8 once decoded.
    let req = format!(
        "GET /api/connections/demo/messages?after=%FF%FE HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    );
    let (s, h, b) = raw(addr, req.as_bytes()).await;
    assert_json_error(s, 400, &h, &b);
    // 400: a path segment that is not UTF-8 once decoded.
    let req = format!("GET /api/connections/%FF%FE/status HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let (s, h, b) = raw(addr, req.as_bytes()).await;
    assert_json_error(s, 400, &h, &b);
    app.shutdown().await;
}

/// A server that answers what a hostile or broken gateway would: the token endpoint under
/// `/fail/` answers 500 with a page that must never be echoed, under `/redirect/` a redirect to
/// `/inside` (an internal address that must never be called). Returns its base URL and the
/// number of calls to `/inside`.
async fn hostile_gateway() -> (String, Arc<AtomicUsize>) {
    let inside = Arc::new(AtomicUsize::new(0));
    let seen = inside.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            use axum::response::IntoResponse;
            let path = uri.path().to_string();
            if path.starts_with("/inside") {
                seen.fetch_add(1, Ordering::SeqCst);
                return (axum::http::StatusCode::OK, "INSIDE-ONLY-DATA").into_response();
            }
            if path.starts_with("/redirect/") {
                return (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/inside/token")],
                    "",
                )
                    .into_response();
            }
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "REMOTE-SECRET-PAGE").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, inside)
}

async fn check_ionapi(app: &App, token: &str, file: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/checks/ionapi", app.api_url))
        .bearer_auth(token)
        .body(file.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn outbound_checks_are_for_admins_follow_no_redirect_and_never_echo_the_remote_body() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap()).unwrap();
    let (base, inside) = hostile_gateway().await;
    // A read-write token may not make the server call URLs.
    let (s, v) = env
        .post(
            &app,
            "/api/tokens",
            &json!({"name": "rw", "scope": "read-write"}).to_string(),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let rw = v["token"].as_str().unwrap().to_string();
    let mut failing = good.clone();
    failing["pu"] = json!(format!("{base}/fail/"));
    failing["iu"] = json!(format!("{base}/fail"));
    assert_eq!(check_ionapi(&app, &rw, &failing).await.0, 403);
    // An admin may; the remote page is not repeated: its status and a classified reason are.
    let (s, v) = check_ionapi(&app, ADMIN_TOKEN, &failing).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains("REMOTE-SECRET-PAGE"), "{v}");
    assert_eq!(v["token"]["ok"], false, "{v}");
    assert_eq!(v["token"]["reason"], "http_status", "{v}");
    assert_eq!(v["token"]["status"], 500, "{v}");
    // A redirect is reported, not followed.
    let mut redirecting = good.clone();
    redirecting["pu"] = json!(format!("{base}/redirect/"));
    let (s, v) = check_ionapi(&app, ADMIN_TOKEN, &redirecting).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token"]["status"], 302, "{v}");
    assert_eq!(inside.load(Ordering::SeqCst), 0, "the redirect target was called: {v}");
    // Nothing listening: a classified connect failure.
    let mut away = good.clone();
    away["pu"] = json!("http://127.0.0.1:9/as/");
    let (_, v) = check_ionapi(&app, ADMIN_TOKEN, &away).await;
    assert_eq!(v["token"]["reason"], "connect", "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn outbound_checks_call_only_allowed_hosts() {
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.outbound.allowed_hosts = vec!["*.m3.example.com".into(), "gateway.example.com".into()];
    let app = App::start(cfg).await.unwrap();
    let (base, _) = hostile_gateway().await;
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap()).unwrap();
    let mut elsewhere = good.clone();
    elsewhere["pu"] = json!(format!("{base}/fail/"));
    let (s, v) = check_ionapi(&app, ADMIN_TOKEN, &elsewhere).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "NotAllowed", "{v}");
    assert!(
        v["token"]["message"]
            .as_str()
            .unwrap()
            .contains("outbound.allowed_hosts"),
        "{v}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_re_export_names_a_bounded_set_and_joins_one_already_running() {
    const ITEMS: usize = 20;
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let path = "/api/connections/demo/re-export";
    // The body is required, the list bounded, unknown names named.
    let (s, v) = env.post(&app, path, "").await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 to 100"), "{v}");
    let (s, v) = env.post(&app, path, r#"{"mappings": []}"#).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = env.post(&app, path, r#"{"mappings": ["Item", "Nope", "Other"]}"#).await;
    assert_eq!(s, 404, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("Nope") && m.contains("Other"), "{v}");
    let many: Vec<String> = (0..101).map(|i| format!("M{i}")).collect();
    let (s, v) = env.post(&app, path, &json!({ "mappings": many }).to_string()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("more than 100"), "{v}");

    let before = env.all_messages(&app).await.len();
    // M3 answers slowly: a re-export started now is still reading when the next request comes.
    env.sim.set_faults(m3_sim::Faults {
        latency_ms: 500,
        ..Default::default()
    });
    let repeated = vec!["Item"; 50];
    let (s, v) = env.post(&app, path, &json!({ "mappings": repeated }).to_string()).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["reExporting"], json!(["Item"]), "duplicates count once: {v}");
    assert_eq!(v["started"], json!(["Item"]), "{v}");
    let (s, v) = env.post(&app, path, r#"{"mappings": ["Item"]}"#).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["joined"], json!(["Item"]), "the running re-export is joined: {v}");
    assert_eq!(v["started"], json!([]), "{v}");
    env.sim.set_faults(m3_sim::Faults::default());
    crate::helpers::eventually("every row re-exported once", || async {
        env.all_messages(&app).await.len() >= before + ITEMS
    })
    .await;
    env.loaded(&app).await;
    env.polls(&app, 2).await;
    assert_eq!(
        env.all_messages(&app).await.len(),
        before + ITEMS,
        "one re-export, not 51"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn deploy_needs_a_body_and_repeated_query_parameters_are_refused_everywhere() {
    let env = Env::new(5).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let (s, v) = env.post(&app, "/api/connections/demo/mappings/Item/deploy", "").await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("{}"), "{v}");
    let (s, v) = env.post(&app, "/api/connections/demo/mappings/Item/deploy", "{}").await;
    assert_eq!(s, 200, "{v}");
    for path in [
        "/api/connections/demo/read-models/items?limit=5&limit=6",
        "/api/connections/demo/messages?limit=5&limit=6",
        "/api/connections/demo/dead-letters?limit=5&limit=6",
        "/api/connections/demo/tables?filter=MIT&filter=MMS",
    ] {
        let (s, v) = env.get(&app, path).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(
            v["error"]["message"],
            "query parameter `limit`: given more than once; give each parameter once"
                .replace("limit", if path.contains("filter") { "filter" } else { "limit" }),
            "{path}: {v}"
        );
    }
    app.shutdown().await;
}
