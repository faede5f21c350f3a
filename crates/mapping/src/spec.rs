//! The mapping definition as users write it (JSON, YAML or TOML): message type, table, fields.

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
        }
    }
}

/// The default mapping of the demo: `Item` on `MITMAS`.
pub fn default_item_mapping() -> MappingSpec {
    let f = |column: &str, name: &str| FieldSpec {
        column: column.to_string(),
        name: name.to_string(),
        ty: None,
        description: String::new(),
    };
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
    }
}
