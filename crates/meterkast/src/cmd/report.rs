//! `meterkast report`: one day's or one month's report as a picture, its figures on
//! stdout, and with `--mail` sent now.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::config::FileConfig;
use crate::report::{self, schedule::MailArgs, Format, Period};
use crate::store::Location;

/// Render a day's or a month's report: a chart with the key figures (PNG or SVG).
///
/// Examples:
///   meterkast report --date 2026-03-29 --out day.png
///   meterkast report --month 2026-03 --out march.svg --meter E0012345678901234
///   meterkast report --date 2026-03-29 --out day.png --mail --config meterkast.toml
///
/// A day shows power over the day (import above the axis, export below) with the
/// highest quarter-hour marked, energy per hour, the totals per tariff, gas, water,
/// cost, base load and the same weekday a week before. A month shows energy per day
/// and each day's highest quarter-hour, with the month's capacity peak.
/// The figures are also printed (the text of the report mail). Days and months are
/// local calendar ones (Central European time, as in /api/v1/series), while
/// `meterkast parse` prints UTC: 2026-03-29 runs from 2026-03-28T23:00:00Z to
/// 2026-03-29T22:00:00Z.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ReportCmdArgs {
    /// The database: a SQLite file, or a postgres://user@host/database URL.
    #[arg(
        long,
        env = "MK_DB",
        default_value = "meterkast.db",
        hide_env_values = true
    )]
    pub db: String,
    /// The day, YYYY-MM-DD: a local calendar day (the meter's time zone, Central
    /// European time), not a UTC day as `meterkast parse` prints times.
    #[arg(long, conflicts_with = "month", required_unless_present = "month")]
    pub date: Option<String>,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: Option<String>,
    /// The meter's equipment id [default: the only current meter].
    #[arg(long)]
    pub meter: Option<String>,
    /// Where to write the picture; .png or .svg.
    #[arg(long)]
    pub out: PathBuf,
    /// The picture's width in pixels.
    #[arg(long, default_value_t = report::DEFAULT_WIDTH, value_parser = clap::value_parser!(u32).range(320..=4000))]
    pub width: u32,
    /// Mail the report now, with the SMTP settings of --config or the --report-* options.
    #[arg(long)]
    pub mail: bool,
    /// A configuration file, for [prices] and [report] (SMTP).
    #[arg(long, env = "MK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Mail settings (as for `meterkast run`).
    #[command(flatten)]
    pub mail_args: MailArgs,
}

/// Runs the command; exit status 0 when the report was written.
pub fn run(args: ReportCmdArgs) -> Result<i32> {
    let period = match (&args.date, &args.month) {
        (Some(d), _) => Period::parse_date(d)?,
        (None, Some(m)) => Period::parse_month(m)?,
        (None, None) => bail!("give --date YYYY-MM-DD or --month YYYY-MM"),
    };
    let format = Format::from_path(&args.out)?;
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let mail = if args.mail {
        Some(args.mail_args.mail(&file)?.context(
            "--mail needs an SMTP server: --report-smtp URL (or [report] smtp in the config file) and --report-to",
        )?)
    } else {
        None
    };
    let db = Location::parse(&args.db)?;
    if let Location::Sqlite(path) = &db {
        if !path.is_file() {
            bail!(
                "no database at {}: give --db with the file `meterkast run` or `meterkast import` writes",
                path.display()
            );
        }
    }
    let store = db.open_reader()?;
    let store = &*store;
    let meter = report::resolve_meter(store, args.meter.as_deref())?;
    let r = report::build(
        store,
        &meter,
        period,
        file.prices.as_ref(),
        format,
        args.width,
    )?;
    if !r.figures.has_data() {
        let (from, to) = period.bounds();
        eprintln!(
            "no data stored for {}: the local {} from {} to {} (meterkast parse prints UTC times)",
            period.key(),
            match period {
                Period::Day { .. } => "day",
                Period::Month { .. } => "month",
            },
            crate::store::calendar::local_rfc3339(from),
            crate::store::calendar::local_rfc3339(to)
        );
    }
    report::write_atomic(&args.out, &r.image)?;
    print!("{}", report::text::plain(&r.figures));
    eprintln!(
        "wrote {} ({} × {} px)",
        args.out.display(),
        args.width,
        report::chart::height_for(args.width, &r.figures)
    );
    if let Some(m) = mail {
        let png = if format == Format::Png {
            r.image.clone()
        } else {
            report::chart::render(&r.figures, Format::Png, args.width)?
        };
        let msg = report::mail::message(&m, &r.figures, &png)?;
        m.send(&msg.formatted())?;
        eprintln!("mailed to {} recipient(s) through {}", m.to.len(), m.server);
    }
    Ok(0)
}
