//! Reading times people and programs type: RFC 3339 instants on the command line and
//! in API queries.

use anyhow::Result;
use meterkast_codec::time::Civil;
use meterkast_codec::Timestamp;

/// Reads an RFC 3339 instant: `2026-03-29T00:00:00Z`, `2026-03-29T02:00:00+02:00`,
/// fractional seconds ignored.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp> {
    let bad = || anyhow::anyhow!("`{s}` is not an RFC 3339 time (like 2026-03-29T00:00:00Z)");
    let b = s.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32> {
        let d = &b[r];
        if !d.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(d.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0')))
    };
    let civil = Civil {
        year: i64::from(num(0..4)?),
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
    };
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    let offset = match b.get(i..) {
        Some(b"Z") | Some(b"z") => 0,
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return Err(bad()),
    };
    // A leap second (:60) is not a time an API or command line needs.
    if civil.second > 59 {
        return Err(bad());
    }
    let t = civil.to_epoch().ok_or_else(bad)?;
    Ok(Timestamp(t - offset))
}
