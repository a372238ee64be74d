//! The sink's database side: readings wait in the [`Spool`] and go to the database
//! in batches (one transaction each, at least once a second while readings flow).
//! Closed buckets of the interval table are recomputed from the readings table in
//! the same transaction; at shutdown the open ones are too.
//!
//! When the database is away the thread says so once, keeps queuing, and reconnects
//! with a growing pause (1 s up to 30 s).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::conn::{self, Conn};
use super::schema::{bucket_columns, reading_columns, Dialect, Stmt, Tables};
use super::spool::Spool;
use super::{SqlMetrics, SqlRow, SqlSettings};

/// Readings per transaction, at most.
const BATCH: usize = 1000;
/// Write at least this often while readings flow.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While the database stays away, repeat the warning this often.
const REMIND_EVERY: Duration = Duration::from_secs(600);
/// At shutdown, how long to keep trying to write what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The writing side's state.
pub struct Writer {
    s: SqlSettings,
    spool: Arc<Mutex<Spool>>,
    metrics: Arc<SqlMetrics>,
    conn: Option<Conn>,
    /// Per meter, the buckets written since they were last rolled up.
    dirty: HashMap<String, BTreeSet<i64>>,
    /// Per meter, the newest bucket seen: older ones are closed.
    newest: HashMap<String, i64>,
    /// Meters whose buckets left open by an earlier run are recomputed already.
    caught_up: HashSet<String>,
    down_since: Option<Instant>,
    warned_at: Instant,
    backoff: Duration,
    next_try: Instant,
}

/// Takes readings from the pipeline into the spool until the pipeline lets go.
pub fn intake(rx: Receiver<SqlRow>, spool: Arc<Mutex<Spool>>) {
    while let Ok(row) = rx.recv() {
        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
        s.push(&row);
        while let Ok(row) = rx.try_recv() {
            s.push(&row);
        }
    }
}

impl Writer {
    /// A writer for the readings in `spool`.
    pub fn new(s: SqlSettings, spool: Arc<Mutex<Spool>>, metrics: Arc<SqlMetrics>) -> Writer {
        Writer {
            s,
            spool,
            metrics,
            conn: None,
            dirty: HashMap::new(),
            newest: HashMap::new(),
            caught_up: HashSet::new(),
            down_since: None,
            warned_at: Instant::now(),
            backoff: Duration::from_secs(1),
            next_try: Instant::now(),
        }
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queued(&self) -> u64 {
        self.spool().queued()
    }

    /// Writes until `done` disconnects (the intake ended), then writes out what it can
    /// and stops.
    pub fn run(mut self, done: Receiver<()>) {
        while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(FLUSH_EVERY) {
            self.flush();
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.queued() > 0 && Instant::now() < deadline {
            self.next_try = self.next_try.min(Instant::now());
            if self.flush() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if self.queued() == 0 && !self.dirty.is_empty() {
            // The open buckets too: a restart recomputes them from the readings.
            let stmts: Vec<Stmt> = self.rollups(true).into_iter().map(|(_, s)| s).collect();
            if self.connected() {
                match self.conn.as_mut().map(|c| c.run(&stmts)) {
                    Some(Ok(())) => self.dirty.clear(),
                    Some(Err(e)) => self.failed(e.context("cannot write the last buckets")),
                    None => {}
                }
            }
        }
        if let Err(e) = self.spool().flush() {
            tracing::warn!("SQL sink {}: {e:#}", self.s.shown);
        }
        let queued = self.queued();
        if queued > 0 {
            tracing::warn!(
                "SQL sink {}: {queued} readings stay queued in {} for the next start",
                self.s.shown,
                self.s.queue_path.display()
            );
        }
    }

    /// Connects (and prepares the tables) unless connected or pausing after a failure.
    fn connected(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if Instant::now() < self.next_try {
            return false;
        }
        match self.connect() {
            Ok(c) => {
                self.conn = Some(c);
                self.backoff = Duration::from_secs(1);
                match self.down_since.take() {
                    Some(t) => tracing::info!(
                        "SQL sink {}: connected again after {}s; writing {} queued readings",
                        self.s.shown,
                        t.elapsed().as_secs(),
                        self.queued()
                    ),
                    None => tracing::info!(
                        "SQL sink {}: writing to tables {} and {}",
                        self.s.shown,
                        self.s.table,
                        self.s.bucket_table()
                    ),
                }
                true
            }
            Err(e) => {
                self.failed(e);
                false
            }
        }
    }

    fn connect(&self) -> Result<Conn> {
        let d = self.s.dialect;
        let mut c = Conn::open(d, &self.s.url)?;
        if let (Dialect::Postgres, Some(schema)) = (d, &self.s.table.schema) {
            c.run_one(&format!("CREATE SCHEMA IF NOT EXISTS {}", d.ident(schema)))
                .with_context(|| format!("cannot create the schema {schema}"))?;
        }
        for (t, cols, key) in [
            (self.s.table.clone(), reading_columns(), ["meter", "time"]),
            (self.s.bucket_table(), bucket_columns(), ["meter", "bucket"]),
        ] {
            let what = || format!("cannot create or update the table {t}");
            c.run_one(&d.create_table(&t, &cols, &key))
                .with_context(what)?;
            // A table from an older version gets the columns added since.
            let have = c.column_names(&d.columns_query(&t)).with_context(what)?;
            // A table of another program under this name (the EVN decoder's `history`):
            // never altered, never written.
            if !have.iter().any(|h| h.eq_ignore_ascii_case(key[0])) {
                bail!(
                    "the table {t} exists and is not meterkast's (it has no `{}` column; the EVN decoder's own history table?): give meterkast tables of its own with --sql-table and --sql-interval-table, and a view for old queries (README, \"Coming from the EVN decoder\")",
                    key[0]
                );
            }
            for col in cols
                .iter()
                .filter(|c| !have.iter().any(|h| h.eq_ignore_ascii_case(&c.name)))
            {
                c.run_one(&d.add_column(&t, col)).with_context(what)?;
            }
        }
        Ok(c)
    }

    fn failed(&mut self, e: anyhow::Error) {
        self.conn = None;
        self.metrics.failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        match self.down_since {
            None => {
                self.down_since = Some(now);
                self.warned_at = now;
                tracing::warn!(
                    "SQL sink {}: {e:#}; readings are kept in {} and written when it works again (retrying every {}s at most)",
                    self.s.shown,
                    self.s.queue_path.display(),
                    MAX_BACKOFF.as_secs()
                );
            }
            Some(t) if now.duration_since(self.warned_at) >= REMIND_EVERY => {
                self.warned_at = now;
                tracing::warn!(
                    "SQL sink {}: still failing after {} min ({e:#}); {} readings queued",
                    self.s.shown,
                    t.elapsed().as_secs() / 60,
                    self.queued()
                );
            }
            Some(_) => tracing::debug!("SQL sink {}: {e:#}", self.s.shown),
        }
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Writes what is queued, batch by batch; `true` when the queue is empty.
    ///
    /// A batch the server refuses for its data (a value a table from elsewhere cannot
    /// hold) is retried one reading at a time, and only the refused ones are dropped,
    /// with an error: one odd reading must not hold up the rest forever.
    fn flush(&mut self) -> bool {
        let mut singly = 0usize;
        while self.queued() > 0 {
            if !self.connected() {
                return false;
            }
            let n = if singly > 0 { 1 } else { BATCH };
            match self.write_batch(n) {
                Ok(()) => singly = singly.saturating_sub(1),
                Err(e) if conn::is_data_error(&e) => {
                    self.spool().rewind();
                    if n > 1 {
                        singly = n;
                        continue;
                    }
                    singly -= 1;
                    let mut spool = self.spool();
                    let skipped = spool
                        .take(1)
                        .and_then(|(k, rows)| spool.commit(k).map(|()| rows));
                    drop(spool);
                    let rows = match skipped {
                        Ok(rows) => rows,
                        Err(e) => {
                            self.failed(e);
                            return false;
                        }
                    };
                    self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                    let what = rows.first().map_or(String::new(), |r| {
                        format!(
                            " (meter {} at {})",
                            r.meter,
                            meterkast_codec::Timestamp(r.ts)
                        )
                    });
                    tracing::error!(
                        "SQL sink {}: a reading refused and dropped{what}: {e:#}",
                        self.s.shown
                    );
                }
                Err(e) => {
                    self.spool().rewind();
                    self.failed(e);
                    return false;
                }
            }
        }
        true
    }

    fn write_batch(&mut self, max: usize) -> Result<()> {
        let (taken, rows) = self.spool().take(max)?;
        if taken == 0 {
            return Ok(());
        }
        let secs = i64::from(self.s.interval);
        for r in &rows {
            let b = r.ts.div_euclid(secs) * secs;
            self.dirty.entry(r.meter.clone()).or_default().insert(b);
            let n = self.newest.entry(r.meter.clone()).or_insert(b);
            *n = (*n).max(b);
        }
        let mut stmts = Vec::new();
        if !rows.is_empty() {
            let borrowed: Vec<_> = rows.iter().map(SqlRow::as_row).collect();
            stmts.push(self.s.dialect.insert_readings(&self.s.table, &borrowed));
        }
        // A meter's first readings since the start: finish what an earlier run left.
        let mut new_meters: Vec<&str> = rows
            .iter()
            .map(|r| r.meter.as_str())
            .filter(|m| !self.caught_up.contains(*m))
            .collect();
        new_meters.sort_unstable();
        new_meters.dedup();
        let buckets = self.s.bucket_table();
        let tables = Tables {
            readings: &self.s.table,
            buckets: &buckets,
        };
        for m in &new_meters {
            stmts.push(self.s.dialect.rollup_catch_up(&tables, self.s.interval, m));
        }
        let closed = self.rollups(false);
        stmts.extend(closed.iter().map(|(_, s)| s.clone()));
        self.conn
            .as_mut()
            .context("not connected")?
            .run(&stmts)
            .context("cannot write readings")?;
        self.spool().commit(taken)?;
        for m in new_meters {
            self.caught_up.insert(m.to_string());
        }
        self.metrics
            .written
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        for ((meter, upto), _) in closed {
            if let Some(set) = self.dirty.get_mut(&meter) {
                set.retain(|b| *b >= upto);
                if set.is_empty() {
                    self.dirty.remove(&meter);
                }
            }
        }
        Ok(())
    }

    /// The roll-ups due: per meter, its dirty buckets before its newest one (or all
    /// of them with `all`), with the end of the range they cover.
    fn rollups(&self, all: bool) -> Vec<((String, i64), Stmt)> {
        let secs = i64::from(self.s.interval);
        let buckets = self.s.bucket_table();
        let tables = Tables {
            readings: &self.s.table,
            buckets: &buckets,
        };
        let mut out = Vec::new();
        for (meter, set) in &self.dirty {
            let Some(&first) = set.first() else { continue };
            let newest = self.newest.get(meter).copied().unwrap_or(first);
            let upto = if all { newest + secs } else { newest };
            if first >= upto {
                continue;
            }
            let s = self
                .s
                .dialect
                .rollup_range(&tables, self.s.interval, meter, first, upto);
            out.push(((meter.clone(), upto), s));
        }
        out
    }
}
