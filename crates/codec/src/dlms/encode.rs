//! The encrypting side: builds what meters send, for tests, simulators and benchmarks.
//! Luxembourg Smarty (a DSMR telegram in general-glo-ciphering with a GCM tag),
//! EVN-style M-Bus (an encryption-only data-notification split over long frames) and
//! HDLC (LLC, optional ciphering, segmentation).

use alloc::vec::Vec;

use super::axdr::{self, Data};
use super::cipher::{Cipher, LUXEMBOURG_AUTHENTICATION_KEY, SC_AUTHENTICATED, SC_ENCRYPTED};
use super::cosem::{self, unit_code, write_date_time};
use super::hdlc::{self, LLC_COMMAND};
use super::mbus::{self, MAX_SEGMENT};
use crate::model::{Object, Value};
use crate::time::Timestamp;

/// How the registers of a notification body are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One flat structure `OBIS, value, {scaler, unit}, OBIS, value, …` (Austrian Kaifa
    /// and Sagemcom).
    Flat,
    /// An array of structures `{OBIS, value, {scaler, unit}}` (Aidon, Kaifa IDIS).
    Nested,
}

fn logical_name(o: &Object<'_>) -> [u8; 6] {
    [o.obis.a, o.obis.b, o.obis.c, o.obis.d, o.obis.e, 0xFF]
}

/// Appends the A-XDR nodes of an object's value and, for a number, its scaler-unit
/// structure; returns how many elements that adds to the enclosing list, or `None` for
/// values a notification cannot carry (logs, peaks, groups).
fn push_value<'a>(nodes: &mut Vec<Data<'a>>, v: &'a Value<'_>, clock: &'a [u8; 12]) -> Option<u32> {
    let (node, su) = match v {
        Value::Empty => (Data::Null, None),
        Value::Number { value, unit } => (
            Data::Int(value.mantissa),
            Some((value.scale, unit.as_deref())),
        ),
        Value::Float { value, unit } => (Data::Float64(*value), Some((0, unit.as_deref()))),
        Value::Bool(b) => (Data::Bool(*b), None),
        Value::Text(t) => (Data::VisibleString(t.as_bytes()), None),
        Value::Time(Some(_)) => (Data::OctetString(clock), None),
        _ => return None,
    };
    nodes.push(node);
    Some(match su {
        Some((scale, unit)) => {
            nodes.extend([
                Data::Structure(2),
                Data::Int(-i64::from(scale)),
                Data::Enum(unit.map_or(255, unit_code)),
            ]);
            2
        }
        None => 1,
    })
}

/// Builds a data-notification APDU carrying `objects` (numbers with their scale as
/// scaler and their unit, texts as visible-strings, times as date-time octet-strings).
pub fn notification(
    invoke_id: u32,
    time: Option<Timestamp>,
    objects: &[Object<'_>],
    layout: Layout,
) -> Vec<u8> {
    let names: Vec<[u8; 6]> = objects.iter().map(logical_name).collect();
    let clocks: Vec<[u8; 12]> = objects
        .iter()
        .map(|o| o.value.timestamp().map_or([0; 12], write_date_time))
        .collect();
    let mut nodes = alloc::vec![Data::Null];
    let mut count = 0u32;
    for ((o, ln), clock) in objects.iter().zip(&names).zip(&clocks) {
        let at = nodes.len();
        if layout == Layout::Nested {
            nodes.push(Data::Structure(0));
        }
        nodes.push(Data::OctetString(ln));
        let Some(k) = push_value(&mut nodes, &o.value, clock) else {
            nodes.truncate(at);
            continue;
        };
        match layout {
            Layout::Flat => count += 1 + k,
            Layout::Nested => {
                nodes[at] = Data::Structure(1 + k);
                count += 1;
            }
        }
    }
    nodes[0] = match layout {
        Layout::Flat => Data::Structure(count),
        Layout::Nested => Data::Array(count),
    };
    let mut out = alloc::vec![cosem::TAG];
    out.extend_from_slice(&invoke_id.to_be_bytes());
    match time {
        Some(t) => {
            out.push(0x0C);
            out.extend_from_slice(&write_date_time(t));
        }
        None => out.push(0x00),
    }
    axdr::write(&mut out, &nodes);
    out
}

/// A meter's sending side: its keys, system title and frame counter.
#[derive(Debug, Clone)]
pub struct Encoder {
    cipher: Cipher,
    authentication: [u8; 16],
    /// The system title sent.
    pub system_title: [u8; 8],
    /// The frame counter of the next frame (incremented by every frame).
    pub frame_counter: u32,
}

impl Encoder {
    /// A sender with an encryption key and authentication key (`None`: the Luxembourg
    /// default).
    pub fn new(
        encryption: &[u8; 16],
        authentication: Option<&[u8; 16]>,
        system_title: [u8; 8],
        frame_counter: u32,
    ) -> Self {
        Encoder {
            cipher: Cipher::new(encryption),
            authentication: *authentication.unwrap_or(&LUXEMBOURG_AUTHENTICATION_KEY),
            system_title,
            frame_counter,
        }
    }

    /// Wraps `plaintext` in general-glo-ciphering: with a tag (SC 0x30) or encryption
    /// only (SC 0x20).
    pub fn cipher(&mut self, plaintext: &[u8], authenticated: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + 32);
        let (sc, ak) = if authenticated {
            (SC_ENCRYPTED | SC_AUTHENTICATED, Some(&self.authentication))
        } else {
            (SC_ENCRYPTED, None)
        };
        self.cipher.seal(
            &self.system_title,
            self.frame_counter,
            sc,
            ak,
            plaintext,
            &mut out,
        );
        self.frame_counter = self.frame_counter.wrapping_add(1);
        out
    }

    /// A Luxembourg Smarty frame: the DSMR telegram text, encrypted and authenticated.
    pub fn smarty(&mut self, telegram: &[u8]) -> Vec<u8> {
        self.cipher(telegram, true)
    }

    /// EVN-style M-Bus: the APDU encrypted without tag, split over long frames
    /// (CI 0x00, 0x01, … and 0x10 | n on the last), each with STSAP/DTSAP `01 67`.
    pub fn mbus(&mut self, apdu: &[u8]) -> Vec<u8> {
        let ciphered = self.cipher(apdu, false);
        mbus_frames(&ciphered)
    }

    /// HDLC frames with LLC around the APDU, ciphered with a tag when `encrypt`, split
    /// into segments of at most `max_info` bytes of information.
    pub fn hdlc(&mut self, apdu: &[u8], encrypt: bool, max_info: usize) -> Vec<u8> {
        if encrypt {
            let ciphered = self.cipher(apdu, true);
            hdlc_frames(&ciphered, max_info)
        } else {
            hdlc_frames(apdu, max_info)
        }
    }
}

/// Splits an APDU over M-Bus long frames.
pub fn mbus_frames(apdu: &[u8]) -> Vec<u8> {
    mbus_frames_with(apdu, MAX_SEGMENT)
}

/// The largest APDU segment a long frame can carry when its length byte wraps around,
/// as Sagemcom T210-D meters send (see [`mbus::user_data_len`]).
pub const MAX_WRAPPED_SEGMENT: usize = 258 - 3 - 2;

/// Splits an APDU over M-Bus long frames of at most `segment` APDU bytes each (up to
/// [`MAX_WRAPPED_SEGMENT`]; 252 gives the T210-D's 257-byte first frame, `68 01 01 68`).
pub fn mbus_frames_with(apdu: &[u8], segment: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = apdu.chunks(segment.clamp(1, MAX_WRAPPED_SEGMENT)).collect();
    let mut out = Vec::with_capacity(apdu.len() + 12 * chunks.len());
    let mut data = Vec::with_capacity(MAX_SEGMENT + 2);
    for (i, c) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { 0x10 } else { 0 };
        data.clear();
        data.extend_from_slice(&[0x01, 0x67]);
        data.extend_from_slice(c);
        mbus::write_frame(&mut out, 0x53, 0xFF, last | (i as u8 & 0x0F), &data);
    }
    out
}

/// Puts an APDU behind LLC into HDLC frames of at most `max_info` information bytes.
pub fn hdlc_frames(apdu: &[u8], max_info: usize) -> Vec<u8> {
    let mut info = Vec::with_capacity(apdu.len() + 3);
    info.extend_from_slice(&LLC_COMMAND);
    info.extend_from_slice(apdu);
    let chunks: Vec<&[u8]> = info.chunks(max_info.clamp(1, 2000)).collect();
    let mut out = Vec::with_capacity(info.len() + 16 * chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        hdlc::write_frame(&mut out, i + 1 < chunks.len(), &[0x41], &[0x83], 0x13, c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::obis::Obis;
    use alloc::borrow::Cow;

    #[test]
    fn notification_round_trips() {
        let objects = alloc::vec![
            Object {
                obis: Obis::new(1, 0, 1, 8, 0),
                value: Value::Number {
                    value: Decimal::new(12345, 3),
                    unit: Some(Cow::Borrowed("Wh"))
                }
            },
            Object {
                obis: Obis::new(0, 0, 96, 1, 0),
                value: Value::Text(Cow::Borrowed("1KFM"))
            },
            Object {
                obis: Obis::new(0, 0, 1, 0, 0),
                value: Value::Time(Some(Timestamp(1_700_000_000)))
            },
        ];
        for layout in [Layout::Flat, Layout::Nested] {
            let apdu = notification(7, Some(Timestamp(1_700_000_000)), &objects, layout);
            let t = cosem::decode(&apdu, crate::model::Dialect::DlmsApdu).unwrap();
            assert_eq!(t.objects, objects);
            assert_eq!(t.timestamp, Some(Timestamp(1_700_000_000)));
        }
    }
}
