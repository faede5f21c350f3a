//! The tuning a self-hosted connector receives with its configuration (poll and reconcile
//! intervals, page size, separator, load parallelism, delete hold, full re-sync schedule).
//! Its JSON names are those of every released version (`pollIntervalMs`, ...), durations are
//! whole milliseconds, and a field an older Studio does not send takes the connector's default.

use std::time::Duration;

use pipeline::ConnectorSettings;
use serde::{Deserialize, Serialize};

use crate::ChannelError;

/// Tuning and schedules of a self-hosted connector ([`crate::ConnectorConfig::settings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Tuning {
    /// Pause between polls of a table when it is caught up (`pollIntervalMs`).
    #[serde(rename = "pollIntervalMs", with = "millis")]
    pub poll_interval: Duration,
    /// Pause between key reconciliations (`reconcileIntervalMs`).
    #[serde(rename = "reconcileIntervalMs", with = "millis")]
    pub reconcile_interval: Duration,
    /// How far before the stored cursor each poll re-reads (`overlapMs`).
    #[serde(rename = "overlapMs", with = "millis")]
    pub overlap: Duration,
    /// Rows per `EXPORTMI/Select` page (1 to 100000).
    pub page_size: u32,
    /// `EXPORTMI` column separator.
    pub separator: char,
    /// Windows the initial load reads at once (1 to 32).
    pub load_parallelism: usize,
    /// Share of a mapping's keys that may vanish in one pass before deletes are held (0.0 to 1.0).
    pub delete_hold_share: f64,
    /// Cron schedule of a full re-sync, if any.
    pub full_resync: Option<String>,
}

impl Default for Tuning {
    /// The connector's defaults ([`ConnectorSettings::new`]), without a full re-sync.
    fn default() -> Self {
        let s = ConnectorSettings::new("");
        Tuning {
            poll_interval: s.poll_interval,
            reconcile_interval: s.reconcile_interval,
            overlap: s.overlap,
            page_size: s.page_size,
            separator: s.separator,
            load_parallelism: s.load_parallelism,
            delete_hold_share: s.delete_hold_share,
            full_resync: None,
        }
    }
}

impl Tuning {
    /// The connector settings of `connection` with this tuning. Out-of-range numbers are brought
    /// into range (page size 1 to 100000, load parallelism 1 to 32, delete hold share 0.0 to
    /// 1.0); a `fullResync` that is not a cron schedule is an error.
    pub fn to_settings(&self, connection: &str) -> Result<ConnectorSettings, ChannelError> {
        let mut s = ConnectorSettings::new(connection);
        s.poll_interval = self.poll_interval;
        s.reconcile_interval = self.reconcile_interval;
        s.overlap = self.overlap;
        s.page_size = self.page_size.clamp(1, 100_000);
        s.separator = self.separator;
        s.load_parallelism = self.load_parallelism.clamp(1, 32);
        s.delete_hold_share = self.delete_hold_share.clamp(0.0, 1.0);
        s.full_resync = self
            .full_resync
            .as_deref()
            .map(pipeline::schedule::Schedule::parse)
            .transpose()
            .map_err(ChannelError::FullResync)?;
        Ok(s)
    }
}

/// A [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
