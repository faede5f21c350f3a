//! Strict modes over HTTP (`/admin/modes`): order by ignored/rejected, company conditions
//! ignored/rejected, maxrecs capped at 100, alternative MDP type names, late commits (reads
//! and webhooks) and separator characters in item texts.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::Harness;
use m3_sim::modes::{CompanyCondition, Maxrecs, MdpTextTypes, OrderBy, SeparatorValues, SEPARATOR_MARK};
use m3_sim::{SimConfig, SimModes, WebhookAuth, WebhookSubscription};
use serde_json::{json, Value};

/// Sets the modes through the admin route; answers what the simulator says is in force.
async fn set_modes(h: &Harness, modes: Value) -> Value {
    let resp = h
        .http
        .post(format!("{}/admin/modes", h.running.base_url))
        .json(&modes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Item numbers of company 100 in key order.
fn key_order(h: &Harness) -> Vec<String> {
    h.sim
        .rows("MITMAS")
        .into_iter()
        .filter(|r| r["MMCONO"] == "100")
        .map(|r| r["MMITNO"].clone())
        .collect()
}

fn first_field(rows: &[String]) -> Vec<String> {
    rows.iter().map(|r| r.split(';').next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn admin_route_reads_and_sets_modes_and_rejects_unknown_fields() {
    let h = Harness::start().await;
    let url = format!("{}/admin/modes", h.running.base_url);
    let v: Value = h.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        v,
        json!({"order_by":"honoured","company_condition":"honoured","maxrecs":"honoured",
               "mdp_text_types":"standard","commit_delay_ms":0,"separator_values":"never"})
    );
    let v = set_modes(&h, json!({"order_by": "rejected", "maxrecs": "capped_100"})).await;
    assert_eq!(v["order_by"], "rejected");
    assert_eq!(v["maxrecs"], "capped_100");
    assert_eq!(v["company_condition"], "honoured");
    assert_eq!(
        h.sim.modes(),
        SimModes {
            order_by: OrderBy::Rejected,
            maxrecs: Maxrecs::Capped100,
            ..SimModes::default()
        }
    );
    for bad in [json!({"order_byy": "ignored"}), json!({"order_by": "sometimes"})] {
        let resp = h.http.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("modes"), "{body}");
    }
    // A rejected POST changes nothing.
    assert_eq!(h.sim.modes().order_by, OrderBy::Rejected);
}

#[tokio::test]
async fn order_by_ignored_gives_key_order_and_rejected_gives_nok() {
    let h = Harness::start().await;
    let token = h.token().await;
    let q = [
        ("QERY", "MMITNO, MMITDS from MITMAS order by MMITDS desc, MMITNO"),
        ("maxrecs", "0"),
    ];
    let keys = key_order(&h);
    let honoured = first_field(&h.export(&token, &q).await.unwrap());
    assert_eq!(honoured.len(), keys.len());
    assert_ne!(honoured, keys, "sorting by name must differ from key order");

    set_modes(&h, json!({"order_by": "ignored"})).await;
    assert_eq!(first_field(&h.export(&token, &q).await.unwrap()), keys);
    // maxrecs cuts the key order, not the asked order.
    let page = h
        .export(
            &token,
            &[
                (
                    "QERY",
                    "MMITNO from MITMAS where MMITNO > 'A000100' order by MMITDS desc",
                ),
                ("maxrecs", "3"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(page, ["A000101", "A000102", "A000103"]);

    set_modes(&h, json!({"order_by": "rejected"})).await;
    let err = h.export(&token, &q).await.unwrap_err();
    assert_eq!(err["errorType"], "ServerReturnedNOK");
    assert_eq!(err["errorField"], "QERY");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("ORDER BY is not supported"),
        "{err}"
    );
    // Without order by the query still runs, in key order.
    let rows = h
        .export(&token, &[("QERY", "MMITNO from MITMAS"), ("maxrecs", "0")])
        .await
        .unwrap();
    assert_eq!(rows, keys);
}

#[tokio::test]
async fn company_condition_ignored_or_rejected() {
    let h = Harness::start().await;
    let token = h.token().await;
    h.sim
        .insert(
            "MITMAS",
            &[("MMCONO", "200"), ("MMITNO", "A000001"), ("MMITDS", "Other company")],
        )
        .unwrap();
    let point = [(
        "QERY",
        "MMCONO, MMITNO from MITMAS where MMCONO = 200 and MMITNO = 'A000001'",
    )];
    assert!(
        h.export(&token, &point).await.unwrap().is_empty(),
        "honoured: 200 <> 100"
    );

    set_modes(&h, json!({"company_condition": "ignored"})).await;
    assert_eq!(h.export(&token, &point).await.unwrap(), ["100;A000001"]);
    let all = h
        .export(
            &token,
            &[("QERY", "MMITNO from MITMAS where MMCONO = 200"), ("maxrecs", "0")],
        )
        .await
        .unwrap();
    assert_eq!(all, key_order(&h), "the session company still applies");
    // Any comparison on it counts as true, even one no row could satisfy.
    let all = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO from MITMAS where MMCONO <> 100 and MMCONO > 999"),
                ("maxrecs", "0"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 200);

    set_modes(&h, json!({"company_condition": "rejected"})).await;
    for q in [
        point[0].1,
        "MMITNO from MITMAS where MMITNO = 'A000001' or (MMSTAT = '20' and 100 = MMCONO)",
    ] {
        let err = h.export(&token, &[("QERY", q)]).await.unwrap_err();
        assert_eq!(err["errorType"], "ServerReturnedNOK");
        assert_eq!(
            err["errorMessage"].as_str().unwrap().trim_end(),
            "Filters including company selections are not supported",
            "{q}"
        );
    }
    // Selecting the company column is fine.
    assert_eq!(
        h.export(
            &token,
            &[("QERY", "MMCONO, MMITNO from MITMAS where MMITNO = 'A000001'")]
        )
        .await
        .unwrap(),
        ["100;A000001"]
    );
}

#[tokio::test]
async fn maxrecs_capped_at_100_for_exportmi_and_lists() {
    let h = Harness::start().await;
    let token = h.token().await;
    let count = |maxrecs: &'static str| {
        let h = &h;
        let token = &token;
        async move {
            h.export(token, &[("QERY", "MMITNO from MITMAS"), ("maxrecs", maxrecs)])
                .await
                .unwrap()
                .len()
        }
    };
    let list = |maxrecs: &'static str| {
        let h = &h;
        let token = &token;
        async move {
            let (status, v) = h
                .v2(token, "MMS200MI/LstItmByItm", &[("ITNO", ""), ("maxrecs", maxrecs)])
                .await;
            assert_eq!(status, 200);
            v["results"][0]["records"].as_array().unwrap().len()
        }
    };
    assert_eq!((count("0").await, count("150").await, list("0").await), (200, 150, 200));

    set_modes(&h, json!({"maxrecs": "capped_100"})).await;
    assert_eq!(count("0").await, 100);
    assert_eq!(count("150").await, 100);
    assert_eq!(count("7").await, 7);
    assert_eq!(list("0").await, 100);
    assert_eq!(list("1000").await, 100);
    // Still the first 100 in key order.
    let rows = h
        .export(&token, &[("QERY", "MMITNO from MITMAS"), ("maxrecs", "0")])
        .await
        .unwrap();
    assert_eq!(rows, key_order(&h)[..100]);
}

#[tokio::test]
async fn mdp_alternative_type_names() {
    let h = Harness::start().await;
    let token = h.token().await;
    let types = |v: &Value| -> Vec<(String, String)> {
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["columnName"].as_str().unwrap().to_string(),
                    c["dataType"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let path = "/M3/mdprest/les/getColumnsUsedByTable/MITMAS/MVX";
    let (_, standard) = h.get(&token, path).await;
    let standard = types(&standard);
    set_modes(&h, json!({"mdp_text_types": "alternative"})).await;
    let (status, alt) = h.get(&token, path).await;
    assert_eq!(status, 200);
    let alt = types(&alt);
    assert_eq!(alt.len(), standard.len());
    let mut text_names = BTreeSet::new();
    let mut number_names = BTreeSet::new();
    for ((col, std_type), (alt_col, alt_type)) in standard.iter().zip(&alt) {
        assert_eq!(col, alt_col);
        match std_type.as_str() {
            "String" => text_names.insert(alt_type.as_str()),
            "Decimal" => number_names.insert(alt_type.as_str()),
            other => panic!("standard type {other}"),
        };
    }
    assert_eq!(text_names, BTreeSet::from(["Graphic", "NChar", "VarGraphic"]));
    assert_eq!(number_names, BTreeSet::from(["Numeric", "Packed"]));
}

/// A webhook receiver on a free port collecting the bodies it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    async fn hook(State(got): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> &'static str {
        got.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
        "ok"
    }
    let app = Router::new().route("/hook", post(hook)).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Polls `f` every 20 ms until it answers `Some` (at most 10 s).
async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "condition never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn late_commit_hides_writes_from_reads_and_webhooks_until_due() {
    let h = Harness::start().await;
    let token = h.token().await;
    let (url, got) = receiver().await;
    h.sim.subscribe(WebhookSubscription {
        subscription: "M3:MITMAS:CUD".into(),
        url,
        auth: WebhookAuth::None,
    });
    set_modes(&h, json!({"commit_delay_ms": 500})).await;
    let query = [("QERY", "MMITNO, MMITDS, MMLMTS from MITMAS where MMITNO = 'A000010'")];
    let before = h.export(&token, &query).await.unwrap();

    // An MI update: not visible at first, then visible with the LMTS of the write.
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/UpdItmBasic",
            &[("ITNO", "A000010"), ("ITDS", "Late commit")],
        )
        .await;
    assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    let written_by = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        h.export(&token, &query).await.unwrap(),
        before,
        "visible before its commit"
    );
    let (_, get) = h.v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000010")]).await;
    assert_ne!(get["results"][0]["records"][0]["ITDS"], "Late commit");
    assert!(got.lock().unwrap().is_empty(), "published before its commit");
    let after = eventually(|| async {
        let rows = h.export(&token, &query).await.unwrap();
        (rows != before).then_some(rows)
    })
    .await;
    let parts: Vec<&str> = after[0].split(';').collect();
    assert_eq!(parts[1], "Late commit");
    let lmts: i64 = parts[2].parse().unwrap();
    assert!(lmts <= written_by, "LMTS {lmts} is the write's time, not the commit's");
    let events = eventually(|| async {
        let v = got.lock().unwrap().clone();
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(events[0]["operation"], "U");

    // Delete and re-create: the old row stays visible until both commit, in order.
    let n = got.lock().unwrap().len();
    let (_, v) = h.v2(&token, "MMS200MI/DltItm", &[("ITNO", "A000020")]).await;
    assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    let (_, v) = h
        .v2(
            &token,
            "MMS200MI/AddItmBasic",
            &[
                ("ITNO", "A000020"),
                ("ITDS", "Re-created"),
                ("STAT", "20"),
                ("RESP", "X"),
                ("UNMS", "PCS"),
                ("ITTY", "RM"),
            ],
        )
        .await;
    assert!(v["results"][0].get("errorMessage").is_none(), "{v}");
    let (_, get) = h.v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000020")]).await;
    let old_name = get["results"][0]["records"][0]["ITDS"].as_str().unwrap().to_string();
    assert_ne!(old_name, "Re-created", "re-created row visible before its commit");
    let row = eventually(|| async {
        h.sim
            .get("MITMAS", &["100", "A000020"])
            .filter(|r| r["MMITDS"] == "Re-created")
    })
    .await;
    assert_eq!(row["MMCHNO"], "1");
    let events = eventually(|| async {
        let v = got.lock().unwrap().clone();
        (v.len() >= n + 2).then_some(v)
    })
    .await;
    let ops: Vec<&str> = events[n..].iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["D", "C"]);

    // Direct writes obey it too; a save commits what is pending.
    h.sim
        .update("MITMAS", &["100", "A000030"], &[("MMITDS", "Saved early")])
        .unwrap();
    assert_ne!(
        h.sim.get("MITMAS", &["100", "A000030"]).unwrap()["MMITDS"],
        "Saved early"
    );
    let dir = std::env::temp_dir().join(format!("m3-sim-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snap.json");
    h.sim.save(&path).unwrap();
    assert_eq!(
        h.sim.get("MITMAS", &["100", "A000030"]).unwrap()["MMITDS"],
        "Saved early"
    );
    let reopened = m3_sim::Simulator::open(
        SimConfig {
            items: 200,
            ..SimConfig::default()
        },
        &path,
    )
    .unwrap();
    assert_eq!(
        reopened.get("MITMAS", &["100", "A000030"]).unwrap()["MMITDS"],
        "Saved early"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn has_separators(s: &str) -> bool {
    ['~', '|', ';', ','].iter().all(|c| s.contains(*c))
}

#[tokio::test]
async fn separator_values_in_seeded_items_and_workload_changes() {
    let never = Harness::start().await;
    assert!(!never.sim.rows("MITMAS").iter().any(|r| has_separators(&r["MMITDS"])));

    let h = Harness::with(SimConfig {
        items: 200,
        modes: SimModes {
            separator_values: SeparatorValues::Sometimes,
            ..SimModes::default()
        },
        ..SimConfig::default()
    })
    .await;
    let token = h.token().await;
    let rows = h
        .export(
            &token,
            &[
                ("QERY", "MMITNO, MMITDS, MMFUDS from MITMAS"),
                ("SEPC", "~"),
                ("maxrecs", "0"),
            ],
        )
        .await
        .unwrap();
    let split_wrong: Vec<&String> = rows.iter().filter(|r| r.split('~').count() != 3).collect();
    // Every 97th item, the first one included: 3 of 200.
    assert_eq!(split_wrong.len(), 3, "{split_wrong:?}");
    let (_, v) = h.v2(&token, "MMS200MI/GetItmBasic", &[("ITNO", "A000001")]).await;
    let rec = &v["results"][0]["records"][0];
    assert!(rec["ITDS"].as_str().unwrap().ends_with(SEPARATOR_MARK), "{rec}");
    assert!(has_separators(rec["FUDS"].as_str().unwrap()), "{rec}");

    // Workload changes carry them sometimes too.
    let seeded: BTreeSet<String> = h
        .sim
        .rows("MITMAS")
        .into_iter()
        .filter(|r| has_separators(&r["MMITDS"]) || has_separators(&r["MMFUDS"]))
        .map(|r| r["MMITNO"].clone())
        .collect();
    let work = h.sim.start_workload(200.0);
    eventually(|| async {
        h.sim.rows("MITMAS").into_iter().find(|r| {
            r["MMCHID"].starts_with("SIMUSR")
                && !seeded.contains(&r["MMITNO"])
                && (has_separators(&r["MMITDS"]) || has_separators(&r["MMFUDS"]))
        })
    })
    .await;
    work.abort();
}

#[tokio::test]
async fn no_order_by_is_key_order_in_every_mode() {
    let h = Harness::start().await;
    let token = h.token().await;
    let keys = key_order(&h);
    for modes in [
        SimModes::default(),
        SimModes {
            order_by: OrderBy::Ignored,
            company_condition: CompanyCondition::Ignored,
            maxrecs: Maxrecs::Honoured,
            mdp_text_types: MdpTextTypes::Alternative,
            commit_delay_ms: 50,
            separator_values: SeparatorValues::Sometimes,
        },
        SimModes {
            order_by: OrderBy::Rejected,
            company_condition: CompanyCondition::Rejected,
            ..SimModes::default()
        },
    ] {
        set_modes(&h, serde_json::to_value(&modes).unwrap()).await;
        let rows = h
            .export(
                &token,
                &[
                    ("QERY", "MMITNO from MITMAS where MMSTAT <> 'XX' or MMITNO = 'A000001'"),
                    ("maxrecs", "0"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(rows, keys, "{modes:?}");
    }
}
