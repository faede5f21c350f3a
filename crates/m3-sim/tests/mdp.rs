//! Metadata Publisher shapes: tables, columns (with custom ones), index keys.

mod common;

use common::Harness;
use serde_json::{json, Value};

#[tokio::test]
async fn get_tables_filters_by_prefix() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, v) = h.get(&token, "/M3/mdprest/les/getTables?filter=MIT").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tableName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["MITBAL", "MITMAS", "MITWHL"]);
    let mitmas = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tableName"] == "MITMAS")
        .unwrap();
    assert_eq!(
        *mitmas,
        json!({"tableName":"MITMAS","tableComponent":"MVX","tableCategory":"Master file",
               "tableDescription":"Item master","tableMaintainedBy":"MMS001"})
    );
    let (_, v) = h.get(&token, "/M3/mdprest/les/getTables?filter=CUGEX").await;
    assert_eq!(v["list"][0]["tableName"], "CUGEX1");
    let (_, v) = h.get(&token, "/M3/mdprest/les/getTables").await;
    assert_eq!(v["list"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn columns_show_types_keys_and_custom_fields() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, v) = h
        .get(&token, "/M3/mdprest/les/getColumnsUsedByTable/MITMAS/MVX?langId=GB")
        .await;
    assert_eq!(status, 200);
    let list = v["list"].as_array().unwrap();
    assert_eq!(
        list[0],
        json!({"columnName":"MMCONO","description":"Company","dataType":"Decimal","length":"3",
               "decimals":"","editCode":"4","indexes":"00,10,20"})
    );
    assert_eq!(list[1]["columnName"], "MMITNO");
    assert_eq!(list[1]["dataType"], "String");
    assert_eq!(list[1]["length"], "15");
    let col = |n: &str| list.iter().find(|c| c["columnName"] == n).unwrap().clone();
    assert_eq!(col("MMPUPR")["decimals"], "6");
    assert_eq!(col("MMLMDT")["dataType"], "Decimal");
    assert_eq!(col("MMZZCO")["description"], "Country of origin (custom)");
    let key: Vec<&str> = list
        .iter()
        .filter(|c| c["indexes"].as_str().unwrap().split(',').any(|i| i == "00"))
        .map(|c| c["columnName"].as_str().unwrap())
        .collect();
    assert_eq!(key, ["MMCONO", "MMITNO"]);
    // Custom columns are not in the standard catalogue.
    let catalogue = mapping::catalog::standard_table("MITMAS").unwrap();
    assert!(catalogue.column("MMZZCO").is_none());
    assert_eq!(list.len(), catalogue.columns.len() + 2);

    let (_, v) = h
        .get(&token, "/M3/mdprest/les/getColumnsUsedByTable/OOLINE/MVX?langId=GB")
        .await;
    let key: Vec<&str> = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["indexes"].as_str().unwrap().contains("00"))
        .map(|c| c["columnName"].as_str().unwrap())
        .collect();
    assert_eq!(key, ["OBCONO", "OBORNO", "OBPONR", "OBPOSX"]);
    let (_, v) = h.get(&token, "/M3/mdprest/les/getColumnsUsedByTable/NOSUCH/MVX").await;
    assert_eq!(v, json!({"list": []}));
}

#[tokio::test]
async fn index_keys() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (status, v) = h.get(&token, "/M3/mdprest/les/getIndexKeys/MITMAS00/MVX").await;
    assert_eq!(status, 200);
    let cols: Vec<&str> = v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["columnName"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["MMCONO", "MMITNO"]);
    assert_eq!(v["list"][1]["keySequence"], "2");
    let (_, v) = h.get(&token, "/M3/mdprest/les/getIndexKeys/CUGEX100/MVX").await;
    assert_eq!(v["list"].as_array().unwrap().len(), 10);
    let (_, v): (u16, Value) = h.get(&token, "/M3/mdprest/les/getIndexKeys/MITMAS99/MVX").await;
    assert_eq!(v["list"].as_array().unwrap().len(), 0);
}
