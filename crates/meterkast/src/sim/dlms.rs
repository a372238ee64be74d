//! The simulator's DLMS/COSEM side: a meter's state as the objects an Austrian or
//! Nordic meter pushes, and the encrypted frames around them (via the codec's encoder).

use std::borrow::Cow;

use meterkast_codec::dlms::encode::{notification, Encoder, Layout};
use meterkast_codec::{Decimal, Obis, Object, Value};

use super::model::MeterState;

fn num(obis: Obis, mantissa: i64, scale: u8, unit: &'static str) -> Object<'static> {
    Object {
        obis,
        value: Value::Number {
            value: Decimal::new(mantissa, scale),
            unit: Some(Cow::Borrowed(unit)),
        },
    }
}

/// The objects of an Austrian (EVN/Netz NÖ) push: energy in Wh, power in W, voltage
/// in 0.1 V, current in 0.01 A, and the meter number.
pub fn objects(s: &MeterState) -> Vec<Object<'static>> {
    let o = |c, d| Obis::new(1, 0, c, d, 0);
    let import: u64 = s.import_wh.iter().sum();
    let export: u64 = s.export_wh.iter().sum();
    let mut v = vec![
        num(o(1, 8), import as i64, 0, "Wh"),
        num(o(2, 8), export as i64, 0, "Wh"),
        num(o(1, 7), i64::from(s.import_w), 0, "W"),
        num(o(2, 7), i64::from(s.export_w), 0, "W"),
    ];
    for (i, p) in s.phases.iter().enumerate() {
        v.push(num(
            o(32 + 20 * i as u8, 7),
            i64::from(p.voltage_dv),
            1,
            "V",
        ));
    }
    for (i, p) in s.phases.iter().enumerate() {
        v.push(num(
            o(31 + 20 * i as u8, 7),
            i64::from(p.current_ca),
            2,
            "A",
        ));
    }
    v.push(Object {
        obis: Obis::new(0, 0, 96, 1, 0),
        value: Value::Text(Cow::Owned(s.meter_id.clone())),
    });
    v
}

/// A system title in the style of the manufacturer flag: three letters and five bytes
/// of serial, derived from the meter id.
pub fn system_title(meter_id: &str) -> [u8; 8] {
    let mut t = *b"MKS\0\0\0\0\0";
    let h = meter_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    t[3..].copy_from_slice(&h.to_be_bytes()[..5]);
    t
}

/// An EVN-style frame: the notification encrypted without a tag, in M-Bus long frames.
pub fn evn(s: &MeterState, enc: &mut Encoder, out: &mut Vec<u8>) {
    let apdu = notification(enc.frame_counter, Some(s.time), &objects(s), Layout::Flat);
    out.extend_from_slice(&enc.mbus(&apdu));
}

/// HDLC frames with an encrypted and authenticated notification (nested layout).
pub fn hdlc(s: &MeterState, enc: &mut Encoder, out: &mut Vec<u8>) {
    let apdu = notification(enc.frame_counter, Some(s.time), &objects(s), Layout::Nested);
    out.extend_from_slice(&enc.hdlc(&apdu, true, 220));
}
