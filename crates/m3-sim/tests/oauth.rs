//! OAuth2 token endpoint, gateway 401s, token expiry/refresh/revoke, fault injection, .ionapi.

mod common;

use std::time::Duration;

use common::Harness;
use m3_sim::{Faults, SimConfig};
use serde_json::Value;

const GET_ITEM: &str = "/M3/m3api-rest/v2/execute/MMS200MI/GetItmBasic?ITNO=A000001";

#[tokio::test]
async fn password_grant_with_basic_or_form_client_credentials() {
    let h = Harness::start().await;
    let c = h.sim.config().clone();
    let resp = h
        .http
        .post(h.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "password"), ("username", &c.saak), ("password", &c.sask)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 7200);
    assert!(v["access_token"].as_str().unwrap().len() >= 32);
    assert!(v["refresh_token"].as_str().is_some());
    let (status, _) = h.get(v["access_token"].as_str().unwrap(), GET_ITEM).await;
    assert_eq!(status, 200);

    // Client credentials in the form instead of Basic.
    let resp = h
        .http
        .post(h.token_url())
        .form(&[
            ("grant_type", "password"),
            ("username", &c.saak),
            ("password", &c.sask),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn wrong_credentials_and_grants_are_oauth_errors() {
    let h = Harness::start().await;
    let c = h.sim.config().clone();
    let post = |form: Vec<(&'static str, String)>, secret: String| {
        let h = &h;
        let id = c.client_id.clone();
        async move {
            let resp = h
                .http
                .post(h.token_url())
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let good = vec![
        ("grant_type", "password".to_string()),
        ("username", c.saak.clone()),
        ("password", c.sask.clone()),
    ];
    let (s, v) = post(good.clone(), "wrong-secret".into()).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    assert!(v["error_description"].as_str().is_some());

    let mut bad_sask = good.clone();
    bad_sask[2].1 = "nope".into();
    let (s, v) = post(bad_sask, c.client_secret.clone()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));

    let (s, v) = post(
        vec![("grant_type", "client_credentials".into())],
        c.client_secret.clone(),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unsupported_grant_type")));

    let (s, v) = post(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", "bogus".into()),
        ],
        c.client_secret.clone(),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));

    // Wrong tenant in the path.
    let resp = h
        .http
        .post(format!("{}/OTHER/as/token.oauth2", h.running.base_url))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn missing_invalid_expired_and_revoked_tokens_are_401() {
    let h = Harness::with(SimConfig {
        items: 20,
        token_lifetime: Duration::from_millis(1200),
        ..SimConfig::default()
    })
    .await;
    // Missing token.
    let resp = h.http.get(h.url(GET_ITEM)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // Unknown token.
    assert_eq!(h.get("not-a-token", GET_ITEM).await.0, 401);
    // MDP is behind the same gateway.
    assert_eq!(h.get("not-a-token", "/M3/mdprest/les/getTables").await.0, 401);

    // Expiry, then refresh.
    let c = h.sim.config().clone();
    let v: Value = h
        .http
        .post(h.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "password"), ("username", &c.saak), ("password", &c.sask)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["expires_in"], 1);
    let access = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(h.get(&access, GET_ITEM).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let (status, body) = h.get(&access, GET_ITEM).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");

    let resp = h
        .http
        .post(h.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fresh: Value = resp.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, access);
    assert_eq!(h.get(&fresh, GET_ITEM).await.0, 200);

    // Revoke.
    let resp = h
        .http
        .post(h.url("/as/revoke_token.oauth2"))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("token", fresh.as_str()), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.get(&fresh, GET_ITEM).await.0, 401);
}

#[tokio::test]
async fn fault_injection_throttles_fails_and_expires_tokens() {
    let h = Harness::start().await;
    let token = h.token().await;
    let health: Value = h
        .http
        .get(format!("{}/admin/health", h.running.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["items"], 200);

    h.sim.set_faults(Faults {
        throttle: Some(7),
        ..Faults::default()
    });
    let resp = h.http.get(h.url(GET_ITEM)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");

    h.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(h.get(&token, GET_ITEM).await.0, 500);

    // Through the admin route: clear faults and expire every token.
    let resp = h
        .http
        .post(format!("{}/admin/faults", h.running.base_url))
        .json(&serde_json::json!({"expire_tokens_now": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.sim.faults(), Faults::default());
    assert_eq!(h.get(&token, GET_ITEM).await.0, 401);
    let token = h.token().await;
    assert_eq!(h.get(&token, GET_ITEM).await.0, 200);

    h.sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let t0 = std::time::Instant::now();
    assert_eq!(h.get(&token, GET_ITEM).await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn ionapi_points_at_the_server() {
    let h = Harness::start().await;
    let base = &h.running.base_url;
    assert!(base.starts_with("http://127.0.0.1:"));
    let ion = h.sim.ionapi(base);
    let c = h.sim.config();
    assert_eq!(ion["ti"], "ERPBRIDGE_DEMO");
    assert_eq!(ion["iu"], base.as_str());
    assert_eq!(ion["pu"], format!("{base}/ERPBRIDGE_DEMO/as/"));
    assert_eq!(ion["ot"], "token.oauth2");
    assert_eq!(ion["or"], "revoke_token.oauth2");
    assert_eq!(ion["oa"], "authorization.oauth2");
    assert_eq!(ion["ci"], c.client_id.as_str());
    assert_eq!(ion["cs"], c.client_secret.as_str());
    assert!(ion["saak"].as_str().unwrap().starts_with("ERPBRIDGE_DEMO#"));
    assert_eq!(ion["sask"], c.sask.as_str());
    for k in ["cn", "ev", "v"] {
        assert!(ion[k].is_string(), "{k}");
    }
    // The token URL built from the file works.
    let url = format!("{}{}", ion["pu"].as_str().unwrap(), ion["ot"].as_str().unwrap());
    let resp = h
        .http
        .post(url)
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "password"), ("username", &c.saak), ("password", &c.sask)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let h = Harness::start().await;
    let base = h.running.base_url.clone();
    let http = h.http.clone();
    assert!(http.get(format!("{base}/admin/health")).send().await.is_ok());
    h.running.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(format!("{base}/admin/health")).send().await.is_err());
}
