//! Bounded-time fuzzing of the connector's outside inputs with proptest: webhook payloads
//! (`parse_event`), cron schedules (`Schedule::parse`) and command mappings
//! (`CommandSpec` from JSON, then `validate`). Nothing panics; errors name the field; valid
//! inputs come back with the values they were written with.
//!
//! Command envelopes are checked inside `CommandProcessor::handle`, which needs M3 and a store;
//! they are fuzzed over HTTP in `crates/erp-bridge/tests/api/fuzz_http.rs`.

use fuzzkit::{apply_edits, Edit};
use pipeline::commands::{CommandSpec, ParamSpec, ParamType};
use pipeline::schedule::Schedule;
use pipeline::{parse_event, ChangeHint, Operation};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Value};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn edits(alphabet: &'static str) -> impl Strategy<Value = Vec<Edit>> {
    fuzzkit::edits(alphabet.boxed(), 6)
}

fn any_json() -> impl Strategy<Value = Value> {
    fuzzkit::any_json("[a-zA-Z]{1,12}")
}

/// Replaces the `n`-th node (pre-order) of `v` with `new`.
fn replace_nth(v: &mut Value, n: &mut usize, new: &Value) -> bool {
    if *n == 0 {
        *v = new.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| replace_nth(x, n, new)),
        Value::Object(o) => o.values_mut().any(|x| replace_nth(x, n, new)),
        _ => false,
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook events

const COLUMNS: &[&str] = &[
    "MMCONO", "MMITNO", "MMITDS", "MMFUDS", "MMSTAT", "MMUNMS", "MMITTY", "MMLMTS", "MMPUPR",
];

/// A column value as Event Hub sends it: usually a string, sometimes a number or null.
fn element_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| Some(Value::String(s))),
        1 => any::<i64>().prop_map(|n| Some(json!(n))),
        1 => Just(Some(Value::Null)),
        1 => Just(None),
    ]
}

fn event_json() -> impl Strategy<Value = Value> {
    let element = (
        prop_oneof![
            proptest::sample::select(COLUMNS).prop_map(str::to_string),
            any::<String>()
        ],
        element_value(),
        element_value(),
    )
        .prop_map(|(name, value, old)| {
            let mut e = json!({ "name": name });
            if let Some(v) = value {
                e["value"] = v;
            }
            if let Some(v) = old {
                e["oldValue"] = v;
            }
            e
        });
    (
        proptest::option::of(prop_oneof![Just("M3".to_string()), any::<String>()]),
        prop_oneof![Just("MITMAS".to_string()), any::<String>()],
        prop_oneof![
            proptest::sample::select(vec!["C", "U", "D"]).prop_map(str::to_string),
            any::<String>()
        ],
        proptest::option::of(any::<String>()),
        proptest::collection::vec(element, 0..8),
        proptest::collection::btree_map("[a-z][a-zA-Z]{0,12}", any_json(), 0..3),
    )
        .prop_map(|(publisher, doc, op, tracking, elements, extra)| {
            let mut v = json!({"documentName": doc, "operation": op, "elements": elements});
            for (k, x) in extra {
                if !matches!(
                    k.as_str(),
                    "documentName" | "operation" | "elements" | "publisher" | "trackingId"
                ) {
                    v[k] = x;
                }
            }
            if let Some(p) = publisher {
                v["publisher"] = json!(p);
            }
            if let Some(t) = tracking {
                v["trackingId"] = json!(t);
            }
            v
        })
}

/// What a well-formed event must come back as: its table and operation, and the after image
/// (the before image for a delete) of every column that carried a text value.
fn check_event(v: &Value, hints: &[ChangeHint]) -> Result<(), TestCaseError> {
    prop_assert_eq!(hints.len(), 1);
    let h = &hints[0];
    prop_assert_eq!(h.table.as_str(), "MITMAS");
    prop_assert_eq!(h.operation.code(), op_code(v["operation"].as_str().unwrap_or("")));
    for el in v["elements"].as_array().unwrap() {
        let (Some(name), Some(value)) = (el["name"].as_str(), el["value"].as_str()) else {
            continue;
        };
        let name = name.trim().to_ascii_uppercase();
        // Numbers are read as their JSON text.
        let old = match &el["oldValue"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
        .filter(|o| !o.trim().is_empty());
        let expected = match (h.operation, old.as_deref()) {
            (Operation::Delete, Some(old)) => old,
            _ => value,
        };
        if let Some(got) = h.values.get(&name) {
            // The last element of a name wins when a name repeats; only single ones are compared.
            let repeated = v["elements"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"].as_str().map(|n| n.trim().to_ascii_uppercase()) == Some(name.clone()))
                .count()
                > 1;
            if !repeated {
                prop_assert_eq!(got.as_str(), expected.trim());
            }
        }
    }
    Ok(())
}

/// The one-letter code of an operation as Event Hub writes it (any case, long forms too).
fn op_code(op: &str) -> &'static str {
    match op.trim().to_ascii_uppercase().as_str() {
        "C" | "CREATE" => "C",
        "U" | "UPDATE" => "U",
        "D" | "DELETE" => "D",
        _ => "",
    }
}

fn parse(text: &str) -> Result<Vec<ChangeHint>, pipeline::EventError> {
    parse_event(text.as_bytes(), Some("application/json"), "MITMAS")
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn webhook_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
        let _ = parse_event(text.as_bytes(), None, "MITMAS");
    }

    #[test]
    fn webhook_arbitrary_json_never_panics(v in any_json()) {
        let _ = parse(&v.to_string());
    }

    #[test]
    fn webhook_events_parse_with_their_values(v in event_json()) {
        let mut v = v;
        v["documentName"] = json!("MITMAS");
        let op = v["operation"].as_str().unwrap_or("").to_string();
        let elements = v["elements"].as_array().unwrap();
        let names: Vec<String> = elements
            .iter()
            .filter_map(|e| e["name"].as_str().map(|n| n.trim().to_ascii_uppercase()))
            .collect();
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        // Well-formed: a known operation and at least one column, each named once.
        let well_formed = !op_code(&op).is_empty()
            && !elements.is_empty()
            && names.len() == elements.len()
            && names.iter().all(|n| !n.is_empty())
            && distinct.len() == names.len();
        match parse(&v.to_string()) {
            Ok(hints) => check_event(&v, &hints)?,
            Err(e) => prop_assert!(!well_formed, "{e}: {v}"),
        }
    }

    #[test]
    fn webhook_events_without_an_operation_are_refused_naming_it(v in event_json()) {
        let mut v = v;
        v["documentName"] = json!("MITMAS");
        v.as_object_mut().unwrap().remove("operation");
        let err = parse(&v.to_string()).expect_err("parsed without an operation");
        prop_assert!(err.to_string().contains("operation"), "{err}");
    }

    #[test]
    fn webhook_events_with_a_value_replaced_never_panic(v in event_json(), at in any::<usize>(), x in any_json()) {
        let mut v = v;
        let n = count_nodes(&v);
        replace_nth(&mut v, &mut (at % n), &x);
        let _ = parse(&v.to_string());
    }

    #[test]
    fn webhook_event_text_edits_never_panic(v in event_json(), e in edits("[{}\\[\\]\":, ]{1,3}")) {
        let text = apply_edits(&v.to_string(), &e);
        let _ = parse(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Cron schedules

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

fn check_schedule(expr: &str) -> Result<Option<Schedule>, TestCaseError> {
    match Schedule::parse(expr) {
        Ok(s) => {
            prop_assert_eq!(s.source(), expr);
            Ok(Some(s))
        }
        Err(e) => {
            prop_assert_eq!(&e.expression, expr);
            let named = e.message.contains("expected 5 fields")
                || FIELD_NAMES
                    .iter()
                    .any(|f| e.message.starts_with(&format!("{f} field ")));
            prop_assert!(named, "{expr:?}: {e}");
            Ok(None)
        }
    }
}

/// One valid item of a field with bounds `lo..=hi`.
fn cron_item(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (lo..=hi).prop_map(|n| n.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (1u32..=hi + 1).prop_map(|s| format!("*/{s}")),
        (lo..=hi, lo..=hi, 1u32..=hi + 1).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        (lo..=hi, 1u32..=hi + 1).prop_map(|(a, s)| format!("{a}/{s}")),
    ]
}

fn cron_field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    proptest::collection::vec(cron_item(lo, hi), 1..4).prop_map(|items| items.join(","))
}

fn valid_cron() -> impl Strategy<Value = Vec<String>> {
    RANGES
        .iter()
        .map(|&(lo, hi)| cron_field(lo, hi).boxed())
        .collect::<Vec<_>>()
}

/// A field value that is wrong: out of range, backwards, zero or non-numeric step, garbage.
fn bad_cron_field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        (hi + 1..hi + 1000).prop_map(|n| n.to_string()),
        Just(format!("{}-{}", hi, lo)).prop_filter("backwards", move |_| lo < hi),
        Just("*/0".to_string()),
        "\\*/[a-z-]{1,3}",
        "[a-zA-Z#?LW]{1,4}",
        Just("-1".to_string()),
        Just(",".to_string()),
        Just("1,,2".to_string()),
        Just("*-5".to_string()),
        Just("1-".to_string()),
        Just("99999999999999999999".to_string()),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn schedule_arbitrary_text_never_panics_and_errors_name_a_field(expr in any::<String>()) {
        check_schedule(&expr)?;
    }

    #[test]
    fn schedule_cron_alphabet_soup_never_panics(expr in "[0-9*/,\\- ]{0,30}") {
        check_schedule(&expr)?;
    }

    #[test]
    fn valid_schedules_parse(fields in valid_cron(), blank in proptest::sample::select(vec![" ", "  ", "\t", " \n "])) {
        let expr = fields.join(blank);
        let s = check_schedule(&expr)?;
        // Valid fields may still name no real date (30 February): refused as such, nothing else.
        let refused = Schedule::parse(&expr).err();
        prop_assert!(
            s.is_some() || refused.as_ref().is_some_and(|e| e.message.contains("never fires")),
            "{:?} refused: {:?}", expr, refused
        );
    }

    #[test]
    fn a_bad_field_is_named(
        fields in valid_cron(),
        (which, bad) in (0usize..5).prop_flat_map(|w| (Just(w), bad_cron_field(RANGES[w].0, RANGES[w].1))),
    ) {
        let mut fields = fields;
        fields[which] = bad.clone();
        let expr = fields.join(" ");
        let e = Schedule::parse(&expr).expect_err("a bad field parses");
        prop_assert!(
            e.message.starts_with(&format!("{} field {:?}: ", FIELD_NAMES[which], bad)),
            "{expr:?}: {e}"
        );
    }

    #[test]
    fn schedules_with_a_wrong_field_count_are_refused(
        fields in proptest::collection::vec("[0-9*/,-]{1,4}", 0..9usize).prop_filter("not 5", |f| f.len() != 5),
    ) {
        let e = Schedule::parse(&fields.join(" ")).expect_err("wrong field count parses");
        prop_assert!(e.message.contains(&format!("expected 5 fields (minute hour day-of-month month day-of-week), got {}", fields.len())), "{e}");
    }

    #[test]
    fn mutated_valid_schedules_never_panic(fields in valid_cron(), e in edits("[0-9*/,\\- ]{1,3}")) {
        check_schedule(&apply_edits(&fields.join(" "), &e))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Command mappings

fn mi_field() -> impl Strategy<Value = String> {
    "[A-Z0-9]{4}"
}

fn valid_command_spec() -> impl Strategy<Value = CommandSpec> {
    let ty = proptest::sample::select(vec![
        ParamType::String,
        ParamType::Integer,
        ParamType::Decimal,
        ParamType::Boolean,
        ParamType::Date,
    ]);
    let param = (
        mi_field(),
        any::<bool>(),
        any::<bool>(),
        any::<String>(),
        ty,
        any::<String>(),
    );
    (
        "[A-Z][A-Za-z0-9]{0,30}",
        any::<String>(),
        "[A-Z][A-Z0-9]{0,6}MI",
        "[A-Za-z0-9]{1,32}",
        proptest::collection::vec(param, 0..8),
        proptest::collection::hash_set("[a-z][a-zA-Z0-9_]{0,15}", 8),
    )
        .prop_map(|(name, description, program, transaction, params, fields)| {
            let mut seen_mi = std::collections::HashSet::new();
            let parameters = params
                .into_iter()
                .filter(|p| seen_mi.insert(p.0.clone()))
                .zip(fields)
                .map(|((mi, fixed, required, value, ty, description), field)| ParamSpec {
                    field: (!fixed).then_some(field),
                    mi,
                    required: !fixed && required,
                    fixed: fixed.then_some(value),
                    ty,
                    description,
                })
                .collect();
            CommandSpec {
                name,
                description,
                program,
                transaction,
                idempotent: None,
                parameters,
            }
        })
}

/// How to damage one part of a valid command mapping; the error's path must name it.
#[derive(Debug, Clone)]
enum Damage {
    Name(String),
    Program(String),
    Transaction(String),
    Mi(usize, String),
    DuplicateMi(usize),
    FieldAndFixed(usize),
    NeitherFieldNorFixed(usize),
    RequiredFixed(usize),
    BadField(usize, String),
    DuplicateField(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop_oneof![
            Just(String::new()),
            "[a-z0-9][A-Za-z0-9]{0,5}",
            "[A-Z][a-z]{0,4}[ _.-][a-z]{0,3}",
            "[A-Z]{65,70}"
        ]
        .prop_map(Damage::Name),
        prop_oneof![
            Just(String::new()),
            "[A-LN-Z]{1,6}",
            "[a-z]{2,6}MI",
            "[A-Z]{9,12}MI",
            "MI",
            "[0-9][A-Z]{2}MI"
        ]
        .prop_map(Damage::Program),
        prop_oneof![Just(String::new()), "[A-Za-z]{1,4}[ _.-][a-z]{0,3}", "[a-z]{33,40}"].prop_map(Damage::Transaction),
        (
            any::<usize>(),
            prop_oneof![
                Just(String::new()),
                "[A-Z]{1,3}",
                "[A-Z]{5,6}",
                "[a-z]{4}",
                "[A-Z]{2}[ _-][A-Z]"
            ]
        )
            .prop_map(|(i, m)| Damage::Mi(i, m)),
        any::<usize>().prop_map(Damage::DuplicateMi),
        any::<usize>().prop_map(Damage::FieldAndFixed),
        any::<usize>().prop_map(Damage::NeitherFieldNorFixed),
        any::<usize>().prop_map(Damage::RequiredFixed),
        (
            any::<usize>(),
            prop_oneof![Just(String::new()), "[0-9_][a-z]{0,4}", "[a-z]{1,3}[ .-][a-z]{0,3}"]
        )
            .prop_map(|(i, f)| Damage::BadField(i, f)),
        any::<usize>().prop_map(Damage::DuplicateField),
    ]
}

/// Applies the damage; returns the path the error must name, or `None` when this damage does
/// not apply to this spec.
fn apply_damage(spec: &mut CommandSpec, d: &Damage) -> Option<String> {
    let n = spec.parameters.len();
    let idx = |i: &usize| (n > 0).then(|| i % n);
    let taken_field = |spec: &CommandSpec| spec.parameters.iter().position(|p| p.field.is_some());
    Some(match d {
        Damage::Name(s) => {
            spec.name = s.clone();
            "name".into()
        }
        Damage::Program(s) => {
            spec.program = s.clone();
            "program".into()
        }
        Damage::Transaction(s) => {
            spec.transaction = s.clone();
            "transaction".into()
        }
        Damage::Mi(i, m) => {
            let i = idx(i)?;
            spec.parameters[i].mi = m.clone();
            format!("parameters[{i}].mi")
        }
        Damage::DuplicateMi(i) => {
            if n < 2 {
                return None;
            }
            let j = 1 + i % (n - 1);
            spec.parameters[j].mi = spec.parameters[0].mi.clone();
            format!("parameters[{j}].mi")
        }
        Damage::FieldAndFixed(i) => {
            let i = idx(i)?;
            let p = &mut spec.parameters[i];
            p.field.get_or_insert_with(|| format!("unique{i}x"));
            p.fixed = Some("X".into());
            format!("parameters[{i}].fixed")
        }
        Damage::NeitherFieldNorFixed(i) => {
            let i = idx(i)?;
            let p = &mut spec.parameters[i];
            p.field = None;
            p.fixed = None;
            format!("parameters[{i}].field")
        }
        Damage::RequiredFixed(i) => {
            let i = idx(i)?;
            let p = &mut spec.parameters[i];
            p.field = None;
            p.fixed = Some("X".into());
            p.required = true;
            format!("parameters[{i}].required")
        }
        Damage::BadField(i, f) => {
            let i = idx(i)?;
            let p = &mut spec.parameters[i];
            p.fixed = None;
            p.field = Some(f.clone());
            format!("parameters[{i}].field")
        }
        Damage::DuplicateField(i) => {
            let first = taken_field(spec)?;
            let others: Vec<usize> = (first + 1..n).collect();
            if others.is_empty() {
                return None;
            }
            let j = others[i % others.len()];
            let name = spec.parameters[first].field.clone();
            let p = &mut spec.parameters[j];
            p.fixed = None;
            p.field = name;
            format!("parameters[{j}].field")
        }
    })
}

fn check_command_spec(spec: &CommandSpec) -> Result<(), TestCaseError> {
    if let Err(e) = spec.validate() {
        let known = ["name", "program", "transaction"].contains(&e.path.as_str())
            || (e.path.starts_with("parameters[")
                && ["].mi", "].field", "].fixed", "].required"]
                    .iter()
                    .any(|k| e.path.ends_with(k)));
        prop_assert!(known, "unexpected path {:?}: {e}", e.path);
        prop_assert!(e.to_string().starts_with(&format!("{}: ", e.path)), "{e}");
        if let Some(i) = e.path.strip_prefix("parameters[").and_then(|r| r.split(']').next()) {
            let i: usize = i.parse().unwrap();
            prop_assert!(i < spec.parameters.len(), "{e}");
        }
    } else {
        let _ = spec.json_schema();
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn command_spec_arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(spec) = serde_json::from_str::<CommandSpec>(&text) {
            check_command_spec(&spec)?;
        }
    }

    #[test]
    fn valid_command_specs_round_trip_and_validate(spec in valid_command_spec()) {
        let text = serde_json::to_string(&spec).unwrap();
        let back: CommandSpec = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &spec);
        back.validate().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let schema = back.json_schema();
        prop_assert_eq!(&schema["properties"]["command"]["const"], &json!(spec.name));
    }

    #[test]
    fn damaged_command_specs_are_refused_naming_the_path(spec in valid_command_spec(), d in damage()) {
        let mut spec = spec;
        if let Some(path) = apply_damage(&mut spec, &d) {
            let e = spec.validate().expect_err("a damaged command mapping validates");
            prop_assert_eq!(&e.path, &path, "{:?}: {}", d, e);
        }
    }

    #[test]
    fn command_specs_with_a_value_replaced_never_panic(spec in valid_command_spec(), at in any::<usize>(), x in any_json()) {
        let mut v = serde_json::to_value(&spec).unwrap();
        let n = count_nodes(&v);
        replace_nth(&mut v, &mut (at % n), &x);
        if let Ok(spec) = serde_json::from_value::<CommandSpec>(v) {
            check_command_spec(&spec)?;
        }
    }

    #[test]
    fn command_spec_text_edits_never_panic(spec in valid_command_spec(), e in edits("[{}\\[\\]\":, ]{1,3}")) {
        let text = apply_edits(&serde_json::to_string(&spec).unwrap(), &e);
        if let Ok(spec) = serde_json::from_str::<CommandSpec>(&text) {
            check_command_spec(&spec)?;
        }
    }
}

#[test]
fn the_default_command_mappings_validate() {
    for spec in pipeline::commands::default_commands() {
        spec.validate().unwrap();
    }
}
