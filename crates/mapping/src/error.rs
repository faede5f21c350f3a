//! Errors of the mapping domain: invalid mapping definitions and values that do not convert.

/// A mapping definition that cannot be used. Every variant names the mapping and the offending part
/// of the spec (`filter`, `fields[3].values`, `constants.source`) and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MappingError {
    #[error("mapping `{mapping}`: name: expected a PascalCase message type name (letters and digits, starting with an upper-case letter, at most 64), got {got:?}")]
    BadName { mapping: String, got: String },
    #[error("mapping `{mapping}`: table: unknown table `{table}`{}", hint(.suggestion))]
    UnknownTable {
        mapping: String,
        table: String,
        suggestion: Option<String>,
    },
    #[error("mapping `{mapping}`: fields[{index}].column: table {table} has no column `{column}`{}", hint(.suggestion))]
    UnknownColumn {
        mapping: String,
        index: usize,
        table: String,
        column: String,
        suggestion: Option<String>,
    },
    #[error("mapping `{mapping}`: fields[{index}].name: expected a field name of letters, digits and `_`, starting with a letter, got {got:?}")]
    BadFieldName { mapping: String, index: usize, got: String },
    #[error("mapping `{mapping}`: fields[{index}].name: field `{field}` is used twice")]
    DuplicateField {
        mapping: String,
        index: usize,
        field: String,
    },
    #[error("mapping `{mapping}`: fields[{index}].column: column `{column}` is mapped twice")]
    DuplicateColumn {
        mapping: String,
        index: usize,
        column: String,
    },
    #[error("mapping `{mapping}`: fields[{index}].type: column `{column}` is {kind:?} and cannot be mapped as {ty}")]
    IncompatibleType {
        mapping: String,
        index: usize,
        column: String,
        kind: crate::catalog::ColumnKind,
        ty: String,
    },
    #[error("mapping `{mapping}`: resource: expected lower-case letters, digits and `-`, got {got:?}")]
    BadResource { mapping: String, got: String },
    #[error("mapping `{mapping}`: filter: {source}")]
    Filter {
        mapping: String,
        #[source]
        source: crate::filter::FilterError,
    },
    #[error("mapping `{mapping}`: fields[{index}].values: type enum needs a non-empty map of M3 code -> domain value")]
    MissingValues { mapping: String, index: usize },
    #[error("mapping `{mapping}`: fields[{index}].values: column `{column}` is numeric; expected numeric codes, got {code:?}")]
    BadEnumCode {
        mapping: String,
        index: usize,
        column: String,
        code: String,
    },
    #[error("mapping `{mapping}`: fields[{index}].timeColumn: type datetime needs the HHmmss time column that goes with date column `{column}`")]
    MissingTimeColumn {
        mapping: String,
        index: usize,
        column: String,
    },
    #[error("mapping `{mapping}`: fields[{index}].timeColumn: table {table} has no column `{column}`{}", hint(.suggestion))]
    UnknownTimeColumn {
        mapping: String,
        index: usize,
        table: String,
        column: String,
        suggestion: Option<String>,
    },
    #[error("mapping `{mapping}`: fields[{index}].timeColumn: expected a numeric HHmmss time column, got `{column}` ({kind:?})")]
    BadTimeColumn {
        mapping: String,
        index: usize,
        column: String,
        kind: crate::catalog::ColumnKind,
    },
    #[error("mapping `{mapping}`: timeZone: {source}")]
    BadTimeZone {
        mapping: String,
        #[source]
        source: crate::zone::TimeZoneError,
    },
    #[error("mapping `{mapping}`: fields[{index}].{option}: only allowed with type {allowed_with}, the field is {ty}")]
    MisplacedOption {
        mapping: String,
        index: usize,
        option: &'static str,
        allowed_with: &'static str,
        ty: String,
    },
    #[error("mapping `{mapping}`: constants.{name}: expected a field name of letters, digits and `_`, starting with a letter")]
    BadConstantName { mapping: String, name: String },
    #[error(
        "mapping `{mapping}`: constants.{name}: clashes with the field of the same name; expected a name no field uses"
    )]
    ConstantClash { mapping: String, name: String },
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// A column value M3 sent that does not convert to the mapped type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("column {column} (field `{field}`): expected {expected}, got {value:?}")]
pub struct ValueError {
    /// The M3 column (for a datetime, the date or the time column, whichever is wrong).
    pub column: String,
    /// The domain field.
    pub field: String,
    /// What the value should have been (`an integer`, `one of the codes "10", "20"`).
    pub expected: std::borrow::Cow<'static, str>,
    /// The value as M3 sent it.
    pub value: String,
}
