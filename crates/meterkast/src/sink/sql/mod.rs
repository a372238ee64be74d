//! The SQL history sink: every reading into a table of an external MariaDB/MySQL or
//! PostgreSQL database, and one row per meter and interval (5 minutes by default)
//! into a second table, for Grafana, spreadsheets and whatever else reads SQL.
//!
//! The pipeline hands readings over with `try_send`; one thread of the sink's own
//! appends them to an on-disk queue at once ([`spool`]), another writes them from
//! there to the database in multi-row transactions ([`writer`]), forgetting them only
//! after the commit. An absent
//! database, a restart of it or of meterkast therefore loses nothing up to the
//! queue's bound, and the primary key (meter, time) keeps retries from duplicating.

pub mod conn;
pub mod schema;
pub mod spool;
pub mod writer;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use schema::{Dialect, TableName};

use crate::store::Incoming;

/// The default readings table.
pub const DEFAULT_TABLE: &str = "meter_readings";
/// The default interval of the second table.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Readings waiting between the pipeline and the sink's thread.
const ROW_CHANNEL: usize = 4096;
/// The on-disk queue's bound (about 300,000 readings).
const QUEUE_MAX_BYTES: u64 = 100 << 20;

/// One SQL sink's settings.
#[derive(Clone, PartialEq)]
pub struct SqlSettings {
    /// The database URL as given, password included (never logged).
    pub url: String,
    /// The URL without the password, for messages.
    pub shown: String,
    /// MariaDB/MySQL or PostgreSQL.
    pub dialect: Dialect,
    /// The readings table.
    pub table: TableName,
    /// The interval table's bucket, in seconds.
    pub interval: u32,
    /// The interval table's own name (`--sql-interval-table`); `None` for the readings
    /// table's with a suffix.
    pub interval_table: Option<TableName>,
    /// The on-disk queue.
    pub queue_path: PathBuf,
}

impl std::fmt::Debug for SqlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSettings")
            .field("url", &self.shown)
            .field("table", &self.table)
            .field("interval", &self.interval)
            .field("interval_table", &self.interval_table)
            .field("queue_path", &self.queue_path)
            .finish()
    }
}

/// Parses `--sql-interval`: whole seconds from a minute to a day that divide a day, so
/// buckets line up with UTC days.
pub fn parse_interval(s: &str) -> Result<u32> {
    let d = humantime::parse_duration(s.trim())
        .with_context(|| format!("--sql-interval {s}: use a duration like 5m, 15m or 1h"))?;
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || !(60..=86400).contains(&secs) || 86400 % secs != 0 {
        bail!("--sql-interval {s}: use whole minutes from 1m to 24h that divide a day (1m, 5m, 15m, 1h...)");
    }
    Ok(secs as u32)
}

impl SqlSettings {
    /// Checks a sink URL, table name and interval; the queue goes next to `db`.
    pub fn parse(
        url: &str,
        table: Option<&str>,
        interval: Option<&str>,
        db: &Path,
    ) -> Result<SqlSettings> {
        let mut u = url::Url::parse(url.trim()).with_context(|| {
            format!(
                "--sql-sink {}: not a URL; use mysql://user:password@host:3306/database or postgres://user:password@host:5432/database",
                crate::redact::url(url)
            )
        })?;
        let dialect = match u.scheme() {
            "mysql" | "mariadb" => Dialect::Mysql,
            "postgres" | "postgresql" => Dialect::Postgres,
            other => bail!(
                "--sql-sink: unknown scheme `{other}`; use mysql:// (or mariadb://) or postgres:// (or postgresql://)"
            ),
        };
        if u.host_str().is_none_or(str::is_empty) {
            bail!(
                "--sql-sink {}: name the server, like {}://127.0.0.1/energy",
                crate::redact::url(u.as_str()),
                u.scheme()
            );
        }
        let database = u.path().trim_start_matches('/').to_string();
        if dialect == Dialect::Mysql && database.is_empty() {
            bail!(
                "--sql-sink {}: name the database, like mysql://user@{}/energy (create it first: CREATE DATABASE energy)",
                crate::redact::url(u.as_str()),
                u.host_str().unwrap_or("host")
            );
        }
        let table = TableName::parse(table.unwrap_or(DEFAULT_TABLE))?;
        let interval = match interval {
            Some(s) => parse_interval(s)?,
            None => DEFAULT_INTERVAL.as_secs() as u32,
        };
        let shown = crate::redact::url(u.as_str());
        let slug: String = format!(
            "{}-{}-{}-{}-{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map_or(String::new(), |p| p.to_string()),
            database,
            table
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
        let queue_path = PathBuf::from(format!("{}.sql-queue-{slug}", db.display()));
        let real = if u.scheme() == "mariadb" {
            // Only the scheme changes; the rest stays byte for byte.
            let rest = url.trim().split_once(':').map_or("", |(_, r)| r);
            format!("mysql:{rest}")
        } else {
            url.trim().to_string()
        };
        let _ = u.set_password(None);
        Ok(SqlSettings {
            url: real,
            shown,
            dialect,
            table,
            interval,
            interval_table: None,
            queue_path,
        })
    }

    /// Names the interval table (`--sql-interval-table historyDebounced`); without a
    /// schema it goes where the readings table is.
    pub fn with_interval_table(mut self, name: Option<&str>) -> Result<SqlSettings> {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(self);
        };
        let mut t = TableName::parse(name).map_err(|e| {
            anyhow::anyhow!(e
                .to_string()
                .replacen("--sql-table", "--sql-interval-table", 1))
        })?;
        if t.schema.is_none() {
            t.schema = self.table.schema.clone();
        }
        if t == self.table {
            bail!("--sql-interval-table {name}: that is the readings table (--sql-table); give the interval table a name of its own");
        }
        self.interval_table = Some(t);
        Ok(self)
    }

    /// The interval table.
    pub fn bucket_table(&self) -> TableName {
        match &self.interval_table {
            Some(t) => t.clone(),
            None => self
                .table
                .with_suffix(&schema::interval_suffix(self.interval)),
        }
    }
}

/// One reading as the sink queues it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlRow {
    /// Meter id.
    #[serde(rename = "m")]
    pub meter: String,
    /// Dialect.
    #[serde(rename = "d")]
    pub dialect: String,
    /// Telegram time, unix seconds.
    #[serde(rename = "t")]
    pub ts: i64,
    /// The store's integer quantities, in field order.
    pub v: Vec<Option<i64>>,
    /// The power factor in thousandths, which the store does not keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<i64>,
}

/// The power factor of a frame JSON, in thousandths.
fn power_factor(frame: Option<&str>) -> Option<i64> {
    #[derive(Deserialize)]
    struct Frame {
        reading: Reading,
    }
    #[derive(Deserialize)]
    struct Reading {
        active_power_factor: Option<f64>,
    }
    // Most meters send none: only a frame that names one is parsed.
    let f = frame.filter(|f| f.contains("\"active_power_factor\""))?;
    let pf = serde_json::from_str::<Frame>(f)
        .ok()?
        .reading
        .active_power_factor?;
    pf.is_finite().then(|| (pf * 1000.0).round() as i64)
}

impl SqlRow {
    /// The row for one accepted reading.
    pub fn new(inc: &Incoming) -> SqlRow {
        SqlRow {
            meter: inc.meter.clone(),
            dialect: inc.dialect.clone(),
            ts: inc.ts,
            v: inc.sample.v.to_vec(),
            pf: power_factor(inc.frame.as_deref()),
        }
    }

    /// The borrowed form the SQL builder takes.
    pub fn as_row(&self) -> schema::Row<'_> {
        schema::Row {
            meter: &self.meter,
            ts: self.ts,
            dialect: &self.dialect,
            v: &self.v,
            pf: self.pf,
        }
    }
}

/// Counters of all SQL sinks together, for `/metrics`.
#[derive(Debug, Default)]
pub struct SqlMetrics {
    /// Readings committed to a database.
    pub written: AtomicU64,
    /// Failed connection attempts and transactions.
    pub failures: AtomicU64,
    /// Readings waiting in the queues now.
    pub queued: AtomicU64,
    /// Readings dropped: the pipeline's hand-over full, or the disk queue at its bound.
    pub dropped: AtomicU64,
}

impl SqlMetrics {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        for (name, kind, help, v) in [
            (
                "written_total",
                "counter",
                "Readings committed to the SQL history databases.",
                &self.written,
            ),
            (
                "failures_total",
                "counter",
                "Failed connections and transactions of the SQL history sinks.",
                &self.failures,
            ),
            (
                "queued",
                "gauge",
                "Readings queued on disk for the SQL history databases.",
                &self.queued,
            ),
            (
                "dropped_total",
                "counter",
                "Readings the SQL history sinks dropped (queue full).",
                &self.dropped,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP meterkast_sql_sink_{name} {help}\n# TYPE meterkast_sql_sink_{name} {kind}\nmeterkast_sql_sink_{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// A running sink: hand it readings with [`SqlSink::offer`]; drop it to flush and stop.
pub struct SqlSink {
    tx: SyncSender<SqlRow>,
    metrics: Arc<SqlMetrics>,
    shown: String,
}

impl SqlSink {
    /// Queues a reading without waiting; a full hand-over drops it (and counts it).
    pub fn offer(&self, row: SqlRow) {
        if self.tx.try_send(row).is_err() {
            let n = self.metrics.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!("SQL sink {} behind: {n} readings dropped", self.shown);
            }
        }
    }
}

/// Starts a sink's threads: one takes readings into the on-disk queue, one writes
/// them to the database. The returned handle ends once the [`SqlSink`] is dropped and
/// the queue is written out (or given up on after a few seconds).
pub fn start(s: SqlSettings, metrics: Arc<SqlMetrics>) -> Result<(SqlSink, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(ROW_CHANNEL);
    let shown = s.shown.clone();
    let spool = spool::Spool::open(&s.queue_path, QUEUE_MAX_BYTES, metrics.clone(), &shown)?;
    let spool = Arc::new(std::sync::Mutex::new(spool));
    let w = writer::Writer::new(s, spool.clone(), metrics.clone());
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sql-intake".into())
        .spawn(move || {
            writer::intake(rx, spool);
            drop(done_tx);
        })?;
    let handle = std::thread::Builder::new()
        .name("sql-sink".into())
        .spawn(move || w.run(done_rx))?;
    Ok((SqlSink { tx, metrics, shown }, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_tables_and_intervals_are_checked() {
        let db = Path::new("/var/lib/meterkast/m.db");
        let s = SqlSettings::parse(
            "mariadb://root:s3cret@127.0.0.1:3306/energy",
            None,
            None,
            db,
        )
        .unwrap();
        assert_eq!(s.dialect, Dialect::Mysql);
        assert_eq!(s.url, "mysql://root:s3cret@127.0.0.1:3306/energy");
        assert_eq!(s.shown, "mariadb://root:***@127.0.0.1:3306/energy");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(s.table.to_string(), "meter_readings");
        assert_eq!(s.bucket_table().to_string(), "meter_readings_5min");
        assert_eq!(s.interval, 300);
        assert_eq!(
            s.queue_path,
            PathBuf::from(
                "/var/lib/meterkast/m.db.sql-queue-mariadb-127_0_0_1-3306-energy-meter_readings"
            )
        );
        let s = SqlSettings::parse("postgresql://u@h/db", Some("e.r"), Some("15m"), db).unwrap();
        assert_eq!(s.dialect, Dialect::Postgres);
        assert_eq!(s.bucket_table().to_string(), "e.r_15min");

        // The EVN decoder's names, so its users' queries find their tables.
        let s = SqlSettings::parse("mysql://u@h/smartmeter", Some("history"), None, db)
            .and_then(|s| s.with_interval_table(Some("historyDebounced")))
            .unwrap();
        assert_eq!(s.bucket_table().to_string(), "historyDebounced");
        let s = SqlSettings::parse("mysql://u@h/x", Some("mk.history"), None, db)
            .and_then(|s| s.with_interval_table(Some("historyDebounced")))
            .unwrap();
        assert_eq!(s.bucket_table().to_string(), "mk.historyDebounced");
        let named = |t: &str, i: &str| {
            SqlSettings::parse("mysql://u@h/x", Some(t), None, db)
                .and_then(|s| s.with_interval_table(Some(i)))
                .unwrap_err()
                .to_string()
        };
        assert!(named("history", "history").contains("a name of its own"));
        assert!(named("history", "a-b").contains("--sql-interval-table `a-b`"));

        let err = |u: &str, t: Option<&str>, i: Option<&str>| {
            SqlSettings::parse(u, t, i, db).unwrap_err().to_string()
        };
        assert!(err("redis://h/x", None, None).contains("unknown scheme `redis`"));
        assert!(err("mysql://root@h", None, None).contains("name the database"));
        assert!(err("mysql://root@h/x", Some("a;b"), None).contains("--sql-table"));
        assert!(err("mysql://root@h/x", None, Some("7m")).contains("divide a day"));
        assert!(err("mysql://root@h/x", None, Some("30s")).contains("--sql-interval"));
        assert!(err("mysql://root@h/x", None, Some("soon")).contains("--sql-interval"));
        let e = err("mysql://root:pw@[bad/x", None, None);
        assert!(e.contains("not a URL") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn the_power_factor_comes_from_the_frame() {
        let f = r#"{"meter":"m","reading":{"active_power_w":5.0,"active_power_factor":0.9915}}"#;
        assert_eq!(power_factor(Some(f)), Some(992));
        assert_eq!(
            power_factor(Some(r#"{"reading":{"active_power_w":5.0}}"#)),
            None
        );
        assert_eq!(
            power_factor(Some(r#"{"active_power_factor": garbage"#)),
            None
        );
        assert_eq!(power_factor(None), None);
    }

    #[test]
    fn metrics_render_in_prometheus_format() {
        let m = SqlMetrics::default();
        m.written.store(7, Ordering::Relaxed);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "# TYPE meterkast_sql_sink_written_total counter\nmeterkast_sql_sink_written_total 7\n"
        ));
        assert!(out.contains("meterkast_sql_sink_queued 0\n"));
    }
}
