//! Errors of the mapping domain: invalid mapping definitions and values that do not convert.

/// A mapping definition that cannot be used. Every variant names the mapping and the offending part.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
    BadFieldName {
        mapping: String,
        index: usize,
        got: String,
    },
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
    #[error(
        "mapping `{mapping}`: resource: expected lower-case letters, digits and `-`, got {got:?}"
    )]
    BadResource { mapping: String, got: String },
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
    pub column: String,
    pub field: String,
    pub expected: &'static str,
    pub value: String,
}
