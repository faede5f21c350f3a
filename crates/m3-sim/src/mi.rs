//! MI programs and transactions: their field metadata and their execution against the
//! simulated database. Transport-neutral: the HTTP layer turns a [`MiReply`] into the v1 or
//! v2 JSON shapes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use mapping::catalog::ColumnKind;

use crate::db::{self, Db, KeyPart, TableSchema};
use crate::error::SimError;
use crate::export_query;
use crate::modes::{CompanyCondition, OrderBy};

/// Metadata of one MI field (input or output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMeta {
    /// Four-letter field name (`ITNO`).
    pub name: String,
    /// MI type letter: `A`, `N` or `D`.
    pub mi_type: &'static str,
    /// Field length.
    pub length: usize,
    /// Field description.
    pub description: String,
}

impl FieldMeta {
    fn new(name: &str, mi_type: &'static str, length: usize, description: &str) -> FieldMeta {
        FieldMeta {
            name: name.into(),
            mi_type,
            length,
            description: description.into(),
        }
    }
}

/// An M3 "NOK" answer: error code, field and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nok {
    /// Message id (`XIM0002`), may be blank.
    pub code: String,
    /// The input field the error is about, may be blank.
    pub field: String,
    /// The message, right-padded like M3 pads it.
    pub message: String,
}

impl Nok {
    fn new(code: &str, field: &str, message: &str) -> Nok {
        Nok {
            code: code.into(),
            field: field.into(),
            message: pad_message(message),
        }
    }
}

/// M3 answers messages padded with blanks; the simulator pads to a multiple of 12 characters,
/// at least 36 (which reproduces the documented `"Item number A100 does not exist     "`).
pub fn pad_message(m: &str) -> String {
    let len = m.chars().count();
    let target = (len.div_ceil(12) * 12).max(36);
    let mut s = m.to_string();
    s.extend(std::iter::repeat_n(' ', target - len));
    s
}

/// The outcome of one transaction: output metadata, records (values unpadded, aligned with
/// `fields`) and, for NOK, the error (a list may carry records and then an error).
#[derive(Debug, Clone, Default)]
pub struct MiReply {
    /// Output field metadata.
    pub fields: Vec<FieldMeta>,
    /// Output records.
    pub records: Vec<Vec<String>>,
    /// The NOK, if the transaction failed.
    pub error: Option<Nok>,
}

impl MiReply {
    fn nok(n: Nok) -> MiReply {
        MiReply {
            error: Some(n),
            ..MiReply::default()
        }
    }
}

/// One transaction call.
#[derive(Debug, Clone)]
pub struct MiCall<'a> {
    /// Program (`MMS200MI`).
    pub program: &'a str,
    /// Transaction (`GetItmBasic`).
    pub transaction: &'a str,
    /// Inputs by four-letter field name.
    pub inputs: &'a BTreeMap<String, String>,
    /// The session's company.
    pub cono: u32,
    /// Max records for lists, 0 = no limit.
    pub maxrecs: usize,
    /// The user the change is recorded for (CHID).
    pub user: &'a str,
}

/// What a transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Get,
    Add,
    Upd,
    Dlt,
    LstByKey,
    LstByChgDate,
    ExportSelect {
        pad: bool,
    },
    LstAdtFieldInf,
    LstTransactions,
    /// OIS100MI/LstLine: the lines of one order (OOLINE).
    LstLine,
}

/// A CRUD-able business object backed by one table.
#[derive(Debug)]
struct Entity {
    table: &'static str,
    key: &'static str,
    noun: &'static str,
    not_found: &'static str,
    exists: &'static str,
    required: &'static [&'static str],
    valid_stat: &'static [&'static str],
}

const ITEM: Entity = Entity {
    table: "MITMAS",
    key: "ITNO",
    noun: "Item number",
    not_found: "XIM0002",
    exists: "XIM0003",
    required: &["STAT", "ITNO", "ITDS", "RESP", "UNMS", "ITTY"],
    valid_stat: &["10", "20", "50", "90"],
};

const CUSTOMER: Entity = Entity {
    table: "OCUSMA",
    key: "CUNO",
    noun: "Customer number",
    not_found: "XCU0002",
    exists: "XCU0003",
    required: &["CUNO", "CUNM"],
    valid_stat: &["10", "20", "90"],
};

const SUPPLIER: Entity = Entity {
    table: "CIDMAS",
    key: "SUNO",
    noun: "Supplier",
    not_found: "WSU0103",
    exists: "WSU0104",
    required: &["SUNO", "SUNM"],
    valid_stat: &["10", "20", "90"],
};

const ORDER: Entity = Entity {
    table: "OOHEAD",
    key: "ORNO",
    noun: "Order number",
    not_found: "WOR0103",
    exists: "WOR0104",
    required: &["ORNO", "CUNO", "ORTP"],
    valid_stat: &[],
};

/// A transaction's definition.
#[derive(Debug)]
struct TrnDef {
    program: &'static str,
    transaction: &'static str,
    description: &'static str,
    action: Action,
    entity: Option<&'static Entity>,
    inputs: Vec<FieldMeta>,
    outputs: Vec<FieldMeta>,
}

fn table_fields(schema: &TableSchema, skip: &[&str]) -> Vec<FieldMeta> {
    schema
        .def
        .columns
        .iter()
        .filter(|c| !schema.custom_columns.contains(&c.name))
        .filter(|c| !skip.contains(&c.field()))
        .map(|c| FieldMeta {
            name: c.field().to_string(),
            mi_type: c.kind.mi_type(),
            length: usize::from(c.length),
            description: c.description.clone(),
        })
        .collect()
}

const AUDIT_FIELDS: &[&str] = &["CONO", "RGDT", "RGTM", "LMDT", "CHNO", "CHID", "LMTS"];

fn catalog() -> &'static Vec<TrnDef> {
    static CATALOG: OnceLock<Vec<TrnDef>> = OnceLock::new();
    CATALOG.get_or_init(build_catalog)
}

fn build_catalog() -> Vec<TrnDef> {
    let schemas = db::schemas();
    let schema = |n: &str| schemas.iter().find(|s| s.def.name == n).expect("standard table");
    let mut out = Vec::new();
    for (program, entity, names) in [
        (
            "MMS200MI",
            &ITEM,
            [
                ("GetItmBasic", "Get item basic data"),
                ("AddItmBasic", "Add item basic data"),
                ("UpdItmBasic", "Update item basic data"),
                ("DltItm", "Delete item"),
                ("LstItmByItm", "List items by item number"),
            ],
        ),
        (
            "CRS610MI",
            &CUSTOMER,
            [
                ("GetBasicData", "Get customer basic data"),
                ("Add", "Add customer"),
                ("ChgBasicData", "Change customer basic data"),
                ("Delete", "Delete customer"),
                ("LstByNumber", "List customers by number"),
            ],
        ),
    ] {
        let s = schema(entity.table);
        let all = table_fields(s, &["CONO"]);
        let editable = table_fields(s, AUDIT_FIELDS);
        let key = editable
            .iter()
            .find(|f| f.name == entity.key)
            .cloned()
            .expect("key field");
        let actions = [Action::Get, Action::Add, Action::Upd, Action::Dlt, Action::LstByKey];
        for ((transaction, description), action) in names.into_iter().zip(actions) {
            let (inputs, outputs) = match action {
                Action::Get | Action::LstByKey => (vec![key.clone()], all.clone()),
                Action::Add | Action::Upd => (editable.clone(), vec![]),
                _ => (vec![key.clone()], vec![]),
            };
            out.push(TrnDef {
                program,
                transaction,
                description,
                action,
                entity: Some(entity),
                inputs,
                outputs,
            });
        }
    }
    // Read-only programs: suppliers (CRS620MI) and customer orders (OIS100MI).
    for (program, entity, transaction, description, action) in [
        (
            "CRS620MI",
            &SUPPLIER,
            "GetBasicData",
            "Get supplier basic data",
            Action::Get,
        ),
        (
            "CRS620MI",
            &SUPPLIER,
            "LstSuppliers",
            "List suppliers",
            Action::LstByKey,
        ),
        ("OIS100MI", &ORDER, "GetHead", "Get order head", Action::Get),
        ("OIS100MI", &ORDER, "LstHead", "List order heads", Action::LstByKey),
    ] {
        let s = schema(entity.table);
        let key = table_fields(s, AUDIT_FIELDS)
            .into_iter()
            .find(|f| f.name == entity.key)
            .expect("key field");
        out.push(TrnDef {
            program,
            transaction,
            description,
            action,
            entity: Some(entity),
            inputs: vec![key],
            outputs: table_fields(s, &["CONO"]),
        });
    }
    let line = schema("OOLINE");
    out.push(TrnDef {
        program: "OIS100MI",
        transaction: "LstLine",
        description: "List order lines",
        action: Action::LstLine,
        entity: Some(&ORDER),
        inputs: table_fields(line, AUDIT_FIELDS)
            .into_iter()
            .filter(|f| ["ORNO", "PONR", "POSX"].contains(&f.name.as_str()))
            .collect(),
        outputs: table_fields(line, &["CONO"]),
    });
    out.push(TrnDef {
        program: "MMS200MI",
        transaction: "LstItmByChgDate",
        description: "List items by change date",
        action: Action::LstByChgDate,
        entity: Some(&ITEM),
        inputs: vec![
            FieldMeta::new("FLMD", "D", 8, "From change date"),
            FieldMeta::new("TLMD", "D", 8, "To change date"),
        ],
        outputs: table_fields(schema("MITMAS"), &["CONO"]),
    });
    for (transaction, pad) in [("Select", false), ("SelectPad", true)] {
        out.push(TrnDef {
            program: "EXPORTMI",
            transaction,
            description: if pad {
                "Select records, blank-padded values"
            } else {
                "Select records"
            },
            action: Action::ExportSelect { pad },
            entity: None,
            inputs: vec![
                FieldMeta::new("QERY", "A", 3000, "Query"),
                FieldMeta::new("SEPC", "A", 1, "Separator"),
                FieldMeta::new("HDRS", "A", 1, "Headers"),
            ],
            outputs: vec![FieldMeta::new("REPL", "A", 3000, "Reply")],
        });
    }
    out.push(TrnDef {
        program: "MRS001MI",
        transaction: "LstAdtFieldInf",
        description: "List additional field information",
        action: Action::LstAdtFieldInf,
        entity: None,
        inputs: vec![
            FieldMeta::new("MINM", "A", 10, "Program name"),
            FieldMeta::new("TRNM", "A", 32, "Transaction name"),
            FieldMeta::new("TRTP", "A", 1, "Transaction type"),
        ],
        outputs: vec![
            FieldMeta::new("FLNM", "A", 6, "Field name"),
            FieldMeta::new("TYPE", "A", 1, "Field type"),
            FieldMeta::new("LENG", "N", 4, "Field length"),
            FieldMeta::new("FLDS", "A", 60, "Field description"),
        ],
    });
    out.push(TrnDef {
        program: "MRS001MI",
        transaction: "LstTransactions",
        description: "List transactions",
        action: Action::LstTransactions,
        entity: None,
        inputs: vec![FieldMeta::new("MINM", "A", 10, "Program name")],
        outputs: vec![
            FieldMeta::new("MINM", "A", 10, "Program name"),
            FieldMeta::new("TRNM", "A", 32, "Transaction name"),
            FieldMeta::new("TRDS", "A", 60, "Description"),
        ],
    });
    out
}

/// The programs the simulator knows.
pub fn programs() -> Vec<&'static str> {
    let mut p: Vec<&str> = Vec::new();
    for t in catalog() {
        if !p.contains(&t.program) {
            p.push(t.program);
        }
    }
    p
}

/// Executes one transaction against the database (the caller holds the write lock). Writes
/// that are due are committed first; `maxrecs` is applied as [`crate::SimModes::maxrecs`] says.
pub(crate) fn execute(db: &mut Db, call: &MiCall<'_>) -> MiReply {
    db.settle();
    let (def, call) = match checked(db, call) {
        Ok(c) => c,
        Err(nok) => return nok,
    };
    let mut reply = match (def.action, def.entity) {
        (Action::Add, Some(e)) => add(db, def, e, &call),
        (Action::Upd, Some(e)) => upd(db, def, e, &call),
        (Action::Dlt, Some(e)) => dlt(db, e, &call),
        _ => read(db, def, &call),
    };
    if reply.fields.is_empty() && reply.error.is_none() {
        reply.fields = def.outputs.clone();
    }
    reply
}

/// Whether a transaction only reads: it may run under the shared lock through
/// [`execute_read`], beside other reads (a gateway serves concurrent calls).
pub(crate) fn reads_only(program: &str, transaction: &str) -> bool {
    find(program, transaction).is_none_or(|def| !matches!(def.action, Action::Add | Action::Upd | Action::Dlt))
}

/// Executes a transaction for which [`reads_only`] holds under the shared lock; the caller
/// committed the writes that were due (see [`Db::has_due`]). Same answers as [`execute`].
pub(crate) fn execute_read(db: &Db, call: &MiCall<'_>) -> MiReply {
    let (def, call) = match checked(db, call) {
        Ok(c) => c,
        Err(nok) => return nok,
    };
    let mut reply = read(db, def, &call);
    if reply.fields.is_empty() && reply.error.is_none() {
        reply.fields = def.outputs.clone();
    }
    reply
}

fn find(program: &str, transaction: &str) -> Option<&'static TrnDef> {
    let program = program.to_ascii_uppercase();
    catalog()
        .iter()
        .find(|t| t.program == program && t.transaction.eq_ignore_ascii_case(transaction))
}

/// The transaction's definition and the call with the effective `maxrecs`, or the NOK of an
/// unknown transaction or a too long input.
fn checked<'a>(db: &Db, call: &MiCall<'a>) -> Result<(&'static TrnDef, MiCall<'a>), MiReply> {
    let call = MiCall {
        maxrecs: db.modes.effective_maxrecs(call.maxrecs),
        ..call.clone()
    };
    let Some(def) = find(call.program, call.transaction) else {
        let program = call.program.to_ascii_uppercase();
        if !catalog().iter().any(|t| t.program == program) {
            return Err(MiReply::nok(Nok::new(
                "",
                "",
                &format!("Program {} does not exist", call.program),
            )));
        }
        return Err(MiReply::nok(Nok::new(
            "",
            "",
            &format!("Transaction {} does not exist", call.transaction),
        )));
    };
    // Input field lengths are checked like MI does.
    for f in &def.inputs {
        if let Some(v) = call.inputs.get(&f.name) {
            if v.trim_end().chars().count() > f.length {
                return Err(MiReply::nok(Nok::new(
                    "",
                    &f.name,
                    &format!("Input field {} is too long, max {}", f.name, f.length),
                )));
            }
        }
    }
    tracing::debug!(
        program = def.program,
        transaction = def.transaction,
        cono = call.cono,
        "MI call"
    );
    Ok((def, call))
}

/// The transactions that only read.
fn read(db: &Db, def: &TrnDef, call: &MiCall<'_>) -> MiReply {
    match (def.action, def.entity) {
        (Action::Get, Some(e)) => get(db, def, e, call),
        (Action::LstByKey, Some(e)) => lst_by_key(db, def, e, call),
        (Action::LstByChgDate, Some(e)) => lst_by_chg_date(db, def, e, call),
        (Action::ExportSelect { pad }, _) => export_select(db, pad, call),
        (Action::LstAdtFieldInf, _) => lst_adt_field_inf(call),
        (Action::LstTransactions, _) => lst_transactions(call),
        (Action::LstLine, Some(e)) => lst_line(db, def, e, call),
        _ => MiReply::nok(Nok::new("", "", "Transaction not implemented")),
    }
}

fn input<'a>(call: &'a MiCall<'_>, field: &str) -> &'a str {
    call.inputs.get(field).map(|s| s.trim()).unwrap_or("")
}

fn table_schema(db: &Db, e: &Entity) -> std::sync::Arc<TableSchema> {
    db.tables[e.table].schema.clone()
}

fn key_of(schema: &TableSchema, cono: u32, value: &str) -> Vec<KeyPart> {
    vec![
        KeyPart::Num(i128::from(cono) * 1_000_000_000),
        db::key_part(schema.col(schema.key_pos[1]), value),
    ]
}

fn record(schema: &TableSchema, fields: &[FieldMeta], row: &[String]) -> Vec<String> {
    fields
        .iter()
        .map(|f| {
            schema
                .column_pos(&schema.def.column_for_field(&f.name))
                .map(|p| row[p].clone())
                .unwrap_or_default()
        })
        .collect()
}

fn not_found(e: &Entity, value: &str) -> Nok {
    Nok::new(e.not_found, e.key, &format!("{} {} does not exist", e.noun, value))
}

fn sim_error_nok(schema: &TableSchema, e: &Entity, err: SimError) -> Nok {
    match err {
        SimError::DuplicateKey { .. } => Nok::new(e.exists, e.key, &format!("{} already exists", e.noun)),
        SimError::NotFound { .. } => Nok::new(e.not_found, e.key, &format!("{} does not exist", e.noun)),
        SimError::InvalidValue { column, value, .. } => {
            let field = column.get(2..).unwrap_or(&column).to_string();
            let desc = schema
                .def
                .column(&column)
                .map(|c| c.description.clone())
                .unwrap_or_default();
            Nok::new(
                &format!("W{field}02"),
                &field,
                &format!("{desc} {} is invalid", value.trim()),
            )
        }
        other => Nok::new("", "", &other.to_string()),
    }
}

fn get(db: &Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    let k = input(call, e.key);
    if k.is_empty() {
        return MiReply::nok(must_be_entered(&schema, e.key));
    }
    match db.tables[e.table].rows.get(&key_of(&schema, call.cono, k)) {
        Some(row) => MiReply {
            fields: def.outputs.clone(),
            records: vec![record(&schema, &def.outputs, row)],
            error: None,
        },
        None => MiReply::nok(not_found(e, k)),
    }
}

fn must_be_entered(schema: &TableSchema, field: &str) -> Nok {
    let desc = schema
        .def
        .column(&schema.def.column_for_field(field))
        .map(|c| c.description.clone())
        .unwrap_or_else(|| field.to_string());
    Nok::new(&format!("W{field}01"), field, &format!("{desc} must be entered"))
}

fn check_stat(e: &Entity, call: &MiCall<'_>) -> Option<Nok> {
    let stat = input(call, "STAT");
    if !stat.is_empty() && !e.valid_stat.contains(&stat) {
        return Some(Nok::new("WST0202", "STAT", &format!("Status {stat} is invalid")));
    }
    None
}

fn changes(def: &TrnDef, e: &Entity, schema: &TableSchema, call: &MiCall<'_>) -> Vec<(String, String)> {
    def.inputs
        .iter()
        .filter(|f| f.name != e.key)
        .filter_map(|f| {
            let v = call.inputs.get(&f.name)?;
            (!v.trim().is_empty()).then(|| (schema.def.column_for_field(&f.name), v.clone()))
        })
        .collect()
}

fn add(db: &mut Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    for f in e.required {
        if input(call, f).is_empty() {
            return MiReply::nok(must_be_entered(&schema, f));
        }
    }
    if let Some(n) = check_stat(e, call) {
        return MiReply::nok(n);
    }
    let k = input(call, e.key).to_string();
    let mut values = changes(def, e, &schema, call);
    values.push((schema.def.column_for_field(e.key), k.clone()));
    if e.table == "OCUSMA" && input(call, "STAT").is_empty() {
        values.push(("OKSTAT".into(), "20".into()));
    }
    let cono_col = schema.def.column_for_field("CONO");
    let cono = call.cono.to_string();
    values.push((cono_col, cono));
    let refs: Vec<(&str, &str)> = values.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    match db.insert(e.table, &refs, call.user, call.cono) {
        Ok(_) => MiReply::default(),
        Err(SimError::DuplicateKey { .. }) => {
            MiReply::nok(Nok::new(e.exists, e.key, &format!("{} {k} already exists", e.noun)))
        }
        Err(err) => MiReply::nok(sim_error_nok(&schema, e, err)),
    }
}

fn upd(db: &mut Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    let k = input(call, e.key);
    if k.is_empty() {
        return MiReply::nok(must_be_entered(&schema, e.key));
    }
    let key = key_of(&schema, call.cono, k);
    if db.latest(e.table, &key).is_none() {
        return MiReply::nok(not_found(e, k));
    }
    if let Some(n) = check_stat(e, call) {
        return MiReply::nok(n);
    }
    let values = changes(def, e, &schema, call);
    let refs: Vec<(&str, &str)> = values.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    match db.update(e.table, &key, &refs, call.user) {
        Ok(_) => MiReply::default(),
        Err(SimError::NotFound { .. }) => MiReply::nok(not_found(e, k)),
        Err(err) => MiReply::nok(sim_error_nok(&schema, e, err)),
    }
}

fn dlt(db: &mut Db, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    let k = input(call, e.key);
    if k.is_empty() {
        return MiReply::nok(must_be_entered(&schema, e.key));
    }
    match db.delete(e.table, &key_of(&schema, call.cono, k), call.user) {
        Ok(_) => MiReply::default(),
        Err(_) => MiReply::nok(not_found(e, k)),
    }
}

fn limit(maxrecs: usize) -> usize {
    if maxrecs == 0 {
        usize::MAX
    } else {
        maxrecs
    }
}

fn lst_by_key(db: &Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    let from = key_of(&schema, call.cono, input(call, e.key));
    let cono = KeyPart::Num(i128::from(call.cono) * 1_000_000_000);
    let records = db.tables[e.table]
        .rows
        .range_from(&from)
        .take_while(|(k, _)| k[0] == cono)
        .take(limit(call.maxrecs))
        .map(|(_, row)| record(&schema, &def.outputs, row))
        .collect();
    MiReply {
        fields: def.outputs.clone(),
        records,
        error: None,
    }
}

fn lst_line(db: &Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let head = table_schema(db, e);
    let orno = input(call, "ORNO");
    if orno.is_empty() {
        return MiReply::nok(must_be_entered(&head, "ORNO"));
    }
    if !db.tables[e.table].rows.contains_key(&key_of(&head, call.cono, orno)) {
        return MiReply::nok(not_found(e, orno));
    }
    let schema = db.tables["OOLINE"].schema.clone();
    let num = |f: &str| -> Result<KeyPart, Nok> {
        let v = input(call, f);
        let col = schema.col(
            schema.key_pos[match f {
                "PONR" => 2,
                _ => 3,
            }],
        );
        match db::normalize(col, v) {
            Ok(n) => Ok(db::key_part(col, &n)),
            Err(_) => Err(Nok::new(
                &format!("W{f}02"),
                f,
                &format!("{} {v} is invalid", col.description),
            )),
        }
    };
    let (ponr, posx) = match (num("PONR"), num("POSX")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(n), _) | (_, Err(n)) => return MiReply::nok(n),
    };
    let cono = KeyPart::Num(i128::from(call.cono) * 1_000_000_000);
    let orno_part = db::key_part(schema.col(schema.key_pos[1]), orno);
    let from = vec![cono.clone(), orno_part.clone(), ponr, posx];
    let records = db.tables["OOLINE"]
        .rows
        .range_from(&from)
        .take_while(|(k, _)| k[0] == cono && k[1] == orno_part)
        .take(limit(call.maxrecs))
        .map(|(_, row)| record(&schema, &def.outputs, row))
        .collect();
    MiReply {
        fields: def.outputs.clone(),
        records,
        error: None,
    }
}

fn lst_by_chg_date(db: &Db, def: &TrnDef, e: &Entity, call: &MiCall<'_>) -> MiReply {
    let schema = table_schema(db, e);
    let lmdt = schema.def.column("MMLMDT").cloned();
    let Some(lmdt_col) = lmdt else {
        return MiReply::nok(Nok::new("", "", "Table has no change date"));
    };
    let mut bounds = [0i128, i128::MAX];
    for (i, f) in ["FLMD", "TLMD"].iter().enumerate() {
        let v = input(call, f);
        if v.is_empty() {
            continue;
        }
        match db::normalize(&lmdt_col, v) {
            Ok(d) => bounds[i] = db::parse_dec(&d).unwrap_or(0),
            Err(_) => return MiReply::nok(Nok::new(&format!("W{f}02"), f, &format!("Date {v} is invalid"))),
        }
    }
    let pos = schema.column_pos("MMLMDT").unwrap_or(0);
    let cono = call.cono.to_string();
    let mut rows: Vec<&Vec<String>> = db.tables[e.table]
        .rows
        .values()
        .filter(|r| r[schema.cono_pos()] == cono)
        .filter(|r| {
            let d = db::parse_dec(&r[pos]).unwrap_or(0);
            d >= bounds[0] && d <= bounds[1]
        })
        .collect();
    // Index MITMAS20: CONO, LMDT, ITNO (stable sort keeps item order within a date).
    rows.sort_by_key(|r| db::parse_dec(&r[pos]).unwrap_or(0));
    MiReply {
        fields: def.outputs.clone(),
        records: rows
            .into_iter()
            .take(limit(call.maxrecs))
            .map(|r| record(&schema, &def.outputs, r))
            .collect(),
        error: None,
    }
}

fn export_select(db: &Db, pad: bool, call: &MiCall<'_>) -> MiReply {
    let fields = vec![FieldMeta::new("REPL", "A", 3000, "Reply")];
    let qery = call.inputs.get("QERY").map(String::as_str).unwrap_or("");
    if qery.trim().is_empty() {
        return MiReply::nok(Nok::new("WQERY01", "QERY", "Query must be entered"));
    }
    let sep = call
        .inputs
        .get("SEPC")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| ";".to_string());
    let headers = input(call, "HDRS") == "1";
    let mut query = match export_query::parse(qery) {
        Ok(q) => q,
        Err(e) => return MiReply::nok(Nok::new("XSQ0001", "QERY", &format!("Query syntax error: {e}"))),
    };
    let Some(data) = db.tables.get(&query.table) else {
        return MiReply::nok(Nok::new(
            "XSQ0002",
            "QERY",
            &format!("Table {} does not exist", query.table),
        ));
    };
    let modes = &db.modes;
    if !query.order.is_empty() {
        match modes.order_by {
            OrderBy::Honoured => {}
            OrderBy::Ignored => query.order.clear(),
            OrderBy::Rejected => {
                return MiReply::nok(Nok::new(
                    "XSQ0001",
                    "QERY",
                    "Query syntax error: ORDER BY is not supported",
                ))
            }
        }
    }
    if modes.company_condition == CompanyCondition::Rejected && export_query::filters_company(&query, data) {
        return MiReply::nok(Nok::new(
            "XSQ0004",
            "QERY",
            "Filters including company selections are not supported",
        ));
    }
    let result = match export_query::run(&query, data, call.cono, call.maxrecs, modes.company_condition) {
        Ok(r) => r,
        Err(e) => return MiReply::nok(Nok::new("XSQ0003", "QERY", &format!("Query error: {e}"))),
    };
    let mut records = Vec::with_capacity(result.rows.len() + 1);
    if headers {
        records.push(vec![result.columns.join(&sep)]);
    }
    for row in result.rows {
        let values: Vec<String> = if pad {
            row.iter()
                .zip(&result.lengths)
                .map(|(v, &l)| format!("{v:<l$}"))
                .collect()
        } else {
            row
        };
        records.push(vec![values.join(&sep)]);
    }
    MiReply {
        fields,
        records,
        error: None,
    }
}

fn lst_adt_field_inf(call: &MiCall<'_>) -> MiReply {
    let minm = input(call, "MINM").to_ascii_uppercase();
    let trnm = input(call, "TRNM");
    let trtp = input(call, "TRTP").to_ascii_uppercase();
    let Some(def) = catalog()
        .iter()
        .find(|t| t.program == minm && t.transaction.eq_ignore_ascii_case(trnm))
    else {
        return MiReply::nok(Nok::new(
            "WTRNM02",
            "TRNM",
            &format!("Transaction {trnm} does not exist"),
        ));
    };
    let fields = match trtp.as_str() {
        "I" => &def.inputs,
        "O" | "" => &def.outputs,
        _ => {
            return MiReply::nok(Nok::new(
                "WTRTP02",
                "TRTP",
                &format!("Transaction type {trtp} is invalid"),
            ))
        }
    };
    MiReply {
        fields: vec![],
        records: fields
            .iter()
            .take(limit(call.maxrecs))
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.mi_type.to_string(),
                    f.length.to_string(),
                    f.description.clone(),
                ]
            })
            .collect(),
        error: None,
    }
}

fn lst_transactions(call: &MiCall<'_>) -> MiReply {
    let minm = input(call, "MINM").to_ascii_uppercase();
    let records: Vec<Vec<String>> = catalog()
        .iter()
        .filter(|t| t.program == minm)
        .map(|t| {
            vec![
                t.program.to_string(),
                t.transaction.to_string(),
                t.description.to_string(),
            ]
        })
        .collect();
    if records.is_empty() {
        return MiReply::nok(Nok::new("WMINM02", "MINM", &format!("Program {minm} does not exist")));
    }
    MiReply {
        fields: vec![],
        records,
        error: None,
    }
}

/// Whether an MI type letter is numeric.
pub fn is_numeric_type(t: &str) -> bool {
    t == ColumnKind::Numeric.mi_type() || t == ColumnKind::Date.mi_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_messages_like_the_documented_example() {
        assert_eq!(
            pad_message("Item number A100 does not exist"),
            "Item number A100 does not exist     "
        );
        assert_eq!(pad_message(&"x".repeat(40)).len(), 48);
    }

    #[test]
    fn catalogue_has_the_documented_transactions() {
        for (p, t) in [
            ("MMS200MI", "GetItmBasic"),
            ("MMS200MI", "LstItmByChgDate"),
            ("EXPORTMI", "Select"),
            ("CRS610MI", "LstByNumber"),
            ("MRS001MI", "LstAdtFieldInf"),
            ("CRS620MI", "LstSuppliers"),
            ("OIS100MI", "LstLine"),
        ] {
            assert!(
                catalog().iter().any(|d| d.program == p && d.transaction == t),
                "{p}/{t}"
            );
        }
        let get = catalog().iter().find(|d| d.transaction == "GetItmBasic").unwrap();
        assert_eq!(get.outputs[0], FieldMeta::new("ITNO", "A", 15, "Item number"));
        assert!(!get.outputs.iter().any(|f| f.name == "ZZCO"));
        assert_eq!(
            programs(),
            ["MMS200MI", "CRS610MI", "CRS620MI", "OIS100MI", "EXPORTMI", "MRS001MI"]
        );
    }
}
