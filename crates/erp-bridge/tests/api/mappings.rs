//! Mapping management through the HTTP API: validation with named errors, MDP custom columns,
//! versions, deploy/undeploy, preview, re-export, AsyncAPI, and mapping files (GitOps).

use crate::helpers::{eventually, of_subject, Env};
use erp_bridge::App;
use serde_json::{json, Value};

fn customer_like_item_mapping() -> Value {
    json!({
        "name": "ActiveItem",
        "description": "Active items with their custom quality code",
        "table": "MITMAS",
        "filter": "MMSTAT = '20'",
        "fields": [
            {"column": "MMITNO", "name": "itemNumber"},
            {"column": "MMITDS", "name": "name"},
            {"column": "MMSTAT", "name": "status", "type": "enum",
             "values": {"10": "preliminary", "20": "active", "50": "blocked", "90": "deactivated"}},
            {"column": "MMZZCO", "name": "qualityCode"}
        ]
    })
}

async fn req(env: &Env, app: &App, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.api_url);
    let mut r = match method {
        "POST" => env.http.post(url),
        "PUT" => env.http.put(url),
        "DELETE" => env.http.delete(url),
        _ => env.http.get(url),
    };
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_mappings_are_refused_with_the_field_and_the_closest_name() {
    let env = Env::new(20).await;
    let app = env.start().await;
    let mut bad = customer_like_item_mapping();
    bad["fields"][1]["column"] = json!("MMITDX");
    let (s, v) = req(&env, &app, "POST", "/api/connections/demo/mappings", Some(bad)).await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "mapping `ActiveItem`: fields[1].column: table MITMAS has no column `MMITDX`; did you mean `MMITDS`?"
    );
    let mut bad = customer_like_item_mapping();
    bad["fields"][0]["colum"] = json!("x");
    let (s, v) = req(&env, &app, "POST", "/api/connections/demo/mappings", Some(bad)).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colum`"),
        "{v}"
    );
    let mut bad = customer_like_item_mapping();
    bad["table"] = json!("MITMAZ");
    let (s, v) = req(&env, &app, "POST", "/api/connections/demo/mappings", Some(bad)).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `MITMAS`"),
        "{v}"
    );
    let mut bad = customer_like_item_mapping();
    bad["filter"] = json!("MMSTAT = ");
    let (s, v) = req(&env, &app, "POST", "/api/connections/demo/mappings", Some(bad)).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("filter"), "{v}");
    let (s, _) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings",
        Some(json!({"name": "Item", "table": "MITMAS", "fields": []})),
    )
    .await;
    assert_eq!(s, 409, "the default mapping exists already");
    app.shutdown().await;
}

#[tokio::test]
async fn a_new_mapping_with_mdp_columns_and_a_filter_is_deployed_and_served() {
    let env = Env::new(40).await;
    let app = env.start().await;
    env.loaded(&app).await;
    // Tables and columns come from MDP, custom columns included, with suggested names.
    let (s, t) = req(&env, &app, "GET", "/api/connections/demo/tables/MITMAS", None).await;
    assert_eq!(s, 200);
    assert_eq!(t["source"], "mdp");
    let zz = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "MMZZCO")
        .expect("custom column");
    assert!(zz["suggestedName"].as_str().is_some());
    assert_eq!(t["primaryKey"], json!(["MMCONO", "MMITNO"]));
    let (s, list) = req(&env, &app, "GET", "/api/connections/demo/tables?filter=MIT", None).await;
    assert_eq!(s, 200);
    assert!(list["tables"].as_array().unwrap().iter().any(|t| t["name"] == "MITBAL"));

    // Preview before saving.
    let (s, p) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings/preview?limit=10",
        Some(customer_like_item_mapping()),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let previews = p["messages"].as_array().unwrap();
    assert_eq!(previews.len(), 10);
    assert!(previews
        .iter()
        .any(|m| m["type"] == "ActiveItemUpdated" && m["data"]["status"] == "active"));

    let (s, v) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings",
        Some(customer_like_item_mapping()),
    )
    .await;
    assert_eq!((s, v["version"].clone()), (201, json!(1)), "{v}");
    let (s, v) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings/ActiveItem/deploy",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let active: Vec<_> = env
        .sim
        .rows("MITMAS")
        .into_iter()
        .filter(|r| r["MMSTAT"] == "20")
        .collect();
    eventually("the new read model to fill", || async {
        let (_, page) = env
            .get(&app, "/api/connections/demo/read-models/active-items?limit=1000")
            .await;
        page["items"].as_array().map(|a| a.len()) == Some(active.len())
    })
    .await;
    let (_, page) = env
        .get(&app, "/api/connections/demo/read-models/active-items?limit=1000")
        .await;
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "active" && i.get("qualityCode").is_some()));

    // An item leaving the filter becomes ActiveItemDeleted.
    let leaving = active[0]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &leaving], &[("MMSTAT", "90")])
        .unwrap();
    let key = format!("100|{leaving}");
    eventually("the item to leave the filtered read model", || async {
        env.get(
            &app,
            &format!("/api/connections/demo/read-models/active-items/100%7C{leaving}"),
        )
        .await
        .0 == 404
    })
    .await;
    let messages = env.all_messages(&app).await;
    let types: Vec<&str> = of_subject(&messages, &key)
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    let active_types: Vec<&str> = types.iter().copied().filter(|t| t.starts_with("ActiveItem")).collect();
    assert_eq!(
        active_types,
        vec!["ActiveItemUpdated", "ActiveItemDeleted"],
        "{types:?}"
    );
    assert!(
        types.contains(&"ItemUpdated"),
        "the default mapping still runs: {types:?}"
    );

    // The list, the AsyncAPI document and the schemas know the new message types.
    let (_, list) = req(&env, &app, "GET", "/api/connections/demo/mappings", None).await;
    let m = list["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "ActiveItem")
        .unwrap()
        .clone();
    assert_eq!(m["deployedVersion"], 1);
    assert_eq!(m["resource"], "active-items");
    let (s, doc) = req(&env, &app, "GET", "/api/connections/demo/asyncapi", None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["asyncapi"], "3.1.0");
    assert_eq!(doc["channels"]["events"]["address"], "erp-bridge.demo.events");
    let status_schema = &doc["components"]["messages"]["ActiveItemUpdated"]["payload"]["properties"]["status"];
    assert_eq!(
        status_schema["enum"],
        json!(["preliminary", "active", "blocked", "deactivated"])
    );
    assert!(doc["components"]["messages"]["UpdateItem"]["payload"].is_object());
    app.shutdown().await;
}

#[tokio::test]
async fn versions_deploy_re_export_undeploy_and_delete() {
    let env = Env::new(25).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let before = env.all_messages(&app).await.len();
    assert_eq!(before, 25);
    // Version 2 adds a field; deploying it re-exports the table with the new shape.
    let mut v2 = json!(mapping::spec::default_item_mapping());
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"column": "MMITGR", "name": "itemGroup"}));
    let (s, v) = req(&env, &app, "PUT", "/api/connections/demo/mappings/Item", Some(v2)).await;
    assert_eq!((s, v["version"].clone()), (200, json!(2)), "{v}");
    let (_, shown) = req(&env, &app, "GET", "/api/connections/demo/mappings/Item", None).await;
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    assert_eq!(shown["deployedVersion"], 1, "saving does not deploy");
    req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings/Item/deploy",
        Some(json!({})),
    )
    .await;
    eventually("the re-export with the new field", || async {
        env.all_messages(&app)
            .await
            .iter()
            .filter(|m| m["data"].get("itemGroup").is_some())
            .count()
            == 25
    })
    .await;
    // Re-export of the same version emits every row again.
    let n = env.all_messages(&app).await.len();
    let (s, v) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/re-export",
        Some(json!({"mappings": ["Item"]})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    eventually("every row re-emitted", || async {
        env.all_messages(&app).await.len() == n + 25
    })
    .await;
    let (s, v) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/re-export",
        Some(json!({"mappings": ["Nope"]})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    // Deploy an older version explicitly; unknown versions are named.
    let (s, v) = req(
        &env,
        &app,
        "POST",
        "/api/connections/demo/mappings/Item/deploy",
        Some(json!({"version": 7})),
    )
    .await;
    assert_eq!(s, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("no version 7"));
    // Undeploy: the read model disappears from the API; messages stay.
    let (s, _) = req(&env, &app, "POST", "/api/connections/demo/mappings/Item/undeploy", None).await;
    assert_eq!(s, 200);
    assert_eq!(env.get(&app, "/api/connections/demo/read-models/items").await.0, 404);
    let (s, _) = req(&env, &app, "DELETE", "/api/connections/demo/mappings/Item", None).await;
    assert_eq!(s, 204);
    assert_eq!(
        req(&env, &app, "GET", "/api/connections/demo/mappings/Item", None)
            .await
            .0,
        404
    );
    assert!(env.all_messages(&app).await.len() >= n + 25);
    app.shutdown().await;
}

#[tokio::test]
async fn mapping_files_are_applied_at_start_and_changes_become_versions() {
    let env = Env::new(15).await;
    let dir = env.dir.path().join("mappings");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("item-status.toml"),
        "name = \"ItemStatus\"\ntable = \"MITMAS\"\n\n[[fields]]\ncolumn = \"MMITNO\"\nname = \"itemNumber\"\n\n[[fields]]\ncolumn = \"MMSTAT\"\nname = \"status\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("item-unit.yaml"),
        "name: ItemUnit\ntable: MITMAS\nfields:\n  - column: MMITNO\n    name: itemNumber\n  - column: MMUNMS\n    name: unit\n",
    )
    .unwrap();
    let mut cfg = env.config();
    cfg.mappings_dir = Some(dir.clone());
    let app = App::start(cfg.clone()).await.unwrap();
    eventually("the file mapping's read model", || async {
        env.get(&app, "/api/connections/demo/read-models/item-statuses?limit=100")
            .await
            .1["items"]
            .as_array()
            .map(|a| a.len())
            == Some(15)
    })
    .await;
    let (_, list) = req(&env, &app, "GET", "/api/connections/demo/mappings", None).await;
    let names: Vec<&str> = list["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["ItemStatus", "ItemUnit"],
        "with a mappings folder, the folder is the truth"
    );
    assert!(list["mappings"][0]["updatedBy"].as_str().unwrap().starts_with("file:"));
    app.shutdown().await;
    // Unchanged file: no new version. Changed file: version 2. Broken file: start fails naming it.
    let app = App::start(cfg.clone()).await.unwrap();
    assert_eq!(
        req(&env, &app, "GET", "/api/connections/demo/mappings/ItemStatus", None)
            .await
            .1["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.shutdown().await;
    std::fs::write(
        dir.join("broken.json"),
        r#"{"name": "Broken", "table": "MITMAS", "fields": [{"column": "MMNOPE", "name": "x"}]}"#,
    )
    .unwrap();
    let err = match App::start(cfg).await {
        Ok(_) => panic!("a broken mapping file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("broken.json") && err.contains("MMNOPE"), "{err}");
}

/// `POST .../mappings/{name}/rollback {"version": n}` saves version n's definition again as a
/// new version (history is never rewritten); an unknown version is 404 naming the range.
#[tokio::test]
async fn rollback_saves_an_earlier_version_as_a_new_one() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let base = "/api/connections/demo/mappings";
    let v1 = customer_like_item_mapping();
    let (s, v) = req(&env, &app, "POST", base, Some(v1.clone())).await;
    assert_eq!(s, 201, "{v}");
    let mut v2 = v1.clone();
    v2["fields"][1]["name"] = json!("itemName");
    let (s, v) = req(&env, &app, "PUT", &format!("{base}/ActiveItem"), Some(v2)).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(2)), "{v}");

    let (s, v) = req(
        &env,
        &app,
        "POST",
        &format!("{base}/ActiveItem/rollback"),
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["version"].as_i64(), v["rolledBackTo"].as_i64()), (Some(3), Some(1)));
    let (_, m) = req(&env, &app, "GET", &format!("{base}/ActiveItem"), None).await;
    let versions = m["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[2]["spec"]["fields"][1]["name"], "name", "{m}");
    assert_eq!(
        versions[1]["spec"]["fields"][1]["name"], "itemName",
        "history kept: {m}"
    );

    let (s, v) = req(
        &env,
        &app,
        "POST",
        &format!("{base}/ActiveItem/rollback"),
        Some(json!({"version": 9})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 to 3"), "{v}");
    let (s, v) = req(
        &env,
        &app,
        "POST",
        &format!("{base}/ActiveItem/rollback"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_audit_trail_names_the_token_that_saved_deployed_and_rolled_back() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let (s, t) = req(
        &env,
        &app,
        "POST",
        "/api/tokens",
        Some(json!({"name": "ci pipeline", "scope": "read-write"})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let (id, secret) = (t["id"].as_str().unwrap(), t["token"].as_str().unwrap());
    let by = format!("token:{id} (ci pipeline)");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{}{path}", app.api_url))
            .bearer_auth(secret)
            .json(&body)
            .send()
    };
    let base = "/api/connections/demo/mappings";
    let r = call(reqwest::Method::POST, base, customer_like_item_mapping())
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = call(reqwest::Method::POST, &format!("{base}/ActiveItem/deploy"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = call(
        reqwest::Method::POST,
        &format!("{base}/ActiveItem/rollback"),
        json!({"version": 1}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let (_, m) = req(&env, &app, "GET", &format!("{base}/ActiveItem"), None).await;
    let versions = m["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{m}");
    for v in versions {
        assert_eq!(v["created_by"], by.as_str(), "{m}");
    }
    assert_eq!(m["deployedBy"], by.as_str(), "{m}");
    let (_, list) = req(&env, &app, "GET", base, None).await;
    let listed = list["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "ActiveItem")
        .unwrap_or_else(|| panic!("ActiveItem listed: {list}"))
        .clone();
    assert_eq!(
        (listed["updatedBy"].as_str(), listed["deployedBy"].as_str()),
        (Some(by.as_str()), Some(by.as_str())),
        "{listed}"
    );
    // The file loaded at start keeps its own name.
    let item = list["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Item")
        .cloned();
    assert!(
        item.is_some_and(|i| !i["updatedBy"].as_str().unwrap_or("").starts_with("token:")),
        "{list}"
    );
    app.shutdown().await;
}
