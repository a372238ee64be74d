//! The decoded telegram: what every decoder produces and every later part consumes.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::decimal::Decimal;
use crate::obis::Obis;
use crate::time::Timestamp;

/// Which kind of meter output a telegram was recognised as. Detected from the
/// telegram itself; users never choose it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Dialect {
    /// Dutch DSMR 2.2 (no CRC, gas on a continuation line).
    Dsmr22,
    /// Dutch DSMR 3.0 (no CRC, hex-encoded identifiers).
    Dsmr30,
    /// Dutch DSMR 4.0.x.
    Dsmr40,
    /// Dutch DSMR 4.2.x.
    Dsmr42,
    /// Dutch DSMR 5.0.x.
    Dsmr50,
    /// A P1 telegram that follows the DSMR grammar but names no version.
    Dsmr,
    /// Belgian Fluvius e-MUCS (capacity tariff registers).
    FluviusEmucs,
    /// Luxembourg Smarty (plaintext, or decrypted from general-glo-ciphering).
    Smarty,
    /// Austrian P1 (Sagemcom T210-D-r and kin; Wh and varh units).
    AustriaP1,
    /// Hungarian E.ON DSMR 5 variant.
    EonHungary,
    /// Irish Iskra P1.
    IskraIreland,
    /// EasyMeter Q3D (D0 via gateway; OBIS with `*255`).
    EasymeterQ3d,
    /// DLMS/COSEM data-notification carried in M-Bus long frames (Austria).
    DlmsMbus,
    /// DLMS/COSEM data-notification carried in HDLC frames.
    DlmsHdlc,
    /// A bare DLMS/COSEM APDU.
    DlmsApdu,
}

impl Dialect {
    /// The stable name used in JSON output and the API.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Dialect::Dsmr22 => "dsmr-2.2",
            Dialect::Dsmr30 => "dsmr-3.0",
            Dialect::Dsmr40 => "dsmr-4.0",
            Dialect::Dsmr42 => "dsmr-4.2",
            Dialect::Dsmr50 => "dsmr-5.0",
            Dialect::Dsmr => "dsmr",
            Dialect::FluviusEmucs => "fluvius-emucs",
            Dialect::Smarty => "smarty",
            Dialect::AustriaP1 => "at-p1",
            Dialect::EonHungary => "eon-hu",
            Dialect::IskraIreland => "iskra-ie",
            Dialect::EasymeterQ3d => "easymeter-q3d",
            Dialect::DlmsMbus => "dlms-mbus",
            Dialect::DlmsHdlc => "dlms-hdlc",
            Dialect::DlmsApdu => "dlms-apdu",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Dialect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A unit as the meter printed it (`kWh`, `m3`, `V`) or as COSEM names it.
pub type Unit<'a> = Cow<'a, str>;

/// One entry of the power-failure event log (`1-0:99.97.0`).
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct LogEntry<'a> {
    /// When the failure ended (UTC); `None` for a placeholder time.
    pub timestamp: Option<Timestamp>,
    /// Its duration.
    pub value: Decimal,
    /// The duration's unit (normally `s`).
    pub unit: Option<Unit<'a>>,
}

/// One month of the Belgian capacity-tariff peak history (`0-0:98.1.0`).
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct PeakEntry<'a> {
    /// The month the entry closes (the first instant of the month after).
    pub period: Option<Timestamp>,
    /// When the peak quarter-hour happened; `None` for a month without one.
    pub timestamp: Option<Timestamp>,
    /// The peak's average power.
    pub value: Decimal,
    /// Its unit (normally `kW`).
    pub unit: Option<Unit<'a>>,
}

/// One parenthesised group of an object the decoder does not know the shape of.
#[derive(Clone, PartialEq, Debug)]
pub enum Group<'a> {
    /// `()`.
    Empty,
    /// A number, with its unit if printed.
    Number(Decimal, Option<Unit<'a>>),
    /// A timestamp.
    Time(Option<Timestamp>),
    /// Anything else, kept as text.
    Text(Cow<'a, str>),
}

/// The value of one COSEM object.
#[derive(Clone, PartialEq, Debug)]
pub enum Value<'a> {
    /// Nothing was sent (`()`, or a DLMS null).
    Empty,
    /// A number with its unit, if any.
    Number {
        /// The value, exactly as sent (scaler applied for DLMS).
        value: Decimal,
        /// The unit, if any.
        unit: Option<Unit<'a>>,
    },
    /// A floating-point number (DLMS float32/float64).
    Float {
        /// The value.
        value: f64,
        /// The unit, if any.
        unit: Option<Unit<'a>>,
    },
    /// A boolean (DLMS boolean).
    Bool(bool),
    /// Text or an identifier, as sent (DSMR hex-encoded identifiers stay hex).
    Text(Cow<'a, str>),
    /// A point in time; `None` when the meter sent a placeholder.
    Time(Option<Timestamp>),
    /// A reading with the time it was captured (M-Bus sub-meters, `1-0:1.6.0`).
    Timed {
        /// The value.
        value: Decimal,
        /// Its unit.
        unit: Option<Unit<'a>>,
        /// When the value was captured.
        timestamp: Option<Timestamp>,
    },
    /// The power-failure event log.
    Log(Vec<LogEntry<'a>>),
    /// The monthly peak history.
    Peaks(Vec<PeakEntry<'a>>),
    /// Several groups whose shape the decoder does not know; kept, not dropped.
    Groups(Vec<Group<'a>>),
}

impl<'a> Value<'a> {
    /// The numeric value and unit when the value is a number (plain or timed).
    pub fn number(&self) -> Option<(Decimal, Option<&str>)> {
        match self {
            Value::Number { value, unit } | Value::Timed { value, unit, .. } => {
                Some((*value, unit.as_deref()))
            }
            _ => None,
        }
    }

    /// The value as a float when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float { value, .. } => Some(*value),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => self.number().map(|(d, _)| d.to_f64()),
        }
    }

    /// The unit, if any.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Value::Number { unit, .. } | Value::Float { unit, .. } | Value::Timed { unit, .. } => {
                unit.as_deref()
            }
            _ => None,
        }
    }

    /// The text when the value is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The capture time of a timed value, or the value of a time.
    pub fn timestamp(&self) -> Option<Timestamp> {
        match self {
            Value::Timed { timestamp, .. } | Value::Time(timestamp) => *timestamp,
            _ => None,
        }
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Value<'static> {
        fn o(c: Option<Unit<'_>>) -> Option<Unit<'static>> {
            c.map(|u| Cow::Owned(u.into_owned()))
        }
        match self {
            Value::Empty => Value::Empty,
            Value::Number { value, unit } => Value::Number {
                value,
                unit: o(unit),
            },
            Value::Float { value, unit } => Value::Float {
                value,
                unit: o(unit),
            },
            Value::Bool(b) => Value::Bool(b),
            Value::Text(t) => Value::Text(Cow::Owned(t.into_owned())),
            Value::Time(t) => Value::Time(t),
            Value::Timed {
                value,
                unit,
                timestamp,
            } => Value::Timed {
                value,
                unit: o(unit),
                timestamp,
            },
            Value::Log(v) => Value::Log(
                v.into_iter()
                    .map(|e| LogEntry {
                        timestamp: e.timestamp,
                        value: e.value,
                        unit: o(e.unit),
                    })
                    .collect(),
            ),
            Value::Peaks(v) => Value::Peaks(
                v.into_iter()
                    .map(|e| PeakEntry {
                        period: e.period,
                        timestamp: e.timestamp,
                        value: e.value,
                        unit: o(e.unit),
                    })
                    .collect(),
            ),
            Value::Groups(v) => Value::Groups(
                v.into_iter()
                    .map(|g| match g {
                        Group::Empty => Group::Empty,
                        Group::Number(d, u) => Group::Number(d, o(u)),
                        Group::Time(t) => Group::Time(t),
                        Group::Text(t) => Group::Text(Cow::Owned(t.into_owned())),
                    })
                    .collect(),
            ),
        }
    }
}

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Group::Empty => m.serialize_entry("value", &())?,
            Group::Number(d, u) => {
                m.serialize_entry("value", d)?;
                if let Some(u) = u {
                    m.serialize_entry("unit", u)?;
                }
            }
            Group::Time(t) => m.serialize_entry("timestamp", t)?,
            Group::Text(t) => m.serialize_entry("value", t)?,
        }
        m.end()
    }
}

/// Serialises a value as the JSON object of the `objects` map:
/// `{"value": .., "unit": ..}`, `{"value", "unit", "timestamp"}` or `{"entries": [..]}`.
impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Value::Empty => m.serialize_entry("value", &())?,
            Value::Number { value, unit } => {
                m.serialize_entry("value", value)?;
                if let Some(u) = unit {
                    m.serialize_entry("unit", u)?;
                }
            }
            Value::Float { value, unit } => {
                m.serialize_entry("value", value)?;
                if let Some(u) = unit {
                    m.serialize_entry("unit", u)?;
                }
            }
            Value::Bool(b) => m.serialize_entry("value", b)?,
            Value::Text(t) => m.serialize_entry("value", t)?,
            Value::Time(t) => m.serialize_entry("value", t)?,
            Value::Timed {
                value,
                unit,
                timestamp,
            } => {
                m.serialize_entry("value", value)?;
                if let Some(u) = unit {
                    m.serialize_entry("unit", u)?;
                }
                m.serialize_entry("timestamp", timestamp)?;
            }
            Value::Log(e) => m.serialize_entry("entries", e)?,
            Value::Peaks(e) => m.serialize_entry("entries", e)?,
            Value::Groups(g) => m.serialize_entry("groups", g)?,
        }
        m.end()
    }
}

/// One object of a telegram: an OBIS identifier and its value.
#[derive(Clone, PartialEq, Debug)]
pub struct Object<'a> {
    /// The identifier, reduced to `A-B:C.D.E`.
    pub obis: Obis,
    /// The value.
    pub value: Value<'a>,
}

/// How an encrypted frame was protected, for frames that came through DLMS security.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Security {
    /// The sender's 8-byte system title, as hex.
    pub system_title: alloc::string::String,
    /// The invocation (frame) counter.
    pub frame_counter: u32,
    /// The security control byte (0x30 encrypted and authenticated, 0x20 encrypted only...).
    pub security_control: u8,
    /// Whether a GCM tag was present and verified.
    pub authenticated: bool,
}

/// A decoded telegram: the unit every decoder produces.
#[derive(Clone, PartialEq, Debug)]
pub struct Telegram<'a> {
    /// What kind of meter output this was.
    pub dialect: Dialect,
    /// The identification line without its line end (`/ISk5\2MT382-1000`), for DSMR.
    pub header: Option<Cow<'a, str>>,
    /// The telegram's own time (`0-0:1.0.0` or the data-notification's date-time).
    pub timestamp: Option<Timestamp>,
    /// Every object, in the order the meter sent them; unknown ones included.
    pub objects: Vec<Object<'a>>,
    /// DLMS security details when the frame was encrypted.
    pub security: Option<Security>,
}

/// The OBIS codes that carry the electricity meter's equipment identifier, best first.
const METER_ID_CODES: [Obis; 4] = [
    Obis::new(0, 0, 96, 1, 1),
    Obis::new(0, 0, 42, 0, 0),
    Obis::new(0, 0, 96, 1, 0),
    Obis::new(1, 0, 0, 0, 0),
];

impl<'a> Telegram<'a> {
    /// The first object with this identifier.
    pub fn get(&self, obis: Obis) -> Option<&Value<'a>> {
        self.objects
            .iter()
            .find(|o| o.obis == obis)
            .map(|o| &o.value)
    }

    /// The electricity meter's equipment identifier, as sent; for encrypted DLMS
    /// meters that send none, their system title (hex).
    pub fn meter_id(&self) -> Option<&str> {
        METER_ID_CODES
            .iter()
            .find_map(|c| {
                self.get(*c)
                    .and_then(Value::as_text)
                    .filter(|t| !t.is_empty())
            })
            .or_else(|| self.security.as_ref().map(|s| s.system_title.as_str()))
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Telegram<'static> {
        Telegram {
            dialect: self.dialect,
            header: self.header.map(|h| Cow::Owned(h.into_owned())),
            timestamp: self.timestamp,
            objects: self
                .objects
                .into_iter()
                .map(|o| Object {
                    obis: o.obis,
                    value: o.value.into_owned(),
                })
                .collect(),
            security: self.security,
        }
    }
}

/// Serialises the `objects` list as a JSON object keyed by OBIS id; where an id repeats,
/// the first occurrence is kept.
pub struct ObjectMap<'t, 'a>(pub &'t [Object<'a>]);

impl Serialize for ObjectMap<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (i, o) in self.0.iter().enumerate() {
            if self.0[..i].iter().any(|p| p.obis == o.obis) {
                continue;
            }
            m.serialize_entry(&o.obis, &o.value)?;
        }
        m.end()
    }
}
