//! API authentication: tokens with scopes, connection-restricted read-model tokens, revocation,
//! the admin token of the first start, and the limit on failed attempts.

use crate::helpers::{Env, ADMIN_TOKEN};
use erp_bridge::App;
use serde_json::{json, Value};

async fn call(app: &App, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.api_url);
    let mut r = match method {
        "POST" => http.post(url),
        "DELETE" => http.delete(url),
        _ => http.get(url),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn new_token(app: &App, scope: &str, connection: Option<&str>) -> (String, String) {
    let (s, v) = call(
        app,
        "POST",
        "/api/tokens",
        Some(ADMIN_TOKEN),
        Some(json!({"name": format!("{scope} token"), "scope": scope, "connection": connection})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn the_api_needs_a_token_and_scopes_limit_what_it_may_do() {
    let env = Env::new(10).await;
    let app = env.start().await;
    env.loaded(&app).await;
    assert_eq!(call(&app, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(call(&app, "GET", "/studio/", None, None).await.0, 200);
    let (s, v) = call(&app, "GET", "/api/connections", None, None).await;
    assert_eq!(s, 401);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    assert_eq!(
        call(&app, "GET", "/api/connections", Some("ebt_x.y"), None).await.0,
        401
    );

    let (_, read) = new_token(&app, "read", None).await;
    assert_eq!(
        call(&app, "GET", "/api/connections/demo/messages", Some(&read), None)
            .await
            .0,
        200
    );
    let (s, v) = call(&app, "POST", "/api/connections/demo/re-export", Some(&read), None).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`read` token cannot POST"));

    let (_, rw) = new_token(&app, "read-write", None).await;
    let itno = env.sim.rows("MITMAS")[0]["MMITNO"].clone();
    let cmd = json!({"commandId": "auth-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "rw"}});
    assert_eq!(
        call(&app, "POST", "/api/connections/demo/commands", Some(&rw), Some(cmd))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/tokens", Some(&rw), None).await.0,
        403,
        "tokens are admin only"
    );

    // Read-model tokens: one connection's read models and schemas, nothing else.
    let (rm_id, rm) = new_token(&app, "read-model", Some("demo")).await;
    assert_eq!(
        call(&app, "GET", "/api/connections/demo/read-models/items", Some(&rm), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/connections/demo/schemas/ItemUpdated",
            Some(&rm),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/connections/demo/messages", Some(&rm), None)
            .await
            .0,
        403
    );
    let (s, v) = call(&app, "GET", "/api/connections/other/read-models/items", Some(&rm), None).await;
    assert_eq!(s, 403, "cross-connection access is refused");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("restricted to connection `demo`"));
    assert_eq!(call(&app, "GET", "/api/connections", Some(&rm), None).await.0, 403);

    // The list shows no secrets; revoked tokens stop working.
    let (_, list) = call(&app, "GET", "/api/tokens", Some(ADMIN_TOKEN), None).await;
    let text = list.to_string();
    assert!(
        !text.contains(rm.split('.').nth(1).unwrap()) && !text.contains("hash"),
        "{text}"
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/tokens/{rm_id}"), Some(ADMIN_TOKEN), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/connections/demo/read-models/items", Some(&rm), None)
            .await
            .0,
        401
    );

    // Bad token requests name the field.
    let (s, v) = call(
        &app,
        "POST",
        "/api/tokens",
        Some(ADMIN_TOKEN),
        Some(json!({"name": "x", "scope": "god"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("scope:"), "{v}");
    let (s, v) = call(
        &app,
        "POST",
        "/api/tokens",
        Some(ADMIN_TOKEN),
        Some(json!({"name": "x", "scope": "read-model"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("connection:"),
        "{v}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let mut codes = Vec::new();
    for _ in 0..25 {
        codes.push(
            call(&app, "GET", "/api/connections", Some("ebt_bad.guess"), None)
                .await
                .0,
        );
    }
    assert_eq!(codes[0], 401);
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_first_start_creates_an_admin_token_shown_once() {
    let env = Env::new(5).await;
    let mut cfg = env.config();
    cfg.auth.bootstrap_token = None;
    let app = App::start(cfg.clone()).await.unwrap();
    let token = app.admin_token.clone().expect("a new admin token on the first start");
    assert!(token.starts_with("ebt_"));
    assert_eq!(call(&app, "GET", "/api/tokens", Some(&token), None).await.0, 200);
    app.shutdown().await;
    let app = App::start(cfg).await.unwrap();
    assert_eq!(app.admin_token, None, "shown once");
    assert_eq!(call(&app, "GET", "/api/connections", Some(&token), None).await.0, 200);
    app.shutdown().await;
}

/// Tokens may expire (`expires_in` or `expires_at`): an expired token is refused with 401 naming
/// the expiry, and the list shows each token's expiry and when it was last used.
#[tokio::test]
async fn tokens_expire_and_show_when_they_were_last_used() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let create = |body: Value| call(&app, "POST", "/api/tokens", Some(ADMIN_TOKEN), Some(body));
    for (body, named) in [
        (
            json!({"name": "x", "scope": "read", "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"name": "x", "scope": "read", "expires_at": "2001-01-01T00:00:00Z"}),
            "not in the future",
        ),
        (
            json!({"name": "x", "scope": "read", "expires_at": "tomorrow"}),
            "RFC 3339",
        ),
        (
            json!({"name": "x", "scope": "read", "expires_in": "1h", "expires_at": "2999-01-01T00:00:00Z"}),
            "not both",
        ),
        (json!({"name": "x", "scope": "read", "expires_in": "20000d"}), "3650d"),
    ] {
        let (s, v) = create(body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(named), "{body}: {v}");
    }
    let (s, long) = create(json!({"name": "a year", "scope": "read", "expires_at": "2030-06-01T00:00:00+01:00"})).await;
    assert_eq!(s, 201, "{long}");
    assert_eq!(long["expires_at"], "2030-05-31T23:00:00Z");
    let (s, short) = create(json!({"name": "briefly", "scope": "read", "expires_in": "3s"})).await;
    assert_eq!(s, 201, "{short}");
    let text = short["token"].as_str().unwrap();
    let id = short["id"].as_str().unwrap();
    assert!(short["expires_at"].as_str().unwrap().ends_with('Z'), "{short}");

    // Before its expiry the token works, and the list says when it was last used.
    let listed = |id: String| {
        let app = &app;
        async move {
            let (_, v) = call(app, "GET", "/api/tokens", Some(ADMIN_TOKEN), None).await;
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == id.as_str())
                .unwrap()
                .clone()
        }
    };
    assert!(listed(id.to_string()).await["last_used_at"].is_null());
    assert_eq!(call(&app, "GET", "/api/connections", Some(text), None).await.0, 200);
    let t = listed(id.to_string()).await;
    assert!(t["last_used_at"].is_string(), "{t}");
    assert_eq!(t["expires_at"], short["expires_at"]);
    assert!(listed(long["id"].as_str().unwrap().to_string()).await["last_used_at"].is_null());

    // After it, 401 naming the expiry.
    crate::helpers::eventually("the token to expire", || async {
        call(&app, "GET", "/api/connections", Some(text), None).await.0 == 401
    })
    .await;
    let (s, v) = call(&app, "GET", "/api/connections", Some(text), None).await;
    assert_eq!(s, 401);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("expired") && msg.contains(short["expires_at"].as_str().unwrap()),
        "{msg}"
    );
    app.shutdown().await;
}
