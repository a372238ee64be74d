//! Reports on schedule, inside the daemon: after local midnight (plus the configured
//! hour) yesterday's report is written to the reports folder, on the 1st also last
//! month's, and each is mailed when SMTP is configured.
//!
//! Nothing here can hold up ingestion: drawing and sending run on the blocking pool, and
//! a mail that cannot be delivered waits in `outbox/` inside the reports folder as a
//! complete message (`.eml`), retried with a growing pause and after a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::watch;

use super::mail::MailSettings;
use super::{Format, Period};
use crate::config::FileConfig;
use crate::http::Metrics;
use crate::prices::Prices;
use crate::store::Location;

/// Report settings on the command line and in the environment (the `[report]` table
/// of the config file holds the same).
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Reports")]
pub struct ReportArgs {
    /// Write daily (and monthly) reports into this folder [default with a [report]
    /// table: `reports` beside the database].
    #[arg(long, env = "MK_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
    /// The local hour (0-23) after midnight at which yesterday's report is made
    /// [default: 1].
    #[arg(long, env = "MK_REPORT_HOUR")]
    pub report_hour: Option<u32>,
    /// Where reports are mailed.
    #[command(flatten)]
    pub mail: MailArgs,
    /// The first pause before a failed mail is tried again; it doubles up to an hour
    /// [default: 1m].
    #[arg(long, env = "MK_REPORT_RETRY", help_heading = "Reports")]
    pub report_retry: Option<String>,
    /// Pretend the clock reads this RFC 3339 time when the daemon starts (it runs on
    /// from there), to try the schedule out: 2026-03-30T01:00:00Z makes the report of
    /// 2026-03-29 at once.
    #[arg(long, env = "MK_REPORT_AT", help_heading = "Reports")]
    pub report_at: Option<String>,
}

/// Mail settings on the command line and in the environment (`[report]` in the config
/// file holds the same), for the daemon and for `meterkast report --mail`.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Report mail")]
pub struct MailArgs {
    /// Mail reports through this SMTP server: smtps://user:pass@host:465 (TLS) or
    /// smtp://user:pass@host:587 (STARTTLS; ?starttls=never for a local relay).
    #[arg(long, env = "MK_REPORT_SMTP", hide_env_values = true)]
    pub report_smtp: Option<String>,
    /// The sender of report mails [default: the SMTP user].
    #[arg(long, env = "MK_REPORT_FROM")]
    pub report_from: Option<String>,
    /// A recipient of report mails; repeat or separate with commas.
    #[arg(long, env = "MK_REPORT_TO", value_delimiter = ',')]
    pub report_to: Vec<String>,
}

/// The daemon's report settings after merging file, environment and flags.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Where reports are written.
    pub folder: PathBuf,
    /// The local hour after midnight at which they are made.
    pub hour: u32,
    /// Whether last month's report is made on the 1st.
    pub monthly: bool,
    /// The meter reported on (default: every current meter).
    pub meter: Option<String>,
    /// Picture width.
    pub width: u32,
    /// Mailing, when configured.
    pub mail: Option<MailSettings>,
    /// The first pause before a retry.
    pub retry: Duration,
    /// Seconds added to the system clock (from `--report-at`).
    pub clock_offset: i64,
    /// Prices from the config file.
    pub prices: Option<Prices>,
}

impl MailArgs {
    /// The mail settings, when SMTP is configured.
    pub fn mail(&self, file: &FileConfig) -> Result<Option<MailSettings>> {
        let cfg = file.report.clone().unwrap_or_default();
        let Some(smtp) = self.report_smtp.clone().or(cfg.smtp) else {
            return Ok(None);
        };
        let to = if self.report_to.is_empty() {
            cfg.to
        } else {
            self.report_to.clone()
        };
        let from = self.report_from.clone().or(cfg.from);
        MailSettings::new(&smtp, from.as_deref(), &to)
            .map(Some)
            .context("report mail settings")
    }
}

impl ReportArgs {
    /// The report settings, or `None` when reports are not asked for (no folder, no
    /// `[report]` table, no SMTP). `db` is where the store's own files go (the
    /// database file, or `STATE_DIR/meterkast` with PostgreSQL): reports default to
    /// a `reports` folder beside it.
    pub fn settings(&self, file: &FileConfig, db: &Path) -> Result<Option<ReportSettings>> {
        let mail = self.mail.mail(file)?;
        if self.report_dir.is_none() && file.report.is_none() && mail.is_none() {
            return Ok(None);
        }
        let cfg = file.report.clone().unwrap_or_default();
        let folder = self.report_dir.clone().or(cfg.folder).unwrap_or_else(|| {
            db.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("reports")
        });
        let hour = self.report_hour.or(cfg.hour).unwrap_or(1);
        if hour > 23 {
            anyhow::bail!("report hour {hour}: use an hour from 0 to 23");
        }
        let width = cfg.width.unwrap_or(super::DEFAULT_WIDTH);
        if !(320..=4000).contains(&width) {
            anyhow::bail!("report width {width}: use 320 to 4000 pixels");
        }
        let retry = match self.report_retry.clone().or(cfg.retry) {
            Some(r) => humantime::parse_duration(&r)
                .with_context(|| format!("report retry {r}: use a duration like 1m or 30s"))?
                .max(Duration::from_secs(1)),
            None => Duration::from_secs(60),
        };
        let clock_offset = match &self.report_at {
            Some(at) => {
                let t = crate::timefmt::parse_rfc3339(at).context("--report-at")?;
                t.0 - crate::source::now()
            }
            None => 0,
        };
        Ok(Some(ReportSettings {
            folder,
            hour,
            monthly: cfg.monthly.unwrap_or(true),
            meter: cfg.meter,
            width,
            mail,
            retry,
            clock_offset,
            prices: file.prices.clone(),
        }))
    }
}

/// The periods whose reports are due at `now`: the last complete day once its next
/// day is `hour` hours old, and (if monthly) the last complete month likewise.
pub fn due(now: i64, hour: u32, monthly: bool) -> Vec<Period> {
    let today = Period::day_of(now);
    let (today_start, _) = today.bounds();
    let ready = now >= today_start + i64::from(hour) * 3600;
    let mut yesterday = Period::day_of(today_start - 1);
    if !ready {
        yesterday = Period::day_of(yesterday.bounds().0 - 1);
    }
    let mut out = vec![yesterday];
    if monthly {
        // The month before the one holding the day after `yesterday`.
        let Period::Day { year, month, .. } = yesterday.next() else {
            return out;
        };
        let this_month = Period::Month { year, month };
        out.push(this_month.previous());
    }
    out
}

/// The report file's base name: the period's key, with the meter's id when several
/// meters are reported on.
fn base_name(period: Period, meter: &str, several: bool) -> String {
    let safe: String = meter
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if several {
        format!("{}-{safe}", period.key())
    } else {
        period.key()
    }
}

/// Makes the due reports that are not in the folder yet; returns how many it wrote.
fn make_due(s: &ReportSettings, db: &Location, now: i64) -> Result<usize> {
    let store = db.open_reader()?;
    let store = &*store;
    let meters = super::report_meters(store, s.meter.as_deref())?;
    let outbox = s.folder.join("outbox");
    std::fs::create_dir_all(&outbox).with_context(|| {
        format!(
            "cannot create the reports folder {} (set [report] folder or --report-dir)",
            outbox.display()
        )
    })?;
    let mut written = 0;
    for period in due(now, s.hour, s.monthly) {
        for m in &meters {
            let name = base_name(period, &m.equipment_id, meters.len() > 1);
            let png = s.folder.join(format!("{name}.png"));
            if png.exists() {
                continue;
            }
            let r = super::build(store, m, period, s.prices.as_ref(), Format::Png, s.width)?;
            if let Some(mail) = &s.mail {
                let msg = super::mail::message(mail, &r.figures, &r.image)?;
                // The message first: a crash between the two writes remakes both.
                super::write_atomic(&outbox.join(format!("{name}.eml")), &msg.formatted())?;
            }
            super::write_atomic(&png, &r.image)?;
            tracing::info!("report {} written", png.display());
            written += 1;
        }
    }
    Ok(written)
}

/// The mails waiting in the outbox, oldest name first.
fn pending(outbox: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// When each failing mail may be tried next, and the pause after the next failure.
#[derive(Default)]
struct Backoff {
    next: HashMap<PathBuf, (Instant, Duration)>,
}

impl Backoff {
    fn ready(&self, p: &Path) -> bool {
        self.next.get(p).is_none_or(|(at, _)| Instant::now() >= *at)
    }

    fn failed(&mut self, p: &Path, first: Duration) -> Duration {
        let pause = self
            .next
            .get(p)
            .map_or(first, |(_, d)| (*d * 2).min(Duration::from_secs(3600)));
        self.next
            .insert(p.to_path_buf(), (Instant::now() + pause, pause));
        pause
    }

    fn soonest(&self) -> Option<Instant> {
        self.next.values().map(|(at, _)| *at).min()
    }
}

/// Runs the schedule until `stop` turns true.
pub async fn run(
    s: ReportSettings,
    db: Location,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let s = Arc::new(s);
    let outbox = s.folder.join("outbox");
    let mut backoff = Backoff::default();
    let mut last_error = String::new();
    loop {
        let now = crate::source::now() + s.clock_offset;
        let (s2, db2) = (s.clone(), db.clone());
        match tokio::task::spawn_blocking(move || make_due(&s2, &db2, now)).await {
            Ok(Ok(n)) => {
                metrics
                    .reports_written
                    .fetch_add(n as u64, Ordering::Relaxed);
                last_error.clear();
            }
            Ok(Err(e)) => {
                let msg = format!("{e:#}");
                metrics.report_failures.fetch_add(1, Ordering::Relaxed);
                if msg != last_error {
                    tracing::warn!("report: {msg}");
                    last_error = msg;
                }
            }
            Err(e) => tracing::error!("report task failed: {e}"),
        }
        if let Some(mail) = &s.mail {
            for p in pending(&outbox) {
                if !backoff.ready(&p) {
                    continue;
                }
                let (m, p2) = (mail.clone(), p.clone());
                let sent = tokio::task::spawn_blocking(move || {
                    let bytes = std::fs::read(&p2)
                        .with_context(|| format!("cannot read {}", p2.display()))?;
                    m.send(&bytes)?;
                    std::fs::remove_file(&p2)
                        .with_context(|| format!("sent, but cannot remove {}", p2.display()))
                })
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
                match sent {
                    Ok(()) => {
                        backoff.next.remove(&p);
                        metrics.report_mail_sent.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("report {} mailed", p.display());
                    }
                    Err(e) => {
                        metrics.report_mail_failures.fetch_add(1, Ordering::Relaxed);
                        let pause = backoff.failed(&p, s.retry);
                        tracing::warn!(
                            "report {}: {e:#}; trying again in {}",
                            p.display(),
                            humantime::format_duration(pause)
                        );
                    }
                }
            }
            let left = pending(&outbox);
            backoff.next.retain(|p, _| left.contains(p));
            metrics
                .report_mail_pending
                .store(left.len() as u64, Ordering::Relaxed);
        }
        let mut wait = Duration::from_secs(60);
        if let Some(at) = backoff.soonest() {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calendar::local_midnight;

    #[test]
    fn yesterday_is_due_after_the_hour_and_last_month_on_the_first() {
        let at = |y, m, d, h: i64| local_midnight(y, m, d) + h * 3600;
        let keys = |v: Vec<Period>| v.into_iter().map(Period::key).collect::<Vec<_>>();
        assert_eq!(
            keys(due(at(2026, 3, 30, 1), 1, true)),
            ["2026-03-29", "2026-02"]
        );
        assert_eq!(keys(due(at(2026, 3, 30, 0), 1, false)), ["2026-03-28"]);
        assert_eq!(
            keys(due(at(2026, 4, 1, 2), 1, true)),
            ["2026-03-31", "2026-03"]
        );
        assert_eq!(
            keys(due(at(2026, 4, 1, 0), 1, true)),
            ["2026-03-30", "2026-02"]
        );
        assert_eq!(
            keys(due(at(2026, 1, 1, 5), 0, true)),
            ["2025-12-31", "2025-12"]
        );
    }

    #[test]
    fn retries_back_off_up_to_an_hour() {
        let mut b = Backoff::default();
        let p = Path::new("x.eml");
        assert!(b.ready(p));
        assert_eq!(
            b.failed(p, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert!(!b.ready(p));
        assert_eq!(
            b.failed(p, Duration::from_secs(60)),
            Duration::from_secs(120)
        );
        for _ in 0..10 {
            b.failed(p, Duration::from_secs(60));
        }
        assert_eq!(
            b.failed(p, Duration::from_secs(60)),
            Duration::from_secs(3600)
        );
        assert!(
            base_name(Period::parse_month("2026-03").unwrap(), "E00/1", true).ends_with("E00_1")
        );
    }
}
