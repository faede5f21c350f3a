//! Seeding determinism and the simulated users' workload.

use std::collections::BTreeMap;
use std::time::Duration;

use m3_sim::{SimConfig, Simulator};

fn small(seed: u64) -> Simulator {
    Simulator::new(SimConfig {
        items: 300,
        seed,
        ..SimConfig::default()
    })
}

#[test]
fn seeding_is_deterministic_and_realistic() {
    let names = |s: &Simulator| -> Vec<(String, String, String)> {
        s.rows("MITMAS")
            .into_iter()
            .map(|r| (r["MMITNO"].clone(), r["MMITDS"].clone(), r["MMSAPR"].clone()))
            .collect()
    };
    let a = small(7);
    assert_eq!(names(&a), names(&small(7)));
    assert_ne!(names(&a), names(&small(8)));
    let rows = a.rows("MITMAS");
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0]["MMITNO"], "A000001");
    assert!(
        rows.iter().any(|r| r["MMITNO"].contains('-')),
        "some mixed item numbers"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut stats: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *stats.entry(r["MMSTAT"].clone()).or_default() += 1;
        assert!(["PCS", "KG", "M", "L"].contains(&r["MMUNMS"].as_str()));
        assert!(["FG", "RM", "SP"].contains(&r["MMITTY"].as_str()));
        assert!(!r["MMITDS"].is_empty());
        let lmts: i64 = r["MMLMTS"].parse().unwrap();
        assert!(lmts < now && lmts > now - 731 * 86_400_000);
        assert!(r["MMLMDT"] >= r["MMRGDT"]);
        assert!(r["MMPUPR"].parse::<f64>().unwrap() > 0.0);
    }
    assert!(stats["20"] > 200, "{stats:?}");
    assert!(stats.keys().all(|s| ["10", "20", "50", "90"].contains(&s.as_str())));
    for t in ["OCUSMA", "CIDMAS", "MITWHL", "MITBAL", "OOHEAD", "OOLINE", "CUGEX1"] {
        assert!(!a.rows(t).is_empty(), "{t}");
    }
    assert_eq!(a.rows("NOSUCH").len(), 0);
}

#[tokio::test]
async fn workload_changes_items_with_audit_fields() {
    let sim = small(1);
    let before: BTreeMap<String, BTreeMap<String, String>> = sim
        .rows("MITMAS")
        .into_iter()
        .map(|r| (r["MMITNO"].clone(), r))
        .collect();
    let max_before: i64 = before
        .values()
        .map(|r| r["MMLMTS"].parse::<i64>().unwrap())
        .max()
        .unwrap();

    let idle = sim.start_workload(0.0);
    tokio::time::timeout(Duration::from_secs(1), idle)
        .await
        .unwrap()
        .unwrap();

    let handle = sim.start_workload(400.0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    handle.abort();
    let after = sim.rows("MITMAS");
    let changed: Vec<&BTreeMap<String, String>> = after
        .iter()
        .filter(|r| r["MMLMTS"].parse::<i64>().unwrap() > max_before)
        .collect();
    assert!(changed.len() > 100, "only {} rows changed", changed.len());
    for r in &changed {
        assert!(r["MMCHID"].starts_with("SIMUSR"), "{r:?}");
        if let Some(old) = before.get(&r["MMITNO"]) {
            assert!(
                r["MMCHNO"].parse::<u32>().unwrap() > old["MMCHNO"].parse::<u32>().unwrap() || old["MMCHNO"] == "999"
            );
        } else {
            assert_eq!(r["MMRGDT"], r["MMLMDT"], "inserted rows");
        }
    }
    let inserted = after.iter().filter(|r| !before.contains_key(&r["MMITNO"])).count();
    let deleted = before
        .keys()
        .filter(|k| !after.iter().any(|r| &r["MMITNO"] == *k))
        .count();
    assert!(inserted > 0 && deleted > 0, "inserted {inserted}, deleted {deleted}");
}
