//! `erp-bridge mapping ...` as a user runs it: the real binary against an erp-bridge started
//! in-process (list, apply, preview, schema from the server), offline schemas, and the errors
//! for a broken file, an unreachable server and a refused token.

use std::path::{Path, PathBuf};

use crate::helpers::{eventually, Env, ADMIN_TOKEN};
use serde_json::{json, Value};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `erp-bridge mapping <args>` with a clean environment for its own variables.
async fn erp_bridge(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
        .arg("mapping")
        .args(args)
        .env_remove("ERP_BRIDGE_URL")
        .env_remove("ERP_BRIDGE_TOKEN")
        .env_remove("ERP_BRIDGE_CONFIG")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the erp-bridge binary runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mapping <command> --url <app> --token <admin> <rest>`.
async fn against(app: &erp_bridge::App, command: &str, rest: &[&str]) -> Run {
    let mut args = vec![command, "--url", app.api_url.as_str(), "--token", ADMIN_TOKEN];
    args.extend_from_slice(rest);
    erp_bridge(&args).await
}

fn item_status_toml(extra_field: bool) -> String {
    let mut s = String::from(
        "name = \"ItemStatus\"\ndescription = \"Status of an item\"\ntable = \"MITMAS\"\n\n\
         [[fields]]\ncolumn = \"MMCONO\"\nname = \"company\"\n\n\
         [[fields]]\ncolumn = \"MMITNO\"\nname = \"itemNumber\"\n\n\
         [[fields]]\ncolumn = \"MMSTAT\"\nname = \"status\"\n",
    );
    if extra_field {
        s.push_str("\n[[fields]]\ncolumn = \"MMITDS\"\nname = \"name\"\n");
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn mapping(env: &Env, app: &erp_bridge::App, name: &str) -> Value {
    let (status, v) = env.get(app, "/api/connections/demo/mappings").await;
    assert_eq!(status, 200, "{v}");
    v["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn apply_creates_deploys_skips_unchanged_files_and_updates_changed_ones() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let file = write(env.dir.path(), "item-status.toml", &item_status_toml(false));

    let r = against(&app, "apply", &[s(&file)]).await;
    assert!(r.ok, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("created `ItemStatus` version 1; deployed version 1"),
        "{}",
        r.stdout
    );
    let m = mapping(&env, &app, "ItemStatus").await;
    assert_eq!(
        (m["latestVersion"].clone(), m["deployedVersion"].clone()),
        (json!(1), json!(1)),
        "{m}"
    );
    // Deployed means running: its read model fills.
    eventually("the applied mapping's read model to fill", || async {
        env.get(&app, "/api/connections/demo/read-models/item-statuses?limit=100")
            .await
            .1["items"]
            .as_array()
            .map(|a| a.len())
            == Some(20)
    })
    .await;

    // The same file again: no new version, nothing redeployed.
    let r = against(&app, "apply", &[s(&file)]).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("`ItemStatus` unchanged (version 1); already deployed"),
        "{}",
        r.stdout
    );
    assert_eq!(mapping(&env, &app, "ItemStatus").await["latestVersion"], 1);

    // A changed file: a new version, saved but not deployed with --no-deploy, then deployed.
    write(env.dir.path(), "item-status.toml", &item_status_toml(true));
    let r = against(&app, "apply", &["--no-deploy", s(&file)]).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("updated `ItemStatus` to version 2; not deployed"),
        "{}",
        r.stdout
    );
    let m = mapping(&env, &app, "ItemStatus").await;
    assert_eq!(
        (m["latestVersion"].clone(), m["deployedVersion"].clone()),
        (json!(2), json!(1)),
        "{m}"
    );
    let r = against(&app, "apply", &[s(&file)]).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("`ItemStatus` unchanged (version 2); deployed version 2"),
        "{}",
        r.stdout
    );
    let m = mapping(&env, &app, "ItemStatus").await;
    assert_eq!(
        (m["latestVersion"].clone(), m["deployedVersion"].clone()),
        (json!(2), json!(2)),
        "{m}"
    );

    // `list` shows both mappings with table, fields, versions and the deployment time.
    let r = against(&app, "list", &[]).await;
    assert!(r.ok, "{}", r.stderr);
    let lines: Vec<Vec<&str>> = r.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines[0],
        vec!["NAME", "TABLE", "FIELDS", "LATEST", "DEPLOYED", "DEPLOYED", "AT"],
        "{}",
        r.stdout
    );
    let row = lines
        .iter()
        .find(|l| l.first() == Some(&"ItemStatus"))
        .unwrap_or_else(|| panic!("no ItemStatus line in\n{}", r.stdout));
    assert_eq!(&row[..5], &["ItemStatus", "MITMAS", "4", "2", "2"], "{}", r.stdout);
    assert_eq!(row[5], m["deployedAt"].as_str().unwrap(), "{}", r.stdout);
    let item = lines
        .iter()
        .find(|l| l.first() == Some(&"Item"))
        .unwrap_or_else(|| panic!("no Item line in\n{}", r.stdout));
    assert_eq!(&item[..5], &["Item", "MITMAS", "7", "1", "1"], "{}", r.stdout);
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    app.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_fails_with_the_field_named_and_the_others_still_apply() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let broken = write(
        env.dir.path(),
        "broken.json",
        r#"{"name": "Broken", "table": "MITMAS", "fields": [
            {"column": "MMITNO", "name": "itemNumber"},
            {"column": "MMITDX", "name": "name"}]}"#,
    );
    let good = write(env.dir.path(), "item-status.toml", &item_status_toml(false));
    let r = against(&app, "apply", &[s(&broken), s(&good)]).await;
    assert!(!r.ok, "a broken file must fail the run: {}", r.stdout);
    assert!(
        r.stderr.contains(
            "broken.json: server answered HTTP 400: mapping `Broken`: fields[1].column: table MITMAS has no column `MMITDX`; did you mean `MMITDS`?"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("1 of 2 mapping files failed"), "{}", r.stderr);
    assert!(
        r.stdout.contains("item-status.toml: created `ItemStatus`"),
        "{}",
        r.stdout
    );
    assert!(mapping(&env, &app, "Broken").await.is_null());
    assert_eq!(mapping(&env, &app, "ItemStatus").await["deployedVersion"], 1);

    // A file that does not parse fails before the server is asked, naming the key.
    let typo = write(
        env.dir.path(),
        "typo.toml",
        "name = \"Typo\"\ntable = \"MITMAS\"\n[[fields]]\ncolum = \"MMITNO\"\nname = \"x\"\n",
    );
    let r = against(&app, "apply", &[s(&typo)]).await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("typo.toml") && r.stderr.contains("unknown field `colum`"),
        "{}",
        r.stderr
    );
    app.shutdown().await;
}

#[tokio::test]
async fn preview_prints_the_messages_of_the_first_rows() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let file = write(env.dir.path(), "item-status.toml", &item_status_toml(false));
    let r = against(&app, "preview", &[s(&file), "--limit", "3"]).await;
    assert!(r.ok, "{}", r.stderr);
    let messages: Value = serde_json::from_str(&r.stdout).expect("pretty JSON on stdout");
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 3, "{}", r.stdout);
    let first_key = env.sim.rows("MITMAS")[0]["MMITNO"].clone();
    assert_eq!(messages[0]["subject"], format!("100|{first_key}"), "{}", r.stdout);
    for m in messages {
        assert_eq!(m["type"], "ItemStatusUpdated", "{m}");
        let data = m["data"].as_object().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["company", "itemNumber", "status"], "{m}");
    }
    // Nothing was saved.
    assert!(mapping(&env, &app, "ItemStatus").await.is_null());
    app.shutdown().await;
}

#[tokio::test]
async fn schema_offline_writes_the_updated_and_deleted_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "item-status.toml", &item_status_toml(true));
    let out = dir.path().join("schemas");
    // No server: the URL points nowhere and is not used.
    let r = erp_bridge(&["schema", s(&file), "--out", s(&out), "--url", "http://127.0.0.1:9"]).await;
    assert!(r.ok, "{}", r.stderr);
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        vec!["ItemStatusDeleted.schema.json", "ItemStatusUpdated.schema.json"]
    );
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).expect("valid JSON")
    };
    let updated = read("ItemStatusUpdated.schema.json");
    assert_eq!(updated["title"], "ItemStatusUpdated");
    assert_eq!(updated["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(updated["required"], json!(["company", "itemNumber", "status", "name"]));
    assert_eq!(updated["additionalProperties"], false);
    let deleted = read("ItemStatusDeleted.schema.json");
    assert_eq!(deleted["required"], json!(["company", "itemNumber"]));

    // A mapping that does not compile writes nothing and names the column.
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"name": "Bad", "table": "MITMAS", "fields": [{"column": "MMITDX", "name": "name"}]}"#,
    );
    let out2 = dir.path().join("none");
    let r = erp_bridge(&["schema", s(&bad), "--out", s(&out2)]).await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("MMITDX") && r.stderr.contains("fields[0].column"),
        "{}",
        r.stderr
    );
    assert!(!out2.exists());
}

#[tokio::test]
async fn schema_from_the_server_writes_asyncapi_and_message_schemas() {
    let env = Env::new(10).await;
    let app = env.start().await;
    let out = env.dir.path().join("from-server");
    let r = against(&app, "schema", &["--out", s(&out)]).await;
    assert!(r.ok, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(out.join("asyncapi.json")).unwrap()).unwrap();
    assert_eq!(doc["asyncapi"], "3.1.0");
    let updated: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ItemUpdated.schema.json")).unwrap()).unwrap();
    assert_eq!(updated, doc["components"]["messages"]["ItemUpdated"]["payload"]);
    assert_eq!(
        updated["required"],
        json!([
            "company",
            "itemNumber",
            "name",
            "description",
            "status",
            "unit",
            "itemType"
        ])
    );
    assert!(out.join("ItemDeleted.schema.json").exists());
    app.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_server_and_a_refused_token_are_explained() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let r = erp_bridge(&["list", "--url", &url, "--token", ADMIN_TOKEN]).await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains(&format!("cannot reach the erp-bridge server at {url}: ")),
        "{}",
        r.stderr
    );

    let env = Env::new(5).await;
    let app = env.start().await;
    let r = erp_bridge(&["list", "--url", &app.api_url, "--token", "ebt_testadmin.wrong"]).await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("the server refused the token (ERP_BRIDGE_TOKEN / --token)"),
        "{}",
        r.stderr
    );
    // The token can come from the environment, like the URL.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
        .args(["mapping", "list"])
        .env("ERP_BRIDGE_URL", &app.api_url)
        .env("ERP_BRIDGE_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Item"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_data_folder_is_refused_naming_the_holder() {
    let env = Env::new(5).await;
    let app = env.start().await;
    let data_dir = env.config().data_dir;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_erp-bridge"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env_remove("ERP_BRIDGE_CONFIG")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second process must not start: {stderr}");
    assert!(
        stderr.contains(&format!(
            "in use by another erp-bridge process (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );
    // Once the first has stopped, the folder is free again.
    app.shutdown().await;
    let app = env.start().await;
    app.shutdown().await;
}
