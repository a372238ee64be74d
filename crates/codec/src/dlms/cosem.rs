//! The COSEM data-notification (IEC 62056-6-2 / DLMS UA 1000-2): `0F`, the
//! long-invoke-id-and-priority, an optional date-time, and one A-XDR `Data` body that
//! meters fill with very different shapes. The body is walked generically: every
//! 6-byte octet-string is an OBIS logical name paired with the value after it and, if
//! one follows, its scaler-unit structure; nested arrays and structures are walked the
//! same way; a capture-object list (Landis+Gyr) is paired position by position; lists
//! without any OBIS codes (Kaifa, Iskraemeco) are mapped by their list identifier.
//! No byte offset is ever assumed.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::axdr::{self, end, Data, Reader};
use super::layout::{self, el, implied_scaler_unit, profile_of, KAIFA};
use super::DlmsError;
use crate::decimal::Decimal;
use crate::model::{Dialect, Group, Object, Telegram, Value};
use crate::obis::Obis;
use crate::reading::Reading;
use crate::time::{cet_to_utc, Civil, Timestamp};

/// The APDU tag of a data-notification.
pub const TAG: u8 = 0x0F;

/// A parsed data-notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification<'a> {
    /// The long-invoke-id-and-priority.
    pub invoke_id: u32,
    /// The 12 bytes of the optional date-time.
    pub date_time: Option<&'a [u8]>,
    /// The notification body, flattened (see [`axdr`]).
    pub body: Vec<Data<'a>>,
}

/// Parses a data-notification at the start of `apdu`; returns it and the bytes used.
///
/// The date-time is accepted as `00` (absent), `0C` + 12 bytes (the usual encoding) or
/// `09 0C` + 12 bytes (Kaifa's octet-string-tagged variant).
pub fn parse_notification(apdu: &[u8]) -> Result<(Notification<'_>, usize), DlmsError> {
    let mut r = Reader::new(apdu);
    if r.u8()? != TAG {
        return Err(DlmsError::Syntax("not a data-notification"));
    }
    let invoke_id = u32::from_be_bytes(r.array()?);
    let date_time = match r.u8()? {
        0x00 => None,
        0x0C => Some(r.take(12)?),
        axdr::tag::OCTET_STRING => match r.u8()? {
            0x0C => Some(r.take(12)?),
            0x00 => None,
            _ => return Err(DlmsError::Cosem("date-time of a length other than 12")),
        },
        _ => return Err(DlmsError::Cosem("malformed date-time field")),
    };
    let mut body = Vec::with_capacity(apdu.len() / 4);
    axdr::read(&mut r, &mut body)?;
    Ok((
        Notification {
            invoke_id,
            date_time,
            body,
        },
        r.position(),
    ))
}

/// Decodes a COSEM date-time (12 bytes) to UTC. The deviation says how many minutes
/// UTC is ahead of the local time; when it is unspecified (0x8000) the time is read as
/// Central European local time. `None` for placeholders (unspecified fields).
pub fn date_time(b: &[u8]) -> Option<Timestamp> {
    let b: &[u8; 12] = b.try_into().ok()?;
    let year = u16::from_be_bytes([b[0], b[1]]);
    if year == 0xFFFF || b[2] > 12 || b[3] > 31 || b[5] > 23 || b[6] > 59 || b[7] > 59 {
        return None;
    }
    let civil = Civil {
        year: i64::from(year),
        month: u32::from(b[2]),
        day: u32::from(b[3]),
        hour: u32::from(b[5]),
        minute: u32::from(b[6]),
        second: u32::from(b[7]),
    };
    let mut deviation = i16::from_be_bytes([b[9], b[10]]);
    // Some Kaifa meters (Salzburg) send the standard-time deviation of Central Europe
    // with the daylight-saving status bit set: the local time is then summer time.
    if deviation == -60 && b[11] & 0x80 != 0 {
        deviation = -120;
    }
    if deviation == i16::MIN || !(-840..=840).contains(&deviation) {
        cet_to_utc(&civil, None)
    } else {
        Some(Timestamp(civil.to_epoch()? + i64::from(deviation) * 60))
    }
}

/// Writes a COSEM date-time for a UTC instant as Central European local time with its
/// deviation (the inverse of [`date_time`]).
pub fn write_date_time(t: Timestamp) -> [u8; 12] {
    let (c, offset) = t.to_cet();
    let y = (c.year as u16).to_be_bytes();
    let weekday = ((t.0 + offset).div_euclid(86400) + 3).rem_euclid(7) as u8 + 1;
    let dev = (-(offset / 60) as i16).to_be_bytes();
    let status = if offset == 7200 { 0x80 } else { 0x00 };
    [
        y[0],
        y[1],
        c.month as u8,
        c.day as u8,
        weekday,
        c.hour as u8,
        c.minute as u8,
        c.second as u8,
        0x00,
        dev[0],
        dev[1],
        status,
    ]
}

/// The symbol of a COSEM unit enumeration value (DLMS UA 1000-1, class 3); `None` for
/// "count" (255), "other" (254) and unknown codes.
pub fn unit_symbol(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "a",
        2 => "mo",
        3 => "wk",
        4 => "d",
        5 => "h",
        6 => "min",
        7 => "s",
        8 => "°",
        9 => "°C",
        10 => "currency",
        11 => "m",
        12 => "m/s",
        13 | 14 => "m3",
        15 | 16 => "m3/h",
        17 | 18 => "m3/d",
        19 => "l",
        20 => "kg",
        21 => "N",
        22 => "Nm",
        23 => "Pa",
        24 => "bar",
        25 => "J",
        26 => "J/h",
        27 => "W",
        28 => "VA",
        29 => "var",
        30 => "Wh",
        31 => "VAh",
        32 => "varh",
        33 => "A",
        34 => "C",
        35 => "V",
        36 => "V/m",
        37 => "F",
        38 => "Ω",
        39 => "Ωm2/m",
        40 => "Wb",
        41 => "T",
        42 => "A/m",
        43 => "H",
        44 => "Hz",
        45 => "1/(Wh)",
        46 => "1/(varh)",
        47 => "1/(VAh)",
        48 => "V2h",
        49 => "A2h",
        50 => "kg/s",
        51 => "S",
        52 => "K",
        53 => "1/(V2h)",
        54 => "1/(A2h)",
        55 => "1/m3",
        56 => "%",
        57 => "Ah",
        60 => "Wh/m3",
        61 => "J/m3",
        62 => "Mol %",
        63 => "g/m3",
        64 => "Pa s",
        65 => "J/kg",
        70 => "dBm",
        71 => "dBμV",
        72 => "dB",
        _ => return None,
    })
}

/// The unit code of a symbol (the inverse of [`unit_symbol`] for the common units).
pub fn unit_code(symbol: &str) -> u8 {
    (1..=254u8)
        .find(|c| unit_symbol(*c) == Some(symbol))
        .unwrap_or(255)
}

/// The scaler and unit of a register.
type ScalerUnit = (i8, u8);

/// One value found in the body, before units are settled.
struct Item {
    obis: Option<Obis>,
    /// The index of the value's node.
    node: usize,
    scaler_unit: Option<ScalerUnit>,
}

fn scaler_unit(nodes: &[Data<'_>], i: usize) -> Option<ScalerUnit> {
    match nodes.get(i..i + 3)? {
        [Data::Structure(2), Data::Int(s), Data::Enum(u)] => Some((i8::try_from(*s).ok()?, *u)),
        _ => None,
    }
}

fn logical_name(d: &Data<'_>) -> Option<Obis> {
    match d {
        Data::OctetString(ln) => <&[u8; 6]>::try_from(*ln).ok().map(Obis::from_logical_name),
        _ => None,
    }
}

/// A capture-object list at node `i`: an array of `{class-id, logical-name, attribute,
/// data-index}`.
fn capture_objects(nodes: &[Data<'_>], i: usize) -> Option<Vec<Obis>> {
    let Some(Data::Array(n)) = nodes.get(i) else {
        return None;
    };
    if *n == 0 {
        return None;
    }
    let mut names = Vec::with_capacity(*n as usize);
    let mut j = i + 1;
    for _ in 0..*n {
        match nodes.get(j..j + 5)? {
            [Data::Structure(4), Data::UInt(_), ln, Data::Int(_), Data::UInt(_)] => {
                names.push(logical_name(ln)?)
            }
            _ => return None,
        }
        j += 5;
    }
    Some(names)
}

/// Walks the `count` sibling values starting at node `first`.
fn walk(nodes: &[Data<'_>], first: usize, count: usize, depth: usize, out: &mut Vec<Item>) {
    // A capture-object list pairs its entries with the elements that follow it.
    if let Some(names) = capture_objects(nodes, first) {
        if names.len() == count {
            let mut i = end(nodes, first);
            for obis in &names[1..] {
                out.push(Item {
                    obis: Some(*obis),
                    node: i,
                    scaler_unit: None,
                });
                i = end(nodes, i);
            }
            return;
        }
    }
    let (mut i, mut k) = (first, 0);
    while k < count {
        let Some(node) = nodes.get(i) else { break };
        let next = end(nodes, i);
        match (logical_name(node), k + 1 < count) {
            (Some(obis), true) => {
                let after = end(nodes, next);
                let su = if k + 2 < count {
                    scaler_unit(nodes, after)
                } else {
                    None
                };
                out.push(Item {
                    obis: Some(obis),
                    node: next,
                    scaler_unit: su,
                });
                if su.is_some() {
                    i = after + 3;
                    k += 3;
                } else {
                    i = after;
                    k += 2;
                }
            }
            _ => {
                match *node {
                    Data::Array(n) | Data::Structure(n) if depth < axdr::MAX_DEPTH => {
                        walk(nodes, i + 1, n as usize, depth + 1, out)
                    }
                    _ => out.push(Item {
                        obis: None,
                        node: i,
                        scaler_unit: None,
                    }),
                }
                i = next;
                k += 1;
            }
        }
    }
}

fn text(bytes: &[u8]) -> Cow<'static, str> {
    match core::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => Cow::Owned(String::from(s)),
        _ => Cow::Owned(super::to_hex(bytes)),
    }
}

fn is_clock(o: Option<Obis>) -> bool {
    matches!(
        o,
        Some(Obis {
            c: 1,
            d: 0,
            e: 0,
            ..
        })
    )
}

/// Converts one A-XDR value, applying a scaler-unit exactly.
fn value(
    nodes: &[Data<'_>],
    i: usize,
    su: Option<ScalerUnit>,
    obis: Option<Obis>,
) -> Value<'static> {
    let Some(d) = nodes.get(i) else {
        return Value::Empty;
    };
    let (scaler, unit) = su.map_or((0, None), |(s, u)| (s, unit_symbol(u).map(Cow::Borrowed)));
    let number = |m: i64| Value::Number {
        value: Decimal::new(m, 0).scaled(scaler),
        unit: unit.clone(),
    };
    match d {
        Data::Null => Value::Empty,
        Data::Bool(b) => Value::Bool(*b),
        Data::Int(i) => number(*i),
        Data::UInt(u) => match i64::try_from(*u) {
            Ok(i) => number(i),
            Err(_) => Value::Float {
                value: *u as f64 * crate::decimal::pow10_f64(scaler),
                unit,
            },
        },
        Data::Enum(e) => number(i64::from(*e)),
        Data::Bcd(b) => number(i64::from(*b)),
        Data::Float32(f) => Value::Float {
            value: f64::from(*f) * crate::decimal::pow10_f64(scaler),
            unit,
        },
        Data::Float64(f) => Value::Float {
            value: *f * crate::decimal::pow10_f64(scaler),
            unit,
        },
        Data::DateTime(b) => Value::Time(date_time(b)),
        Data::OctetString(b) if b.len() == 12 && is_clock(obis) => Value::Time(date_time(b)),
        Data::OctetString(b) | Data::VisibleString(b) | Data::Utf8String(b) => Value::Text(text(b)),
        Data::BitString(_, b) | Data::Date(b) | Data::Time(b) => {
            Value::Text(Cow::Owned(super::to_hex(b)))
        }
        Data::Array(n) | Data::Structure(n) => {
            let mut groups = Vec::with_capacity(*n as usize);
            let mut j = i + 1;
            for _ in 0..*n {
                groups.push(match value(nodes, j, None, None) {
                    Value::Number { value, unit } => Group::Number(value, unit),
                    Value::Time(t) => Group::Time(t),
                    Value::Text(t) => Group::Text(t),
                    Value::Bool(b) => Group::Text(Cow::Borrowed(if b { "true" } else { "false" })),
                    Value::Float { value, unit } => match unit {
                        Some(u) => Group::Text(Cow::Owned(alloc::format!("{value} {u}"))),
                        None => Group::Text(Cow::Owned(alloc::format!("{value}"))),
                    },
                    _ => Group::Empty,
                });
                j = end(nodes, j);
            }
            Value::Groups(groups)
        }
    }
}

fn string_bytes<'a>(d: &Data<'a>) -> Option<&'a [u8]> {
    match d {
        Data::OctetString(b) | Data::VisibleString(b) | Data::Utf8String(b) => Some(b),
        _ => None,
    }
}

/// The objects of a flattened notification body (nodes as [`axdr::parse`] makes them).
pub fn objects(nodes: &[Data<'_>]) -> Vec<Object<'static>> {
    let mut items = Vec::with_capacity(nodes.len() / 2);
    match nodes.first() {
        Some(Data::Array(n) | Data::Structure(n)) => walk(nodes, 1, *n as usize, 0, &mut items),
        Some(_) => items.push(Item {
            obis: None,
            node: 0,
            scaler_unit: None,
        }),
        None => {}
    }
    // The list identifier: the value of `x-x:0.2.129`, or a leading positional string.
    let list_id = items
        .iter()
        .find(|i| {
            matches!(
                i.obis,
                Some(Obis {
                    c: 0,
                    d: 2,
                    e: 129,
                    ..
                })
            )
        })
        .or_else(|| items.first().filter(|i| i.obis.is_none()))
        .and_then(|i| string_bytes(&nodes[i.node]));
    let profile = profile_of(list_id);
    let values: Vec<usize> = items.iter().map(|i| i.node).collect();
    let unnamed_after = |from: usize| items.iter().skip(from).all(|i| i.obis.is_none());
    let layout = match items.first().map(|i| i.obis) {
        // No OBIS codes at all: a positional list.
        Some(None) if unnamed_after(1) => {
            layout::positional(nodes, &values, list_id).or_else(|| {
                // A lone number: Kaifa's list 1 (the active import power).
                (values.len() == 1 && matches!(nodes[values[0]], Data::UInt(_))).then(|| {
                    layout::Positional {
                        codes: alloc::vec![Some(el(1, 7))],
                        profile: KAIFA,
                    }
                })
            })
        }
        // A push setup's name, then values by position.
        Some(Some(o)) if layout::is_push_setup(o) && unnamed_after(1) => {
            layout::after_push_setup(nodes, &values)
        }
        _ => None,
    };
    let mut out = Vec::with_capacity(items.len());
    if items.iter().all(|i| i.obis.is_none()) || layout.is_some() {
        let Some(layout::Positional { codes, profile }) = layout else {
            return out;
        };
        for (obis, &node) in codes.iter().zip(&values) {
            let Some(obis) = *obis else { continue };
            let su = implied_scaler_unit(obis, &profile);
            out.push(Object {
                obis,
                value: value(nodes, node, su, Some(obis)),
            });
        }
        return out;
    }
    for item in &items {
        let Some(obis) = item.obis else { continue };
        let su = item
            .scaler_unit
            .or_else(|| implied_scaler_unit(obis, &profile));
        out.push(Object {
            obis,
            value: value(nodes, item.node, su, Some(obis)),
        });
    }
    out
}

/// Decodes a data-notification APDU into a telegram (owned; nothing borrowed).
pub fn decode(apdu: &[u8], dialect: Dialect) -> Result<Telegram<'static>, DlmsError> {
    let (n, used) = parse_notification(apdu)?;
    if used != apdu.len() {
        return Err(DlmsError::Cosem("bytes left after the data-notification"));
    }
    checked_telegram(&n, dialect)
}

/// [`to_telegram`], refusing a notification from which no reading could be taken (no
/// object, or only identifiers and texts): an accepted frame always carries values.
pub fn checked_telegram(
    n: &Notification<'_>,
    dialect: Dialect,
) -> Result<Telegram<'static>, DlmsError> {
    let t = to_telegram(n, dialect);
    if t.objects.is_empty() {
        return Err(DlmsError::UnknownLayout(
            "no OBIS-coded values, and the list identifier names no known layout",
        ));
    }
    if Reading::from_telegram(&t) == Reading::default() {
        return Err(DlmsError::UnknownLayout(
            "none of its values is a register a reading is made of (energy, power, voltage, current ...)",
        ));
    }
    Ok(t)
}

/// Builds the telegram of a parsed notification.
pub fn to_telegram(n: &Notification<'_>, dialect: Dialect) -> Telegram<'static> {
    let objects = objects(&n.body);
    let timestamp = n.date_time.and_then(date_time).or_else(|| {
        objects
            .iter()
            .find(|o| is_clock(Some(o.obis)) && o.obis.a == 0)
            .and_then(|o| o.value.timestamp())
    });
    Telegram {
        dialect,
        header: None,
        timestamp,
        objects,
        security: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn date_times() {
        // 2021-07-19 15:46:35, deviation -120 (CEST).
        let b = [0x07, 0xE5, 7, 19, 1, 15, 46, 35, 0, 0xFF, 0x88, 0x80];
        assert_eq!(
            alloc::format!("{}", date_time(&b).unwrap()),
            "2021-07-19T13:46:35Z"
        );
        // Unspecified deviation: Central European time.
        let b = [0x07, 0xE3, 2, 4, 1, 23, 52, 22, 0xFF, 0x80, 0x00, 0x00];
        assert_eq!(
            alloc::format!("{}", date_time(&b).unwrap()),
            "2019-02-04T22:52:22Z"
        );
        assert_eq!(date_time(&[0xFF; 12]), None);
        assert_eq!(date_time(&[0; 5]), None);
        for t in [0i64, 1_600_000_000, 1_700_000_000, 1_750_000_000] {
            assert_eq!(
                date_time(&write_date_time(Timestamp(t))),
                Some(Timestamp(t))
            );
        }
    }

    #[test]
    fn pairs_obis_values_and_scalers_in_any_order() {
        let v = vec![
            Data::Structure(6),
            Data::OctetString(&[1, 0, 32, 7, 0, 255]),
            Data::UInt(2337),
            Data::Structure(2),
            Data::Int(-1),
            Data::Enum(35),
            Data::OctetString(&[0, 0, 96, 1, 0, 255]),
            Data::VisibleString(b"1KFM"),
            Data::Array(1),
            Data::Structure(3),
            Data::OctetString(&[1, 0, 1, 8, 0, 255]),
            Data::UInt(7),
            Data::Structure(2),
            Data::Int(3),
            Data::Enum(30),
        ];
        let o = objects(&v);
        assert_eq!(o.len(), 3);
        assert_eq!(
            o[0].value.number(),
            Some((Decimal::new(2337, 1), Some("V")))
        );
        assert_eq!(o[1].value.as_text(), Some("1KFM"));
        assert_eq!(
            o[2].value.number(),
            Some((Decimal::new(7000, 0), Some("Wh")))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_notification(&[]).is_err());
        assert!(parse_notification(&[0x0F, 0, 0, 0]).is_err());
        assert!(parse_notification(&[0x0F, 0, 0, 0, 1, 0x0C, 1, 2]).is_err());
        assert!(parse_notification(&[0x0F, 0, 0, 0, 1, 0x55, 0]).is_err());
        assert!(decode(&[0x0F, 0, 0, 0, 1, 0, 0, 0], Dialect::DlmsApdu).is_err());
        assert!(decode(&[0x0F, 0, 0, 0, 1, 0, 0], Dialect::DlmsApdu).is_err());
        assert!(decode(
            &[0x0F, 0, 0, 0, 1, 0, 2, 1, 6, 0, 0, 0, 5],
            Dialect::DlmsApdu
        )
        .is_ok());
    }
}
