//! Buckets on the meter's local calendar: quarter-hours, hours, days and months in
//! Central European time (every supported meter's zone: NL, BE, LU and AT), DST days
//! included (a spring day has 92 quarter-hours, an autumn day 100).

use meterkast_codec::time::{cet_to_utc, days_in_month, Civil};
use meterkast_codec::Timestamp;

/// A bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// 15 minutes.
    Quarter,
    /// One hour.
    Hour,
    /// One local calendar day.
    Day,
    /// One local calendar month.
    Month,
}

impl Step {
    /// Every step, smallest first.
    pub const ALL: [Step; 4] = [Step::Quarter, Step::Hour, Step::Day, Step::Month];

    /// The code stored in the database.
    pub fn code(self) -> i64 {
        match self {
            Step::Quarter => 900,
            Step::Hour => 3600,
            Step::Day => 86400,
            Step::Month => 1,
        }
    }

    /// The name used in the API (`15m`, `1h`, `1d`, `1mo`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Quarter => "15m",
            Step::Hour => "1h",
            Step::Day => "1d",
            Step::Month => "1mo",
        }
    }

    /// Parses an API step name.
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.name() == s)
    }

    /// The bucket `[start, end)` containing the instant `t` (unix seconds).
    pub fn bucket(self, t: i64) -> (i64, i64) {
        match self {
            // CET/CEST offsets are whole hours: these align in UTC.
            Step::Quarter => {
                let s = t.div_euclid(900) * 900;
                (s, s + 900)
            }
            Step::Hour => {
                let s = t.div_euclid(3600) * 3600;
                (s, s + 3600)
            }
            Step::Day => {
                let (c, _) = Timestamp(t).to_cet();
                let start = local_midnight(c.year, c.month, c.day);
                let (y, m, d) = next_day(c.year, c.month, c.day);
                (start, local_midnight(y, m, d))
            }
            Step::Month => {
                let (c, _) = Timestamp(t).to_cet();
                let (ny, nm) = if c.month == 12 {
                    (c.year + 1, 1)
                } else {
                    (c.year, c.month + 1)
                };
                (
                    local_midnight(c.year, c.month, 1),
                    local_midnight(ny, nm, 1),
                )
            }
        }
    }
}

fn next_day(y: i64, m: u32, d: u32) -> (i64, u32, u32) {
    if d < days_in_month(y, m) {
        (y, m, d + 1)
    } else if m < 12 {
        (y, m + 1, 1)
    } else {
        (y + 1, 1, 1)
    }
}

/// The instant of local midnight starting a date.
pub fn local_midnight(year: i64, month: u32, day: u32) -> i64 {
    let c = Civil {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
    };
    cet_to_utc(&c, None).expect("a valid date").0
}

/// The local date (`YYYY-MM-DD`) of an instant.
pub fn local_date(t: i64) -> String {
    let (c, _) = Timestamp(t).to_cet();
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// RFC 3339 with the local offset (`2026-03-29T03:00:00+02:00`), for bucket bounds.
pub fn local_rfc3339(t: i64) -> String {
    let (c, off) = Timestamp(t).to_cet();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+{:02}:00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        off / 3600
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_days_have_the_right_number_of_quarters() {
        let count = |y, m, d| {
            let (s, e) = Step::Day.bucket(local_midnight(y, m, d) + 3600);
            (e - s) / 900
        };
        assert_eq!(count(2026, 3, 29), 92);
        assert_eq!(count(2026, 10, 25), 100);
        assert_eq!(count(2026, 6, 1), 96);
    }

    #[test]
    fn months_and_days_follow_local_midnight() {
        // 2026-01-31T23:30:00Z is already February 1st in Amsterdam.
        let t = local_midnight(2026, 2, 1) + 1800;
        assert_eq!(local_date(t), "2026-02-01");
        let (s, e) = Step::Month.bucket(t);
        assert_eq!(local_rfc3339(s), "2026-02-01T00:00:00+01:00");
        assert_eq!(local_rfc3339(e), "2026-03-01T00:00:00+01:00");
        let (s, _) = Step::Month.bucket(local_midnight(2026, 12, 31) + 80000);
        assert_eq!(local_rfc3339(s), "2026-12-01T00:00:00+01:00");
        assert_eq!(Step::parse("15m"), Some(Step::Quarter));
        assert_eq!(Step::parse("2h"), None);
    }
}
