//! OBIS identifiers (IEC 62056-61): the six-group names of every meter quantity.

use core::fmt;
use core::str::FromStr;

/// An OBIS identifier, reduced to the five groups `A-B:C.D.E` that customer ports use
/// (the sixth group, F, is almost always 255 and is dropped).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Obis {
    /// Group A: medium (0 abstract, 1 electricity, 7 gas, ...).
    pub a: u8,
    /// Group B: channel (0 the meter itself, 1..4 M-Bus sub-meters in DSMR).
    pub b: u8,
    /// Group C: quantity.
    pub c: u8,
    /// Group D: processing (instantaneous, cumulative, ...).
    pub d: u8,
    /// Group E: tariff or further classification.
    pub e: u8,
}

impl Obis {
    /// Builds an identifier from its five groups.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8) -> Self {
        Obis { a, b, c, d, e }
    }

    /// Builds an identifier from the six bytes of a COSEM logical name (F is dropped).
    pub const fn from_logical_name(ln: &[u8; 6]) -> Self {
        Obis::new(ln[0], ln[1], ln[2], ln[3], ln[4])
    }

    /// Parses the textual form `A-B:C.D.E`, also accepting a trailing `*F` or `.F`
    /// group (`1-0:1.8.0*255`, `1-0:1.8.0.255`), as some meters print it.
    pub fn parse(s: &[u8]) -> Option<Obis> {
        match Obis::parse_prefix(s) {
            Some((o, used)) if used == s.len() => Some(o),
            _ => None,
        }
    }

    /// Parses an identifier at the start of `s`, stopping at the first byte that cannot
    /// continue it (the `(` of a DSMR line). Returns the identifier and the bytes used.
    pub fn parse_prefix(s: &[u8]) -> Option<(Obis, usize)> {
        // The shape nearly every meter prints, `d-d:C.D.E`, without the general loop.
        if let [a @ b'0'..=b'9', b'-', b @ b'0'..=b'9', b':', ..] = s {
            let mut i = 4;
            let c = Self::group_at(s, &mut i)?;
            let d = if s.get(i) == Some(&b'.') {
                i += 1;
                Self::group_at(s, &mut i)?
            } else {
                return None;
            };
            let e = if s.get(i) == Some(&b'.') {
                i += 1;
                Self::group_at(s, &mut i)?
            } else {
                return None;
            };
            if matches!(s.get(i), Some(b'*' | b'.')) {
                i += 1;
                Self::group_at(s, &mut i)?;
            }
            if s.get(i)
                .is_some_and(|x| x.is_ascii_digit() || matches!(x, b'-' | b':' | b'.' | b'*'))
            {
                return None;
            }
            return Some((Obis::new(a - b'0', b - b'0', c, d, e), i));
        }
        Self::parse_prefix_general(s)
    }

    /// One group of 1 to 3 digits (at most 255) at `*i`, advancing `*i`.
    fn group_at(s: &[u8], i: &mut usize) -> Option<u8> {
        let mut v: u32 = 0;
        let start = *i;
        while let Some(&b) = s.get(*i) {
            if !b.is_ascii_digit() || *i - start == 3 {
                break;
            }
            v = v * 10 + u32::from(b - b'0');
            *i += 1;
        }
        if *i == start || v > 255 || s.get(*i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        Some(v as u8)
    }

    fn parse_prefix_general(s: &[u8]) -> Option<(Obis, usize)> {
        let mut groups = [0u8; 6];
        let mut n = 0usize;
        let mut cur: u32 = 0;
        let mut digits = 0u32;
        let mut used = s.len();
        for (i, &b) in s.iter().enumerate() {
            if b.is_ascii_digit() {
                cur = cur * 10 + u32::from(b - b'0');
                digits += 1;
                if cur > 255 || digits > 3 {
                    return None;
                }
                continue;
            }
            let separator = matches!(
                (n, b),
                (0, b'-') | (1, b':') | (2, b'.') | (3, b'.') | (4, b'*') | (4, b'.')
            );
            if !separator {
                used = i;
                break;
            }
            if digits == 0 {
                return None;
            }
            groups[n] = cur as u8;
            n += 1;
            cur = 0;
            digits = 0;
        }
        if digits == 0 || !(n == 4 || n == 5) {
            return None;
        }
        groups[n] = cur as u8;
        Some((
            Obis::new(groups[0], groups[1], groups[2], groups[3], groups[4]),
            used,
        ))
    }

    /// The M-Bus channel (group B) when this is a sub-meter object (`0-n:...`, n ≥ 1).
    pub fn channel(&self) -> Option<u8> {
        (self.a == 0 && self.b >= 1).then_some(self.b)
    }

    /// The same identifier with its channel replaced (for registry look-ups).
    pub const fn with_channel(self, b: u8) -> Obis {
        Obis::new(self.a, b, self.c, self.d, self.e)
    }
}

impl fmt::Display for Obis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}:{}.{}.{}", self.a, self.b, self.c, self.d, self.e)
    }
}

/// Error for [`Obis::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObisParseError;

impl fmt::Display for ObisParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an OBIS identifier of the form A-B:C.D.E")
    }
}

impl FromStr for Obis {
    type Err = ObisParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Obis::parse(s.as_bytes()).ok_or(ObisParseError)
    }
}

impl serde::Serialize for Obis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_and_prints() {
        let o = Obis::parse(b"1-0:1.8.1").unwrap();
        assert_eq!(o, Obis::new(1, 0, 1, 8, 1));
        assert_eq!(o.to_string(), "1-0:1.8.1");
        assert_eq!(
            Obis::parse(b"1-0:1.8.0*255"),
            Some(Obis::new(1, 0, 1, 8, 0))
        );
        assert_eq!(
            Obis::parse(b"0-0:96.1.255*255"),
            Some(Obis::new(0, 0, 96, 1, 255))
        );
        assert_eq!(
            Obis::parse(b"1-0:99.97.0").unwrap().to_string(),
            "1-0:99.97.0"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"1-0",
            b"1-0:1.8",
            b"1-0:1.8.",
            b"a-0:1.8.0",
            b"1-0:256.8.0",
            b"1:0-1.8.0",
            b"1-0:1.8.0*",
            b"1-0:1.8.0*1*2",
            b"1-0:0001.8.0",
        ] {
            assert_eq!(Obis::parse(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }
}
