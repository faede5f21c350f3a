//! The OpenAPI documents describe what erp-bridge really serves, checked by validators nobody
//! here wrote (`conformance/openapi_check.py`): openapi-spec-validator and `redocly lint` with
//! its recommended rules on the whole API's document and a connection's, and openapi-core on
//! real answers (each status the routes give, with every scope of token and without one).

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{Env, ADMIN_TOKEN};
use erp_bridge::App;
use serde_json::{json, Value};

/// Every `$ref` in `v` that points into the document.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Every `$ref` of `doc` resolves inside it.
fn refs_resolve(doc: &Value) {
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_connection_serves() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let (s, doc) = env.get(&app, "/api/connections/demo/openapi.json").await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["license"]["identifier"], "Apache-2.0");
    assert_eq!(doc["servers"][0]["url"], app.api_url.as_str());
    refs_resolve(&doc);
    let paths = doc["paths"].as_object().unwrap();
    let list = &paths["/api/connections/demo/read-models/items"]["get"];
    let by_key = &paths["/api/connections/demo/read-models/items/{key}"]["get"];
    assert!(list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "itemNumber"));
    assert!(doc["components"]["schemas"]["Item"]["properties"]["itemNumber"].is_object());
    for status in ["200", "400", "401", "403", "404", "429"] {
        assert!(by_key["responses"][status].is_object(), "get-by-key lacks {status}");
    }
    let messages = &paths["/api/connections/demo/messages"]["get"];
    for status in ["200", "400", "401", "403", "404"] {
        assert!(messages["responses"][status].is_object(), "messages lack {status}");
    }
    let commands = &paths["/api/connections/demo/commands"]["post"];
    assert!(
        commands["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["$ref"] == "#/components/schemas/UpdateItemCommand")
    );
    // A read-model token may read the document of its connection.
    let (_, t) = env
        .post(
            &app,
            "/api/tokens",
            r#"{"name":"rm","scope":"read-model","connection":"demo"}"#,
        )
        .await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/connections/demo/openapi.json", app.api_url))
        .bearer_auth(t["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The whole API's document has the management API and the connection's read models.
    let (s, whole) = env.get(&app, "/api/openapi.json").await;
    assert_eq!(s, 200, "{whole}");
    refs_resolve(&whole);
    let paths = whole["paths"].as_object().unwrap();
    for p in [
        "/api/connections",
        "/api/connections/{c}/mappings/{name}/deploy",
        "/api/connections/{c}/command-mappings",
        "/api/tokens",
        "/api/checks/ionapi",
        "/api/connections/{c}/dead-letters",
        "/api/connections/{c}/status",
        "/api/connections/{c}/bundle",
        "/api/connections/demo/read-models/items/{key}",
    ] {
        assert!(paths.contains_key(p), "the whole API's document lacks {p}");
    }
    assert!(whole["components"]["schemas"]["demo.Item"].is_object());
    app.shutdown().await;
}

/// The conformance checks' Python (conformance/.venv, where scripts/setup.sh installs the
/// validators of conformance/requirements.txt), or a failure saying how to install it.
fn venv_python() -> PathBuf {
    let python = conformance_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: run `source scripts/setup.sh` (it installs conformance/requirements.txt there)",
        python.display()
    );
    python
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

/// Requests made, with their answers, for the checker.
struct Exchanges {
    app_url: String,
    http: reqwest::Client,
    list: Vec<Value>,
}

impl Exchanges {
    /// Send `method path` with `token` (or none) and `body`; record the answer for the documents
    /// that describe `path`; return its status and JSON body.
    async fn send(
        &mut self,
        scope: &str,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.app_url);
        let mut r = self
            .http
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let headers: serde_json::Map<String, Value> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = res.bytes().await.unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let mut documents = vec!["api"];
        let own = [
            "read-models/items",
            "messages",
            "dead-letters",
            "schemas/",
            "commands",
            "openapi.json",
            "asyncapi",
        ];
        if path
            .strip_prefix("/api/connections/demo/")
            .is_some_and(|rest| own.iter().any(|o| rest.starts_with(o)))
        {
            documents.push("demo");
        }
        self.list.push(json!({
            "documents": documents, "scope": scope, "method": method, "url": url, "status": status,
            "content_type": content_type, "headers": headers,
            "body": text.clone(),
        }));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// (method, path template, has a request body) of every operation of `doc`.
fn operations(doc: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), template.clone(), op.get("requestBody").is_some()));
            }
        }
    }
    out
}

/// A path from `template`: connection `c`, and names that exist in the demo connection.
fn fill(template: &str, c: &str) -> String {
    [
        ("{c}", c),
        ("{name}", "Item"),
        ("{resource}", "items"),
        ("{key}", "100%7CA"),
        ("{ty}", "ItemUpdated"),
        ("{program}", "MMS200MI"),
        ("{transaction}", "GetItmBasic"),
        ("{table}", "MITMAS"),
        ("{id}", "nosuch"),
    ]
    .iter()
    .fold(template.to_string(), |p, (k, v)| p.replace(k, v))
}

/// A client sending from 127.0.0.`n` (the API counts failed attempts per client address).
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_openapi_documents_pass_third_party_validators_and_real_answers_fit_them() {
    let python = venv_python();
    let redocly = conformance_dir().join("node_modules/.bin/redocly");
    assert!(
        redocly.exists(),
        "{} not found: run `source scripts/setup.sh` (npm ci in conformance/)",
        redocly.display()
    );
    let env = Env::new(20).await;
    let app: App = env.start().await;
    env.loaded(&app).await;
    let mut ex = Exchanges {
        app_url: app.api_url.clone(),
        http: reqwest::Client::new(),
        list: Vec::new(),
    };
    let admin = Some(ADMIN_TOKEN);
    // One token of each scope.
    let mut tokens: Vec<(&str, String)> = Vec::new();
    for (scope, body) in [
        ("read", r#"{"name":"r","scope":"read"}"#),
        ("read-write", r#"{"name":"rw","scope":"read-write"}"#),
        (
            "read-model",
            r#"{"name":"rm","scope":"read-model","connection":"demo"}"#,
        ),
    ] {
        let (s, t) = ex.send("admin", admin, "POST", "/api/tokens", Some(body)).await;
        assert_eq!(s, 201, "{t}");
        tokens.push((scope, t["token"].as_str().unwrap().to_string()));
    }
    let token = |scope: &str| {
        tokens
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let (s, t) = ex
        .send(
            "admin",
            admin,
            "POST",
            "/api/tokens",
            Some(r#"{"name":"gone","scope":"read"}"#),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let revoke = format!("/api/tokens/{}", t["id"].as_str().unwrap());
    let (s, v) = ex.send("admin", admin, "DELETE", &revoke, None).await;
    assert_eq!(s, 204, "{v}");
    let (read, rw, rm) = (token("read"), token("read-write"), token("read-model"));
    let (_, page) = ex
        .send(
            "admin",
            admin,
            "GET",
            "/api/connections/demo/read-models/items?limit=2",
            None,
        )
        .await;
    let key = page["items"][0]["company"].to_string().trim_matches('"').to_string()
        + "%7C"
        + page["items"][0]["itemNumber"].as_str().unwrap();
    let by_key = format!("/api/connections/demo/read-models/items/{key}");
    let update = json!({"commandId": "oa-1", "command": "UpdateItem",
        "data": {"itemNumber": page["items"][0]["itemNumber"], "name": "by the OpenAPI test"}})
    .to_string();
    let reads: Vec<String> = [
        "/api/openapi.json",
        "/api/connections",
        "/api/connections/demo",
        "/api/connections/demo/status",
        "/api/connections/demo/messages?limit=3",
        "/api/connections/demo/dead-letters",
        "/api/connections/demo/read-models/items?limit=3",
        by_key.as_str(),
        "/api/connections/demo/schemas/ItemUpdated",
        "/api/connections/demo/openapi.json",
        "/api/connections/demo/asyncapi",
        "/api/connections/demo/commands",
        "/api/connections/demo/mappings",
        "/api/connections/demo/mappings/Item",
        "/api/connections/demo/command-mappings",
        "/api/connections/demo/command-mappings/UpdateItem",
        "/api/connections/demo/tables?filter=MITM",
        "/api/connections/demo/tables/MITMAS",
        "/api/tokens",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every read with every scope: 200 or 403 as the scope allows; 401 without a valid token
    // (tried on a few: 20 failures a minute from one address are answered 429, tried last).
    let unauthenticated = [
        "/api/connections/demo/messages?limit=3",
        by_key.as_str(),
        "/api/connections/demo/commands",
        "/api/connections",
    ];
    for path in &reads {
        let mut scopes = vec![
            ("admin", Some(ADMIN_TOKEN)),
            ("read", Some(read.as_str())),
            ("read-write", Some(rw.as_str())),
            ("read-model", Some(rm.as_str())),
        ];
        if unauthenticated.contains(&path.as_str()) {
            scopes.extend([("none", None), ("wrong", Some("ebt_nosuch.0000"))]);
        }
        for (scope, t) in scopes {
            let (s, body) = ex.send(scope, t, "GET", path, None).await;
            let read_model_doc = ["/read-models/", "/schemas/", "/openapi.json"]
                .iter()
                .any(|p| path.contains(p))
                && path.starts_with("/api/connections/demo/");
            let expected = match scope {
                "none" | "wrong" => 401,
                "admin" => 200,
                _ if path == "/api/tokens" => 403,
                "read-model" if !read_model_doc => 403,
                _ => 200,
            };
            assert_eq!(s, expected, "GET {path} as {scope}: {body}");
        }
    }
    // The failures the issue found undeclared, among others.
    let admin_cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("GET", "/api/connections/demo/messages?limit=0", None, 400),
        ("GET", "/api/connections/demo/messages?colour=red", None, 400),
        ("GET", "/api/connections/nosuch/messages", None, 404),
        ("GET", "/api/connections/demo/dead-letters?limit=x", None, 400),
        ("GET", "/api/connections/demo/read-models/items?colour=red", None, 400),
        (
            "GET",
            "/api/connections/demo/read-models/items/only-one-part",
            None,
            400,
        ),
        (
            "GET",
            "/api/connections/demo/read-models/items/100%7CNO-SUCH",
            None,
            404,
        ),
        ("GET", "/api/connections/demo/read-models/nothing", None, 404),
        ("GET", "/api/connections/demo/schemas/NoSuchType", None, 404),
        ("GET", "/api/connections/demo/mappings/NoSuch", None, 404),
        ("GET", "/api/connections/nosuch", None, 404),
        ("GET", "/api/connections/demo/mi/MMS200MI/transactions", None, 200),
        ("GET", "/api/connections/demo/mi/nonsense/transactions", None, 400),
        ("POST", "/api/connections/demo/commands", Some(update.as_str()), 200),
        ("POST", "/api/connections/demo/commands", Some("{not json"), 400),
        (
            "POST",
            "/api/connections/demo/commands",
            Some(r#"{"commandId":"oa-2","command":"UpdateItem","data":{"itemNumber":"NO-SUCH-ITEM","name":"n"}}"#),
            422,
        ),
        ("POST", "/api/tokens", Some(r#"{"name":"x","scope":"everything"}"#), 400),
        ("DELETE", "/api/tokens/nosuch", None, 404),
        ("POST", "/api/checks/ionapi", Some(r#"{"ti":"t"}"#), 200),
        (
            "POST",
            "/api/connections",
            Some(r#"{"name":"oa-remote","hosting":"self-hosted"}"#),
            201,
        ),
        (
            "POST",
            "/api/connections",
            Some(r#"{"name":"oa-remote","hosting":"self-hosted"}"#),
            409,
        ),
        (
            "POST",
            "/api/connections",
            Some(r#"{"name":"Bad Name","hosting":"hosted"}"#),
            400,
        ),
        ("GET", "/api/connections/oa-remote", None, 200),
        ("PUT", "/api/connections/oa-remote/mdp", Some("{}"), 200),
        ("PUT", "/api/connections/oa-remote/ionapi", Some(r#"{"ti":"t"}"#), 400),
        ("POST", "/api/connections/demo/bundle", None, 409),
        ("POST", "/api/connections/oa-remote/bundle?format=toml", None, 200),
        ("POST", "/api/connections/oa-remote/bundle", None, 200),
        ("DELETE", "/api/connections/oa-remote", None, 204),
        ("DELETE", "/api/connections/oa-remote", None, 404),
        ("POST", "/api/connections/demo/mappings/Item/deploy", Some("{}"), 200),
        (
            "POST",
            "/api/connections/demo/re-export",
            Some(r#"{"mappings":["Item"]}"#),
            202,
        ),
        ("GET", "/healthz", None, 200),
        ("GET", "/readyz", None, 200),
        ("GET", "/metrics", None, 200),
        ("POST", "/webhooks/demo/MITMAS", Some("{}"), 401),
        ("POST", "/webhooks/nosuch/MITMAS", Some("{}"), 404),
        ("GET", "/api/connections/demo/mi/MMS200MI/UpdItmBasic/fields", None, 200),
        ("GET", "/api/connections/demo/mi/MMS200MI/no-such!/fields", None, 400),
    ];
    for (method, path, body, expected) in admin_cases {
        let (s, v) = ex.send("admin", admin, method, path, body).await;
        assert_eq!(s, expected, "{method} {path} as admin: {v}");
    }
    // A mapping and a command mapping through their life: created, taken, changed, deleted.
    for (base, existing, new_name) in [
        ("/api/connections/demo/mappings", "Item", "OaItem"),
        ("/api/connections/demo/command-mappings", "UpdateItem", "OaUpdate"),
    ] {
        let (s, shown) = ex
            .send("admin", admin, "GET", &format!("{base}/{existing}"), None)
            .await;
        assert_eq!(s, 200, "{shown}");
        let mut spec = shown["spec"].clone();
        spec["name"] = json!(new_name);
        if spec.get("resource").is_some() {
            spec["resource"] = json!("oa-items");
        }
        let spec = spec.to_string();
        let (s, v) = ex.send("admin", admin, "POST", base, Some(&spec)).await;
        assert_eq!(s, 201, "POST {base} {spec}: {v}");
        let (s, v) = ex.send("admin", admin, "POST", base, Some(&spec)).await;
        assert_eq!(s, 409, "POST {base} again: {v}");
        let (s, v) = ex.send("admin", admin, "POST", base, Some(r#"{"name":"x"}"#)).await;
        assert_eq!(s, 400, "POST {base} incomplete: {v}");
        let one = format!("{base}/{new_name}");
        let (s, v) = ex.send("admin", admin, "PUT", &one, Some(&spec)).await;
        assert_eq!(s, 200, "PUT {one}: {v}");
        let (s, v) = ex.send("admin", admin, "DELETE", &one, None).await;
        assert_eq!(s, 204, "DELETE {one}: {v}");
    }

    // Writes need read-write; read-model tokens only read their connection's read models.
    for (scope, token, expected) in [
        ("read", Some(read.as_str()), 403),
        ("read-model", Some(rm.as_str()), 403),
        ("read-write", Some(rw.as_str()), 200),
        ("none", None, 401),
    ] {
        let (s, v) = ex
            .send(
                scope,
                token,
                "POST",
                "/api/connections/demo/commands",
                Some(update.as_str()),
            )
            .await;
        assert_eq!(s, expected, "POST commands as {scope}: {v}");
    }
    let (s, v) = ex
        .send("read-write", Some(&rw), "POST", "/api/tokens", Some("{}"))
        .await;
    assert_eq!(s, 403, "{v}");
    // A body over the limit.
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, v) = ex.send("admin", admin, "POST", "/api/tokens", Some(big.as_str())).await;
    assert_eq!(s, 413, "{v}");

    let (_, whole) = ex.send("admin", admin, "GET", "/api/openapi.json", None).await;
    let (_, demo) = ex
        .send("admin", admin, "GET", "/api/connections/demo/openapi.json", None)
        .await;
    // Every operation of the whole API's document, from its templates: 401 without a token, 403
    // for a read-model token (where it may not go), 404 for a connection that does not exist, 413
    // for a body over the limit, and 429 once an address failed too often. Failures are counted
    // per client address, so each sweep sends from addresses of its own in 127.0.0.0/8.
    let ops = operations(&whole);
    assert!(ops.len() > 40, "{ops:?}");
    let mut failures = 0u8;
    for (method, template, has_body) in &ops {
        if !template.starts_with("/api/") {
            continue;
        }
        let path = fill(template, "demo");
        let body = has_body.then_some("{}");
        ex.http = client_from(10 + failures / 15);
        failures += 1;
        let (s, v) = ex.send("none", None, method, &path, body).await;
        assert_eq!(s, 401, "{method} {path} without a token: {v}");
        let own_read = method == "GET"
            && ["/read-models/", "/schemas/", "/openapi.json"]
                .iter()
                .any(|p| template.contains(p))
            && (template.starts_with("/api/connections/{c}/") || template.starts_with("/api/connections/demo/"));
        ex.http = client_from(1);
        if !own_read {
            let (s, v) = ex.send("read-model", Some(&rm), method, &path, body).await;
            assert_eq!(s, 403, "{method} {path} with a read-model token: {v}");
        }
        if *has_body {
            let (s, v) = ex.send("admin", admin, method, &path, Some(big.as_str())).await;
            assert_eq!(s, 413, "{method} {path} with a 2 MiB body: {v}");
        }
        if template.starts_with("/api/connections/{c}") && !template.ends_with("/connector/channel") {
            let path = fill(template, "nosuch");
            let (s, v) = ex.send("admin", admin, method, &path, body).await;
            assert_eq!(s, 404, "{method} {path}: {v}");
        }
    }
    // 429: an address that failed too often gets it for further failures (valid credentials are
    // still served).
    ex.http = client_from(40);
    for _ in 0..20 {
        let (s, _) = ex.send("none", None, "GET", "/api/connections", None).await;
        assert_eq!(s, 401);
    }
    for (method, template, has_body) in &ops {
        if template.starts_with("/api/") {
            let path = fill(template, "demo");
            let (s, v) = ex.send("none", None, method, &path, has_body.then_some("{}")).await;
            assert_eq!(s, 429, "{method} {path} after too many failures: {v}");
        }
    }
    ex.http = client_from(1);

    // Too many failed attempts: 429 until the minute is over (for every token: last).
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let (s, _) = ex
            .send(
                "wrong",
                Some("ebt_nosuch.0000"),
                "GET",
                "/api/connections/demo/messages",
                None,
            )
            .await;
        statuses.push(s);
        if s == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exchanges.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({"documents": {"api": whole, "demo": demo}, "exchanges": ex.list})).unwrap(),
    )
    .unwrap();
    let out = Command::new(&python)
        .arg(conformance_dir().join("openapi_check.py"))
        .arg(&file)
        .arg("--redocly")
        .arg(&redocly)
        .output()
        .expect("the checker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "openapi_check.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(", 0 problems"), "{stdout}");
    app.shutdown().await;
}
