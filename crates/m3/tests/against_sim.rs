//! The M3 client against the simulator: OAuth2, MI v2, NOK answers, EXPORTMI, MDP, token expiry.

use m3::{ClientOptions, IonApi, M3Client, M3Error};
use m3_sim::{Faults, SimConfig, Simulator};

async fn client() -> (Simulator, m3_sim::RunningSim, M3Client) {
    let sim = Simulator::new(SimConfig {
        items: 40,
        ..Default::default()
    });
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ion = IonApi::parse(&sim.ionapi(&running.base_url).to_string()).unwrap();
    let client = M3Client::new(ion, ClientOptions::default()).unwrap();
    (sim, running, client)
}

#[tokio::test]
async fn transactions_return_trimmed_records_and_nok_answers_become_errors() {
    let (sim, _r, c) = client().await;
    let itno = sim.rows("MITMAS")[0]["MMITNO"].clone();
    let recs = c
        .execute("MMS200MI", "GetItmBasic", &[("ITNO", &itno)], 0)
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["ITNO"], itno);
    assert!(!recs[0]["ITDS"].ends_with(' '));
    match c.execute("MMS200MI", "GetItmBasic", &[("ITNO", "NOPE")], 0).await {
        Err(M3Error::Nok {
            code, field, message, ..
        }) => {
            assert_eq!(code, "XIM0002");
            assert_eq!(field.as_deref(), Some("ITNO"));
            assert!(message.contains("does not exist"), "{message}");
        }
        other => panic!("expected NOK, got {other:?}"),
    }
    let rows = c
        .export_select(
            "MMITNO, MMITDS from MITMAS where MMITNO >= 'A' order by MMITNO",
            '~',
            2,
            5,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0][0], sim.rows("MITMAS")[0]["MMITNO"]);
}

#[tokio::test]
async fn a_wrong_secret_is_an_authentication_error_and_expired_tokens_are_renewed() {
    let (sim, running, c) = client().await;
    c.execute("MMS200MI", "LstItmByItm", &[], 1).await.unwrap();
    sim.set_faults(Faults {
        expire_tokens_now: true,
        ..Default::default()
    });
    // The cached token is now invalid: the client refreshes once and succeeds.
    c.execute("MMS200MI", "LstItmByItm", &[], 1).await.unwrap();
    let mut ion = sim.ionapi(&running.base_url);
    ion["sask"] = serde_json::json!("wrong");
    let bad = M3Client::new(IonApi::parse(&ion.to_string()).unwrap(), ClientOptions::default()).unwrap();
    match bad.execute("MMS200MI", "LstItmByItm", &[], 1).await {
        Err(M3Error::Authentication { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[tokio::test]
async fn mdp_lists_tables_and_custom_columns() {
    let (_sim, _r, c) = client().await;
    let tables = c.mdp_tables("MIT").await.unwrap();
    assert!(tables.iter().any(|t| t.name == "MITMAS"), "{tables:?}");
    let t = c.mdp_table("MITMAS").await.unwrap().unwrap();
    assert_eq!(t.primary_key, vec!["MMCONO", "MMITNO"]);
    assert_eq!(t.prefix, "MM");
    assert!(t.column("MMZZCO").is_some(), "custom columns come from MDP");
    assert_eq!(t.column("MMLMDT").unwrap().kind, mapping::catalog::ColumnKind::Date);
    assert!(c.mdp_table("NOSUCH").await.unwrap().is_none());
}
