//! Test support for the property-based fuzz tests of every crate: character-level edits that
//! turn a valid input into a near-valid one, so parsers are exercised deep inside their grammar
//! and not only at the first character.

use proptest::prelude::*;
use serde_json::{json, Value};

/// A character-level edit of a text: delete a range, insert text, or truncate.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Delete up to `.1` characters at `.0` (modulo the length).
    Delete(usize, usize),
    /// Insert text at a position (modulo the length + 1).
    Insert(usize, String),
    /// Cut the text at a position (modulo the length + 1).
    Truncate(usize),
}

/// One to three edits; inserted text comes from `inserts` (e.g. the grammar's own tokens) or is
/// any string; deletions remove 1 to `max_delete - 1` characters.
pub fn edits(inserts: BoxedStrategy<String>, max_delete: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1usize..max_delete.max(2)).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), prop_oneof![inserts, any::<String>()]).prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(edit, 1..4)
}

/// Apply edits in order.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len();
        match e {
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                let end = (at + n).min(len);
                chars.drain(at..end);
            }
            Edit::Delete(..) => {}
            Edit::Insert(at, s) => {
                let at = at % (len + 1);
                chars.splice(at..at, s.chars());
            }
            Edit::Truncate(at) => chars.truncate(at % (len + 1)),
        }
    }
    chars.into_iter().collect()
}

/// Any JSON document up to three levels deep, object keys drawn from `key_pattern` (a regex).
/// Numbers are integers or dyadic fractions, which serde_json reads back exactly.
pub fn any_json(key_pattern: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (any::<i32>(), 1u32..5).prop_map(|(m, e)| json!(f64::from(m) / f64::from(1u32 << e))),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key_pattern, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_within_bounds() {
        let e = [Edit::Delete(7, 2), Edit::Insert(100, "X".into()), Edit::Truncate(4)];
        assert_eq!(apply_edits("abcdef", &e), "Xade");
        assert_eq!(apply_edits("", &[Edit::Delete(3, 3), Edit::Truncate(9)]), "");
    }
}
