//! The numbers of a report, computed once from the store and used by the chart, the
//! e-mail's HTML and its plain text alike. Days and months are local calendar periods,
//! bounded exactly as `/api/v1/series` bounds them, so the figures match the API.

use anyhow::Result;
use meterkast_codec::time::{civil_from_days, days_from_civil, days_in_month};

use crate::prices::{Cost, Prices};
use crate::store::calendar::{local_midnight, Step};
use crate::store::{Rollup, RollupRow, StoreRead};

/// The period a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// One local calendar day.
    Day {
        /// Year.
        year: i64,
        /// Month, 1 to 12.
        month: u32,
        /// Day of the month.
        day: u32,
    },
    /// One local calendar month.
    Month {
        /// Year.
        year: i64,
        /// Month, 1 to 12.
        month: u32,
    },
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Period {
    /// Reads `YYYY-MM-DD`.
    pub fn parse_date(s: &str) -> Result<Period> {
        let bad = || anyhow::anyhow!("--date {s}: use a date like 2026-03-29");
        let p: Vec<&str> = s.split('-').collect();
        if p.len() != 3 || p[0].len() != 4 || p[1].len() != 2 || p[2].len() != 2 {
            return Err(bad());
        }
        let year: i64 = p[0].parse().map_err(|_| bad())?;
        let month: u32 = p[1].parse().map_err(|_| bad())?;
        let day: u32 = p[2].parse().map_err(|_| bad())?;
        if !(1970..=9998).contains(&year)
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
        {
            return Err(anyhow::anyhow!("--date {s}: there is no such day"));
        }
        Ok(Period::Day { year, month, day })
    }

    /// Reads `YYYY-MM`.
    pub fn parse_month(s: &str) -> Result<Period> {
        let bad = || anyhow::anyhow!("--month {s}: use YYYY-MM, a month like 2026-03");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i64 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1970..=9998).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Period::Month { year, month })
    }

    /// The local day containing an instant.
    pub fn day_of(t: i64) -> Period {
        let (c, _) = meterkast_codec::Timestamp(t).to_cet();
        Period::Day {
            year: c.year,
            month: c.month,
            day: c.day,
        }
    }

    /// `[from, to)` in unix seconds, local midnight to local midnight.
    pub fn bounds(self) -> (i64, i64) {
        match self {
            Period::Day { year, month, day } => {
                let from = local_midnight(year, month, day);
                (from, Step::Day.bucket(from).1)
            }
            Period::Month { year, month } => {
                let from = local_midnight(year, month, 1);
                (from, Step::Month.bucket(from).1)
            }
        }
    }

    /// The same kind of period shifted back: a week for a day, a month for a month.
    pub fn previous(self) -> Period {
        match self {
            Period::Day { year, month, day } => {
                let (year, month, day) = civil_from_days(days_from_civil(year, month, day) - 7);
                Period::Day { year, month, day }
            }
            Period::Month { year, month: 1 } => Period::Month {
                year: year - 1,
                month: 12,
            },
            Period::Month { year, month } => Period::Month {
                year,
                month: month - 1,
            },
        }
    }

    /// The period that follows: the next day or month.
    pub fn next(self) -> Period {
        let (_, to) = self.bounds();
        match self {
            Period::Day { .. } => Period::day_of(to),
            Period::Month { .. } => match Period::day_of(to) {
                Period::Day { year, month, .. } => Period::Month { year, month },
                m => m,
            },
        }
    }

    /// `2026-03-29` or `2026-03`: file names and the API's `from`.
    pub fn key(self) -> String {
        match self {
            Period::Day { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
            Period::Month { year, month } => format!("{year:04}-{month:02}"),
        }
    }

    /// `Sunday 29 March 2026` or `March 2026`.
    pub fn title(self) -> String {
        match self {
            Period::Day { year, month, day } => format!(
                "{} {day} {} {year}",
                self.weekday().unwrap_or(""),
                MONTHS[month as usize - 1]
            ),
            Period::Month { year, month } => format!("{} {year}", MONTHS[month as usize - 1]),
        }
    }

    /// The weekday's name, for a day.
    pub fn weekday(self) -> Option<&'static str> {
        match self {
            Period::Day { year, month, day } => {
                Some(WEEKDAYS[(days_from_civil(year, month, day) + 4).rem_euclid(7) as usize])
            }
            Period::Month { .. } => None,
        }
    }

    /// The number of days covered (for fixed charges).
    pub fn days(self) -> f64 {
        match self {
            Period::Day { .. } => 1.0,
            Period::Month { year, month } => f64::from(days_in_month(year, month)),
        }
    }
}

/// One bar or point of a chart: a bucket and its energy.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// Bucket start (unix seconds).
    pub start: i64,
    /// Bucket end (unix seconds, exclusive).
    pub end: i64,
    /// Imported energy, Wh; `None` when nothing was stored for the bucket.
    pub import_wh: Option<i64>,
    /// Exported energy, Wh.
    pub export_wh: Option<i64>,
}

impl Slot {
    /// Average import power over the bucket, W.
    pub fn import_w(&self) -> Option<f64> {
        self.import_wh
            .map(|wh| wh as f64 * 3600.0 / (self.end - self.start) as f64)
    }

    /// Average export power over the bucket, W.
    pub fn export_w(&self) -> Option<f64> {
        self.export_wh
            .map(|wh| wh as f64 * 3600.0 / (self.end - self.start) as f64)
    }
}

/// The highest quarter-hour of average import: the capacity tariff's measure.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarterPeak {
    /// Quarter start (unix seconds).
    pub start: i64,
    /// Average import power over the quarter, W.
    pub power_w: f64,
}

/// The totals of a period, with what they cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// The period's roll-up (energy in Wh, gas and water in dm³).
    pub rollup: Rollup,
    /// Whether anything was stored for the period.
    pub has_data: bool,
    /// Its cost at the prices in force.
    pub cost: Cost,
}

impl Totals {
    /// Imported energy, kWh.
    pub fn import_kwh(&self) -> f64 {
        self.rollup.sums[0] as f64 / 1000.0
    }
    /// Exported energy, kWh.
    pub fn export_kwh(&self) -> f64 {
        self.rollup.sums[1] as f64 / 1000.0
    }
    /// Import per tariff 1 to 4, kWh.
    pub fn import_tariffs_kwh(&self) -> [f64; 4] {
        std::array::from_fn(|i| self.rollup.sums[2 + i] as f64 / 1000.0)
    }
    /// Export per tariff 1 to 4, kWh.
    pub fn export_tariffs_kwh(&self) -> [f64; 4] {
        std::array::from_fn(|i| self.rollup.sums[6 + i] as f64 / 1000.0)
    }
    /// Gas, m³.
    pub fn gas_m3(&self) -> f64 {
        self.rollup.sums[10] as f64 / 1000.0
    }
    /// Water, m³.
    pub fn water_m3(&self) -> f64 {
        self.rollup.sums[11] as f64 / 1000.0
    }
}

/// Everything a report shows.
#[derive(Clone, Debug)]
pub struct Figures {
    /// The meter's equipment id.
    pub meter: String,
    /// The period.
    pub period: Period,
    /// `[from, to)`.
    pub bounds: (i64, i64),
    /// The prices used for costs.
    pub prices: Prices,
    /// The period's totals.
    pub totals: Totals,
    /// The comparison period (same weekday last week, or the previous month) and its totals.
    pub previous: (Period, Totals),
    /// Every quarter-hour of the period (92, 96 or 100 for a day).
    pub quarters: Vec<Slot>,
    /// Bars: every hour of a day, or every day of a month.
    pub bars: Vec<Slot>,
    /// The highest quarter-hour of import.
    pub peak: Option<QuarterPeak>,
    /// Base load: the lowest quarter-hour average net power between 00:00 and 06:00
    /// local (for a month, the mean of the days' base loads), W.
    pub base_load_w: Option<f64>,
}

/// Every bucket of `[from, to)` with the stored roll-up where there is one.
fn slots(rows: &[RollupRow], step: Step, from: i64, to: i64) -> Vec<(Slot, Option<&Rollup>)> {
    let mut out = Vec::new();
    let mut t = step.bucket(from).0;
    let mut i = 0;
    while t < to {
        let (start, end) = step.bucket(t);
        while i < rows.len() && rows[i].start < start {
            i += 1;
        }
        let row = rows.get(i).filter(|r| r.start == start).map(|r| &r.rollup);
        out.push((
            Slot {
                start,
                end,
                import_wh: row.map(|r| r.sums[0]),
                export_wh: row.map(|r| r.sums[1]),
            },
            row,
        ));
        t = end;
    }
    out
}

fn totals(store: &dyn StoreRead, meter: i64, period: Period, prices: &Prices) -> Result<Totals> {
    let step = match period {
        Period::Day { .. } => Step::Day,
        Period::Month { .. } => Step::Month,
    };
    let (from, to) = period.bounds();
    let rows = store.rollups(meter, step, from, to)?;
    let mut rollup = Rollup::default();
    for r in &rows {
        rollup.merge(&r.rollup);
    }
    let cost = prices.cost(&rollup, period.days());
    Ok(Totals {
        has_data: !rows.is_empty(),
        rollup,
        cost,
    })
}

/// The lowest quarter-hour average net power (import − export) among quarters starting
/// between local midnight and 06:00 of the day that starts at `midnight`.
fn base_load(quarters: &[Slot], midnight: i64) -> Option<f64> {
    quarters
        .iter()
        .filter(|q| q.start >= midnight && q.start < midnight + 6 * 3600)
        .filter_map(|q| Some(q.import_w()? - q.export_w()?))
        .min_by(f64::total_cmp)
}

impl Figures {
    /// Computes a report's figures for meter `meter` (database id) named `name`.
    pub fn compute(
        store: &dyn StoreRead,
        meter: i64,
        name: &str,
        period: Period,
        prices: &Prices,
    ) -> Result<Figures> {
        let (from, to) = period.bounds();
        let qrows = store.rollups(meter, Step::Quarter, from, to)?;
        let quarters: Vec<Slot> = slots(&qrows, Step::Quarter, from, to)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let bar_step = match period {
            Period::Day { .. } => Step::Hour,
            Period::Month { .. } => Step::Day,
        };
        let brows = store.rollups(meter, bar_step, from, to)?;
        let bars: Vec<Slot> = slots(&brows, bar_step, from, to)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        // As /api/v1/peaks picks it: the most energy, the earliest on a tie.
        let peak = qrows
            .iter()
            .max_by_key(|q| (q.rollup.sums[0], -q.start))
            .filter(|q| q.rollup.sums[0] > 0)
            .map(|q| QuarterPeak {
                start: q.start,
                power_w: (q.rollup.sums[0] * 4) as f64,
            });
        let base_load_w = match period {
            Period::Day { .. } => base_load(&quarters, from),
            Period::Month { .. } => {
                let daily: Vec<f64> = bars
                    .iter()
                    .filter_map(|d| base_load(&quarters, d.start))
                    .collect();
                (!daily.is_empty()).then(|| daily.iter().sum::<f64>() / daily.len() as f64)
            }
        };
        let previous = period.previous();
        Ok(Figures {
            meter: name.to_string(),
            period,
            bounds: (from, to),
            prices: prices.clone(),
            totals: totals(store, meter, period, prices)?,
            previous: (previous, totals(store, meter, previous, prices)?),
            quarters,
            bars,
            peak,
            base_load_w,
        })
    }

    /// Whether anything was stored for the period.
    pub fn has_data(&self) -> bool {
        self.totals.has_data || self.quarters.iter().any(|q| q.import_wh.is_some())
    }

    /// How the comparison period is named: `last Sunday (2026-03-22)` or
    /// `February 2026`.
    pub fn previous_label(&self) -> String {
        match self.previous.0 {
            p @ Period::Day { .. } => {
                format!("last {} ({})", p.weekday().unwrap_or(""), p.key())
            }
            p => p.title(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_shift() {
        let d = Period::parse_date("2026-03-29").unwrap();
        assert_eq!(d.weekday(), Some("Sunday"));
        assert_eq!(d.previous().key(), "2026-03-22");
        assert_eq!(d.next().key(), "2026-03-30");
        let (a, b) = d.bounds();
        assert_eq!((b - a) / 900, 92);
        assert_eq!(
            Period::parse_date("2026-03-03").unwrap().previous().key(),
            "2026-02-24"
        );
        assert!(Period::parse_date("2026-02-30").is_err());
        assert!(Period::parse_date("29-03-2026").is_err());
        assert!(Period::parse_date("2026-3-29").is_err());
        let m = Period::parse_month("2026-01").unwrap();
        assert_eq!(m.previous().key(), "2025-12");
        assert_eq!(m.next().key(), "2026-02");
        assert_eq!(m.title(), "January 2026");
        assert_eq!(m.days(), 31.0);
        assert!(Period::parse_month("2026-13").is_err());
        assert!(Period::parse_month("2026").is_err());
    }

    #[test]
    fn base_load_is_the_lowest_night_quarter() {
        let q = |start: i64, imp: i64, exp: i64| Slot {
            start,
            end: start + 900,
            import_wh: Some(imp),
            export_wh: Some(exp),
        };
        let v = vec![q(0, 100, 0), q(900, 50, 0), q(6 * 3600, 10, 0)];
        assert_eq!(base_load(&v, 0), Some(200.0));
        assert_eq!(base_load(&v[2..], 0), None);
    }
}
