//! The simulator's DLMS/COSEM side: a meter's state as the objects an Austrian or
//! Nordic meter pushes, and the encrypted frames around them (via the codec's encoder).

use std::borrow::Cow;

use meterkast_codec::dlms::cosem::{self, write_date_time};
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

/// The objects of an HDLC meter's push: energy in Wh, power in W, voltage in 0.1 V,
/// current in 0.01 A, and the meter number.
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

/// The power factor shown for a state, in thousandths: low for the standby load
/// (switching power supplies), near 1 when large resistive loads run.
pub fn power_factor_milli(s: &MeterState) -> u16 {
    let p = u64::from(s.import_w.max(s.export_w));
    (1000 - 60_000 / (150 + p)) as u16
}

/// COSEM unit codes of the T210-D's registers.
const WH: u8 = 30;
const W: u8 = 27;
const V: u8 = 35;
const A: u8 = 33;
const NO_UNIT: u8 = 255;

/// A register of the T210-D's push: its A-XDR type is fixed per register
/// (`double-long-unsigned` for energy and power, `long-unsigned` for the rest).
enum Reg {
    U32(u32),
    U16(u16),
}

/// The data-notification a Sagemcom T210-D (EVN / Netz NÖ) pushes every 5 seconds: the
/// clock, then one flat structure of the clock again, eleven registers as `OBIS, value,
/// {scaler, unit}` (1.8.0, 2.8.0, 1.7.0, 2.7.0, 32/52/72.7.0 in 0.1 V, 31/51/71.7.0 in
/// 0.01 A, 13.7.0 power factor in 0.001) and the meter number.
pub fn t210d_apdu(s: &MeterState, invoke_id: u32) -> Vec<u8> {
    let clock = write_date_time(s.time);
    let import: u64 = s.import_wh.iter().sum();
    let export: u64 = s.export_wh.iter().sum();
    let wh = |x: u64| Reg::U32(u32::try_from(x).unwrap_or(u32::MAX));
    let ph = |f: fn(&super::model::Phase) -> u32, i: usize| {
        Reg::U16(u16::try_from(f(&s.phases[i])).unwrap_or(u16::MAX))
    };
    // (C, D) of 1-0:C.D.0, the value, its scaler and unit.
    let regs = [
        ((1, 8), wh(import), 0i8, WH),
        ((2, 8), wh(export), 0, WH),
        ((1, 7), Reg::U32(s.import_w), 0, W),
        ((2, 7), Reg::U32(s.export_w), 0, W),
        ((32, 7), ph(|p| p.voltage_dv, 0), -1, V),
        ((52, 7), ph(|p| p.voltage_dv, 1), -1, V),
        ((72, 7), ph(|p| p.voltage_dv, 2), -1, V),
        ((31, 7), ph(|p| p.current_ca, 0), -2, A),
        ((51, 7), ph(|p| p.current_ca, 1), -2, A),
        ((71, 7), ph(|p| p.current_ca, 2), -2, A),
        ((13, 7), Reg::U16(power_factor_milli(s)), -3, NO_UNIT),
    ];
    let mut out = vec![cosem::TAG];
    out.extend_from_slice(&invoke_id.to_be_bytes());
    out.push(0x0C);
    out.extend_from_slice(&clock);
    // structure: the clock, 11 × (OBIS, value, scaler-unit), the meter number.
    out.extend_from_slice(&[0x02, 2 + 3 * regs.len() as u8, 0x09, 0x0C]);
    out.extend_from_slice(&clock);
    for ((c, d), reg, scaler, unit) in regs {
        out.extend_from_slice(&[0x09, 0x06, 1, 0, c, d, 0, 0xFF]);
        match reg {
            Reg::U32(v) => {
                out.push(0x06);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Reg::U16(v) => {
                out.push(0x12);
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0x02, 0x02, 0x0F, scaler as u8, 0x16, unit]);
    }
    // The T210-D's meter number is 12 digits: the end of the simulated meter's id.
    let id = s.meter_id.as_bytes();
    let number = &id[id.len().saturating_sub(12)..];
    out.extend_from_slice(&[0x09, number.len() as u8]);
    out.extend_from_slice(number);
    out
}

/// An EVN frame: the T210-D's notification encrypted without a tag, in M-Bus long
/// frames.
pub fn evn(s: &MeterState, enc: &mut Encoder, out: &mut Vec<u8>) {
    let apdu = t210d_apdu(s, enc.frame_counter);
    out.extend_from_slice(&enc.mbus(&apdu));
}

/// HDLC frames with an encrypted and authenticated notification (nested layout).
pub fn hdlc(s: &MeterState, enc: &mut Encoder, out: &mut Vec<u8>) {
    let apdu = notification(enc.frame_counter, Some(s.time), &objects(s), Layout::Nested);
    out.extend_from_slice(&enc.hdlc(&apdu, true, 220));
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterkast_codec::Timestamp;

    #[test]
    fn the_t210d_push_has_the_meters_layout_and_decodes_to_the_state() {
        let mut sim = super::super::Simulator::new(
            super::super::Dialect::Evn,
            5,
            Timestamp(1_774_742_400),
            std::time::Duration::from_secs(1),
        )
        .unwrap()
        .with_key([7; 16]);
        // Two M-Bus segments of the same length as a real T210-D's push.
        assert_eq!(sim.next_frame().1.len(), 282);
        let s = sim.state().clone();
        let apdu = t210d_apdu(&s, 7);
        // Tag, invoke id, clock, then a structure of 35 elements opened by the clock.
        assert_eq!(apdu[0], 0x0F);
        assert_eq!(apdu[5], 0x0C);
        assert_eq!(&apdu[18..22], &[0x02, 35, 0x09, 0x0C]);
        // The power factor as the meter sends it: long-unsigned, scaler -3, no unit.
        let pf = apdu
            .windows(6)
            .position(|w| w == [1, 0, 13, 7, 0, 0xFF])
            .expect("1-0:13.7.0");
        let milli = power_factor_milli(&s);
        assert!((600..=1000).contains(&milli));
        assert_eq!(
            &apdu[pf + 6..pf + 15],
            &[
                0x12,
                (milli >> 8) as u8,
                milli as u8,
                0x02,
                0x02,
                0x0F,
                0xFD,
                0x16,
                0xFF
            ]
        );
        // Energy is double-long-unsigned even when small.
        let e = apdu
            .windows(6)
            .position(|w| w == [1, 0, 2, 8, 0, 0xFF])
            .unwrap();
        assert_eq!(apdu[e + 6], 0x06);

        let t = cosem::decode(&apdu, meterkast_codec::Dialect::DlmsMbus).unwrap();
        let r = meterkast_codec::Reading::from_telegram(&t);
        assert_eq!(r.active_power_factor, Some(f64::from(milli) / 1000.0));
        let import: u64 = s.import_wh.iter().sum();
        assert_eq!(r.total_power_import_kwh, Some(import as f64 / 1000.0));
        assert_eq!(
            r.active_current_l2_a,
            Some(f64::from(s.phases[1].current_ca) / 100.0)
        );
    }
}
