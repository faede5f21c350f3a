//! The OpenAPI document of a connection describes what it really serves: every `$ref` resolves,
//! every read model of a deployed mapping has its paths, and real answers fit the schemas.

use crate::helpers::Env;
use serde_json::Value;

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

/// A small check of `value` against an object schema: no unknown property, every required one
/// present, JSON types as declared.
fn fits(schema: &Value, value: &Value) -> Result<(), String> {
    let props = schema["properties"].as_object().ok_or("schema without properties")?;
    let obj = value.as_object().ok_or("not an object")?;
    for r in schema["required"].as_array().unwrap() {
        if !obj.contains_key(r.as_str().unwrap()) {
            return Err(format!("required property {r} missing"));
        }
    }
    for (k, v) in obj {
        let s = props.get(k).ok_or(format!("property {k} not in the schema"))?;
        let types: Vec<&str> = match &s["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => false,
        });
        if !ok {
            return Err(format!("property {k} = {v} is not {types:?}"));
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_connection_serves() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let (s, doc) = env.get(&app, "/api/connections/demo/openapi.json").await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {r}");
    }
    let paths = doc["paths"].as_object().unwrap();
    let list = &paths["/api/connections/demo/read-models/items"]["get"];
    let by_key = &paths["/api/connections/demo/read-models/items/{key}"]["get"];
    assert!(list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "itemNumber"));
    let item_schema = &doc["components"]["schemas"]["Item"];
    // Real answers fit the schema; a wrong answer would not.
    let (_, page) = env.get(&app, "/api/connections/demo/read-models/items?limit=5").await;
    for item in page["items"].as_array().unwrap() {
        fits(item_schema, item).unwrap();
    }
    assert!(fits(item_schema, &serde_json::json!({"itemNumber": 5})).is_err());
    assert!(by_key["responses"]["404"].is_object());
    assert!(paths["/api/connections/demo/commands"]["post"]["requestBody"].is_object());
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
    app.shutdown().await;
}
