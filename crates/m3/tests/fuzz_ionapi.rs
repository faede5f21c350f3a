//! Bounded-time fuzzing of the `.ionapi` parser (`m3::IonApi::parse`) with proptest: arbitrary
//! text never panics; near-valid files (one required key removed or given the wrong type) are
//! refused naming that key; valid files round-trip their values, accept unknown keys and never
//! show their secrets in `Debug`.

use fuzzkit::{apply_edits, Edit};
use m3::IonApi;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Map, Value};

const REQUIRED: [&str; 8] = ["ti", "ci", "cs", "iu", "pu", "ot", "saak", "sask"];
const KNOWN: [&str; 10] = ["ti", "cn", "ci", "cs", "iu", "pu", "ot", "or", "saak", "sask"];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The values a generated valid file is made of, to check the round trip.
#[derive(Debug, Clone)]
struct Parts {
    tenant: String,
    client_id: String,
    client_secret: String,
    gateway: String,
    auth: String,
    token_path: String,
    saak_suffix: String,
    sask: String,
}

impl Parts {
    fn saak(&self) -> String {
        format!("{}#{}", self.tenant, self.saak_suffix)
    }

    fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "ti": self.tenant, "cn": "erp-bridge", "ci": self.client_id, "cs": self.client_secret,
            "iu": self.gateway, "pu": self.auth, "oa": "authorization.oauth2", "ot": self.token_path,
            "or": "revoke_token.oauth2", "saak": self.saak(), "sask": self.sask, "ev": "U1", "v": "1.0"
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        // `xn--` starts a punycode label, which must then be valid IDNA: not an ordinary host.
        "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9]{0,10}){0,3}"
            .prop_filter("not a punycode label", |h| !h.split('.').any(|l| l.starts_with("xn--"))),
        Just("localhost".to_string()),
        "127\\.0\\.0\\.[1-9][0-9]?",
    ]
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        host(),
        proptest::option::of(1u16..=65535),
        "(/[A-Za-z0-9_.~-]{1,12}){0,3}/?",
    )
        .prop_map(|(scheme, host, port, path)| match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
            None => format!("{scheme}://{host}{path}"),
        })
}

/// A secret long and odd enough not to occur by chance in the rest of a `Debug` rendering.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!@%^&*+=?~]{16,40}"
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        "[A-Z][A-Z0-9_]{0,15}",
        "[A-Za-z0-9_~.-]{1,40}",
        secret(),
        url(),
        url(),
        "[A-Za-z0-9_./-]{1,30}",
        "[A-Za-z0-9_.-]{1,40}",
        secret(),
    )
        .prop_map(
            |(tenant, client_id, client_secret, gateway, auth, token_path, saak_suffix, sask)| Parts {
                tenant,
                client_id,
                client_secret,
                gateway,
                auth,
                token_path,
                saak_suffix,
                sask,
            },
        )
}

/// Any JSON value that is not a string (nested a little).
fn non_string() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
    ];
    let nested = leaf.clone().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![leaf, nested]
}

/// Any JSON value (strings included).
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![non_string(), any::<String>().prop_map(Value::String)]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    fuzzkit::edits("[{}\\[\\]\":,\\\\ ]{1,3}".boxed(), 8)
}

fn assert_secrets_hidden(ion: &IonApi, secrets: &[&str]) {
    let dbg = format!("{ion:?}");
    let pretty = format!("{ion:#?}");
    for s in secrets {
        let s = s.trim();
        let escaped = format!("{s:?}");
        let escaped = &escaped[1..escaped.len() - 1];
        for rendering in [&dbg, &pretty] {
            assert!(
                !rendering.contains(s) && !rendering.contains(escaped),
                "secret {s:?} shown in {rendering}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = IonApi::parse(&text);
    }

    #[test]
    fn json_shaped_text_never_panics(text in "[{}\\[\\]\":,. 0-9a-z#/\\\\-]{0,80}") {
        let _ = IonApi::parse(&text);
    }

    #[test]
    fn arbitrary_json_values_never_panic_and_non_objects_are_refused(v in any_json()) {
        let r = IonApi::parse(&v.to_string());
        prop_assert!(r.is_err(), "{v} parsed");
    }

    #[test]
    fn valid_files_round_trip_and_hide_their_secrets(p in parts()) {
        let text = Value::Object(p.to_json()).to_string();
        let ion = IonApi::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&ion.tenant, &p.tenant);
        prop_assert_eq!(&ion.client_id, &p.client_id);
        prop_assert_eq!(ion.client_secret.expose(), p.client_secret.as_str());
        prop_assert_eq!(&ion.gateway_url, p.gateway.trim_end_matches('/'));
        let auth = if p.auth.ends_with('/') { p.auth.clone() } else { format!("{}/", p.auth) };
        prop_assert_eq!(&ion.auth_url, &auth);
        prop_assert_eq!(ion.token_url(), format!("{auth}{}", p.token_path));
        prop_assert_eq!(&ion.saak, &p.saak());
        prop_assert_eq!(ion.sask.expose(), p.sask.as_str());
        prop_assert_eq!(&ion.app_name, "erp-bridge");
        prop_assert_eq!(ion.mi_base(), format!("{}/{}/M3/m3api-rest", p.gateway.trim_end_matches('/'), p.tenant));
        assert_secrets_hidden(&ion, &[&p.client_secret, &p.sask]);
        // Pretty-printed and padded with blanks: the same file.
        let pretty = serde_json::to_string_pretty(&Value::Object(p.to_json())).unwrap();
        let again = IonApi::parse(&format!("\n  {pretty}\n ")).unwrap();
        prop_assert_eq!(again.saak, ion.saak);
    }

    #[test]
    fn a_missing_required_key_is_named(p in parts(), which in 0..REQUIRED.len()) {
        let key = REQUIRED[which];
        let mut m = p.to_json();
        m.remove(key);
        let err = IonApi::parse(&Value::Object(m).to_string())
            .expect_err("a file without a required key parses")
            .to_string();
        prop_assert!(err.contains(&format!("key `{key}`")), "{key} removed: {err}");
        prop_assert!(err.contains("missing"), "{key} removed: {err}");
    }

    #[test]
    fn a_required_key_of_the_wrong_type_is_named(p in parts(), which in 0..REQUIRED.len(), v in non_string()) {
        let key = REQUIRED[which];
        let mut m = p.to_json();
        m.insert(key.to_string(), v.clone());
        let err = IonApi::parse(&Value::Object(m).to_string())
            .expect_err("a file with a non-string required key parses")
            .to_string();
        prop_assert!(err.contains(&format!("key `{key}`")), "{key} = {v}: {err}");
        prop_assert!(!err.contains(&p.client_secret) && !err.contains(&p.sask), "secret in {err}");
    }

    #[test]
    fn a_required_key_with_any_string_never_panics_and_errors_name_it(
        p in parts(),
        which in 0..REQUIRED.len(),
        s in prop_oneof![any::<String>(), Just(String::new()), "[ \t\n]{1,4}", "[a-z]{1,8}://[a-z]{0,8}"],
    ) {
        let key = REQUIRED[which];
        let mut m = p.to_json();
        m.insert(key.to_string(), Value::String(s.clone()));
        match IonApi::parse(&Value::Object(m).to_string()) {
            Ok(ion) => assert_secrets_hidden(&ion, &[&p.client_secret, &p.sask]),
            Err(e) => {
                let e = e.to_string();
                // Changing the tenant makes the (unchanged) saak refer to another tenant.
                let named = e.contains(&format!("key `{key}`")) || (key == "ti" && e.contains("key `saak`"));
                prop_assert!(named, "{key} = {s:?}: {e}");
                if s.trim().is_empty() {
                    prop_assert!(e.contains(&format!("key `{key}`")), "{key} = {s:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn unknown_extra_keys_are_accepted(
        p in parts(),
        extra in proptest::collection::btree_map(any::<String>(), any_json(), 0..6),
    ) {
        let mut m = p.to_json();
        for (k, v) in extra {
            if !KNOWN.contains(&k.as_str()) {
                m.insert(k, v);
            }
        }
        let text = Value::Object(m).to_string();
        let ion = IonApi::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(ion.sask.expose(), p.sask.as_str());
        assert_secrets_hidden(&ion, &[&p.client_secret, &p.sask]);
    }

    #[test]
    fn mutated_valid_text_never_panics(p in parts(), e in edits()) {
        let text = apply_edits(&Value::Object(p.to_json()).to_string(), &e);
        match IonApi::parse(&text) {
            Ok(ion) => assert_secrets_hidden(&ion, &[]),
            Err(err) => {
                let msg = err.to_string();
                prop_assert!(msg.starts_with(".ionapi file: "), "{msg}");
            }
        }
    }
}
