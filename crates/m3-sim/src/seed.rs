//! Deterministic seed data: realistic items (MITMAS), plus small customer, supplier,
//! warehouse, balance, order and customer-extension tables. The same seed always gives the
//! same rows; only the audit timestamps are placed relative to "now" (spread over the past two
//! years, all strictly older than now, with some deliberate LMTS ties).

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::db::{self, Db, TableSchema};
use crate::modes::{self, SeparatorValues};

const DAY_MS: i64 = 86_400_000;

/// Users that appear as CHID on seeded rows.
const SEED_USERS: &[&str] = &["MVXSECOFR", "JSMITH", "AJOHANSSON", "MBERG", "KLINDQVIST", "PNOVAK"];

/// (name stem, long description, unit, item type, item group)
const PRODUCTS: &[(&str, &str, &str, &str, &str)] = &[
    ("Hex bolt", "Hex head bolt DIN 933, zinc plated", "PCS", "RM", "FAST"),
    ("Hex nut", "Hex nut DIN 934, stainless A2", "PCS", "RM", "FAST"),
    ("Washer", "Flat washer DIN 125, steel", "PCS", "RM", "FAST"),
    ("Ball bearing", "Deep groove ball bearing, sealed", "PCS", "SP", "BEAR"),
    (
        "Hydraulic hose",
        "High pressure hydraulic hose, 2 wire braid",
        "M",
        "RM",
        "HYDR",
    ),
    (
        "Gear pump",
        "External gear pump, cast iron housing",
        "PCS",
        "FG",
        "HYDR",
    ),
    ("Ball valve", "Two-piece ball valve, full bore", "PCS", "FG", "VALV"),
    ("Power cable", "Flexible power cable, PVC sheathed", "M", "RM", "ELEC"),
    ("Electric motor", "Three-phase induction motor IE3", "PCS", "FG", "ELEC"),
    ("Oil filter", "Spin-on oil filter element", "PCS", "SP", "FILT"),
    ("Air filter", "Panel air filter, synthetic media", "PCS", "SP", "FILT"),
    ("Hydraulic oil", "Hydraulic oil ISO VG 46", "L", "RM", "CHEM"),
    ("Steel sheet", "Cold rolled steel sheet DC01", "KG", "RM", "METL"),
    ("Aluminium bar", "Aluminium round bar 6082-T6", "KG", "RM", "METL"),
    ("Spur gear", "Spur gear, case hardened steel", "PCS", "SP", "GEAR"),
    ("V-belt", "Classical V-belt, wrapped", "PCS", "SP", "TRAN"),
    (
        "Conveyor roller",
        "Gravity conveyor roller, galvanized",
        "PCS",
        "FG",
        "CONV",
    ),
    ("Control panel", "Operator control panel, IP65", "PCS", "FG", "ELEC"),
    ("Gasket", "Flange gasket, EPDM", "PCS", "SP", "SEAL"),
    ("O-ring", "O-ring, NBR 70 shore", "PCS", "SP", "SEAL"),
    ("Paint", "Industrial enamel paint, RAL 5010", "L", "RM", "CHEM"),
    ("Pallet", "EUR pallet 1200x800, heat treated", "PCS", "RM", "PACK"),
];

const SPECS: &[&str] = &[
    "M6x20", "M8x40", "M10x50", "M12x60", "6204-2RS", "6305-ZZ", "DN15", "DN25", "DN50", "3G1.5", "5G2.5", "1.5kW",
    "4kW", "11kW", "10u", "25u", "1mm", "2mm", "Z20 M2", "SPA 1250", "50x20", "120 L", "20 L", "1 L",
];

const MIXED_STEMS: &[&str] = &[
    "BOLT", "NUT", "WSH", "BRG", "HOSE", "PUMP", "VALVE", "CABLE", "MOTOR", "FILTER", "GEAR", "BELT",
];

const CURRENCIES: &[&str] = &["EUR", "EUR", "EUR", "SEK", "USD"];
const COUNTRIES: &[&str] = &["SE", "DE", "FI", "NO", "GB", "US", "PL", "NL"];
const ORIGINS: &[&str] = &["SE", "DE", "CN", "US", "IT", "JP", "PL"];
const RESPONSIBLES: &[&str] = &["JSMITH", "AJOHANSSON", "MBERG", "KLINDQVIST", "PNOVAK"];

const COMPANY_WORDS: &[&str] = &[
    "Nordic", "Baltic", "Atlas", "Polar", "Granite", "Summit", "Vector", "Delta", "Fjord", "Iron", "Alpine", "Coastal",
    "Meridian", "Falcon", "Orion",
];
const COMPANY_TRADES: &[&str] = &[
    "Tools",
    "Machinery",
    "Hydraulics",
    "Engineering",
    "Industries",
    "Logistics",
    "Components",
    "Automation",
    "Steel",
    "Supply",
];
const COMPANY_FORMS: &[&str] = &["AB", "GmbH", "Oy", "AS", "Ltd", "Inc", "Sp. z o.o.", "BV"];
const STREETS: &[&str] = &[
    "Industrivagen",
    "Hauptstrasse",
    "Harbour Road",
    "Teollisuustie",
    "Storgatan",
    "Main Street",
];
const CITIES: &[&str] = &[
    "Stockholm",
    "Hamburg",
    "Tampere",
    "Bergen",
    "Leeds",
    "Chicago",
    "Gdansk",
    "Rotterdam",
];

/// Audit fields for one seeded row: registration and last change somewhere in the past two
/// years, strictly before `now`.
struct SeedAudit {
    rg_ms: i64,
    lm_ms: i64,
    chno: u32,
    chid: &'static str,
}

fn seed_audit(rng: &mut StdRng, now: i64, prev_lm: Option<i64>) -> SeedAudit {
    let rg_ms = now - rng.gen_range(2 * DAY_MS..730 * DAY_MS);
    let latest = now - 60_000;
    let mut lm_ms = if rng.gen_bool(0.3) {
        rg_ms
    } else {
        rng.gen_range(rg_ms..latest)
    };
    // Real M3 gives several rows the same timestamp; make some ties on purpose.
    if let Some(p) = prev_lm {
        if p >= rg_ms && rng.gen_bool(0.05) {
            lm_ms = p;
        }
    }
    let chno = if lm_ms == rg_ms { 1 } else { rng.gen_range(2..40) };
    SeedAudit {
        rg_ms,
        lm_ms,
        chno,
        chid: SEED_USERS.choose(rng).copied().unwrap_or("MVXSECOFR"),
    }
}

/// Builds a stored row from four-letter field values plus seeded audit fields.
fn build_row(schema: &TableSchema, cono: u32, fields: &[(&str, String)], audit: &SeedAudit) -> Vec<String> {
    let mut row: Vec<String> = schema.def.columns.iter().map(db::blank).collect();
    row[schema.cono_pos()] = cono.to_string();
    for (f, v) in fields {
        let name = schema.def.column_for_field(f);
        if let Some(p) = schema.column_pos(&name) {
            match db::normalize(schema.col(p), v) {
                Ok(v) => row[p] = v,
                Err(e) => tracing::warn!(%e, "seed value rejected"),
            }
        }
    }
    let (rgdt, rgtm) = db::date_time_of(audit.rg_ms);
    let (lmdt, _) = db::date_time_of(audit.lm_ms);
    let set = |row: &mut Vec<String>, f: &str, v: String| {
        if let Some(p) = schema.column_pos(&schema.def.column_for_field(f)) {
            row[p] = v;
        }
    };
    set(&mut row, "RGDT", rgdt);
    set(&mut row, "RGTM", if rgtm.is_empty() { "0".into() } else { rgtm });
    set(&mut row, "LMDT", lmdt);
    set(&mut row, "CHNO", audit.chno.to_string());
    set(&mut row, "CHID", audit.chid.to_string());
    set(&mut row, "LMTS", audit.lm_ms.to_string());
    row
}

fn money(rng: &mut StdRng, lo: f64, hi: f64) -> String {
    let cents = (rng.gen_range(lo..hi) * 100.0).round() as i64;
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Generates `n` unique item numbers: about 90% `A000001`.., the rest mixed like `BOLT-M8-40`.
pub(crate) fn item_numbers(rng: &mut StdRng, n: usize) -> Vec<String> {
    // The mixed names come from a space of about 51,000 values: keep well inside it so drawing
    // unique ones stays fast at any table size.
    let mixed = (n / 10).min(20_000);
    let mut out: Vec<String> = (1..=n - mixed).map(|i| format!("A{i:06}")).collect();
    let mut seen: HashSet<String> = out.iter().cloned().collect();
    while out.len() < n {
        let stem = MIXED_STEMS.choose(rng).copied().unwrap_or("PART");
        let candidate = match stem {
            "BOLT" | "NUT" | "WSH" => {
                let d = [4, 5, 6, 8, 10, 12, 16, 20].choose(rng).copied().unwrap_or(8);
                format!("{stem}-M{d}-{}", rng.gen_range(1..20) * 5)
            }
            "BRG" => format!("BRG-{}-2RS", rng.gen_range(6000..6320)),
            "VALVE" => format!(
                "VALVE-DN{}",
                [15, 20, 25, 32, 40, 50, 65, 80].choose(rng).copied().unwrap_or(25)
            ),
            "CABLE" => format!(
                "CABLE-{}G{}",
                rng.gen_range(2..6),
                ["1.5", "2.5", "4", "6"].choose(rng).copied().unwrap_or("1.5")
            ),
            "MOTOR" => format!(
                "MOTOR-{}KW-{}",
                rng.gen_range(1..56),
                ["B3", "B5", "B14"].choose(rng).copied().unwrap_or("B3")
            ),
            _ => format!("{stem}-{:04}", rng.gen_range(1..10000)),
        };
        if candidate.len() <= 15 && seen.insert(candidate.clone()) {
            out.push(candidate);
        }
    }
    out
}

/// A realistic item name (ITDS) and description (FUDS) plus unit, type and group.
pub(crate) fn item_text(rng: &mut StdRng) -> (String, String, &'static str, &'static str, &'static str) {
    let (stem, long, unms, itty, itgr) = *PRODUCTS.choose(rng).unwrap_or(&PRODUCTS[0]);
    let spec = SPECS.choose(rng).copied().unwrap_or("");
    let itds: String = format!("{stem} {spec}").chars().take(30).collect();
    let fuds: String = format!("{long}, {spec}").chars().take(60).collect();
    (itds, fuds, unms, itty, itgr)
}

/// Fills the database with deterministic data for company `cono`.
pub(crate) fn seed(db: &mut Db, seed: u64, cono: u32, items: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = db::now_ms();
    let schema = |db: &Db, t: &str| db.tables[t].schema.clone();

    // Suppliers
    let s = schema(db, "CIDMAS");
    let suppliers: Vec<String> = (1..=20).map(|i| format!("S{i:06}")).collect();
    let mut prev = None;
    for suno in &suppliers {
        let a = seed_audit(&mut rng, now, prev);
        prev = Some(a.lm_ms);
        let name = company_name(&mut rng);
        let row = build_row(
            &s,
            cono,
            &[
                ("SUNO", suno.clone()),
                ("SUNM", name),
                ("SUTY", rng.gen_range(0..2).to_string()),
                ("STAT", "20".into()),
                ("CSCD", COUNTRIES.choose(&mut rng).copied().unwrap_or("SE").into()),
                ("PHNO", phone(&mut rng)),
            ],
            &a,
        );
        load(db, "CIDMAS", row);
    }

    // Warehouses
    let s = schema(db, "MITWHL");
    let warehouses = [
        ("100", "Main warehouse", "01"),
        ("200", "Spare parts store", "02"),
        ("300", "Distribution center", "03"),
    ];
    for (whlo, whnm, whty) in warehouses {
        let a = seed_audit(&mut rng, now, None);
        let row = build_row(
            &s,
            cono,
            &[
                ("WHLO", whlo.into()),
                ("WHNM", whnm.into()),
                ("WHTY", whty.into()),
                ("FACI", "A01".into()),
                ("DIVI", "AAA".into()),
                ("CSCD", "SE".into()),
            ],
            &a,
        );
        load(db, "MITWHL", row);
    }

    // Items
    let s = schema(db, "MITMAS");
    let numbers = item_numbers(&mut rng, items);
    let mut prev = None;
    for itno in &numbers {
        let a = seed_audit(&mut rng, now, prev);
        prev = Some(a.lm_ms);
        let (itds, fuds, unms, itty, itgr) = item_text(&mut rng);
        let stat = match rng.gen_range(0..100) {
            0..=84 => "20",
            85..=89 => "10",
            90..=94 => "50",
            _ => "90",
        };
        let pupr = money(&mut rng, 0.5, 900.0);
        let sapr = {
            let p: f64 = pupr.parse().unwrap_or(1.0);
            money(&mut rng, p * 1.2, p * 2.0 + 0.01)
        };
        let newe = format!("{:.3}", rng.gen_range(0.01..50.0));
        let grwe = format!("{:.3}", newe.parse::<f64>().unwrap_or(0.0) * 1.1);
        let row = build_row(
            &s,
            cono,
            &[
                ("ITNO", itno.clone()),
                ("ITDS", itds),
                ("FUDS", fuds),
                ("STAT", stat.into()),
                ("UNMS", unms.into()),
                ("ITTY", itty.into()),
                ("ITGR", itgr.into()),
                ("ITCL", format!("P{}", rng.gen_range(100..130))),
                (
                    "RESP",
                    RESPONSIBLES.choose(&mut rng).copied().unwrap_or("JSMITH").into(),
                ),
                ("SUNO", suppliers.choose(&mut rng).cloned().unwrap_or_default()),
                ("PUPR", pupr),
                ("SAPR", sapr),
                ("CUCD", CURRENCIES.choose(&mut rng).copied().unwrap_or("EUR").into()),
                ("NEWE", newe),
                ("GRWE", grwe),
                (
                    "EVGR",
                    if rng.gen_bool(0.1) {
                        "ROHS".into()
                    } else {
                        String::new()
                    },
                ),
                ("ZZCO", ORIGINS.choose(&mut rng).copied().unwrap_or("SE").into()),
                ("ZZQC", ["A", "B", "C"].choose(&mut rng).copied().unwrap_or("A").into()),
            ],
            &a,
        );
        load(db, "MITMAS", row);
    }

    // Balances: every item in the main warehouse, spare parts also in 200.
    let s = schema(db, "MITBAL");
    let spare: Vec<String> = {
        let items = &db.tables["MITMAS"];
        let itty = items.schema.column_pos("MMITTY").unwrap_or(0);
        let itno = items.schema.column_pos("MMITNO").unwrap_or(0);
        items
            .rows
            .values()
            .filter(|r| r[itty] == "SP")
            .map(|r| r[itno].clone())
            .collect()
    };
    for (whlo, list) in [("100", &numbers), ("200", &spare)] {
        for itno in list {
            let a = seed_audit(&mut rng, now, None);
            let stqt = rng.gen_range(0..5000);
            let row = build_row(
                &s,
                cono,
                &[
                    ("WHLO", whlo.into()),
                    ("ITNO", itno.clone()),
                    ("STQT", stqt.to_string()),
                    ("ALQT", rng.gen_range(0..=stqt / 4 + 1).to_string()),
                    ("REOP", rng.gen_range(10..200).to_string()),
                    ("SSQT", rng.gen_range(0..50).to_string()),
                    ("STAT", "20".into()),
                ],
                &a,
            );
            load(db, "MITBAL", row);
        }
    }

    // Customers
    let s = schema(db, "OCUSMA");
    let customers: Vec<String> = (1..=50).map(|i| format!("C{:06}", 10000 + i)).collect();
    let mut prev = None;
    for cuno in &customers {
        let a = seed_audit(&mut rng, now, prev);
        prev = Some(a.lm_ms);
        let cscd = COUNTRIES.choose(&mut rng).copied().unwrap_or("SE");
        let cucd = match cscd {
            "SE" => "SEK",
            "NO" => "NOK",
            "GB" => "GBP",
            "US" => "USD",
            "PL" => "PLN",
            _ => "EUR",
        };
        let row = build_row(
            &s,
            cono,
            &[
                ("CUNO", cuno.clone()),
                ("CUNM", company_name(&mut rng)),
                (
                    "CUA1",
                    format!(
                        "{} {}",
                        STREETS.choose(&mut rng).copied().unwrap_or("Main Street"),
                        rng.gen_range(1..200)
                    ),
                ),
                ("CUA2", CITIES.choose(&mut rng).copied().unwrap_or("Stockholm").into()),
                ("STAT", if rng.gen_bool(0.9) { "20".into() } else { "90".into() }),
                ("CSCD", cscd.into()),
                ("CUCD", cucd.into()),
                (
                    "TEPY",
                    ["30", "45", "60"].choose(&mut rng).copied().unwrap_or("30").into(),
                ),
                ("ORTP", "A01".into()),
                ("WHLO", "100".into()),
                ("PHNO", phone(&mut rng)),
                ("VRNO", format!("{cscd}{}", rng.gen_range(100_000_000u64..999_999_999))),
            ],
            &a,
        );
        load(db, "OCUSMA", row);
    }

    // Orders
    let head = schema(db, "OOHEAD");
    let line = schema(db, "OOLINE");
    for o in 1..=100u32 {
        let orno = format!("{}", 1_000_000 + o);
        let a = seed_audit(&mut rng, now, None);
        let (ordt, _) = db::date_time_of(a.rg_ms);
        let (rldt, _) = db::date_time_of(a.rg_ms + rng.gen_range(2..30) * DAY_MS);
        let orst = ["22", "33", "44", "66", "77"].choose(&mut rng).copied().unwrap_or("22");
        let mut total = 0i64;
        let lines = rng.gen_range(1..5);
        for ponr in 1..=lines {
            let la = seed_audit(&mut rng, now, None);
            let itno = numbers.choose(&mut rng).cloned().unwrap_or_default();
            let qty = rng.gen_range(1..100i64);
            let price_cents = rng.gen_range(100..50_000i64);
            total += qty * price_cents;
            let row = build_row(
                &line,
                cono,
                &[
                    ("ORNO", orno.clone()),
                    ("PONR", (ponr * 10).to_string()),
                    ("POSX", "0".into()),
                    ("ITNO", itno),
                    ("ORQT", qty.to_string()),
                    ("ALQT", if orst >= "33" { qty.to_string() } else { "0".into() }),
                    ("DWDT", rldt.clone()),
                    ("SAPR", format!("{}.{:02}", price_cents / 100, price_cents % 100)),
                    (
                        "LNAM",
                        format!("{}.{:02}", qty * price_cents / 100, qty * price_cents % 100),
                    ),
                    ("ORST", orst.into()),
                    ("WHLO", "100".into()),
                ],
                &la,
            );
            load(db, "OOLINE", row);
        }
        let ntam = format!("{}.{:02}", total / 100, total % 100);
        let row = build_row(
            &head,
            cono,
            &[
                ("ORNO", orno),
                ("CUNO", customers.choose(&mut rng).cloned().unwrap_or_default()),
                ("ORTP", "A01".into()),
                ("ORDT", ordt),
                ("RLDT", rldt),
                ("ORST", orst.into()),
                ("ORSL", orst.into()),
                ("CUOR", format!("PO-{}", rng.gen_range(10_000..99_999))),
                ("NTAM", ntam.clone()),
                ("BRAM", ntam),
                ("WHLO", "100".into()),
                ("CUCD", "EUR".into()),
            ],
            &a,
        );
        load(db, "OOHEAD", row);
    }

    // Customer extension rows on some items.
    let s = schema(db, "CUGEX1");
    for itno in numbers.iter().take(20) {
        let a = seed_audit(&mut rng, now, None);
        let row = build_row(
            &s,
            cono,
            &[
                ("FILE", "MITMAS".into()),
                ("PK01", itno.clone()),
                ("A030", format!("CERT-{}", rng.gen_range(1000..9999))),
                ("N096", money(&mut rng, 0.0, 100.0)),
                ("CHB1", rng.gen_range(0..2).to_string()),
            ],
            &a,
        );
        load(db, "CUGEX1", row);
    }

    db.last_ms = db
        .tables
        .values()
        .flat_map(|t| {
            let p = t.schema.column_pos(&t.schema.def.column_for_field("LMTS"));
            t.rows
                .values()
                .filter_map(move |r| p.and_then(|p| r[p].parse::<i64>().ok()))
        })
        .max()
        .unwrap_or(0);
    tracing::info!(items, cono, seed, "simulator seeded");
}

/// With [`SeparatorValues::Sometimes`], every 97th seeded item in key order (the first one
/// included) gets [`modes::SEPARATOR_MARK`] in its name (MMITDS) and description (MMFUDS).
/// Touches no random numbers, so the rest of the seed stays the same.
pub(crate) fn mark_separators(db: &mut Db, mode: SeparatorValues) {
    if mode == SeparatorValues::Never {
        return;
    }
    let Some(data) = db.tables.get_mut("MITMAS") else {
        return;
    };
    let schema = data.schema.clone();
    let cols: Vec<(usize, usize)> = ["MMITDS", "MMFUDS"]
        .iter()
        .filter_map(|c| schema.column_pos(c))
        .map(|p| (p, usize::from(schema.col(p).length)))
        .collect();
    let keys: Vec<_> = data.rows.keys().step_by(97).cloned().collect();
    for key in &keys {
        data.rows.update(key, |row| {
            for &(p, len) in &cols {
                row[p] = modes::with_separators(&row[p], len);
            }
        });
    }
}

fn load(db: &mut Db, table: &str, row: Vec<String>) {
    if let Err(e) = db.load(table, row) {
        tracing::warn!(%e, table, "seed row not loaded");
    }
}

fn company_name(rng: &mut StdRng) -> String {
    format!(
        "{} {} {}",
        COMPANY_WORDS.choose(rng).copied().unwrap_or("Nordic"),
        COMPANY_TRADES.choose(rng).copied().unwrap_or("Tools"),
        COMPANY_FORMS.choose(rng).copied().unwrap_or("AB")
    )
}

fn phone(rng: &mut StdRng) -> String {
    format!(
        "+46 8 {:03} {:02} {:02}",
        rng.gen_range(100..999),
        rng.gen_range(0..99),
        rng.gen_range(0..99)
    )
}
