//! The sink's on-disk queue of readings, shared by the thread that takes readings
//! from the pipeline and the one that writes them to the database: taking a reading
//! in is a short append under a lock, never a wait on the database.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{SqlMetrics, SqlRow};
use crate::sink::mqtt::queue::{DiskQueue, Msg};

/// The queue and its counts.
pub struct Spool {
    queue: DiskQueue,
    metrics: Arc<SqlMetrics>,
    shown: String,
    /// Readings in the queue, not yet committed.
    queued: u64,
    /// The queue's drop count last seen.
    dropped_seen: u64,
}

impl Spool {
    /// Opens the queue, counting what a previous run left in it.
    pub fn open(
        path: &Path,
        max_bytes: u64,
        metrics: Arc<SqlMetrics>,
        shown: &str,
    ) -> Result<Spool> {
        let mut queue = DiskQueue::open(path, max_bytes)
            .with_context(|| format!("SQL sink {shown}: cannot open its queue"))?;
        let mut queued = 0u64;
        while queue.next_unsent()?.is_some() {
            queued += 1;
        }
        queue.rewind();
        if queued > 0 {
            tracing::info!("SQL sink {shown}: {queued} readings left from the last run");
        }
        metrics.queued.fetch_add(queued, Ordering::Relaxed);
        Ok(Spool {
            queue,
            metrics,
            shown: shown.to_string(),
            queued,
            dropped_seen: 0,
        })
    }

    /// Readings waiting.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Appends a reading (the oldest go when the bound is reached; they are counted).
    pub fn push(&mut self, row: &SqlRow) {
        let payload = serde_json::to_vec(row).unwrap_or_default();
        match self.queue.push(&Msg::new("", payload, false)) {
            Ok(()) => {
                self.queued += 1;
                self.metrics.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!("SQL sink {}: reading dropped: {e:#}", self.shown);
            }
        }
        let dropped = self.queue.dropped();
        if dropped > self.dropped_seen {
            let n = dropped - self.dropped_seen;
            self.dropped_seen = dropped;
            self.queued = self.queued.saturating_sub(n);
            self.metrics.queued.fetch_sub(n, Ordering::Relaxed);
            self.metrics.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Hands out up to `max` readings not handed out yet; also returns how many
    /// entries were read (damaged ones are skipped but still count).
    pub fn take(&mut self, max: usize) -> Result<(usize, Vec<SqlRow>)> {
        let mut rows = Vec::new();
        let mut taken = 0usize;
        while taken < max {
            let Some(m) = self.queue.next_unsent()? else {
                break;
            };
            taken += 1;
            match serde_json::from_slice::<SqlRow>(&m.payload) {
                Ok(r) => rows.push(r),
                Err(e) => tracing::warn!(
                    "SQL sink {}: skipping a damaged queue entry: {e}",
                    self.shown
                ),
            }
        }
        if taken == 0 && self.queued > 0 {
            // The count drifted (a damaged file): trust the queue.
            self.metrics
                .queued
                .fetch_sub(self.queued, Ordering::Relaxed);
            self.queued = 0;
        }
        Ok((taken, rows))
    }

    /// The oldest `n` handed-out entries are in the database: forget them.
    pub fn commit(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.queue.ack()?;
        }
        let n = (n as u64).min(self.queued);
        self.queued -= n;
        self.metrics.queued.fetch_sub(n, Ordering::Relaxed);
        Ok(())
    }

    /// Hands out everything uncommitted again (after a failed transaction).
    pub fn rewind(&mut self) {
        self.queue.rewind();
    }

    /// Writes the queue's read position down (at shutdown).
    pub fn flush(&mut self) -> Result<()> {
        self.queue.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> SqlRow {
        SqlRow {
            meter: "m".into(),
            dialect: "dsmr".into(),
            ts: i,
            v: vec![Some(i), None],
            pf: None,
        }
    }

    #[test]
    fn readings_survive_a_failed_write_and_a_restart_and_counts_follow() {
        let dir = std::env::temp_dir().join(format!("mk-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("q");
        let m = Arc::new(SqlMetrics::default());
        let mut s = Spool::open(&p, 1 << 20, m.clone(), "x").unwrap();
        for i in 0..5 {
            s.push(&row(i));
        }
        let (n, rows) = s.take(3).unwrap();
        assert_eq!((n, rows), (3, vec![row(0), row(1), row(2)]));
        // The transaction failed: the same readings again.
        s.rewind();
        let (n, rows) = s.take(2).unwrap();
        assert_eq!((n, rows), (2, vec![row(0), row(1)]));
        s.commit(2).unwrap();
        assert_eq!(s.queued(), 3);
        assert_eq!(m.queued.load(Ordering::Relaxed), 3);
        s.flush().unwrap();
        drop(s);
        let m = Arc::new(SqlMetrics::default());
        let mut s = Spool::open(&p, 1 << 20, m.clone(), "x").unwrap();
        assert_eq!(m.queued.load(Ordering::Relaxed), 3);
        let (_, rows) = s.take(10).unwrap();
        assert_eq!(rows, vec![row(2), row(3), row(4)]);

        // At the bound the oldest go, counted as dropped.
        let mut s = Spool::open(&dir.join("small"), 300, m.clone(), "x").unwrap();
        for i in 0..20 {
            s.push(&row(i));
        }
        let dropped = m.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0);
        assert_eq!(s.queued() + dropped, 20);
        let (_, rows) = s.take(100).unwrap();
        assert_eq!(rows.last(), Some(&row(19)));
        assert_eq!(rows.len() as u64, s.queued());
    }
}
