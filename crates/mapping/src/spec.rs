//! The mapping definition as users write it (JSON, YAML or TOML): message type, table, fields,
//! an optional row filter and constant fields.
//!
//! A spec is only data; [`crate::CompiledMapping::compile`] validates it against a table and
//! names the offending part (`filter`, `fields[3].values`, `constants.source`) when it is wrong.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A message-type mapping: one M3 table projected into one domain message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappingSpec {
    /// Message type name, PascalCase (`Item` yields `ItemUpdated` and `ItemDeleted`).
    pub name: String,
    /// What the message type means, for schemas and Studio.
    #[serde(default)]
    pub description: String,
    /// Source M3 table (`MITMAS`).
    pub table: String,
    /// Mapped columns. Primary-key columns are always included; missing ones are added with suggested names.
    pub fields: Vec<FieldSpec>,
    /// REST resource name of the read model; defaults to the kebab-case plural of `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Which rows belong to the message type, as an expression over column names
    /// (`MMSTAT in ('20','50') and not MMITTY = 'SP'`); see [`crate::filter`] for the syntax.
    /// A row that does not match is treated as absent (its entity is deleted); `None` keeps every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Fixed fields added to every `...Updated` payload after the mapped fields
    /// (`{"source": "m3"}`). Names follow the field-name rules and must not clash with fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constants: BTreeMap<String, serde_json::Value>,
    /// The time zone the M3 server's dates and times are in (`UTC`, `+01:00` or an IANA name
    /// like `Europe/Stockholm`); `datetime` fields carry its offset. `None` is UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// One mapped column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldSpec {
    /// Full M3 column name (`MMITNO`).
    pub column: String,
    /// Domain field name in the payload (`itemNumber`).
    pub name: String,
    /// Domain type; defaults from the column (alpha -> string, numeric -> integer/decimal, date -> date).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<FieldType>,
    /// What the field means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// For [`FieldType::DateTime`] only (and then required): the `HHmmss` time column that goes
    /// with the date in `column` (`MMRGTM` with `MMRGDT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// For [`FieldType::Enum`] only (and then required, non-empty): M3 code -> domain value
    /// (`{"20": "active", "90": "deactivated"}`). Codes are compared trimmed; on numeric
    /// columns they are compared as numbers (`020` is `20`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// For [`FieldType::Enum`] only: the domain value of codes missing from `values`. Without it
    /// an unknown code is a [`crate::ValueError`] (the row is rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl FieldSpec {
    /// A field with just a column and a name (type from the column, nothing else set).
    pub fn new(column: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            name: name.into(),
            ty: None,
            description: String::new(),
            time_column: None,
            values: None,
            default: None,
        }
    }
}

/// Domain types a column can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Trimmed text.
    String,
    /// Whole number.
    Integer,
    /// Exact decimal number.
    Decimal,
    /// `1`/`0` flags.
    Boolean,
    /// `yyyyMMdd` -> ISO date, `0` -> null.
    Date,
    /// A `yyyyMMdd` date column plus an `HHmmss` time column (`timeColumn`) -> RFC 3339
    /// date-time with the offset of the mapping's `timeZone` (`2026-11-25T14:03:07Z`), date `0` -> null.
    #[serde(rename = "datetime")]
    DateTime,
    /// An M3 code translated through `values` to a domain value (a JSON string).
    Enum,
}

impl FieldType {
    /// Name as written in mapping files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Enum => "enum",
        }
    }
}

/// The default mapping of the demo: `Item` on `MITMAS`.
pub fn default_item_mapping() -> MappingSpec {
    let f = FieldSpec::new;
    MappingSpec {
        name: "Item".to_string(),
        description: "An item (product, part or material) from the M3 item master.".to_string(),
        table: "MITMAS".to_string(),
        fields: vec![
            f("MMCONO", "company"),
            f("MMITNO", "itemNumber"),
            f("MMITDS", "name"),
            f("MMFUDS", "description"),
            f("MMSTAT", "status"),
            f("MMUNMS", "unit"),
            f("MMITTY", "itemType"),
        ],
        resource: None,
        filter: None,
        constants: BTreeMap::new(),
        time_zone: None,
    }
}

/// The 20 `MITMAS` columns (with domain names) of the wide `Item` mapping the benchmarks measure:
/// strings, integers, decimals and dates, as a busy real mapping has.
pub const WIDE_ITEM_COLUMNS: [(&str, &str); 20] = [
    ("MMCONO", "company"),
    ("MMITNO", "itemNumber"),
    ("MMITDS", "name"),
    ("MMFUDS", "description"),
    ("MMSTAT", "status"),
    ("MMUNMS", "unit"),
    ("MMITTY", "itemType"),
    ("MMITGR", "itemGroup"),
    ("MMITCL", "productGroup"),
    ("MMRESP", "responsible"),
    ("MMSUNO", "supplier"),
    ("MMPUPR", "purchasePrice"),
    ("MMSAPR", "salesPrice"),
    ("MMCUCD", "currency"),
    ("MMNEWE", "netWeight"),
    ("MMGRWE", "grossWeight"),
    ("MMEVGR", "environmentGroup"),
    ("MMRGDT", "created"),
    ("MMLMDT", "changed"),
    ("MMCHNO", "changeNumber"),
];

/// The wide `Item` mapping over [`WIDE_ITEM_COLUMNS`].
pub fn wide_item_mapping() -> MappingSpec {
    MappingSpec {
        fields: WIDE_ITEM_COLUMNS.iter().map(|(c, n)| FieldSpec::new(*c, *n)).collect(),
        ..default_item_mapping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_camel_case_and_optional() {
        let spec: MappingSpec = serde_json::from_value(serde_json::json!({
            "name": "Item", "table": "MITMAS",
            "filter": "MMSTAT = '20'",
            "constants": {"source": "m3"},
            "fields": [
                {"column": "MMRGDT", "name": "created", "type": "datetime", "timeColumn": "MMRGTM"},
                {"column": "MMSTAT", "name": "status", "type": "enum",
                 "values": {"20": "active"}, "default": "other"}
            ]
        }))
        .unwrap();
        assert_eq!(spec.filter.as_deref(), Some("MMSTAT = '20'"));
        assert_eq!(spec.fields[0].ty, Some(FieldType::DateTime));
        assert_eq!(spec.fields[0].time_column.as_deref(), Some("MMRGTM"));
        assert_eq!(spec.fields[1].values.as_ref().unwrap()["20"], "active");
        assert_eq!(spec.fields[1].default.as_deref(), Some("other"));
        // Absent options are not written back.
        let plain = serde_json::to_value(default_item_mapping()).unwrap();
        assert!(plain.get("filter").is_none() && plain.get("constants").is_none());
        assert_eq!(
            serde_json::to_value(&spec.fields[0]).unwrap(),
            serde_json::json!({"column": "MMRGDT", "name": "created", "type": "datetime", "timeColumn": "MMRGTM"})
        );
        assert_eq!(FieldType::DateTime.as_str(), "datetime");
        assert_eq!(FieldType::Enum.as_str(), "enum");
    }
}
