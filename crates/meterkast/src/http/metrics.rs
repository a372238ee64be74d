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
    /// Raw-bridge clients connected now.
    pub bridge_clients: AtomicU64,
    /// Raw-bridge clients dropped for being too slow.
    pub bridge_dropped: AtomicU64,
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
        m.bridge_clients.load(Ordering::Relaxed),
        m.bridge_dropped.load(Ordering::Relaxed),
        m.reports_written.load(Ordering::Relaxed),
        m.report_failures.load(Ordering::Relaxed),
        m.report_mail_sent.load(Ordering::Relaxed),
        m.report_mail_failures.load(Ordering::Relaxed),
        m.report_mail_pending.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
