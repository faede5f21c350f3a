//! Simulated M3 users (`SIMUSR01`..`SIMUSR08`) changing the item master at a steady rate:
//! about 80% updates (name, status, description, prices), 12% inserts and 8% deletes, all
//! through the same database code path as MI transactions, so audit fields are maintained. With
//! [`crate::modes::SeparatorValues::Sometimes`] about one new name or description in ten carries
//! the separator characters `~|;,`.

use std::sync::Weak;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use crate::db::{parse_dec, Db};
use crate::modes::{self, SeparatorValues};
use crate::{seed, Inner};

const USERS: &[&str] = &[
    "SIMUSR01", "SIMUSR02", "SIMUSR03", "SIMUSR04", "SIMUSR05", "SIMUSR06", "SIMUSR07", "SIMUSR08",
];

/// Spawns the workload task.
pub(crate) fn start(inner: Weak<Inner>, changes_per_second: f64) -> JoinHandle<()> {
    tokio::spawn(async move {
        if !changes_per_second.is_finite() || changes_per_second <= 0.0 {
            return;
        }
        let (seed, first_free) = match inner.upgrade() {
            Some(i) => (i.cfg.seed, i.cfg.items - i.cfg.items / 10 + 1),
            None => return,
        };
        let mut w = Workload {
            rng: StdRng::seed_from_u64(seed ^ 0x5EED_0F3A),
            next_item: first_free,
        };
        let period = Duration::from_secs_f64((1.0 / changes_per_second).clamp(0.005, 1.0));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut budget = 0.0f64;
        tracing::info!(changes_per_second, "workload started");
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                break;
            };
            let now = Instant::now();
            budget += changes_per_second * now.duration_since(last).as_secs_f64();
            last = now;
            // Never let a stall turn into a burst larger than one second of work.
            budget = budget.min(changes_per_second.max(1.0));
            let n = budget.floor() as usize;
            budget -= n as f64;
            if n == 0 {
                continue;
            }
            let cono = inner.cfg.company;
            let mut db = crate::write(&inner.db);
            db.settle();
            for _ in 0..n {
                w.one_change(&mut db, cono);
            }
        }
        tracing::info!("workload stopped");
    })
}

struct Workload {
    rng: StdRng,
    next_item: usize,
}

impl Workload {
    fn one_change(&mut self, db: &mut Db, cono: u32) {
        let user = USERS.choose(&mut self.rng).copied().unwrap_or("SIMUSR01");
        let roll = self.rng.gen_range(0..100);
        let count = db.tables["MITMAS"].rows.len();
        let result = if roll < 12 || count < 10 {
            self.insert(db, cono, user)
        } else if roll < 20 {
            self.delete(db, cono, user)
        } else {
            self.update(db, cono, user)
        };
        if let Err(e) = result {
            tracing::debug!(%e, "workload change skipped");
        }
    }

    /// With [`SeparatorValues::Sometimes`], one text in ten carries separator characters.
    fn with_separators(&mut self, db: &Db) -> bool {
        db.modes.separator_values == SeparatorValues::Sometimes && self.rng.gen_ratio(1, 10)
    }

    fn pick(&mut self, db: &Db, cono: u32) -> Option<(Vec<crate::db::KeyPart>, Vec<String>)> {
        let data = &db.tables["MITMAS"];
        let n = data.rows.len();
        if n == 0 {
            return None;
        }
        let cono_pos = data.schema.cono_pos();
        let cono = cono.to_string();
        let start = self.rng.gen_range(0..n);
        data.rows
            .iter()
            .skip(start)
            .chain(data.rows.iter().take(start))
            .find(|(_, r)| r[cono_pos] == cono)
            .map(|(k, r)| (k.to_vec(), r.clone()))
    }

    fn insert(&mut self, db: &mut Db, cono: u32, user: &str) -> Result<(), crate::SimError> {
        let itno = loop {
            let candidate = format!("A{:06}", self.next_item);
            self.next_item += 1;
            let key = Db::make_key(&db.tables["MITMAS"].schema, &[&cono.to_string(), &candidate])?;
            if db.latest("MITMAS", &key).is_none() {
                break candidate;
            }
        };
        let (mut itds, mut fuds, unms, itty, itgr) = seed::item_text(&mut self.rng);
        if self.with_separators(db) {
            itds = modes::with_separators(&itds, 30);
            fuds = modes::with_separators(&fuds, 60);
        }
        let price = format!("{:.2}", self.rng.gen_range(1.0..500.0));
        let cono_s = cono.to_string();
        db.insert(
            "MITMAS",
            &[
                ("MMCONO", &cono_s),
                ("MMITNO", &itno),
                ("MMITDS", &itds),
                ("MMFUDS", &fuds),
                ("MMSTAT", "10"),
                ("MMUNMS", unms),
                ("MMITTY", itty),
                ("MMITGR", itgr),
                ("MMRESP", user),
                ("MMPUPR", &price),
                ("MMCUCD", "EUR"),
            ],
            user,
            cono,
        )
        .map(|_| ())
    }

    fn delete(&mut self, db: &mut Db, cono: u32, user: &str) -> Result<(), crate::SimError> {
        match self.pick(db, cono) {
            Some((key, _)) => db.delete("MITMAS", &key, user).map(|_| ()),
            None => Ok(()),
        }
    }

    fn update(&mut self, db: &mut Db, cono: u32, user: &str) -> Result<(), crate::SimError> {
        let Some((key, row)) = self.pick(db, cono) else {
            return Ok(());
        };
        let schema = db.tables["MITMAS"].schema.clone();
        let value = |c: &str| schema.column_pos(c).map(|p| row[p].clone()).unwrap_or_default();
        let mut changes: Vec<(&str, String)> = Vec::new();
        match self.rng.gen_range(0..4) {
            0 => {
                let (mut itds, _, _, _, _) = seed::item_text(&mut self.rng);
                if self.with_separators(db) {
                    itds = modes::with_separators(&itds, 30);
                }
                changes.push(("MMITDS", itds));
            }
            1 => {
                let stat = ["10", "20", "20", "20", "50", "90"]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("20");
                changes.push(("MMSTAT", stat.to_string()));
            }
            2 => {
                let (_, mut fuds, _, _, _) = seed::item_text(&mut self.rng);
                if self.with_separators(db) {
                    fuds = modes::with_separators(&fuds, 60);
                }
                changes.push(("MMFUDS", fuds));
            }
            _ => {
                let col = if self.rng.gen_bool(0.5) { "MMSAPR" } else { "MMPUPR" };
                let old = parse_dec(&value(col)).unwrap_or(0) as f64 / 1e9;
                let new = (old.max(1.0) * self.rng.gen_range(0.9..1.1) * 100.0).round() / 100.0;
                changes.push((col, format!("{new:.2}")));
            }
        }
        let refs: Vec<(&str, &str)> = changes.iter().map(|(c, v)| (*c, v.as_str())).collect();
        db.update("MITMAS", &key, &refs, user).map(|_| ())
    }
}
