//! Gateway faults beyond the basics (504 gateway timeout, MDP down, 500/429 on EXPORTMI, old
//! fault JSON) and the on-premises MDP basic-auth mode.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use m3_sim::{Faults, SimConfig};
use serde_json::{json, Value};

const EXPORT: &str = "/M3/m3api-rest/v2/execute/EXPORTMI/Select?QERY=MMITNO%20from%20MITMAS";
const MDP: &str = "/M3/mdprest/les/getTables?filter=MIT";
const MI: &str = "/M3/m3api-rest/execute/MMS200MI/GetItmBasic?ITNO=A000001";

#[tokio::test]
async fn gateway_timeout_waits_then_answers_504_without_executing() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim.set_faults(Faults {
        gateway_timeout: Some(150),
        ..Faults::default()
    });
    for path in [EXPORT, MDP, MI] {
        let start = Instant::now();
        let (status, v) = h.get(&token, path).await;
        assert_eq!(status, 504, "{path}: {v}");
        assert!(start.elapsed() >= Duration::from_millis(150), "{path}");
        assert_eq!(v["error"], "gateway_timeout");
    }
    let (status, _) = h
        .v2(
            &token,
            "MMS200MI/UpdItmBasic",
            &[("ITNO", "A000001"), ("ITDS", "Should not happen")],
        )
        .await;
    assert_eq!(status, 504);
    assert_ne!(
        h.sim.get("MITMAS", &["100", "A000001"]).unwrap()["MMITDS"],
        "Should not happen"
    );
    // Still 401 first without a token.
    let (status, _) = h.get("nope", MI).await;
    assert_eq!(status, 401);
    h.sim.set_faults(Faults::default());
    assert_eq!(h.get(&token, EXPORT).await.0, 200);
}

#[tokio::test]
async fn mdp_down_answers_503_only_on_mdp() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim.set_faults(Faults {
        mdp_down: true,
        ..Faults::default()
    });
    for path in [
        MDP,
        "/M3/mdprest/les/getColumnsUsedByTable/MITMAS/MVX?langId=GB",
        "/M3/mdprest/les/getIndexKeys/MITMAS00/MVX",
    ] {
        let (status, v) = h.get(&token, path).await;
        assert_eq!(status, 503, "{path}: {v}");
    }
    assert_eq!(h.get(&token, MI).await.0, 200);
    assert_eq!(h.get(&token, EXPORT).await.0, 200);
    h.sim.set_faults(Faults::default());
    assert_eq!(h.get(&token, MDP).await.0, 200);
}

#[tokio::test]
async fn error_rate_and_throttle_apply_to_exportmi() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(h.get(&token, EXPORT).await.0, 500);
    assert_eq!(
        h.get(
            &token,
            "/M3/m3api-rest/execute/EXPORTMI/Select?QERY=MMITNO%20from%20MITMAS"
        )
        .await
        .0,
        500
    );
    h.sim.set_faults(Faults {
        throttle: Some(7),
        ..Faults::default()
    });
    let resp = h.http.get(h.url(EXPORT)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
}

#[tokio::test]
async fn old_fault_json_still_parses_and_new_fields_round_trip() {
    let h = Harness::start().await;
    let admin = format!("{}/admin/faults", h.running.base_url);
    let r = h
        .http
        .post(&admin)
        .json(&json!({"latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["latency_ms"], 5);
    assert_eq!(v["gateway_timeout"], Value::Null);
    assert_eq!(v["mdp_down"], false);
    assert_eq!(v["drop_webhooks"], 0.0);
    let r = h
        .http
        .post(&admin)
        .json(&json!({"gateway_timeout": 60000, "mdp_down": true, "drop_webhooks": 3.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f = h.sim.faults();
    assert_eq!(f.gateway_timeout, Some(60000));
    assert!(f.mdp_down);
    assert_eq!(f.drop_webhooks, 1.0, "clamped");
    assert_eq!(f.latency_ms, 0);
}

#[tokio::test]
async fn mdp_accepts_basic_auth_when_configured() {
    let h = Harness::with(SimConfig {
        items: 50,
        mdp_basic_auth: Some(("mdpuser".into(), "mdp:pass".into())),
        ..SimConfig::default()
    })
    .await;
    let basic = |user: &str, pass: &str, path: &str| h.http.get(h.url(path)).basic_auth(user, Some(pass)).send();
    let r = basic("mdpuser", "mdp:pass", MDP).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["list"].as_array().unwrap().len(), 3);
    let r = basic(
        "mdpuser",
        "mdp:pass",
        "/M3/mdprest/les/getColumnsUsedByTable/MITMAS/MVX",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = basic("mdpuser", "wrong", MDP).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    // MI does not take basic credentials.
    assert_eq!(basic("mdpuser", "mdp:pass", MI).await.unwrap().status(), 401);
    // The bearer token still works on MDP; nothing at all is 401.
    let token = h.token().await;
    assert_eq!(h.get(&token, MDP).await.0, 200);
    assert_eq!(h.http.get(h.url(MDP)).send().await.unwrap().status(), 401);
    // Faults apply to basic-auth calls too.
    h.sim.set_faults(Faults {
        mdp_down: true,
        ..Faults::default()
    });
    assert_eq!(basic("mdpuser", "mdp:pass", MDP).await.unwrap().status(), 503);
}

#[tokio::test]
async fn mdp_rejects_basic_auth_by_default() {
    let h = Harness::start().await;
    let c = h.sim.config();
    assert_eq!(c.mdp_basic_auth, None);
    let r = h
        .http
        .get(h.url(MDP))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn execute_then_timeout_runs_the_call_then_answers_504() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim.set_faults(Faults {
        execute_then_timeout: Some(20),
        ..Faults::default()
    });
    let (status, v) = h
        .v2(
            &token,
            "MMS200MI/UpdItmBasic",
            &[("ITNO", "A000001"), ("ITDS", "Ran anyway")],
        )
        .await;
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"], "gateway_timeout");
    assert_eq!(
        h.sim.get("MITMAS", &["100", "A000001"]).unwrap()["MMITDS"],
        "Ran anyway"
    );
    assert_eq!(h.sim.mi_calls("MMS200MI", "UpdItmBasic"), 1);
    // v1 too; and a call refused by the gateway (401) is not executed or counted.
    assert_eq!(h.get(&token, MI).await.0, 504);
    assert_eq!(h.get("nope", MI).await.0, 401);
    assert_eq!(h.sim.mi_calls("MMS200MI", "GetItmBasic"), 1);
    h.sim.set_faults(Faults::default());
    assert_eq!(h.get(&token, MI).await.0, 200);
    assert_eq!(h.sim.mi_calls("MMS200MI", "GetItmBasic"), 2);
}
