//! EXPORTMI Select/SelectPad over HTTP: the poller's queries, where/and/or/not, order by,
//! maxrecs, SEPC, HDRS, company isolation and malformed queries.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use common::Harness;

fn num(s: &str) -> f64 {
    s.parse().unwrap()
}

#[tokio::test]
async fn poller_cursor_query_pages_through_ties_in_order() {
    let h = Harness::start().await;
    let token = h.token().await;
    // Create ties: several items changed, some within the same millisecond is likely; the
    // seed also contains deliberate LMTS ties.
    for i in 30..40 {
        h.sim
            .update("MITMAS", &["100", &format!("A{i:06}")], &[("MMSTAT", "50")])
            .unwrap();
    }
    let mut rows: Vec<BTreeMap<String, String>> = h.sim.rows("MITMAS");
    rows.sort_by(|a, b| {
        num(&a["MMLMTS"])
            .partial_cmp(&num(&b["MMLMTS"]))
            .unwrap()
            .then(a["MMITNO"].cmp(&b["MMITNO"]))
    });
    let ties = rows.windows(2).filter(|w| w[0]["MMLMTS"] == w[1]["MMLMTS"]).count();
    assert!(ties > 0, "seed data should contain LMTS ties");

    // Page through everything with the poller's cursor query, 37 rows a page.
    let mut cursor = ("0".to_string(), String::new());
    let mut seen = Vec::new();
    loop {
        let q = format!(
            "MMCONO, MMITNO, MMITDS, MMLMTS from MITMAS where MMLMTS > {ts} or (MMLMTS = {ts} and MMITNO > '{it}') order by MMLMTS, MMITNO",
            ts = cursor.0,
            it = cursor.1
        );
        let page = h
            .export(&token, &[("QERY", &q), ("SEPC", "~"), ("maxrecs", "37")])
            .await
            .unwrap();
        for repl in &page {
            let parts: Vec<&str> = repl.split('~').collect();
            assert_eq!(parts.len(), 4, "{repl}");
            assert_eq!(parts[0], "100");
            seen.push((parts[1].to_string(), parts[2].to_string(), parts[3].to_string()));
        }
        if page.len() < 37 {
            break;
        }
        let last = seen.last().unwrap();
        cursor = (last.2.clone(), last.0.clone());
    }
    let expected: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r["MMITNO"].clone(), r["MMITDS"].clone(), r["MMLMTS"].clone()))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn key_cursor_query_and_headers() {
    let h = Harness::start().await;
    let token = h.token().await;
    let page = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO from MITMAS where MMITNO > 'A000123' order by MMITNO"),
                ("maxrecs", "3"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page, ["A000124", "A000125", "A000126"]);

    let page = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO, MMSTAT, MMUNMS from MITMAS where MMITNO = 'A000001'"),
                ("HDRS", "1"),
            ],
        )
        .await
        .unwrap();
    let row = h.sim.get("MITMAS", &["100", "A000001"]).unwrap();
    assert_eq!(
        page,
        [
            "MMITNO;MMSTAT;MMUNMS".to_string(),
            format!("A000001;{};{}", row["MMSTAT"], row["MMUNMS"])
        ]
    );

    // `*` selects every column, custom ones included.
    let page = h
        .export(
            &token,
            &[
                ("QERY", "* from MITMAS where MMITNO = 'A000001'"),
                ("HDRS", "1"),
                ("SEPC", "|"),
            ],
        )
        .await
        .unwrap();
    let header: Vec<&str> = page[0].split('|').collect();
    assert_eq!(header[..2], ["MMCONO", "MMITNO"]);
    assert!(header.contains(&"MMZZCO"));
    assert_eq!(page[1].split('|').count(), header.len());
}

#[tokio::test]
async fn where_and_or_not_with_numeric_comparison_and_order_desc() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim
        .update("MITMAS", &["100", "A000050"], &[("MMITDS", "It's a test")])
        .unwrap();
    let q = "MMITNO, MMPUPR from MITMAS where MMPUPR >= 100 and (MMSTAT = '20' or MMSTAT = '50') and not MMUNMS = 'KG' order by MMPUPR desc, MMITNO";
    let got = h.export(&token, &[("QERY", q), ("maxrecs", "0")]).await.unwrap();
    let mut expected: Vec<BTreeMap<String, String>> = h
        .sim
        .rows("MITMAS")
        .into_iter()
        .filter(|r| num(&r["MMPUPR"]) >= 100.0)
        .filter(|r| r["MMSTAT"] == "20" || r["MMSTAT"] == "50")
        .filter(|r| r["MMUNMS"] != "KG")
        .collect();
    expected.sort_by(|a, b| {
        num(&b["MMPUPR"])
            .partial_cmp(&num(&a["MMPUPR"]))
            .unwrap_or(Ordering::Equal)
            .then(a["MMITNO"].cmp(&b["MMITNO"]))
    });
    let expected: Vec<String> = expected
        .iter()
        .map(|r| format!("{};{}", r["MMITNO"], r["MMPUPR"]))
        .collect();
    assert!(expected.len() > 10, "enough rows to be meaningful");
    assert_eq!(got, expected);

    // Quote escaping and <> / != both work.
    let got = h
        .export(&token, &[("QERY", "MMITNO from MITMAS where MMITDS = 'It''s a test'")])
        .await
        .unwrap();
    assert_eq!(got, ["A000050"]);
    let n_ne = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO from MITMAS where MMITNO <> 'A000001'"),
                ("maxrecs", "0"),
            ],
        )
        .await
        .unwrap()
        .len();
    let n_bang = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO from MITMAS where MMITNO != 'A000001'"),
                ("maxrecs", "0"),
            ],
        )
        .await
        .unwrap()
        .len();
    assert_eq!((n_ne, n_bang), (199, 199));
}

#[tokio::test]
async fn select_pad_and_company_isolation() {
    let h = Harness::start().await;
    let token = h.token().await;
    let row = h.sim.get("MITMAS", &["100", "A000001"]).unwrap();
    let (_, v) = h
        .v2(
            &token,
            "EXPORTMI/SelectPad",
            &[("QERY", "MMITNO, MMSTAT from MITMAS where MMITNO = 'A000001'")],
        )
        .await;
    assert_eq!(
        v["results"][0]["records"][0]["REPL"],
        format!("A000001        ;{}", row["MMSTAT"])
    );

    h.sim
        .insert(
            "MITMAS",
            &[("MMCONO", "200"), ("MMITNO", "Z-200"), ("MMITDS", "Other company")],
        )
        .unwrap();
    let q = "MMCONO, MMITNO from MITMAS where MMITNO = 'Z-200'";
    assert!(h.export(&token, &[("QERY", q)]).await.unwrap().is_empty());
    assert_eq!(
        h.export(&token, &[("QERY", q), ("cono", "200")]).await.unwrap(),
        ["200;Z-200"]
    );
    let all200 = h
        .export(
            &token,
            &[("QERY", "MMITNO from MITMAS"), ("cono", "200"), ("maxrecs", "0")],
        )
        .await
        .unwrap();
    assert_eq!(all200, ["Z-200"]);
}

#[tokio::test]
async fn malformed_queries_are_nok_naming_the_problem() {
    let h = Harness::start().await;
    let token = h.token().await;
    let err = h
        .export(&token, &[("QERY", "MMITNO, MMITDS MITMAS where MMITNO > 'A'")])
        .await
        .unwrap_err();
    assert_eq!(err["errorField"], "QERY");
    assert_eq!(err["errorType"], "ServerReturnedNOK");
    assert_eq!(
        err["errorMessage"].as_str().unwrap().trim_end(),
        "Query syntax error: Position 16: expected ',' or 'from', found 'MITMAS'"
    );
    let err = h
        .export(&token, &[("QERY", "MMITNO from MITMAS where (MMITNO > 'A'")])
        .await
        .unwrap_err();
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("expected ')', 'and' or 'or', found end of query"),
        "{err}"
    );
    let err = h.export(&token, &[("QERY", "MMNOPE from MITMAS")]).await.unwrap_err();
    assert_eq!(
        err["errorMessage"].as_str().unwrap().trim_end(),
        "Query error: Column MMNOPE does not exist in table MITMAS"
    );
    let err = h.export(&token, &[("QERY", "XXFOO from NOTABLE")]).await.unwrap_err();
    assert_eq!(
        err["errorMessage"].as_str().unwrap().trim_end(),
        "Table NOTABLE does not exist"
    );
    let err = h
        .export(&token, &[("QERY", "MMITNO from MITMAS where MMLMTS > 'yesterday'")])
        .await
        .unwrap_err();
    assert!(err["errorMessage"].as_str().unwrap().contains("not a number"), "{err}");

    // v1 gives the same NOK shape as any transaction.
    let (_, v) = h
        .get(&token, "/M3/m3api-rest/execute/EXPORTMI/Select?QERY=MMITNO%20from")
        .await;
    assert_eq!(v["@type"], "ServerReturnedNOK");
    assert_eq!(v["@field"], "QERY");
    assert!(v["Message"]
        .as_str()
        .unwrap()
        .contains("expected table name, found end of query"));
}
