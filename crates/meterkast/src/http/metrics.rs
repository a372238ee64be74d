//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// Counters shared by the writer thread, the bridge and the HTTP side.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Store commits.
    pub commits: AtomicU64,
    /// Total commit time, microseconds.
    pub commit_micros: AtomicU64,
    /// The longest commit, microseconds.
    pub commit_max_micros: AtomicU64,
    /// Readings refused by the store as duplicates or late.
    pub duplicates: AtomicU64,
    /// Store commits that failed (a full disk, the database server away); what they
    /// held is written with a later commit.
    pub commit_failures: AtomicU64,
    /// Why the store cannot write now, while its commits fail.
    pub store_trouble: std::sync::Mutex<Option<String>>,
    /// Readings kept as suspect (a meter clock far ahead or behind): stored, not counted.
    pub suspect_readings: AtomicU64,
    /// Meters whose latest reading's clock is suspect, with why (for `/api/v1/status`).
    pub suspect_meters: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Raw-bridge clients connected now.
    pub bridge_clients: AtomicU64,
    /// Raw-bridge clients dropped for being too slow.
    pub bridge_dropped: AtomicU64,
    /// New readings committed by the daemon's store writer (not duplicates).
    pub committed: AtomicU64,
    /// Receive-to-commit latency of committed readings.
    pub commit_latency: Histogram,
    /// The SQL history sinks.
    pub sql: std::sync::Arc<crate::sink::sql::SqlMetrics>,
    /// Reports written to the reports folder.
    pub reports_written: AtomicU64,
    /// Reports that could not be made (store or disk trouble).
    pub report_failures: AtomicU64,
    /// Report mails delivered.
    pub report_mail_sent: AtomicU64,
    /// Failed attempts to deliver a report mail.
    pub report_mail_failures: AtomicU64,
    /// Report mails waiting to be delivered.
    pub report_mail_pending: AtomicU64,
    /// The HTTP and bridge listeners' connections, refusals, accept errors and timeouts.
    pub listeners: std::sync::Arc<crate::listen::Listeners>,
}

/// The upper bounds of the commit latency buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// A Prometheus histogram over [`LATENCY_BUCKETS`] (counts per bucket, not cumulative;
/// the last slot is +Inf), with the sum in microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one observation (negative ones, from clocks apart, count as zero).
    pub fn observe(&self, seconds: f64) {
        let v = seconds.max(0.0);
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// The histogram in the text format, under `name`.
    pub fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum:.6}\n{name}_count {cumulative}");
    }
}

impl Metrics {
    /// Records one commit's duration.
    pub fn commit(&self, micros: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        self.commit_max_micros.fetch_max(micros, Ordering::Relaxed);
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let now = crate::source::now();
    out.push_str("# HELP meterkast_telegrams_accepted_total Frames decoded and passed on, per source.\n# TYPE meterkast_telegrams_accepted_total counter\n");
    let mut rejected = String::new();
    let mut connected = String::new();
    for st in s.sources.iter() {
        let st = st.lock().expect("status lock");
        let name = label(&st.name);
        let _ = writeln!(
            out,
            "meterkast_telegrams_accepted_total{{source=\"{name}\"}} {}",
            st.accepted
        );
        let mut causes: Vec<_> = st.rejected.iter().collect();
        causes.sort();
        for (cause, n) in causes {
            let _ = writeln!(
                rejected,
                "meterkast_telegrams_rejected_total{{source=\"{name}\",cause=\"{cause}\"}} {n}"
            );
        }
        let _ = writeln!(
            connected,
            "meterkast_source_connected{{source=\"{name}\"}} {}",
            u8::from(st.connected)
        );
    }
    out.push_str("# HELP meterkast_telegrams_rejected_total Frames rejected, per source and cause.\n# TYPE meterkast_telegrams_rejected_total counter\n");
    out.push_str(&rejected);
    out.push_str("# HELP meterkast_source_connected Whether a source's link is up.\n# TYPE meterkast_source_connected gauge\n");
    out.push_str(&connected);
    let reasons = super::health::reasons(&s).len();
    let _ = writeln!(
        out,
        "# HELP meterkast_degraded_reasons Failures that make /healthz say degraded (0: ok).\n# TYPE meterkast_degraded_reasons gauge\nmeterkast_degraded_reasons {reasons}"
    );
    out.push_str("# HELP meterkast_last_reading_age_seconds Seconds since each meter's last reading (by its own clock).\n# TYPE meterkast_last_reading_age_seconds gauge\n");
    for (meter, l) in s.latest.read().expect("latest lock").iter() {
        let _ = writeln!(
            out,
            "meterkast_last_reading_age_seconds{{meter=\"{}\"}} {}",
            label(meter),
            now - l.ts
        );
    }
    let m = &s.metrics;
    let commits = m.commits.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "# HELP meterkast_store_write_seconds Time to commit a batch to the store.\n# TYPE meterkast_store_write_seconds summary\n\
         meterkast_store_write_seconds_sum {:.6}\nmeterkast_store_write_seconds_count {commits}\n\
         # HELP meterkast_store_write_seconds_max The longest commit so far.\n# TYPE meterkast_store_write_seconds_max gauge\n\
         meterkast_store_write_seconds_max {:.6}\n\
         # HELP meterkast_store_duplicates_total Readings dropped as duplicate or late.\n# TYPE meterkast_store_duplicates_total counter\n\
         meterkast_store_duplicates_total {}\n\
         # HELP meterkast_store_commit_failures_total Store commits that failed (kept and retried).\n# TYPE meterkast_store_commit_failures_total counter\n\
         meterkast_store_commit_failures_total {}\n\
         # HELP meterkast_store_suspect_readings_total Readings kept as suspect (meter clock far off) and not counted in roll-ups.\n# TYPE meterkast_store_suspect_readings_total counter\n\
         meterkast_store_suspect_readings_total {}\n\
         # HELP meterkast_bridge_clients Raw telegram bridge clients connected.\n# TYPE meterkast_bridge_clients gauge\n\
         meterkast_bridge_clients {}\n\
         # HELP meterkast_bridge_dropped_total Bridge clients dropped for being too slow.\n# TYPE meterkast_bridge_dropped_total counter\n\
         meterkast_bridge_dropped_total {}\n\
         # HELP meterkast_reports_written_total Daily and monthly reports written.\n# TYPE meterkast_reports_written_total counter\n\
         meterkast_reports_written_total {}\n\
         # HELP meterkast_report_failures_total Reports that could not be made.\n# TYPE meterkast_report_failures_total counter\n\
         meterkast_report_failures_total {}\n\
         # HELP meterkast_report_mail_sent_total Report mails delivered.\n# TYPE meterkast_report_mail_sent_total counter\n\
         meterkast_report_mail_sent_total {}\n\
         # HELP meterkast_report_mail_failures_total Failed attempts to deliver a report mail (each is retried).\n# TYPE meterkast_report_mail_failures_total counter\n\
         meterkast_report_mail_failures_total {}\n\
         # HELP meterkast_report_mail_pending Report mails waiting to be delivered.\n# TYPE meterkast_report_mail_pending gauge\n\
         meterkast_report_mail_pending {}\n",
        m.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
        m.commit_max_micros.load(Ordering::Relaxed) as f64 / 1e6,
        m.duplicates.load(Ordering::Relaxed),
        m.commit_failures.load(Ordering::Relaxed),
        m.suspect_readings.load(Ordering::Relaxed),
        m.bridge_clients.load(Ordering::Relaxed),
        m.bridge_dropped.load(Ordering::Relaxed),
        m.reports_written.load(Ordering::Relaxed),
        m.report_failures.load(Ordering::Relaxed),
        m.report_mail_sent.load(Ordering::Relaxed),
        m.report_mail_failures.load(Ordering::Relaxed),
        m.report_mail_pending.load(Ordering::Relaxed),
    );
    let _ = write!(
        out,
        "# HELP meterkast_ingest_committed_total New readings committed to the store (duplicates not counted).\n# TYPE meterkast_ingest_committed_total counter\n\
         meterkast_ingest_committed_total {}\n\
         # HELP meterkast_ingest_commit_latency_seconds From a frame's receipt (at the house box, for forwarded frames) to the commit of its new reading.\n\
         # TYPE meterkast_ingest_commit_latency_seconds histogram\n",
        m.committed.load(Ordering::Relaxed)
    );
    m.commit_latency
        .render(&mut out, "meterkast_ingest_commit_latency_seconds");
    m.sql.render(&mut out);
    m.listeners.render(&mut out);
    let running = s.guard.max_exports - s.exports.available_permits().min(s.guard.max_exports);
    let _ = write!(
        out,
        "# HELP meterkast_http_exports_running Exports streaming now (at most --max-exports).\n# TYPE meterkast_http_exports_running gauge\n\
         meterkast_http_exports_running {running}\n\
         # HELP meterkast_http_exports_refused_total Exports refused with 429, every place taken.\n# TYPE meterkast_http_exports_refused_total counter\n\
         meterkast_http_exports_refused_total {}\n",
        m.listeners.exports_refused.load(Ordering::Relaxed)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_histogram_is_cumulative_with_inf() {
        let h = Histogram::default();
        for v in [0.01, 0.05, 0.3, 1.5, 30.0, -2.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x");
        assert!(out.contains("x_bucket{le=\"0.05\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.5\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 5\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 5\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 6\n"), "{out}");
        assert!(out.contains("x_sum 31.860000\nx_count 6\n"), "{out}");
    }
}
