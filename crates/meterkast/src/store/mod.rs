//! The store: full-resolution samples for a retention window and roll-ups kept
//! forever, behind small traits: SQLite for one house, PostgreSQL for many meters.

pub mod calendar;
pub mod ingest;
pub mod location;
pub mod postgres;
pub mod sample;
pub mod sqlite;

use anyhow::Result;

pub use calendar::Step;
pub use ingest::{Incoming, Ingestor, Outcome, Rollup};
pub use location::{AnyBackend, Location};
pub use sample::Sample;

/// A meter as the store knows it.
#[derive(Clone, Debug)]
pub struct MeterInfo {
    /// Database id.
    pub id: i64,
    /// Equipment id as the meter sends it.
    pub equipment_id: String,
    /// Last detected dialect.
    pub dialect: String,
    /// Where it was first seen.
    pub source: String,
    /// First telegram (unix seconds).
    pub first_seen: i64,
    /// Last telegram (unix seconds).
    pub last_seen: i64,
    /// The meter this one replaced.
    pub replaces: Option<i64>,
    /// Sub-meters JSON.
    pub submeters: String,
    /// Latest frame JSON.
    pub last_frame: Option<String>,
    /// Latest raw telegram.
    pub last_raw: Option<Vec<u8>>,
}

/// One stored roll-up bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupRow {
    /// Bucket start (unix seconds).
    pub start: i64,
    /// Bucket end (unix seconds, exclusive).
    pub end: i64,
    /// Its sums and extremes.
    pub rollup: Rollup,
}

/// What the rest of the program may ask of a store.
pub trait StoreRead {
    /// Every meter, with its latest frame.
    fn meters(&self) -> Result<Vec<MeterInfo>>;
    /// Every meter without its latest frame (`last_frame` and `last_raw` are `None`):
    /// what lists and look-ups need, cheap with thousands of meters.
    fn meter_list(&self) -> Result<Vec<MeterInfo>> {
        let mut all = self.meters()?;
        for m in &mut all {
            m.last_frame = None;
            m.last_raw = None;
        }
        Ok(all)
    }
    /// The meters whose latest stored frame is newer than `t` (unix seconds), with it
    /// and its time as `last_seen`: what a daemon serving a store that others write
    /// follows.
    fn frames_after(&self, t: i64) -> Result<Vec<MeterInfo>> {
        let mut all = self.meters()?;
        all.retain(|m| m.last_frame.is_some() && m.last_seen > t);
        Ok(all)
    }
    /// Stored buckets of one size with `from <= start < to`.
    fn rollups(&self, meter: i64, step: Step, from: i64, to: i64) -> Result<Vec<RollupRow>>;
    /// Full-resolution samples with `from <= ts < to`.
    fn samples(&self, meter: i64, from: i64, to: i64) -> Result<Vec<Sample>>;
    /// (full-resolution samples held, bytes the store occupies).
    fn stored_size(&self) -> Result<(i64, i64)>;
    /// The quarter-hour with the most imported energy among those starting in
    /// `[from, to)`: (its start, Wh).
    fn max_quarter_import(&self, meter: i64, from: i64, to: i64) -> Result<Option<(i64, i64)>>;
    /// A stored setting (JSON text), such as the prices edited in the dashboard.
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores a setting, replacing any earlier value.
    fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Whether this reader can no longer answer (its server closed the connection), so
    /// that a pool opens a new one instead of keeping it.
    fn is_broken(&self) -> bool {
        false
    }
}
