//! Names: message type names, suggested domain field names from M3 descriptions, resource names.

use std::collections::HashSet;

use crate::error::MappingError;

/// A validated message type name, PascalCase (`Item`, `CustomerOrder`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct MessageTypeName(String);

impl MessageTypeName {
    /// Parse a PascalCase name.
    pub fn parse(s: &str) -> Result<Self, MappingError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(MappingError::BadName {
                mapping: s.to_string(),
                got: s.to_string(),
            })
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageTypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a domain field name is acceptable in JSON payloads and schemas.
pub fn is_valid_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Letter case of suggested field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `itemNumber`
    Camel,
    /// `ItemNumber`
    Pascal,
}

/// Suggest a field name from an M3 column description (`Item number` -> `itemNumber`).
pub fn suggest_field_name(description: &str, case: Case) -> String {
    let mut out = String::new();
    for word in description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        let first = chars.next().expect("non-empty");
        if out.is_empty() && case == Case::Camel {
            out.push(first.to_ascii_lowercase());
        } else {
            out.push(first.to_ascii_uppercase());
        }
        out.extend(chars.map(|c| c.to_ascii_lowercase()));
    }
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, if case == Case::Camel { 'f' } else { 'F' });
    }
    out
}

/// Suggest names for several descriptions, making duplicates unique with a number suffix.
pub fn suggest_field_names<'a>(descriptions: impl IntoIterator<Item = &'a str>, case: Case) -> Vec<String> {
    let mut seen = HashSet::new();
    descriptions
        .into_iter()
        .map(|d| {
            let base = suggest_field_name(d, case);
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// The REST resource name of a message type: kebab-case plural (`Item` -> `items`, `CustomerOrder` -> `customer-orders`).
pub fn resource_name(message_type: &MessageTypeName) -> String {
    let mut kebab = String::new();
    for (i, c) in message_type.as_str().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            kebab.push('-');
        }
        kebab.push(c.to_ascii_lowercase());
    }
    if let Some(stem) = kebab.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'o', 'u'])) {
        format!("{stem}ies")
    } else if kebab.ends_with('s') || kebab.ends_with('x') || kebab.ends_with("ch") || kebab.ends_with("sh") {
        format!("{kebab}es")
    } else {
        format!("{kebab}s")
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `wanted` (case-insensitive), if it is reasonably close.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let w = wanted.to_ascii_uppercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_uppercase()), c))
        .filter(|(d, _)| *d <= 3.max(w.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_names_follow_the_description_and_are_unique() {
        assert_eq!(suggest_field_name("Item number", Case::Camel), "itemNumber");
        assert_eq!(suggest_field_name("Item number", Case::Pascal), "ItemNumber");
        assert_eq!(
            suggest_field_name("Ordered quantity - basic U/M", Case::Camel),
            "orderedQuantityBasicUM"
        );
        assert_eq!(
            suggest_field_names(["Status", "Status", "Status"], Case::Camel),
            vec!["status", "status2", "status3"]
        );
    }

    #[test]
    fn resource_names_are_kebab_plurals() {
        let r = |s: &str| resource_name(&MessageTypeName::parse(s).unwrap());
        assert_eq!(r("Item"), "items");
        assert_eq!(r("CustomerOrder"), "customer-orders");
        assert_eq!(r("Company"), "companies");
        assert_eq!(r("Address"), "addresses");
    }

    #[test]
    fn message_type_names_must_be_pascal_case() {
        assert!(MessageTypeName::parse("Item").is_ok());
        for bad in ["item", "", "Item-X", "Item Number", "1Item"] {
            assert!(MessageTypeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closest_finds_typos_but_not_nonsense() {
        let cols = ["MMITNO", "MMITDS", "MMSTAT"];
        assert_eq!(closest("MMITDX", cols).as_deref(), Some("MMITDS"));
        assert_eq!(closest("mmstat", cols).as_deref(), Some("MMSTAT"));
        assert_eq!(closest("QQQQQQQQQQ", cols), None);
    }
}
