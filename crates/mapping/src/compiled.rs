//! A mapping validated against its table: resolves columns, key and types once, then turns rows
//! into message payloads with a content hash, allocation-light.

use std::collections::HashSet;

use crate::catalog::{ColumnKind, Table};
use crate::convert;
use crate::error::{MappingError, ValueError};
use crate::names::{self, Case, MessageTypeName};
use crate::spec::{FieldType, MappingSpec};

/// The key of one entity: the trimmed primary-key values, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey(pub Vec<String>);

impl EntityKey {
    /// Separator between key values in the textual form (`100|A100`).
    pub const SEPARATOR: char = '|';

    /// Parse the textual form; `parts` is the expected number of key values.
    pub fn parse(s: &str, parts: usize) -> Option<Self> {
        let v: Vec<String> = s.split(Self::SEPARATOR).map(str::to_string).collect();
        (v.len() == parts).then_some(Self(v))
    }
}

impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "{}", Self::SEPARATOR)?;
            }
            f.write_str(v)?;
        }
        Ok(())
    }
}

/// One mapped field, resolved.
#[derive(Debug, Clone)]
pub struct CompiledField {
    /// Domain name.
    pub name: String,
    /// M3 column.
    pub column: String,
    /// Domain type.
    pub ty: FieldType,
    /// Description (from the mapping, else M3's).
    pub description: String,
    /// Whether the column is part of the primary key.
    pub is_key: bool,
    /// `"name":` pre-rendered.
    prefix: String,
}

/// The output of mapping one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Entity key.
    pub key: EntityKey,
    /// JSON payload of the `...Updated` message.
    pub payload: String,
    /// Content hash of the payload, to drop updates that change no mapped field.
    pub hash: u64,
}

/// A mapping validated against its table.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    /// Message type name.
    pub name: MessageTypeName,
    /// Description.
    pub description: String,
    /// Source table.
    pub table: String,
    /// REST resource name of the read model.
    pub resource: String,
    /// Fields in payload order (key fields included).
    pub fields: Vec<CompiledField>,
    /// Index into `fields` of each primary-key column, in key order.
    key_fields: Vec<usize>,
}

impl CompiledMapping {
    /// Validate `spec` against `table` (from MDP or the standard catalogue).
    pub fn compile(spec: &MappingSpec, table: &Table) -> Result<Self, MappingError> {
        let mapping = spec.name.clone();
        let name = MessageTypeName::parse(&spec.name)?;
        if spec.table != table.name {
            return Err(MappingError::UnknownTable {
                mapping,
                table: spec.table.clone(),
                suggestion: None,
            });
        }
        let mut fields = Vec::with_capacity(spec.fields.len() + table.primary_key.len());
        let mut names_seen = HashSet::new();
        let mut cols_seen = HashSet::new();
        for (index, f) in spec.fields.iter().enumerate() {
            let column = f.column.trim().to_ascii_uppercase();
            let Some(col) = table.column(&column) else {
                return Err(MappingError::UnknownColumn {
                    mapping,
                    index,
                    table: table.name.clone(),
                    column: f.column.clone(),
                    suggestion: names::closest(
                        &f.column,
                        table.columns.iter().map(|c| c.name.as_str()),
                    ),
                });
            };
            if !names::is_valid_field_name(&f.name) {
                return Err(MappingError::BadFieldName {
                    mapping,
                    index,
                    got: f.name.clone(),
                });
            }
            if !names_seen.insert(f.name.clone()) {
                return Err(MappingError::DuplicateField {
                    mapping,
                    index,
                    field: f.name.clone(),
                });
            }
            if !cols_seen.insert(column.clone()) {
                return Err(MappingError::DuplicateColumn {
                    mapping,
                    index,
                    column,
                });
            }
            let ty = match f.ty {
                Some(ty) => {
                    let ok = match (col.kind, ty) {
                        (_, FieldType::String) => true,
                        (ColumnKind::Alpha, FieldType::Date) => true,
                        (ColumnKind::Alpha | ColumnKind::Numeric, FieldType::Boolean) => true,
                        (ColumnKind::Alpha, _) => true,
                        (ColumnKind::Numeric, _) => true,
                        (ColumnKind::Date, FieldType::Date | FieldType::Integer) => true,
                        (ColumnKind::Date, _) => false,
                    };
                    if !ok {
                        return Err(MappingError::IncompatibleType {
                            mapping,
                            index,
                            column,
                            kind: col.kind,
                            ty: ty.as_str().to_string(),
                        });
                    }
                    ty
                }
                None => default_type(col.kind, col.decimals),
            };
            fields.push(compiled_field(
                &f.name,
                &column,
                ty,
                if f.description.is_empty() {
                    &col.description
                } else {
                    &f.description
                },
                table.primary_key.contains(&column),
            ));
        }
        // The key cannot be deselected: add missing key columns with suggested names.
        for k in &table.primary_key {
            if !cols_seen.contains(k) {
                let col = table.column(k).expect("catalogue keys are columns");
                let mut name = names::suggest_field_name(&col.description, Case::Camel);
                let base = name.clone();
                let mut n = 2;
                while names_seen.contains(&name) {
                    name = format!("{base}{n}");
                    n += 1;
                }
                names_seen.insert(name.clone());
                fields.insert(
                    0,
                    compiled_field(
                        &name,
                        k,
                        default_type(col.kind, col.decimals),
                        &col.description,
                        true,
                    ),
                );
            }
        }
        let key_fields = table
            .primary_key
            .iter()
            .map(|k| {
                fields
                    .iter()
                    .position(|f| &f.column == k)
                    .expect("key added above")
            })
            .collect();
        let resource = match &spec.resource {
            Some(r) => {
                let ok = !r.is_empty()
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    return Err(MappingError::BadResource {
                        mapping,
                        got: r.clone(),
                    });
                }
                r.clone()
            }
            None => names::resource_name(&name),
        };
        Ok(Self {
            name,
            description: spec.description.clone(),
            table: table.name.clone(),
            resource,
            fields,
            key_fields,
        })
    }

    /// `<Name>Updated`.
    pub fn updated_type(&self) -> String {
        format!("{}Updated", self.name)
    }

    /// `<Name>Deleted`.
    pub fn deleted_type(&self) -> String {
        format!("{}Deleted", self.name)
    }

    /// The columns a row handed to [`Self::apply`] must start with, in this order.
    pub fn columns(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.column.clone()).collect()
    }

    /// The primary-key columns, in key order.
    pub fn key_columns(&self) -> Vec<String> {
        self.key_fields
            .iter()
            .map(|&i| self.fields[i].column.clone())
            .collect()
    }

    /// The key fields (domain names), in key order.
    pub fn key_field_names(&self) -> Vec<&str> {
        self.key_fields
            .iter()
            .map(|&i| self.fields[i].name.as_str())
            .collect()
    }

    /// The entity key of a row laid out as [`Self::columns`].
    pub fn key_of(&self, row: &[&str]) -> EntityKey {
        EntityKey(
            self.key_fields
                .iter()
                .map(|&i| row[i].trim().to_string())
                .collect(),
        )
    }

    /// Map a row laid out as [`Self::columns`] (extra trailing values are ignored) to the
    /// `...Updated` payload.
    pub fn apply(&self, row: &[&str]) -> Result<Projection, ValueError> {
        let mut payload = String::with_capacity(32 + self.fields.len() * 24);
        self.write_object(&mut payload, self.fields.iter().zip(row.iter().copied()))?;
        let hash = xxhash_rust::xxh3::xxh3_64(payload.as_bytes());
        Ok(Projection {
            key: self.key_of(row),
            payload,
            hash,
        })
    }

    /// The `...Deleted` payload: the key fields only.
    pub fn deleted_payload(&self, key: &EntityKey) -> Result<String, ValueError> {
        let mut payload = String::with_capacity(64);
        self.write_object(
            &mut payload,
            self.key_fields
                .iter()
                .map(|&i| &self.fields[i])
                .zip(key.0.iter().map(String::as_str)),
        )?;
        Ok(payload)
    }

    fn write_object<'a>(
        &self,
        out: &mut String,
        pairs: impl Iterator<Item = (&'a CompiledField, &'a str)>,
    ) -> Result<(), ValueError> {
        out.push('{');
        for (i, (f, raw)) in pairs.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&f.prefix);
            let ok = match f.ty {
                FieldType::String => {
                    convert::write_json_str(out, raw.trim_end());
                    Some(())
                }
                FieldType::Integer => convert::write_integer(out, raw),
                FieldType::Decimal => convert::write_decimal(out, raw),
                FieldType::Boolean => convert::write_boolean(out, raw),
                FieldType::Date => convert::write_date(out, raw),
            };
            if ok.is_none() {
                return Err(ValueError {
                    column: f.column.clone(),
                    field: f.name.clone(),
                    expected: match f.ty {
                        FieldType::String => "text",
                        FieldType::Integer => "an integer",
                        FieldType::Decimal => "a decimal number",
                        FieldType::Boolean => "1 or 0",
                        FieldType::Date => "a yyyyMMdd date or 0",
                    },
                    value: raw.to_string(),
                });
            }
        }
        out.push('}');
        Ok(())
    }
}

fn default_type(kind: ColumnKind, decimals: u8) -> FieldType {
    match kind {
        ColumnKind::Alpha => FieldType::String,
        ColumnKind::Numeric if decimals > 0 => FieldType::Decimal,
        ColumnKind::Numeric => FieldType::Integer,
        ColumnKind::Date => FieldType::Date,
    }
}

fn compiled_field(
    name: &str,
    column: &str,
    ty: FieldType,
    description: &str,
    is_key: bool,
) -> CompiledField {
    let mut prefix = String::new();
    convert::write_json_str(&mut prefix, name);
    prefix.push(':');
    CompiledField {
        name: name.to_string(),
        column: column.to_string(),
        ty,
        description: description.to_string(),
        is_key,
        prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::standard_table;
    use crate::spec::{default_item_mapping, FieldSpec};

    fn item() -> CompiledMapping {
        CompiledMapping::compile(&default_item_mapping(), &standard_table("MITMAS").unwrap())
            .unwrap()
    }

    #[test]
    fn a_row_becomes_a_typed_payload_with_a_content_hash() {
        let m = item();
        assert_eq!(
            m.columns()[..2],
            ["MMCONO".to_string(), "MMITNO".to_string()]
        );
        let row = [
            "100",
            "A100           ",
            "Bolt M8  ",
            "Zinc \"plated\"",
            "20",
            "PCS",
            "FG ",
        ];
        let p = m.apply(&row).unwrap();
        assert_eq!(p.key.to_string(), "100|A100");
        let v: serde_json::Value = serde_json::from_str(&p.payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"company":100,"itemNumber":"A100","name":"Bolt M8","description":"Zinc \"plated\"","status":"20","unit":"PCS","itemType":"FG"})
        );
        // Padding differences do not change the content hash; a real change does.
        let same = m
            .apply(&[
                "100",
                "A100",
                "Bolt M8",
                "Zinc \"plated\"",
                "20",
                "PCS",
                "FG",
            ])
            .unwrap();
        assert_eq!(same.hash, p.hash);
        let changed = m
            .apply(&[
                "100",
                "A100",
                "Bolt M10",
                "Zinc \"plated\"",
                "20",
                "PCS",
                "FG",
            ])
            .unwrap();
        assert_ne!(changed.hash, p.hash);
        assert_eq!(
            m.deleted_payload(&p.key).unwrap(),
            r#"{"company":100,"itemNumber":"A100"}"#
        );
    }

    #[test]
    fn bad_values_name_the_column_and_field() {
        let err = item()
            .apply(&["1X0", "A100", "", "", "", "", ""])
            .unwrap_err();
        assert_eq!(err.column, "MMCONO");
        assert_eq!(err.field, "company");
        assert!(err.to_string().contains("expected an integer"), "{err}");
    }

    #[test]
    fn unknown_columns_are_named_with_the_closest_valid_name() {
        let mut spec = default_item_mapping();
        spec.fields[2].column = "MMITDX".into();
        let err = CompiledMapping::compile(&spec, &standard_table("MITMAS").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping `Item`: fields[2].column: table MITMAS has no column `MMITDX`; did you mean `MMITDS`?"
        );
    }

    #[test]
    fn key_columns_cannot_be_left_out() {
        let mut spec = default_item_mapping();
        spec.fields.retain(|f| f.column != "MMCONO");
        let m = CompiledMapping::compile(&spec, &standard_table("MITMAS").unwrap()).unwrap();
        assert_eq!(m.key_columns(), vec!["MMCONO", "MMITNO"]);
        assert_eq!(m.key_field_names(), vec!["company", "itemNumber"]);
    }

    #[test]
    fn duplicate_field_names_and_bad_types_are_refused() {
        let table = standard_table("MITMAS").unwrap();
        let mut spec = default_item_mapping();
        spec.fields[3].name = "name".into();
        let err = CompiledMapping::compile(&spec, &table).unwrap_err();
        assert!(
            matches!(err, MappingError::DuplicateField { index: 3, .. }),
            "{err}"
        );
        let mut spec = default_item_mapping();
        spec.fields.push(FieldSpec {
            column: "MMLMDT".into(),
            name: "changed".into(),
            ty: Some(FieldType::Boolean),
            description: String::new(),
        });
        let err = CompiledMapping::compile(&spec, &table).unwrap_err();
        assert!(err.to_string().contains("fields[7].type"), "{err}");
    }
}
