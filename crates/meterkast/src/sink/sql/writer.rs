//! The sink's thread: readings go to the on-disk queue at once, and from the queue to
//! the database in batches (one transaction each, at least once a second while
//! readings flow). Closed buckets of the interval table are recomputed from the
//! readings table in the same transaction; at shutdown the open ones are too.
//!
//! When the database is away the thread says so once, keeps queuing, and reconnects
//! with a growing pause (1 s up to 30 s).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::conn::Conn;
use super::schema::{bucket_columns, reading_columns, Dialect, Stmt};
use super::{SqlMetrics, SqlRow, SqlSettings};
use crate::sink::mqtt::queue::{DiskQueue, Msg};

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

/// The sink's state.
pub struct Writer {
    s: SqlSettings,
    queue: DiskQueue,
    metrics: Arc<SqlMetrics>,
    conn: Option<Conn>,
    /// Readings in the queue, not yet committed.
    queued: u64,
    /// The queue's drop count last seen.
    queue_dropped: u64,
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

impl Writer {
    /// Opens the queue (counting what a previous run left in it).
    pub fn open(s: SqlSettings, max_bytes: u64, metrics: Arc<SqlMetrics>) -> Result<Writer> {
        let mut queue = DiskQueue::open(&s.queue_path, max_bytes)
            .with_context(|| format!("SQL sink {}: cannot open its queue", s.shown))?;
        let mut queued = 0u64;
        while queue.next_unsent()?.is_some() {
            queued += 1;
        }
        queue.rewind();
        if queued > 0 {
            tracing::info!(
                "SQL sink {}: {queued} readings left from the last run",
                s.shown
            );
        }
        metrics.queued.fetch_add(queued, Ordering::Relaxed);
        Ok(Writer {
            s,
            queue,
            metrics,
            conn: None,
            queued,
            queue_dropped: 0,
            dirty: HashMap::new(),
            newest: HashMap::new(),
            caught_up: HashSet::new(),
            down_since: None,
            warned_at: Instant::now(),
            backoff: Duration::from_secs(1),
            next_try: Instant::now(),
        })
    }

    /// Runs until the sender is dropped, then writes out what it can and stops.
    pub fn run(mut self, rx: Receiver<SqlRow>) {
        let mut next_flush = Instant::now();
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(row) => {
                    self.enqueue(&row);
                    while let Ok(row) = rx.try_recv() {
                        self.enqueue(&row);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.flush(Some(&rx));
            next_flush = Instant::now() + FLUSH_EVERY;
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.queued > 0 && Instant::now() < deadline {
            self.next_try = self.next_try.min(Instant::now());
            if self.flush(None) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if self.queued == 0 && !self.dirty.is_empty() {
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
        if let Err(e) = self.queue.flush() {
            tracing::warn!("SQL sink {}: {e:#}", self.s.shown);
        }
        if self.queued > 0 {
            tracing::warn!(
                "SQL sink {}: {} readings stay queued in {} for the next start",
                self.s.shown,
                self.queued,
                self.s.queue_path.display()
            );
        }
    }

    fn enqueue(&mut self, row: &SqlRow) {
        let payload = serde_json::to_vec(row).unwrap_or_default();
        match self.queue.push(&Msg::new("", payload, false)) {
            Ok(()) => {
                self.queued += 1;
                self.metrics.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!("SQL sink {}: reading dropped: {e:#}", self.s.shown);
            }
        }
        // Readings the bounded queue let go of to make room.
        let dropped = self.queue.dropped();
        if dropped > self.queue_dropped {
            let n = dropped - self.queue_dropped;
            self.queue_dropped = dropped;
            self.queued = self.queued.saturating_sub(n);
            self.metrics.queued.fetch_sub(n, Ordering::Relaxed);
            self.metrics.dropped.fetch_add(n, Ordering::Relaxed);
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
                        self.queued
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
                    self.queued
                );
            }
            Some(_) => tracing::debug!("SQL sink {}: {e:#}", self.s.shown),
        }
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Writes what is queued, batch by batch; `true` when the queue is empty.
    fn flush(&mut self, rx: Option<&Receiver<SqlRow>>) -> bool {
        while self.queued > 0 {
            if !self.connected() {
                return false;
            }
            if let Err(e) = self.write_batch() {
                self.queue.rewind();
                self.failed(e);
                return false;
            }
            // A long backlog must not stall the hand-over.
            if let Some(rx) = rx {
                while let Ok(row) = rx.try_recv() {
                    self.enqueue(&row);
                }
            }
        }
        true
    }

    fn write_batch(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let mut taken = 0usize;
        while rows.len() < BATCH {
            let Some(m) = self.queue.next_unsent()? else {
                break;
            };
            taken += 1;
            match serde_json::from_slice::<SqlRow>(&m.payload) {
                Ok(r) => rows.push(r),
                Err(e) => tracing::warn!(
                    "SQL sink {}: skipping a damaged queue entry: {e}",
                    self.s.shown
                ),
            }
        }
        if taken == 0 {
            // The count drifted (a damaged file): trust the queue.
            self.metrics
                .queued
                .fetch_sub(self.queued, Ordering::Relaxed);
            self.queued = 0;
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
        for m in &new_meters {
            stmts.push(
                self.s
                    .dialect
                    .rollup_catch_up(&self.s.table, self.s.interval, m),
            );
        }
        let closed = self.rollups(false);
        stmts.extend(closed.iter().map(|(_, s)| s.clone()));
        self.conn
            .as_mut()
            .context("not connected")?
            .run(&stmts)
            .context("cannot write readings")?;
        for _ in 0..taken {
            self.queue.ack()?;
        }
        for m in new_meters {
            self.caught_up.insert(m.to_string());
        }
        let taken = taken as u64;
        self.queued = self.queued.saturating_sub(taken);
        self.metrics.queued.fetch_sub(taken, Ordering::Relaxed);
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
                .rollup_range(&self.s.table, self.s.interval, meter, first, upto);
            out.push(((meter.clone(), upto), s));
        }
        out
    }
}
