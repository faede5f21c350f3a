//! MI REST v1 and v2 shapes, MMS200MI/CRS610MI/MRS001MI behaviour, audit fields.

mod common;

use common::Harness;
use serde_json::{json, Value};

fn name_values(rec: &Value) -> Vec<(String, String)> {
    rec["NameValue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|nv| {
            (
                nv["Name"].as_str().unwrap().to_string(),
                nv["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn v1_get_item_basic_has_metadata_and_padded_values() {
    let h = Harness::start().await;
    let token = h.token().await;
    let row = h.sim.get("MITMAS", &["100", "A000001"]).unwrap();
    let (status, v) = h
        .get(&token, "/M3/m3api-rest/execute/MMS200MI/GetItmBasic?ITNO=A000001")
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["Program"], "MMS200MI");
    assert_eq!(v["Transaction"], "GetItmBasic");
    let fields = v["Metadata"]["Field"].as_array().unwrap();
    assert_eq!(
        fields[0],
        json!({"@name":"ITNO","@type":"A","@length":15,"@description":"Item number"})
    );
    let pupr = fields.iter().find(|f| f["@name"] == "PUPR").unwrap();
    assert_eq!(
        (pupr["@type"].as_str(), pupr["@length"].as_u64()),
        (Some("N"), Some(17))
    );
    let recs = v["MIRecord"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["RowIndex"], 0);
    let nv = name_values(&recs[0]);
    assert_eq!(nv[0], ("ITNO".to_string(), "A000001        ".to_string()));
    let itds = &nv.iter().find(|(n, _)| n == "ITDS").unwrap().1;
    assert_eq!(itds.len(), 30);
    assert_eq!(itds.trim_end(), row["MMITDS"]);
    let stat = &nv.iter().find(|(n, _)| n == "STAT").unwrap().1;
    assert_eq!(stat.trim_end(), row["MMSTAT"]);
    // Custom columns are not part of MI transactions.
    assert!(!nv.iter().any(|(n, _)| n == "ZZCO"));

    // Matrix options: returncols and excludempty.
    let (_, v) = h
        .get(
            &token,
            "/M3/m3api-rest/execute/MMS200MI/GetItmBasic;returncols=ITNO,STAT;excludempty=false?ITNO=A000001",
        )
        .await;
    let nv = name_values(&v["MIRecord"][0]);
    assert_eq!(nv.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["ITNO", "STAT"]);
    assert_eq!(v["Metadata"]["Field"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn v1_nok_is_http_200_with_m3_padding() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, v) = h
        .get(&token, "/M3/m3api-rest/execute/MMS200MI/GetItmBasic?ITNO=A100")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"@type":"ServerReturnedNOK","@code":"XIM0002","@field":"ITNO","@cfg":null,
               "Message":"Item number A100 does not exist     "})
    );
    let (status, v) = h.get(&token, "/M3/m3api-rest/execute/MMS200MI/LstItmBasic").await;
    assert_eq!(status, 200);
    assert_eq!(v["@type"], "ServerReturnedNOK");
    assert_eq!(
        v["Message"].as_str().unwrap().trim_end(),
        "Transaction LstItmBasic does not exist"
    );
    let (_, v) = h.get(&token, "/M3/m3api-rest/execute/XYZ999MI/Get").await;
    assert_eq!(
        v["Message"].as_str().unwrap().trim_end(),
        "Program XYZ999MI does not exist"
    );
}

#[tokio::test]
async fn lists_honour_maxrecs_and_order() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (_, v) = h
        .get(
            &token,
            "/M3/m3api-rest/execute/MMS200MI/LstItmByItm;maxrecs=3?ITNO=A000010",
        )
        .await;
    let items: Vec<String> = v["MIRecord"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| name_values(r)[0].1.trim_end().to_string())
        .collect();
    assert_eq!(items, ["A000010", "A000011", "A000012"]);
    let rec = |v: &Value| v["results"][0]["records"].as_array().unwrap().len();
    // Default maxrecs is 100; 0 means no limit.
    let (_, v) = h.v2(&token, "MMS200MI/LstItmByItm", &[]).await;
    assert_eq!(rec(&v), 100);
    let (_, v) = h.v2(&token, "MMS200MI/LstItmByItm", &[("maxrecs", "0")]).await;
    assert_eq!(rec(&v), 200);
}

#[tokio::test]
async fn v2_get_results_envelope_and_options() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, v) = h
        .v2(
            &token,
            "MMS200MI/GetItmBasic",
            &[("ITNO", "A000002"), ("returncols", "ITNO,ITDS,STAT")],
        )
        .await;
    assert_eq!(status, 200);
    let row = h.sim.get("MITMAS", &["100", "A000002"]).unwrap();
    assert_eq!(
        v,
        json!({"results":[{"transaction":"GetItmBasic","records":[
                {"ITNO":"A000002","ITDS":row["MMITDS"],"STAT":row["MMSTAT"]}]}],
               "wasTerminated":false,"nrOfSuccessfullTransactions":1,"nrOfFailedTransactions":0})
    );
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/GetItmBasic",
            &[("ITNO", "A000002"), ("returncols", "ITNO"), ("righttrim", "false")],
        )
        .await;
    assert_eq!(v["results"][0]["records"][0]["ITNO"], "A000002        ");

    let (status, v) = h.v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "NOPE")]).await;
    assert_eq!(status, 200);
    let r = &v["results"][0];
    assert_eq!(r["errorCode"], "XIM0002");
    assert_eq!(r["errorField"], "ITNO");
    assert_eq!(r["errorType"], "ServerReturnedNOK");
    assert_eq!(
        r["errorMessage"].as_str().unwrap().trim_end(),
        "Item number NOPE does not exist"
    );
    assert_eq!(v["nrOfFailedTransactions"], 1);

    let (status, _) = h
        .v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000002"), ("bogus", "1")])
        .await;
    assert_eq!(status, 400);
    let (status, _) = h
        .v2(
            &token,
            "MMS200MI/GetItmBasic",
            &[("ITNO", "A000002"), ("maxrecs", "lots")],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn v2_bulk_reports_each_transaction() {
    let h = Harness::start().await;
    let token = h.token().await;
    let body = json!({
        "program": "MMS200MI", "cono": 100, "excludeEmptyValues": false, "rightTrim": true,
        "maxReturnedRecords": 0,
        "transactions": [
            {"transaction": "AddItmBasic", "record": {"ITNO": "NEW-1", "ITDS": "New widget", "STAT": "20",
              "RESP": "JSMITH", "UNMS": "PCS", "ITTY": "FG", "PUPR": "12.50"}},
            {"transaction": "GetItmBasic", "record": {"ITNO": "NEW-1"}, "selectedColumns": ["ITNO", "ITDS", "PUPR", "CHID"]},
            {"transaction": "GetItmBasic", "record": {"ITNO": "MISSING"}},
            {"transaction": "AddItmBasic", "record": {"ITNO": "NEW-1", "ITDS": "Again", "STAT": "20",
              "RESP": "JSMITH", "UNMS": "PCS", "ITTY": "FG"}}
        ]
    });
    let resp = h
        .http
        .post(h.url("/M3/m3api-rest/v2/execute"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["nrOfSuccessfullTransactions"], 2);
    assert_eq!(v["nrOfFailedTransactions"], 2);
    assert_eq!(v["wasTerminated"], false);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["transaction"], "AddItmBasic");
    assert!(r[0].get("errorMessage").is_none());
    assert_eq!(
        r[1]["records"],
        json!([{"ITNO": "NEW-1", "ITDS": "New widget", "PUPR": "12.5", "CHID": "MIUSER"}])
    );
    assert_eq!(r[2]["errorCode"], "XIM0002");
    assert_eq!(r[2]["errorField"], "ITNO");
    assert_eq!(r[2]["notProcessed"], false);
    assert_eq!(r[2]["parameters"], json!({"ITNO": "MISSING"}));
    assert_eq!(r[3]["errorCode"], "XIM0003");
    assert_eq!(
        r[3]["errorMessage"].as_str().unwrap().trim_end(),
        "Item number NEW-1 already exists"
    );

    // Request-level errors are HTTP 400.
    for bad in ["{not json", r#"{"transactions": []}"#] {
        let resp = h
            .http
            .post(h.url("/M3/m3api-rest/v2/execute"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn add_validates_required_fields_and_status() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/AddItmBasic",
            &[
                ("ITNO", "X-1"),
                ("STAT", "20"),
                ("ITDS", "x"),
                ("UNMS", "PCS"),
                ("ITTY", "FG"),
            ],
        )
        .await;
    assert_eq!(v["results"][0]["errorField"], "RESP");
    assert_eq!(
        v["results"][0]["errorMessage"].as_str().unwrap().trim_end(),
        "Responsible must be entered"
    );
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/AddItmBasic",
            &[
                ("ITNO", "X-1"),
                ("STAT", "33"),
                ("ITDS", "x"),
                ("RESP", "ME"),
                ("UNMS", "PCS"),
                ("ITTY", "FG"),
            ],
        )
        .await;
    assert_eq!(v["results"][0]["errorField"], "STAT");
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/AddItmBasic",
            &[
                ("ITNO", "X-1"),
                ("STAT", "20"),
                ("ITDS", "x"),
                ("RESP", "ME"),
                ("UNMS", "PCS"),
                ("ITTY", "FG"),
                ("SAPR", "abc"),
            ],
        )
        .await;
    assert_eq!(v["results"][0]["errorField"], "SAPR");
    assert!(h.sim.get("MITMAS", &["100", "X-1"]).is_none());
}

#[tokio::test]
async fn updates_maintain_audit_fields() {
    let h = Harness::start().await;
    let token = h.token().await;
    let before = h.sim.get("MITMAS", &["100", "A000005"]).unwrap();
    let now_ms = chrono_free_now_ms();
    assert!(
        before["MMLMTS"].parse::<i64>().unwrap() < now_ms,
        "seeded rows are in the past"
    );

    // MI update: blank input leaves a field unchanged.
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/UpdItmBasic",
            &[("ITNO", "A000005"), ("ITDS", "Renamed item"), ("FUDS", "")],
        )
        .await;
    assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    let after = h.sim.get("MITMAS", &["100", "A000005"]).unwrap();
    assert_eq!(after["MMITDS"], "Renamed item");
    assert_eq!(after["MMFUDS"], before["MMFUDS"]);
    assert_eq!(after["MMCHID"], "MIUSER");
    assert_eq!(
        after["MMCHNO"].parse::<u32>().unwrap(),
        before["MMCHNO"].parse::<u32>().unwrap() + 1
    );
    assert_eq!(after["MMRGDT"], before["MMRGDT"]);
    let lmts1: i64 = after["MMLMTS"].parse().unwrap();
    assert!(lmts1 >= now_ms);
    assert_eq!(after["MMLMDT"].len(), 8);

    // Direct update that changes nothing still bumps CHNO and LMTS.
    h.sim.update("MITMAS", &["100", "A000005"], &[]).unwrap();
    let again = h.sim.get("MITMAS", &["100", "A000005"]).unwrap();
    assert_eq!(
        again["MMCHNO"].parse::<u32>().unwrap(),
        after["MMCHNO"].parse::<u32>().unwrap() + 1
    );
    assert!(again["MMLMTS"].parse::<i64>().unwrap() >= lmts1);
    assert_eq!(again["MMCHID"], "TEST");

    // Direct insert.
    h.sim
        .insert(
            "MITMAS",
            &[("MMITNO", "T-1"), ("MMITDS", "Test item"), ("MMPUPR", "001.500")],
        )
        .unwrap();
    let t = h.sim.get("MITMAS", &["100", "T-1"]).unwrap();
    assert_eq!(t["MMCHNO"], "1");
    assert_eq!(t["MMPUPR"], "1.5");
    assert_eq!(t["MMCONO"], "100");
    assert_eq!(t["MMRGDT"], t["MMLMDT"]);
    assert!(t["MMLMTS"].parse::<i64>().unwrap() >= again["MMLMTS"].parse::<i64>().unwrap());
    assert!(matches!(
        h.sim.insert("MITMAS", &[("MMITNO", "T-1")]),
        Err(m3_sim::SimError::DuplicateKey { .. })
    ));
    assert!(matches!(
        h.sim.update("MITMAS", &["100", "T-1"], &[("MMNOPE", "x")]),
        Err(m3_sim::SimError::UnknownColumn { .. })
    ));
    assert!(matches!(
        h.sim.update("MITMAS", &["100"], &[]),
        Err(m3_sim::SimError::KeyArity {
            expected: 2,
            got: 1,
            ..
        })
    ));
}

fn chrono_free_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn delete_then_get_is_xim0002() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim.delete("MITMAS", &["100", "A000007"]).unwrap();
    assert!(h.sim.get("MITMAS", &["100", "A000007"]).is_none());
    let (_, v) = h.v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000007")]).await;
    assert_eq!(v["results"][0]["errorCode"], "XIM0002");

    let (_, v) = h.v2(&token, "MMS200MI/DltItm", &[("ITNO", "A000008")]).await;
    assert_eq!(v["nrOfSuccessfullTransactions"], 1);
    let (_, v) = h
        .get(&token, "/M3/m3api-rest/execute/MMS200MI/GetItmBasic?ITNO=A000008")
        .await;
    assert_eq!(v["@code"], "XIM0002");
    let (_, v) = h.v2(&token, "MMS200MI/DltItm", &[("ITNO", "A000008")]).await;
    assert_eq!(v["results"][0]["errorCode"], "XIM0002");
    assert!(matches!(
        h.sim.delete("MITMAS", &["100", "A000008"]),
        Err(m3_sim::SimError::NotFound { .. })
    ));
}

#[tokio::test]
async fn company_is_honoured() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim
        .insert(
            "MITMAS",
            &[
                ("MMCONO", "200"),
                ("MMITNO", "A000001"),
                ("MMITDS", "Other company item"),
            ],
        )
        .unwrap();
    let (_, v) = h
        .v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000001"), ("cono", "200")])
        .await;
    assert_eq!(v["results"][0]["records"][0]["ITDS"], "Other company item");
    let (_, v) = h
        .v2(&token, "MMS200MI/LstItmByItm", &[("cono", "200"), ("maxrecs", "0")])
        .await;
    assert_eq!(v["results"][0]["records"].as_array().unwrap().len(), 1);
    let (_, v) = h
        .get(
            &token,
            "/M3/m3api-rest/execute/MMS200MI/GetItmBasic;cono=300?ITNO=A000001",
        )
        .await;
    assert_eq!(v["@code"], "XIM0002");
}

#[tokio::test]
async fn list_by_change_date_customers_and_field_info() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim
        .update("MITMAS", &["100", "A000003"], &[("MMSTAT", "50")])
        .unwrap();
    let today = h.sim.get("MITMAS", &["100", "A000003"]).unwrap()["MMLMDT"].clone();
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/LstItmByChgDate",
            &[("FLMD", &today), ("TLMD", &today), ("maxrecs", "0")],
        )
        .await;
    let recs = v["results"][0]["records"].as_array().unwrap();
    let got: Vec<&str> = recs.iter().map(|r| r["ITNO"].as_str().unwrap()).collect();
    // Seeded rows may also have been changed earlier today.
    let expected: Vec<String> = h
        .sim
        .rows("MITMAS")
        .into_iter()
        .filter(|r| r["MMLMDT"] == today)
        .map(|r| r["MMITNO"].clone())
        .collect();
    assert_eq!(got, expected);
    let a3 = recs.iter().find(|r| r["ITNO"] == "A000003").unwrap();
    assert_eq!(a3["STAT"], "50");

    // CRS610MI on OCUSMA.
    let (_, v) = h
        .v2(
            &token,
            "CRS610MI/Add",
            &[("CUNO", "NEWCUST"), ("CUNM", "New Customer Ltd"), ("CSCD", "GB")],
        )
        .await;
    assert_eq!(v["nrOfSuccessfullTransactions"], 1, "{v}");
    let (_, v) = h.v2(&token, "CRS610MI/GetBasicData", &[("CUNO", "NEWCUST")]).await;
    assert_eq!(v["results"][0]["records"][0]["CUNM"], "New Customer Ltd");
    assert_eq!(v["results"][0]["records"][0]["STAT"], "20");

    // MRS001MI describes transactions.
    let (_, v) = h
        .v2(
            &token,
            "MRS001MI/LstAdtFieldInf",
            &[("MINM", "MMS200MI"), ("TRNM", "GetItmBasic"), ("TRTP", "O")],
        )
        .await;
    let first = &v["results"][0]["records"][0];
    assert_eq!(
        *first,
        json!({"FLNM": "ITNO", "TYPE": "A", "LENG": "15", "FLDS": "Item number"})
    );
}
