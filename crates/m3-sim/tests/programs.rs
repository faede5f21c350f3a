//! MMS200MI/LstItmByChgDate bounds, CRS620MI suppliers and OIS100MI order heads and lines.

mod common;

use common::Harness;
use serde_json::Value;

fn records(v: &Value) -> &Vec<Value> {
    v["results"][0]["records"].as_array().unwrap()
}

fn field<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    records(v).iter().map(|r| r[name].as_str().unwrap()).collect()
}

#[tokio::test]
async fn lst_itm_by_chg_date_honours_from_and_to() {
    let h = Harness::start().await;
    let token = h.token().await;
    let rows = h.sim.rows("MITMAS");
    let mut dates: Vec<u32> = rows.iter().map(|r| r["MMLMDT"].parse().unwrap()).collect();
    dates.sort();
    let (lo, hi) = (dates[dates.len() / 4], dates[dates.len() * 3 / 4]);
    let expect = |f: &dyn Fn(u32) -> bool| -> Vec<String> {
        let mut sel: Vec<(u32, String)> = rows
            .iter()
            .map(|r| (r["MMLMDT"].parse::<u32>().unwrap(), r["MMITNO"].clone()))
            .filter(|(d, _)| f(*d))
            .collect();
        // Index order: change date, then item number order of the primary key.
        sel.sort_by_key(|(d, _)| *d);
        sel.into_iter().map(|(_, i)| i).collect()
    };
    let call = |q: Vec<(&'static str, String)>| {
        let h = &h;
        let token = &token;
        async move {
            let mut q: Vec<(&str, String)> = q;
            q.push(("maxrecs", "0".into()));
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.v2(token, "MMS200MI/LstItmByChgDate", &q).await.1
        }
    };
    let v = call(vec![("FLMD", lo.to_string()), ("TLMD", hi.to_string())]).await;
    let got = field(&v, "ITNO");
    assert_eq!(got, expect(&|d| d >= lo && d <= hi));
    assert!(!got.is_empty() && got.len() < rows.len());
    let dates_out: Vec<u32> = field(&v, "LMDT").iter().map(|d| d.parse().unwrap()).collect();
    assert!(dates_out.windows(2).all(|w| w[0] <= w[1]), "sorted by change date");

    let v = call(vec![("FLMD", hi.to_string())]).await;
    assert_eq!(field(&v, "ITNO"), expect(&|d| d >= hi));
    let v = call(vec![("TLMD", lo.to_string())]).await;
    assert_eq!(field(&v, "ITNO"), expect(&|d| d <= lo));
    let v = call(vec![("FLMD", hi.to_string()), ("TLMD", lo.to_string())]).await;
    assert!(records(&v).is_empty() || lo == hi);
    let v = call(vec![("FLMD", "20261341".into())]).await;
    assert_eq!(v["results"][0]["errorField"], "FLMD");
    // maxrecs limits.
    let (_, v) = h
        .v2(&token, "MMS200MI/LstItmByChgDate", &[("FLMD", "0"), ("maxrecs", "5")])
        .await;
    assert_eq!(records(&v).len(), 5);
}

#[tokio::test]
async fn crs620mi_serves_suppliers_from_cidmas() {
    let h = Harness::start().await;
    let token = h.token().await;
    let suppliers = h.sim.rows("CIDMAS");
    assert!(suppliers.len() >= 5);
    let (_, v) = h.v2(&token, "CRS620MI/LstSuppliers", &[("maxrecs", "0")]).await;
    let expected: Vec<&str> = suppliers.iter().map(|r| r["IDSUNO"].as_str()).collect();
    assert_eq!(field(&v, "SUNO"), expected);
    let (_, v) = h
        .v2(
            &token,
            "CRS620MI/LstSuppliers",
            &[("SUNO", expected[2]), ("maxrecs", "2")],
        )
        .await;
    assert_eq!(field(&v, "SUNO"), &expected[2..4]);

    let s = &suppliers[1];
    let (_, v) = h.v2(&token, "CRS620MI/GetBasicData", &[("SUNO", &s["IDSUNO"])]).await;
    let r = &records(&v)[0];
    assert_eq!(r["SUNM"], s["IDSUNM"].as_str());
    assert_eq!(r["CSCD"], s["IDCSCD"].as_str());
    assert_eq!(r["LMTS"], s["IDLMTS"].as_str());
    let (_, v) = h.v2(&token, "CRS620MI/GetBasicData", &[("SUNO", "NOSUCH")]).await;
    assert_eq!(v["results"][0]["errorField"], "SUNO");
    assert!(v["results"][0]["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("Supplier NOSUCH does not exist"));
    // v1 too, with metadata.
    let (_, v) = h
        .get(
            &token,
            &format!("/M3/m3api-rest/execute/CRS620MI/GetBasicData?SUNO={}", s["IDSUNO"]),
        )
        .await;
    assert_eq!(v["Program"], "CRS620MI");
    assert!(v["Metadata"]["Field"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["@name"] == "SUNM"));
}

#[tokio::test]
async fn ois100mi_serves_order_heads_and_lines() {
    let h = Harness::start().await;
    let token = h.token().await;
    let heads = h.sim.rows("OOHEAD");
    let lines = h.sim.rows("OOLINE");
    let (_, v) = h.v2(&token, "OIS100MI/LstHead", &[("maxrecs", "0")]).await;
    let expected: Vec<&str> = heads.iter().map(|r| r["OAORNO"].as_str()).collect();
    assert_eq!(field(&v, "ORNO"), expected);

    let head = &heads[3];
    let orno = head["OAORNO"].as_str();
    let (_, v) = h.v2(&token, "OIS100MI/GetHead", &[("ORNO", orno)]).await;
    let r = &records(&v)[0];
    assert_eq!(r["CUNO"], head["OACUNO"].as_str());
    assert_eq!(r["NTAM"], head["OANTAM"].as_str());
    assert_eq!(r["ORST"], head["OAORST"].as_str());

    let mine: Vec<&std::collections::BTreeMap<String, String>> = lines.iter().filter(|l| l["OBORNO"] == orno).collect();
    assert!(!mine.is_empty());
    let (_, v) = h.v2(&token, "OIS100MI/LstLine", &[("ORNO", orno)]).await;
    let got: Vec<(String, String)> = records(&v)
        .iter()
        .map(|r| (r["PONR"].as_str().unwrap().into(), r["ITNO"].as_str().unwrap().into()))
        .collect();
    let want: Vec<(String, String)> = mine
        .iter()
        .map(|l| (l["OBPONR"].clone(), l["OBITNO"].clone()))
        .collect();
    assert_eq!(got, want, "only this order's lines, in line order");
    if mine.len() > 1 {
        let (_, v) = h
            .v2(
                &token,
                "OIS100MI/LstLine",
                &[("ORNO", orno), ("PONR", &mine[1]["OBPONR"])],
            )
            .await;
        assert_eq!(records(&v).len(), mine.len() - 1, "starts at PONR");
    }
    let (_, v) = h.v2(&token, "OIS100MI/LstLine", &[]).await;
    assert_eq!(v["results"][0]["errorField"], "ORNO");
    let (_, v) = h.v2(&token, "OIS100MI/LstLine", &[("ORNO", "9999999")]).await;
    assert_eq!(v["results"][0]["errorField"], "ORNO");
    let (_, v) = h.v2(&token, "OIS100MI/GetHead", &[("ORNO", "9999999")]).await;
    assert!(v["results"][0]["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("Order number 9999999 does not exist"));
    // The new programs are described by MRS001MI.
    let (_, v) = h.v2(&token, "MRS001MI/LstTransactions", &[("MINM", "OIS100MI")]).await;
    assert_eq!(field(&v, "TRNM"), ["GetHead", "LstHead", "LstLine"]);
}
