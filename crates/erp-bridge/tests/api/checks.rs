//! The wizard's live `.ionapi` check: field-level errors, then token and MI steps against M3.

use crate::helpers::Env;
use serde_json::Value;

async fn check(env: &Env, app: &erp_bridge::App, body: String) -> Value {
    env.http
        .post(format!("{}/api/checks/ionapi", app.api_url))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ionapi_file_is_checked_key_by_key_then_live() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("m3.ionapi")).unwrap()).unwrap();
    let v = check(&env, &app, good.to_string()).await;
    assert_eq!(v["status"], "Healthy", "{v}");
    assert_eq!(v["token"]["ok"], true);
    assert_eq!(v["mi"]["ok"], true);
    assert!(
        !v.to_string().contains(good["sask"].as_str().unwrap()),
        "secrets are never echoed"
    );
    assert!(!v.to_string().contains(good["cs"].as_str().unwrap()));

    let mut no_saak = good.clone();
    no_saak.as_object_mut().unwrap().remove("saak");
    let v = check(&env, &app, no_saak.to_string()).await;
    assert_eq!(v["status"], "Invalid");
    assert_eq!(v["errors"][0]["key"], "saak");

    let mut wrong = good.clone();
    wrong["cs"] = Value::String("wrong-secret".into());
    let v = check(&env, &app, wrong.to_string()).await;
    assert_eq!(v["status"], "AuthenticationFailed", "{v}");
    assert!(
        v["token"]["message"].as_str().unwrap().contains("invalid_client"),
        "{v}"
    );

    let mut away = good.clone();
    away["pu"] = Value::String("http://127.0.0.1:9/ERPBRIDGE_DEMO/as/".into());
    let v = check(&env, &app, away.to_string()).await;
    assert_eq!(v["status"], "Unreachable", "{v}");

    let v = check(&env, &app, "{\"ti\": ".into()).await;
    assert_eq!(v["status"], "Invalid");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("not valid JSON"));
    app.shutdown().await;
}
