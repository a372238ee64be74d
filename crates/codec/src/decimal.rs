//! Exact decimal numbers, as meters print them.

use core::fmt;

/// A decimal number kept exactly as the meter printed it: `000173.640` is
/// mantissa 173640, scale 3. No float noise, no lost digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i64,
    /// How many of the digits stand after the decimal point.
    pub scale: u8,
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `10^e` as a float, without `std` (`f64::powi` needs it).
pub fn pow10_f64(e: i8) -> f64 {
    let mut x = 1.0;
    for _ in 0..e.unsigned_abs() {
        x *= 10.0;
    }
    if e < 0 {
        1.0 / x
    } else {
        x
    }
}

impl Decimal {
    /// A decimal from its mantissa and scale.
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Decimal { mantissa, scale }
    }

    /// Parses `[+-]digits[.digits]` (at most 18 significant digits, leading zeros free).
    pub fn parse(s: &[u8]) -> Option<Decimal> {
        match Decimal::parse_prefix(s) {
            Some((d, used)) if used == s.len() => Some(d),
            _ => None,
        }
    }

    /// Parses a number at the start of `s`, stopping at the first byte that cannot
    /// continue it (the `*` before a unit). Returns the number and the bytes used.
    pub fn parse_prefix(s: &[u8]) -> Option<(Decimal, usize)> {
        let (neg, start) = match s.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };
        let mut mantissa: i64 = 0;
        let mut scale: u8 = 0;
        let mut seen_point = false;
        let mut digits = 0u32;
        let mut significant = 0u32;
        let mut used = s.len();
        for (i, &b) in s.iter().enumerate().skip(start) {
            if b.is_ascii_digit() {
                digits += 1;
                if mantissa != 0 || b != b'0' {
                    significant += 1;
                    if significant > 18 {
                        return None;
                    }
                }
                mantissa = mantissa * 10 + i64::from(b - b'0');
                if seen_point {
                    if scale == 22 {
                        return None;
                    }
                    scale += 1;
                }
            } else if b == b'.' && !seen_point {
                seen_point = true;
            } else {
                used = i;
                break;
            }
        }
        if digits == 0 || scale > 22 {
            return None;
        }
        Some((
            Decimal {
                mantissa: if neg { -mantissa } else { mantissa },
                scale,
            },
            used,
        ))
    }

    /// The value scaled by `10^exp` (positive or negative), exactly where possible.
    pub fn scaled(self, exp: i8) -> Decimal {
        if exp >= 0 {
            let mut d = self;
            for _ in 0..exp {
                if d.scale > 0 {
                    d.scale -= 1;
                } else {
                    match d.mantissa.checked_mul(10) {
                        Some(m) => d.mantissa = m,
                        None => return d,
                    }
                }
            }
            d
        } else {
            let s = (i16::from(self.scale) - i16::from(exp)).min(22) as u8;
            Decimal {
                mantissa: self.mantissa,
                scale: s,
            }
        }
    }

    /// The nearest `f64` (correctly rounded for up to 15 significant digits).
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / POW10[usize::from(self.scale.min(22))]
    }

    /// The value as an integer when it has no fraction.
    pub fn to_i64(self) -> Option<i64> {
        let mut m = self.mantissa;
        for _ in 0..self.scale {
            if m % 10 != 0 {
                return None;
            }
            m /= 10;
        }
        Some(m)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let p = 10u128.pow(u32::from(self.scale));
        let abs = u128::from(self.mantissa.unsigned_abs());
        let sign = if self.mantissa < 0 { "-" } else { "" };
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / p,
            abs % p,
            width = usize::from(self.scale)
        )
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_i64() {
            Some(i) if self.scale == 0 => s.serialize_i64(i),
            _ => s.serialize_f64(self.to_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_exactly() {
        let d = Decimal::parse(b"000173.640").unwrap();
        assert_eq!(d, Decimal::new(173640, 3));
        assert_eq!(d.to_string(), "173.640");
        assert_eq!(d.to_f64(), 173.64);
        assert_eq!(Decimal::parse(b"-040").unwrap().to_i64(), Some(-40));
        assert_eq!(
            Decimal::parse(b"00052185.7825309").unwrap().to_string(),
            "52185.7825309"
        );
        assert_eq!(Decimal::parse(b"0.5").unwrap().to_string(), "0.5");
        assert_eq!(Decimal::parse(b"-0.05").unwrap().to_string(), "-0.05");
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in [
            &b""[..],
            b"-",
            b".",
            b"1.2.3",
            b"12a",
            b"1e5",
            b"1234567890123456789",
        ] {
            assert!(Decimal::parse(bad).is_none(), "{:?}", bad);
        }
    }

    #[test]
    fn scales() {
        assert_eq!(Decimal::new(2027, 3).scaled(3), Decimal::new(2027, 0));
        assert_eq!(Decimal::new(7112944, 0).scaled(-3).to_string(), "7112.944");
        assert_eq!(Decimal::new(5, 0).scaled(2).to_string(), "500");
    }
}
