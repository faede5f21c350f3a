//! Columns whose MDP `dataType` is outside the known list: a table described with such names maps
//! every row, text columns as strings and numeric-looking ones as numbers.

use std::collections::BTreeMap;

use mapping::catalog::{mdp_column_kind, Column, MdpType, Table};
use mapping::{CompiledMapping, FieldSpec, MappingSpec};

/// A table as MDP would describe it with unusual type names: (column, dataType, editCode, length, decimals).
fn table(columns: &[(&str, &str, &str, u16, u8)]) -> Table {
    Table {
        name: "ZITEMS".into(),
        prefix: "ZI".into(),
        description: "Custom items".into(),
        columns: columns
            .iter()
            .map(|&(name, data_type, edit_code, length, decimals)| Column {
                name: name.into(),
                description: String::new(),
                kind: mdp_column_kind(data_type, edit_code, name, length).0,
                length,
                decimals,
            })
            .collect(),
        primary_key: vec!["ZICONO".into(), "ZIITNO".into()],
    }
}

#[test]
fn unknown_text_types_never_reject_a_row() {
    let columns = [
        ("ZICONO", "Decimal", "4", 3, 0),
        ("ZIITNO", "NChar", "", 15, 0),
        ("ZIITDS", "VarGraphic", "", 30, 0),
        ("ZIGRP", "Graphic", "", 4, 0),
        ("ZIPRIC", "Packed", "", 15, 2),
        ("ZIQTY", "Zoned", "", 7, 0),
        ("ZIRGDT", "Numeric", "Y", 8, 0),
    ];
    assert_eq!(mdp_column_kind("NChar", "", "ZIITNO", 15).1, MdpType::GuessedText);
    let t = table(&columns);
    let spec = MappingSpec {
        name: "CustomItem".into(),
        description: String::new(),
        table: "ZITEMS".into(),
        fields: vec![
            FieldSpec::new("ZICONO", "company"),
            FieldSpec::new("ZIITNO", "itemNumber"),
            FieldSpec::new("ZIITDS", "name"),
            FieldSpec::new("ZIGRP", "group"),
            FieldSpec::new("ZIPRIC", "price"),
            FieldSpec::new("ZIQTY", "quantity"),
            FieldSpec::new("ZIRGDT", "created"),
        ],
        resource: None,
        filter: None,
        constants: BTreeMap::new(),
        time_zone: None,
    };
    let m = CompiledMapping::compile(&spec, &t).unwrap();
    let p = m
        .apply(&["100", "BOLT-M8 ", "Bolt M8 ~ zinc", "A/B ", "12.50", "7", "20260301"])
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&p.payload).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({
            "company": 100,
            "itemNumber": "BOLT-M8",
            "name": "Bolt M8 ~ zinc",
            "group": "A/B",
            "price": 12.5,
            "quantity": 7,
            "created": "2026-03-01",
        })
    );
}
