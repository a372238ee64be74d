//! The DSMR telegram grammar: identification line, `OBIS(group)(group)…` lines, `!CRC`.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::framer::RawTelegram;
use crate::crc::crc16_arc;
use crate::decimal::Decimal;
use crate::model::{Dialect, Group, LogEntry, Object, PeakEntry, Telegram, Value};
use crate::obis::Obis;
use crate::time::{cet_to_utc, Civil, DstFlag, Timestamp};

/// Why a DSMR telegram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsmrError {
    /// The CRC after `!` does not match the telegram.
    #[error("checksum mismatch: telegram says {stated:04X}, bytes give {computed:04X} (damaged on the line?)")]
    Checksum {
        /// The CRC the meter wrote.
        stated: u16,
        /// The CRC of the bytes received.
        computed: u16,
    },
    /// A telegram of a kind that always carries a CRC came without one: a damaged byte
    /// became the `!` that ends a telegram.
    #[error("checksum missing: this kind of meter always sends one (a byte damaged on the line?)")]
    MissingChecksum,
    /// A line does not follow the `OBIS(value)` grammar.
    #[error("syntax error on line {line}: {reason}")]
    Syntax {
        /// 1-based line number within the telegram.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl DsmrError {
    /// A short, stable name of the cause (for counters and summaries).
    pub fn cause(&self) -> &'static str {
        match self {
            DsmrError::Checksum { .. } | DsmrError::MissingChecksum => "checksum",
            DsmrError::Syntax { .. } => "syntax",
        }
    }
}

/// How the value groups of an object are to be read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Time,
    Log,
    Peaks,
    Gas22,
    Auto,
}

/// The registry of object shapes that the groups alone cannot tell (an identifier
/// made of digits, a counter without a unit, the tariff indicator kept as text).
fn kind_of(o: Obis) -> Kind {
    match (o.a, o.c, o.d, o.e) {
        (0, 1, 0, 0) => Kind::Time,
        (_, 0, 2, 8)
        | (0, 96, 1, _)
        | (0, 42, 0, 0)
        | (_, 0, 0, 0)
        | (0, 96, 13, _)
        | (0, 96, 14, 0) => Kind::Text,
        (0, 24, 1, 0) | (0, 96, 3, 10) | (0, 24, 4, 0) | (0, 96, 7, 21) | (0, 96, 7, 9) => {
            Kind::Number
        }
        (1, 32 | 52 | 72, 32 | 36, 0) => Kind::Number,
        (1, 99, 97, 0) => Kind::Log,
        (0, 98, 1, 0) => Kind::Peaks,
        (0, 24, 3, 0) => Kind::Gas22,
        _ => Kind::Auto,
    }
}

fn text(b: &[u8]) -> Cow<'_, str> {
    match core::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(alloc::string::String::from_utf8_lossy(b).into_owned()),
    }
}

/// Reads `value*unit` or `value`; `None` when the value is not a decimal number.
fn number(g: &[u8]) -> Option<(Decimal, Option<Cow<'_, str>>)> {
    let (d, used) = Decimal::parse_prefix(g)?;
    if used == g.len() {
        return Some((d, None));
    }
    if g[used] != b'*' {
        return None;
    }
    let unit = &g[used + 1..];
    if unit.is_empty() || !unit.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    // ASCII graphic bytes are always valid UTF-8.
    Some((d, core::str::from_utf8(unit).ok().map(Cow::Borrowed)))
}

fn two(d: &[u8]) -> u32 {
    u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0')
}

/// Reads `YYMMDDhhmmss[S|W]`. `Some(None)` is a time-shaped placeholder (an impossible
/// date such as `632525252525W`, or `700101010000W` for "never").
fn time(g: &[u8]) -> Option<Option<Timestamp>> {
    let (digits, flag) = match g.len() {
        12 => (g, None),
        13 => (
            &g[..12],
            match g[12] {
                b'S' | b's' => Some(DstFlag::Summer),
                b'W' | b'w' => Some(DstFlag::Winter),
                _ => return None,
            },
        ),
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.starts_with(b"700101") {
        return Some(None);
    }
    let c = Civil {
        year: 2000 + i64::from(two(&digits[0..])),
        month: two(&digits[2..]),
        day: two(&digits[4..]),
        hour: two(&digits[6..]),
        minute: two(&digits[8..]),
        second: two(&digits[10..]),
    };
    Some(cet_to_utc(&c, flag))
}

/// Iterates over the contents of `(…)(…)` groups, allowing line breaks between them
/// (DSMR 2.2/3 continue the gas reading on the next line).
struct Groups<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Groups<'a> {
    type Item = Result<&'a [u8], &'static str>;
    fn next(&mut self) -> Option<Self::Item> {
        while let [b'\r' | b'\n' | b' ', tail @ ..] = self.rest {
            self.rest = tail;
        }
        if self.rest.is_empty() {
            return None;
        }
        if self.rest[0] != b'(' {
            self.rest = &[];
            return Some(Err("text outside parentheses"));
        }
        // Groups are short: a plain scan beats a vectorised search here.
        match self
            .rest
            .iter()
            .skip(1)
            .position(|&b| b == b')' || b == b'(')
        {
            Some(i) if self.rest[i + 1] == b'(' => {
                self.rest = &[];
                Some(Err("unbalanced parentheses"))
            }
            Some(i) => {
                let g = &self.rest[1..i + 1];
                self.rest = &self.rest[i + 2..];
                Some(Ok(g))
            }
            None => {
                self.rest = &[];
                Some(Err("unclosed parenthesis"))
            }
        }
    }
}

fn groups(b: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    Groups { rest: b }.collect()
}

fn group(g: &[u8]) -> Group<'_> {
    if g.is_empty() {
        return Group::Empty;
    }
    if (g.len() == 12 || g.len() == 13) && g[0].is_ascii_digit() {
        if let Some(t) = time(g) {
            return Group::Time(t);
        }
    }
    match number(g) {
        // A bare integer without a unit may well be an identifier: keep it as text.
        Some((d, u)) if u.is_some() || d.scale > 0 => Group::Number(d, u),
        _ => Group::Text(text(g)),
    }
}

fn log<'a>(gs: &[&'a [u8]]) -> Option<Value<'a>> {
    // (count)(0-0:96.7.19)(time)(duration*s)...
    let n = Decimal::parse(gs.first()?)?.to_i64()? as usize;
    if gs.len() == 1 && n == 0 {
        return Some(Value::Log(Vec::new()));
    }
    if gs.len() != 2 + 2 * n {
        return None;
    }
    Obis::parse(gs[1])?;
    let mut entries = Vec::with_capacity(n);
    for pair in gs[2..].chunks_exact(2) {
        let (value, unit) = number(pair[1])?;
        entries.push(LogEntry {
            timestamp: time(pair[0])?,
            value,
            unit: unit.map(|u| Cow::Owned(u.into_owned())),
        });
    }
    Some(Value::Log(entries))
}

fn peaks<'a>(gs: &[&'a [u8]]) -> Option<Value<'a>> {
    // (count)(1-0:1.6.0)(1-0:1.6.0)(period)(when)(value*kW)...
    let n = Decimal::parse(gs.first()?)?.to_i64()? as usize;
    if gs.len() != 3 + 3 * n {
        return None;
    }
    Obis::parse(gs[1])?;
    Obis::parse(gs[2])?;
    let mut entries = Vec::with_capacity(n);
    for t in gs[3..].chunks_exact(3) {
        let (value, unit) = number(t[2])?;
        entries.push(PeakEntry {
            period: time(t[0])?,
            timestamp: time(t[1])?,
            value,
            unit,
        });
    }
    Some(Value::Peaks(entries))
}

fn interpret<'a>(obis: Obis, body: &'a [u8]) -> Result<Value<'a>, &'static str> {
    // The common case, one group `(…)`, found with one scan and without allocating.
    let single = match body {
        [b'(', inner @ .., b')'] if !inner.iter().any(|&b| b == b'(' || b == b')') => Some(inner),
        _ => None,
    };
    if let Some(first) = single {
        if first.is_empty() {
            return Ok(Value::Empty);
        }
        return Ok(match kind_of(obis) {
            Kind::Text => Value::Text(text(first)),
            Kind::Time => match time(first) {
                Some(t) => Value::Time(t),
                None => Value::Text(text(first)),
            },
            Kind::Number => match number(first) {
                Some((value, unit)) => Value::Number { value, unit },
                None => Value::Text(text(first)),
            },
            _ => match group(first) {
                Group::Number(value, unit) => Value::Number { value, unit },
                Group::Time(t) => Value::Time(t),
                Group::Text(t) => Value::Text(t),
                Group::Empty => Value::Empty,
            },
        });
    }
    let gs = groups(body)?;
    let special = match kind_of(obis) {
        Kind::Log => log(&gs),
        Kind::Peaks => peaks(&gs),
        Kind::Gas22 if gs.len() == 7 => {
            // (time)(00)(60)(1)(0-n:24.2.1)(m3)(value)
            let unit = (!gs[5].is_empty()).then(|| text(gs[5]));
            Decimal::parse(gs[6]).map(|value| Value::Timed {
                value,
                unit,
                timestamp: time(gs[0]).flatten(),
            })
        }
        _ => None,
    };
    if let Some(v) = special {
        return Ok(v);
    }
    if gs.len() == 2 {
        // (time)(value*unit), or the 2026 Iskra form (value*unit)(time).
        let (t, n) = match (time(gs[0]), time(gs[1])) {
            (Some(t), None) => (Some(t), gs[1]),
            (None, Some(t)) => (Some(t), gs[0]),
            _ => (None, gs[0]),
        };
        if let (Some(timestamp), Some((value, unit))) = (t, number(n)) {
            return Ok(Value::Timed {
                value,
                unit,
                timestamp,
            });
        }
    }
    Ok(Value::Groups(gs.into_iter().map(group).collect()))
}

/// What the dialect detection looks at, gathered in one pass over the objects.
#[derive(Default)]
struct Seen<'t> {
    fluvius_version: bool,
    smarty_id: bool,
    smarty_messages: bool,
    import_in_wh: bool,
    version: Option<&'t str>,
    threshold_unit: Option<&'t str>,
}

fn detect(header: &str, t: &Telegram<'_>, has_crc: bool) -> Dialect {
    let mut seen = Seen::default();
    for o in &t.objects {
        match (o.obis.a, o.obis.b, o.obis.c, o.obis.d, o.obis.e) {
            (0, 0, 96, 1, 4) => seen.fluvius_version = true,
            (0, 0, 42, 0, 0) => seen.smarty_id = true,
            (0, 0, 96, 13, 2) => seen.smarty_messages = true,
            (1, 0, 1, 8, 0) => seen.import_in_wh = o.value.unit() == Some("Wh"),
            (1, 3, 0, 2, 8) => seen.version = o.value.as_text(),
            (0, 0, 17, 0, 0) => seen.threshold_unit = o.value.unit(),
            _ => {}
        }
    }
    let h = header.as_bytes();
    if h.starts_with(b"/ESY") {
        return Dialect::EasymeterQ3d;
    }
    if seen.fluvius_version || h.starts_with(b"/FLU") {
        return Dialect::FluviusEmucs;
    }
    if h.starts_with(b"/Lux") || (seen.smarty_id && seen.smarty_messages) {
        return Dialect::Smarty;
    }
    if seen.smarty_id {
        return Dialect::EonHungary;
    }
    if seen.import_in_wh {
        return Dialect::AustriaP1;
    }
    if header.contains("MIE5") {
        return Dialect::IskraIreland;
    }
    match seen.version {
        Some(v) if v.starts_with('5') => return Dialect::Dsmr50,
        Some("42") => return Dialect::Dsmr42,
        Some(v) if v.starts_with('4') => return Dialect::Dsmr40,
        _ => {}
    }
    if !has_crc {
        // DSMR 2.2 states the power threshold in kW (`0-0:17.0.0(0999.00*kW)`), DSMR
        // 3.0 in A (`(016*A)`); without one, DSMR 3.0 hex-encodes the equipment
        // identifier where DSMR 2.2 meters may write plain digits.
        return match seen.threshold_unit {
            Some("kW") => Dialect::Dsmr22,
            Some("A") => Dialect::Dsmr30,
            _ => {
                let id = t.meter_id().unwrap_or("");
                if id.len() > 14 || id.bytes().any(|b| b.is_ascii_uppercase()) {
                    Dialect::Dsmr30
                } else {
                    Dialect::Dsmr22
                }
            }
        };
    }
    Dialect::Dsmr
}

/// Checks a framed telegram's CRC (when it has one) and parses it.
///
/// The result borrows from the frame; call [`Telegram::into_owned`] to keep it.
pub fn parse<'a>(raw: &RawTelegram<'a>) -> Result<Telegram<'a>, DsmrError> {
    if let Some(stated) = raw.crc {
        let computed = crc16_arc(raw.body);
        if computed != stated {
            return Err(DsmrError::Checksum { stated, computed });
        }
    }
    let t = parse_body(raw.body, raw.crc.is_some())?;
    if raw.crc.is_none() && requires_crc(&t) {
        return Err(DsmrError::MissingChecksum);
    }
    Ok(t)
}

/// Whether a telegram is of a kind whose meters always write a CRC (DSMR 4 and later
/// and their relatives: everything that names a version or is recognised as such).
fn requires_crc(t: &Telegram<'_>) -> bool {
    !matches!(
        t.dialect,
        Dialect::Dsmr22 | Dialect::Dsmr30 | Dialect::Dsmr | Dialect::EasymeterQ3d
    ) || t.objects.iter().any(|o| o.obis == Obis::new(1, 3, 0, 2, 8))
}

/// Parses the bytes from `/` to `!` inclusive, without checking any checksum.
pub fn parse_body(body: &[u8], has_crc: bool) -> Result<Telegram<'_>, DsmrError> {
    let syntax = |line, reason| DsmrError::Syntax { line, reason };
    if body.first() != Some(&b'/') || body.last() != Some(&b'!') {
        return Err(syntax(1, "a telegram runs from '/' to '!'"));
    }
    let header_end = memchr::memchr2(b'\r', b'\n', body)
        .ok_or(syntax(1, "no line end after the identification line"))?;
    let header = &body[..header_end];
    if header.len() < 2 {
        return Err(syntax(1, "empty identification line"));
    }
    // One pass over the lines. An object is read when the next line shows it is
    // complete: DSMR 2.2/3 continue the gas reading on a line starting with `(`.
    let mut objects: Vec<Object<'_>> = Vec::with_capacity(48);
    let mut pending: Option<(Obis, usize, usize, usize)> = None;
    fn flush<'a>(
        body: &'a [u8],
        p: Option<(Obis, usize, usize, usize)>,
        objects: &mut Vec<Object<'a>>,
    ) -> Result<(), DsmrError> {
        if let Some((obis, from, to, line)) = p {
            let value = interpret(obis, &body[from..to])
                .map_err(|reason| DsmrError::Syntax { line, reason })?;
            objects.push(Object { obis, value });
        }
        Ok(())
    }
    let mut pos = header_end;
    let mut line_no = 1;
    let end = body.len() - 1; // the `!`
    while pos < end {
        let nl = memchr::memchr(b'\n', &body[pos..end]).map_or(end, |i| pos + i);
        let mut from = pos;
        let mut to = nl;
        pos = nl + 1;
        while from < to && body[from] == b'\r' {
            from += 1;
        }
        while to > from && body[to - 1] == b'\r' {
            to -= 1;
        }
        if from == to {
            continue;
        }
        line_no += 1;
        if body[from] == b'(' {
            let p = pending
                .as_mut()
                .ok_or(syntax(line_no, "value line without an object"))?;
            p.2 = to;
            continue;
        }
        flush(body, pending.take(), &mut objects)?;
        let (obis, used) =
            Obis::parse_prefix(&body[from..to]).ok_or(syntax(line_no, "not an OBIS identifier"))?;
        if body[from + used] != b'(' && from + used < to {
            return Err(syntax(line_no, "no '(' after the OBIS identifier"));
        }
        if from + used == to {
            return Err(syntax(line_no, "no '(' after the OBIS identifier"));
        }
        pending = Some((obis, from + used, to, line_no));
    }
    flush(body, pending.take(), &mut objects)?;
    if objects.is_empty() {
        return Err(syntax(line_no, "a telegram without any object"));
    }
    let header = text(header);
    let mut t = Telegram {
        dialect: Dialect::Dsmr,
        header: None,
        timestamp: None,
        objects,
        security: None,
    };
    t.timestamp = t.get(Obis::new(0, 0, 1, 0, 0)).and_then(Value::timestamp);
    t.dialect = detect(&header, &t, has_crc);
    t.header = Some(header);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn body(s: &str) -> Telegram<'_> {
        parse_body(s.as_bytes(), false).unwrap()
    }

    #[test]
    fn value_forms() {
        let t = body("/X\r\n\r\n1-0:1.8.1(000123.450*kWh)\r\n0-0:96.13.0()\r\n0-0:96.14.0(0002)\r\n1-0:13.7.0(4.556)\r\n0-1:24.2.1(101209112500W)(12785.123*m3)\r\n1-0:1.6.0(00.052*kW)(260101000000)\r\n9-9:9.9.9(a)(b)\r\n!");
        assert_eq!(t.objects.len(), 7);
        assert_eq!(
            t.objects[0].value,
            Value::Number {
                value: Decimal::new(123450, 3),
                unit: Some("kWh".into())
            }
        );
        assert_eq!(t.objects[1].value, Value::Empty);
        assert_eq!(t.objects[2].value, Value::Text("0002".into()));
        assert_eq!(t.objects[3].value.as_f64(), Some(4.556));
        let gas = &t.objects[4].value;
        assert_eq!(gas.timestamp().unwrap().to_string(), "2010-12-09T10:25:00Z");
        assert_eq!(
            t.objects[5].value.timestamp().unwrap().to_string(),
            "2025-12-31T23:00:00Z"
        );
        assert!(matches!(t.objects[6].value, Value::Groups(ref g) if g.len() == 2));
    }

    #[test]
    fn hungarian_forms_and_long_messages() {
        let msg = "4D".repeat(1024);
        let text = alloc::format!(
            "/SAG5SAG-METER\r\n\r\n0-0:96.14.0(TARIFF 1)\r\n0-0:96.3.10(ON)\r\n0-0:17.0.0(24000*W)\r\n0-0:96.13.0({msg})\r\n!"
        );
        let t = parse_body(text.as_bytes(), true).unwrap();
        assert_eq!(t.objects[0].value, Value::Text("TARIFF 1".into()));
        assert_eq!(t.objects[1].value, Value::Text("ON".into()));
        assert_eq!(
            t.objects[2].value,
            Value::Number {
                value: Decimal::new(24000, 0),
                unit: Some("W".into())
            }
        );
        assert_eq!(t.objects[3].value.as_text().map(str::len), Some(2048));
        assert_eq!(crate::Reading::from_telegram(&t).active_tariff, Some(1));
    }

    #[test]
    fn bad_lines_are_syntax_errors() {
        for bad in [
            "/X\r\n\r\nhello\r\n!",
            "/X\r\n\r\n1-0:1.8.1(12\r\n!",
            "/X\r\n\r\n1-0:1.8.1(1)x\r\n!",
            "/X\r\n\r\n(1)\r\n!",
            "/X!",
        ] {
            assert!(
                matches!(
                    parse_body(bad.as_bytes(), false),
                    Err(DsmrError::Syntax { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn placeholders_have_no_time() {
        assert_eq!(time(b"632525252525W"), Some(None));
        assert_eq!(time(b"700101010000W"), Some(None));
        assert_eq!(
            time(b"000101000001W").unwrap().unwrap().to_string(),
            "1999-12-31T23:00:01Z"
        );
        assert_eq!(time(b"12345"), None);
    }
}
