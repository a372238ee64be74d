//! Time without a clock: UTC instants, the civil calendar, and the Central European
//! time zone that every supported meter writes its timestamps in.

use core::fmt;

/// An instant in UTC, as seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(pub i64);

/// Which offset a DSMR timestamp says it is in: `S` summer (UTC+2), `W` winter (UTC+1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DstFlag {
    /// `S`: summer time, UTC+2.
    Summer,
    /// `W`: winter (standard) time, UTC+1.
    Winter,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date `(year, month, day)` of a day number since 1970-01-01.
pub const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Number of days in a month.
pub const fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// The broken-down civil time of a timestamp at a fixed offset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Civil {
    /// Year (e.g. 2026).
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
}

impl Civil {
    /// Seconds since the epoch if this civil time were UTC; `None` when a field is out of range.
    pub fn to_epoch(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        Some(
            days * 86400
                + i64::from(self.hour) * 3600
                + i64::from(self.minute) * 60
                + i64::from(self.second.min(59)),
        )
    }

    /// The civil time of an epoch second.
    pub fn from_epoch(t: i64) -> Civil {
        let days = t.div_euclid(86400);
        let secs = t.rem_euclid(86400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

/// The epoch second at 01:00 UTC on the last Sunday of a month: when EU summer time starts
/// (March) or ends (October).
fn eu_switch(year: i64, month: u32) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday (weekday 4 with Sunday = 0).
    let weekday = (last + 4).rem_euclid(7);
    (last - weekday) * 86400 + 3600
}

/// Whether Central European Summer Time is in force at a UTC instant (EU rules since 1996).
pub fn cet_is_summer(t: Timestamp) -> bool {
    let year = Civil::from_epoch(t.0).year;
    t.0 >= eu_switch(year, 3) && t.0 < eu_switch(year, 10)
}

/// The UTC offset in seconds of Central European Time at an instant (3600 or 7200).
pub fn cet_offset(t: Timestamp) -> i64 {
    if cet_is_summer(t) {
        7200
    } else {
        3600
    }
}

/// Converts a Central European local civil time to UTC.
///
/// The time zone's rules decide the offset. The DST flag only decides where the rules
/// cannot: in the repeated autumn hour (`S` the first pass, `W` the second) and in the
/// skipped spring hour. Without a flag the repeated hour is read as summer time.
/// Real meters print a wrong flag now and then (`S` in early March); the rules win.
pub fn cet_to_utc(local: &Civil, flag: Option<DstFlag>) -> Option<Timestamp> {
    let naive = local.to_epoch()?;
    let summer = naive - 7200;
    let winter = naive - 3600;
    // The switches are in March and October: the local year is the UTC year.
    let (from, to) = (eu_switch(local.year, 3), eu_switch(local.year, 10));
    let summer_ok = (from..to).contains(&summer);
    let winter_ok = !(from..to).contains(&winter);
    Some(Timestamp(match (summer_ok, winter_ok, flag) {
        (true, false, _) => summer,
        (false, true, _) => winter,
        (_, _, Some(DstFlag::Winter)) => winter,
        (_, _, Some(DstFlag::Summer)) => summer,
        (true, true, None) => summer,
        (false, false, None) => winter,
    }))
}

impl Timestamp {
    /// The civil time of this instant in Central European time, with its offset in seconds.
    pub fn to_cet(self) -> (Civil, i64) {
        let off = cet_offset(self);
        (Civil::from_epoch(self.0 + off), off)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC: `2010-12-09T10:30:20Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::from_epoch(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Civil {
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn calendar_round_trips() {
        for d in [-800_000i64, -1, 0, 1, 10_957, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_291_890_620).to_string(), "2010-12-09T10:30:20Z");
    }

    #[test]
    fn dst_switches() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        let start = civil(2026, 3, 29, 1, 0, 0).to_epoch().unwrap();
        assert!(!cet_is_summer(Timestamp(start - 1)));
        assert!(cet_is_summer(Timestamp(start)));
        let end = civil(2026, 10, 25, 1, 0, 0).to_epoch().unwrap();
        assert!(cet_is_summer(Timestamp(end - 1)));
        assert!(!cet_is_summer(Timestamp(end)));
    }

    #[test]
    fn flags_resolve_the_repeated_hour() {
        let l = civil(2026, 10, 25, 2, 30, 0);
        let s = cet_to_utc(&l, Some(DstFlag::Summer)).unwrap();
        let w = cet_to_utc(&l, Some(DstFlag::Winter)).unwrap();
        assert_eq!(s.to_string(), "2026-10-25T00:30:00Z");
        assert_eq!(w.to_string(), "2026-10-25T01:30:00Z");
        assert_eq!(cet_to_utc(&l, None), Some(s));
        assert_eq!(
            cet_to_utc(&civil(2026, 1, 10, 12, 0, 0), None)
                .unwrap()
                .to_string(),
            "2026-01-10T11:00:00Z"
        );
        assert_eq!(
            cet_to_utc(&civil(2026, 7, 10, 12, 0, 0), None)
                .unwrap()
                .to_string(),
            "2026-07-10T10:00:00Z"
        );
        assert!(cet_to_utc(&civil(2026, 2, 30, 0, 0, 0), None).is_none());
        assert!(cet_to_utc(&civil(2025, 25, 25, 25, 25, 25), Some(DstFlag::Winter)).is_none());
        // A wrong flag outside the repeated hour does not move the time.
        assert_eq!(
            cet_to_utc(&civil(2020, 3, 5, 12, 21, 39), Some(DstFlag::Summer))
                .unwrap()
                .to_string(),
            "2020-03-05T11:21:39Z"
        );
    }
}
