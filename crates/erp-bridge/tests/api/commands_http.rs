//! Commands submitted over HTTP: validation with field-named errors, M3 transactions, M3's NOK
//! answers in receipts, and deduplication by command id.

use crate::helpers::{eventually, Env};
use serde_json::json;

#[tokio::test]
async fn a_command_changes_the_item_in_m3_and_the_change_comes_back_as_a_message() {
    let env = Env::new(50).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let itno = env.sim.rows("MITMAS")[5]["MMITNO"].clone();
    let cmd =
        json!({"commandId": "c-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "Set by a command"}});
    let (s, receipt) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!(s, 200, "{receipt}");
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(receipt["commandId"], "c-1");
    let row = env.sim.get("MITMAS", &["100", &itno]).unwrap();
    assert_eq!(row["MMITDS"], "Set by a command");
    assert_eq!(row["MMCHID"], "MIUSER");
    let chno = row["MMCHNO"].clone();
    // The same command id again: the stored receipt, no second transaction.
    let (s, again) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!(s, 200);
    assert_eq!(again, receipt);
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMCHNO"], chno);
    // And M3's change flows back out as a message.
    let key = format!("100|{itno}");
    eventually("the commanded change as a message", || async {
        env.all_messages(&app)
            .await
            .iter()
            .any(|m| m["subject"] == key.as_str() && m["data"]["name"] == "Set by a command")
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_commands_are_rejected_naming_the_problem_and_m3_refusals_are_failed() {
    let env = Env::new(20).await;
    let app = env.start().await;
    let cases = [
        ("{not json", 400, "invalid_json", "line 1 column 2"),
        (
            r#"{"command":"UpdateItem","data":{}}"#,
            400,
            "invalid_command",
            "commandId: expected a non-empty string",
        ),
        (
            r#"{"commandId":"x1","command":"UpdateItm","data":{}}"#,
            400,
            "unknown_command",
            "unknown command `UpdateItm`; did you mean `UpdateItem`?",
        ),
        (
            r#"{"commandId":"x2","command":"UpdateItem","data":{"name":"n"}}"#,
            400,
            "missing_field",
            "data.itemNumber: required",
        ),
        (
            r#"{"commandId":"x3","command":"UpdateItem","data":{"itemNumber":42}}"#,
            400,
            "wrong_type",
            "data.itemNumber: expected a string, got 42",
        ),
        (
            r#"{"commandId":"x4","command":"UpdateItem","data":{"itemNumber":"A1","colour":"red"}}"#,
            400,
            "unknown_field",
            "data.colour: not a parameter of UpdateItem",
        ),
        (
            r#"{"commandId":"x5","command":"UpdateItem","data":{"itemNumber":"NO-SUCH-ITEM","name":"n"}}"#,
            422,
            "XIM0002",
            "does not exist",
        ),
    ];
    for (body, status, code, text) in cases {
        let (s, r) = env.post(&app, "/api/connections/demo/commands", body).await;
        assert_eq!(s, status, "{body} -> {r}");
        assert_eq!(r["error"]["code"], code, "{body} -> {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{body} -> {message}");
        let expected_status = if status == 400 { "rejected" } else { "failed" };
        assert_eq!(r["status"], expected_status);
    }
    let (_, nok) = env
        .post(
            &app,
            "/api/connections/demo/commands",
            r#"{"commandId":"x6","command":"UpdateItem","data":{"itemNumber":"NO-SUCH-ITEM"}}"#,
        )
        .await;
    assert_eq!(nok["error"]["field"], "ITNO", "{nok}");
    let (s, list) = env.get(&app, "/api/connections/demo/commands").await;
    assert_eq!(s, 200);
    assert!(list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "CreateItem"));
    app.shutdown().await;
}

fn create_item(id: &str, itno: &str) -> String {
    json!({"commandId": id, "command": "CreateItem", "data": {
        "itemNumber": itno, "name": "New widget", "status": "20", "unit": "PCS",
        "itemType": "FG", "responsible": "JSMITH"}})
    .to_string()
}

#[tokio::test]
async fn a_create_that_m3_ran_before_the_gateway_answered_504_is_unknown_and_never_retried() {
    let env = Env::new(20).await;
    let app = env.start().await;
    env.sim.set_faults(m3_sim::Faults {
        execute_then_timeout: Some(20),
        ..Default::default()
    });
    let (s, receipt) = env
        .post(&app, "/api/connections/demo/commands", &create_item("u-1", "NEW-1"))
        .await;
    assert_eq!(s, 502, "{receipt}");
    assert_eq!(receipt["status"], "unknown", "{receipt}");
    assert_eq!(receipt["error"]["code"], "m3_http_504", "{receipt}");
    assert!(
        receipt["error"]["message"].as_str().unwrap().contains("HTTP 504"),
        "{receipt}"
    );
    assert_eq!(receipt["sent"]["program"], "MMS200MI");
    assert_eq!(receipt["sent"]["transaction"], "AddItmBasic");
    assert_eq!(receipt["sent"]["inputs"]["ITNO"], "NEW-1");
    assert_eq!(receipt["sent"]["inputs"]["RESP"], "JSMITH");
    let check = receipt["check"].as_str().unwrap();
    assert!(
        check.starts_with("run MMS200MI/GetItmBasic with ITNO=NEW-1 to see whether the item exists"),
        "{check}"
    );
    // M3 did create it, once: the command was not sent again.
    assert_eq!(
        env.sim.get("MITMAS", &["100", "NEW-1"]).unwrap()["MMITDS"],
        "New widget"
    );
    assert_eq!(env.sim.mi_calls("MMS200MI", "AddItmBasic"), 1);

    // The same command id again, M3 healthy now: the stored unknown receipt, nothing sent.
    env.sim.set_faults(m3_sim::Faults::default());
    let (s, again) = env
        .post(&app, "/api/connections/demo/commands", &create_item("u-1", "NEW-1"))
        .await;
    assert_eq!(s, 502, "{again}");
    assert_eq!(again, receipt);
    assert_eq!(env.sim.mi_calls("MMS200MI", "AddItmBasic"), 1);

    // A refusal by M3 stays `failed`, with M3's code: only ambiguous failures are `unknown`.
    let (s, refused) = env
        .post(&app, "/api/connections/demo/commands", &create_item("u-2", "NEW-1"))
        .await;
    assert_eq!(s, 422, "{refused}");
    assert_eq!(refused["status"], "failed");
    assert!(!refused["error"]["code"].as_str().unwrap().is_empty(), "{refused}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_update_answered_504_is_retried() {
    let env = Env::new(20).await;
    let app = env.start().await;
    let itno = env.sim.rows("MITMAS")[3]["MMITNO"].clone();
    env.sim.set_faults(m3_sim::Faults {
        execute_then_timeout: Some(20),
        ..Default::default()
    });
    let cmd = json!({"commandId": "i-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "Retried"}});
    let (s, receipt) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!(s, 503, "{receipt}");
    assert_eq!(receipt["status"], "failed", "{receipt}");
    assert_eq!(receipt["error"]["code"], "m3_unavailable", "{receipt}");
    assert!(receipt.get("check").is_none(), "{receipt}");
    let calls = env.sim.mi_calls("MMS200MI", "UpdItmBasic");
    assert!(calls >= 2, "UpdItmBasic reached the simulator {calls} time(s)");
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"], "Retried");
    app.shutdown().await;
}

#[tokio::test]
async fn a_value_longer_than_its_mi_field_is_a_400_naming_the_field_and_m3_is_not_called() {
    let env = Env::new(20).await;
    let app = env.start().await;
    let itno = env.sim.rows("MITMAS")[2]["MMITNO"].clone();
    let before = env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"].clone();
    let long = "x".repeat(100_000);
    let cmd = json!({"commandId": "long-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": long}});
    let (s, r) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!(s, 400, "{r}");
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(r["error"]["code"], "too_long", "{r}");
    assert_eq!(r["error"]["field"], "data.name", "{r}");
    assert_eq!(r["error"]["length"], 100_000, "{r}");
    assert_eq!(r["error"]["maxLength"], 30, "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("data.name: 100000 characters; MI field ITDS of MMS200MI/UpdItmBasic takes at most 30"),
        "{message}"
    );
    // One character over is refused too; exactly the length goes through.
    let cmd =
        json!({"commandId": "long-2", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "y".repeat(31)}});
    let (s, r) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!((s, r["error"]["length"].clone()), (400, json!(31)), "{r}");
    assert_eq!(env.sim.mi_calls("MMS200MI", "UpdItmBasic"), 0, "M3 was called");
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"], before);
    let cmd =
        json!({"commandId": "long-3", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "z".repeat(30)}});
    let (s, r) = env.post(&app, "/api/connections/demo/commands", &cmd.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"],
        "z".repeat(30)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_command_id_reused_with_other_data_is_a_409_showing_the_stored_receipt() {
    let env = Env::new(20).await;
    let app = env.start().await;
    let itno = env.sim.rows("MITMAS")[4]["MMITNO"].clone();
    let first = json!({"commandId": "r-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "First"}});
    let (s, receipt) = env
        .post(&app, "/api/connections/demo/commands", &first.to_string())
        .await;
    assert_eq!(s, 200, "{receipt}");
    assert_eq!(env.sim.mi_calls("MMS200MI", "UpdItmBasic"), 1);

    // The same command, its keys in another order: a redelivery, answered from the store.
    let same = format!(
        r#"{{"data": {{"name": "First", "itemNumber": "{itno}"}}, "command": "UpdateItem", "commandId": "r-1"}}"#
    );
    let (s, again) = env.post(&app, "/api/connections/demo/commands", &same).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, receipt);

    // The same id with other data: refused, showing what the id was used for; M3 not called.
    let other = json!({"commandId": "r-1", "command": "UpdateItem", "data": {"itemNumber": itno, "name": "Second"}});
    let (s, conflict) = env
        .post(&app, "/api/connections/demo/commands", &other.to_string())
        .await;
    assert_eq!(s, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "command_id_reused", "{conflict}");
    let message = conflict["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("commandId: `r-1` was used before"), "{message}");
    assert_eq!(conflict["receipt"], receipt, "{conflict}");
    // Another command under the same id is a reuse too.
    let create = create_item("r-1", "NEW-R1");
    let (s, conflict) = env.post(&app, "/api/connections/demo/commands", &create).await;
    assert_eq!(s, 409, "{conflict}");
    assert_eq!(conflict["receipt"], receipt, "{conflict}");
    assert_eq!(env.sim.mi_calls("MMS200MI", "UpdItmBasic"), 1);
    assert_eq!(env.sim.mi_calls("MMS200MI", "AddItmBasic"), 0);
    assert_eq!(env.sim.get("MITMAS", &["100", &itno]).unwrap()["MMITDS"], "First");
    app.shutdown().await;
}

#[tokio::test]
async fn receipts_never_carry_an_empty_code_not_even_stored_ones() {
    let env = Env::new(20).await;
    // A receipt recorded by an earlier version, with M3's empty code and no request hash.
    let cfg = env.config();
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let store = store::Store::open(&cfg.data_dir.join("erp-bridge.db")).await.unwrap();
    let legacy = json!({"commandId": "old-1", "command": "UpdateItem", "status": "failed",
        "error": {"code": "", "field": "ITNO", "message": "Item number GHOST does not exist"},
        "result": null, "processedAt": "2026-01-01T00:00:00.000Z"});
    assert!(store
        .record_command("demo", "old-1", "UpdateItem", "failed", &legacy.to_string(), None)
        .await
        .unwrap());
    drop(store);
    let app = env.start().await;
    let cmd = r#"{"commandId":"old-1","command":"UpdateItem","data":{"itemNumber":"GHOST"}}"#;
    let (s, r) = env.post(&app, "/api/connections/demo/commands", cmd).await;
    assert_eq!(s, 422, "{r}");
    assert_eq!(r["error"]["code"], "m3_nok", "{r}");
    assert_eq!(r["error"]["message"], "Item number GHOST does not exist", "{r}");
    // M3 refusing without a code, now: a command mapping of a transaction M3 lacks, saved while
    // M3 could not check it.
    env.sim.set_faults(m3_sim::Faults {
        gateway_timeout: Some(1),
        ..Default::default()
    });
    let mapping = json!({"name": "Ghost", "program": "MMS200MI", "transaction": "NoSuchTrn",
        "parameters": [{"field": "itemNumber", "mi": "ITNO", "required": true}]});
    let (s, saved) = env
        .post(&app, "/api/connections/demo/command-mappings", &mapping.to_string())
        .await;
    assert!((200..300).contains(&s), "{s} {saved}");
    env.sim.set_faults(m3_sim::Faults::default());
    let (s, r) = env
        .post(
            &app,
            "/api/connections/demo/commands",
            r#"{"commandId":"new-1","command":"Ghost","data":{"itemNumber":"A1"}}"#,
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert_eq!(r["error"]["code"], "m3_nok", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchTrn does not exist"),
        "{r}"
    );
    app.shutdown().await;
}
