//! Cron schedules (five fields: minute hour day-of-month month day-of-week, in UTC) for the
//! periodic full re-sync. Supports `*`, numbers, lists `a,b`, ranges `a-b` and steps `*/n`, `a-b/n`.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    source: String,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Whether day-of-month and day-of-week were both restricted (cron then matches either).
    either_day: bool,
}

/// Why a cron expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron schedule {expression:?}: {message}")]
pub struct ScheduleError {
    /// The expression.
    pub expression: String,
    /// What is wrong, naming the field.
    pub message: String,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Schedule {
    /// Parse `m h dom mon dow`, e.g. `30 2 * * *` (02:30 every night).
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let err = |message: String| ScheduleError {
            expression: expr.to_string(),
            message,
        };
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                parts.len()
            )));
        }
        let mut sets = Vec::with_capacity(5);
        for (part, (name, lo, hi)) in parts.iter().zip(FIELDS) {
            sets.push(parse_field(part, lo, hi).map_err(|m| err(format!("{name} field {part:?}: {m}")))?);
        }
        let mut weekdays = sets.pop().expect("5 fields");
        weekdays[0] |= weekdays[7]; // 7 is Sunday too
        weekdays.truncate(7);
        let months = sets.pop().expect("5 fields");
        let days = sets.pop().expect("5 fields");
        Ok(Schedule {
            source: expr.to_string(),
            either_day: parts[2] != "*" && parts[4] != "*",
            minutes: sets[0].clone(),
            hours: sets[1].clone(),
            days,
            months,
            weekdays,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.days[t.day() as usize];
        let dow = self.weekdays[t.weekday().num_days_from_sunday() as usize];
        let day = if self.either_day { dom || dow } else { dom && dow };
        self.minutes[t.minute() as usize] && self.hours[t.hour() as usize] && self.months[t.month() as usize] && day
    }

    /// The first matching minute strictly after `after` (within about four years).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        for _ in 0..(4 * 366 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

fn parse_field(part: &str, lo: u32, hi: u32) -> Result<Vec<bool>, String> {
    let mut set = vec![false; hi as usize + 1];
    for item in part.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(format!("step {s:?} is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, lo, hi)?, num(b, lo, hi)?)
        } else {
            let n = num(range, lo, hi)?;
            (n, if item.contains('/') { hi } else { n })
        };
        if from > to {
            return Err(format!("range {from}-{to} is backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok(set)
}

fn num(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or(format!("expected a number from {lo} to {hi}, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn nightly_and_stepped_schedules() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 17, 0)), Some(at(2026, 11, 26, 2, 30)));
        assert_eq!(s.next_after(at(2026, 11, 26, 2, 30)), Some(at(2026, 11, 27, 2, 30)));
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 17, 1)), Some(at(2026, 11, 25, 17, 15)));
        // Sundays at 04:00 (7 and 0 both mean Sunday); 2026-11-29 is a Sunday.
        let s = Schedule::parse("0 4 * * 7").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 0, 0)), Some(at(2026, 11, 29, 4, 0)));
        let s = Schedule::parse("0 0 1,15 * 1-5").unwrap();
        assert!(s.next_after(at(2026, 11, 25, 0, 0)).is_some());
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let e = Schedule::parse("61 * * * *").unwrap_err();
        assert!(
            e.to_string()
                .contains("minute field \"61\": expected a number from 0 to 59"),
            "{e}"
        );
        let e = Schedule::parse("0 2 * *").unwrap_err();
        assert!(e.to_string().contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("0 */0 * * *").unwrap_err();
        assert!(e.to_string().contains("hour field"), "{e}");
    }
}
