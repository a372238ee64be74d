//! Daily and monthly reports: a picture (PNG or SVG) with the period's key figures and
//! charts, and an e-mail carrying the same figures and the picture inline. The
//! `meterkast report` command renders one on demand; the daemon renders yesterday's
//! (and last month's) on schedule and mails them.

pub mod chart;
pub mod figures;
pub mod mail;
pub mod schedule;
pub mod text;

use std::path::Path;

use anyhow::{bail, Context, Result};

pub use chart::Format;
pub use figures::{Figures, Period};

use crate::prices::Prices;
use crate::store::{MeterInfo, StoreRead};

/// The default picture width: readable on a phone without zooming.
pub const DEFAULT_WIDTH: u32 = 1080;

/// The meters that are still current: every meter no other meter replaced.
fn current_meters(all: &[MeterInfo]) -> Vec<&MeterInfo> {
    all.iter()
        .filter(|m| !all.iter().any(|o| o.replaces == Some(m.id)))
        .collect()
}

/// The meter a report is for: the one named, else the only current one (a replaced
/// meter does not count). An unknown or ambiguous choice is an error that lists the
/// meters.
pub fn resolve_meter(store: &dyn StoreRead, wanted: Option<&str>) -> Result<MeterInfo> {
    let all = store.meter_list()?;
    let list = |ms: &[&MeterInfo]| {
        ms.iter()
            .map(|m| format!("{} ({})", m.equipment_id, m.dialect))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if all.is_empty() {
        bail!("the database has no meter yet: run `meterkast run` or `meterkast import` first");
    }
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        return all
            .iter()
            .find(|m| m.equipment_id == w)
            .cloned()
            .with_context(|| {
                format!(
                    "no meter {w} in the database; its meters: {}",
                    list(&all.iter().collect::<Vec<_>>())
                )
            });
    }
    let current = current_meters(&all);
    match current.as_slice() {
        [one] => Ok((*one).clone()),
        many => bail!(
            "{} meters in the database: choose one with --meter ID ({})",
            many.len(),
            list(many)
        ),
    }
}

/// The meters the daemon reports on: the one configured, else every current meter.
pub fn report_meters(store: &dyn StoreRead, wanted: Option<&str>) -> Result<Vec<MeterInfo>> {
    if wanted.is_some() {
        return Ok(vec![resolve_meter(store, wanted)?]);
    }
    let all = store.meter_list()?;
    Ok(current_meters(&all).into_iter().cloned().collect())
}

/// A rendered report: its figures and its picture.
pub struct Report {
    /// The numbers.
    pub figures: Figures,
    /// The picture's bytes.
    pub image: Vec<u8>,
    /// The picture's format.
    pub format: Format,
}

/// Computes and draws a report for a meter.
pub fn build(
    store: &dyn StoreRead,
    meter: &MeterInfo,
    period: Period,
    configured_prices: Option<&Prices>,
    format: Format,
    width: u32,
) -> Result<Report> {
    let prices = Prices::current(store, configured_prices)?;
    let figures = Figures::compute(store, meter.id, &meter.equipment_id, period, &prices)?;
    let image = chart::render(&figures, format, width)?;
    Ok(Report {
        figures,
        image,
        format,
    })
}

/// Writes a file whole or not at all: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| {
            format!(
                "cannot write {} (does its folder exist, and may meterkast write there?)",
                path.display()
            )
        })
}
