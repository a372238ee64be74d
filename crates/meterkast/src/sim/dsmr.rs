//! Plaintext P1 telegrams: DSMR 5.0, DSMR 4.2, DSMR 2.2 and Fluvius e-MUCS, written
//! from a [`MeterState`] the way real meters of each generation print them.
//!
//! Every writer appends to a caller-owned buffer and allocates nothing else.

use meterkast_codec::crc::crc16_arc;
use meterkast_codec::time::Timestamp;

use super::model::{Capture, MeterState};

/// Appends `v` in decimal, zero-padded to at least `width` digits.
fn put_uint(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = tmp.len() - i;
    for _ in digits..width {
        out.push(b'0');
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `v / 10^frac` with at least `int` integer digits: `(1234, 2, 3)` → `01.234`.
fn put_fixed(out: &mut Vec<u8>, v: u64, int: usize, frac: u32) {
    let p = 10u64.pow(frac);
    put_uint(out, v / p, int);
    if frac > 0 {
        out.push(b'.');
        put_uint(out, v % p, frac as usize);
    }
}

/// Appends `YYMMDDhhmmss` in Central European local time, and the `S`/`W` flag when asked.
fn put_time(out: &mut Vec<u8>, t: Timestamp, flag: bool) {
    let (c, off) = t.to_cet();
    put_uint(out, c.year.rem_euclid(100) as u64, 2);
    for f in [c.month, c.day, c.hour, c.minute, c.second] {
        put_uint(out, u64::from(f), 2);
    }
    if flag {
        out.push(if off == 7200 { b'S' } else { b'W' });
    }
}

/// Appends ASCII as upper-case hex, as DSMR writes equipment identifiers.
fn put_hex(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// `OBIS(` … the caller writes the value … then [`close`].
fn open(out: &mut Vec<u8>, obis: &str) {
    out.extend_from_slice(obis.as_bytes());
    out.push(b'(');
}

fn close(out: &mut Vec<u8>) {
    out.extend_from_slice(b")\r\n");
}

/// A whole line with a literal value.
fn line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `OBIS(energy*kWh)` from Wh, `int` integer digits.
fn kwh(out: &mut Vec<u8>, obis: &str, wh: u64, int: usize) {
    open(out, obis);
    put_fixed(out, wh, int, 3);
    out.extend_from_slice(b"*kWh");
    close(out);
}

/// `OBIS(power*kW)` from W with two integer and three decimal digits.
fn kw(out: &mut Vec<u8>, obis: &str, w: u32) {
    open(out, obis);
    put_fixed(out, u64::from(w), 2, 3);
    out.extend_from_slice(b"*kW");
    close(out);
}

/// `OBIS(counter)` zero-padded.
fn count(out: &mut Vec<u8>, obis: &str, v: u32, width: usize) {
    open(out, obis);
    put_uint(out, u64::from(v), width);
    close(out);
}

fn hex_id(out: &mut Vec<u8>, obis: &str, id: &str) {
    open(out, obis);
    put_hex(out, id);
    close(out);
}

/// `OBIS(time)(value*m3)`, the captured M-Bus reading.
fn mbus(out: &mut Vec<u8>, obis: &str, c: &Capture) {
    open(out, obis);
    put_time(out, c.at, true);
    out.extend_from_slice(b")(");
    put_fixed(out, c.litres, 5, 3);
    out.extend_from_slice(b"*m3");
    close(out);
}

/// `!CRC\r\n`: CRC-16/ARC over everything from `/` to `!` inclusive.
fn finish_crc(out: &mut Vec<u8>, start: usize) {
    out.push(b'!');
    let crc = crc16_arc(&out[start..]);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((crc >> shift) & 15)]);
    }
    out.extend_from_slice(b"\r\n");
}

fn energy_block(out: &mut Vec<u8>, s: &MeterState) {
    kwh(out, "1-0:1.8.1", s.import_wh[0], 6);
    kwh(out, "1-0:1.8.2", s.import_wh[1], 6);
    kwh(out, "1-0:2.8.1", s.export_wh[0], 6);
    kwh(out, "1-0:2.8.2", s.export_wh[1], 6);
}

fn tariff(out: &mut Vec<u8>, s: &MeterState) {
    count(out, "0-0:96.14.0", u32::from(s.tariff), 4);
}

fn failures(out: &mut Vec<u8>, s: &MeterState) {
    count(out, "0-0:96.7.21", s.power_failures, 5);
    count(out, "0-0:96.7.9", s.long_power_failures, 5);
    open(out, "1-0:99.97.0");
    put_uint(out, s.failure_log.len() as u64, 1);
    out.extend_from_slice(b")(0-0:96.7.19");
    for &(end, secs) in &s.failure_log {
        out.extend_from_slice(b")(");
        put_time(out, end, true);
        out.extend_from_slice(b")(");
        put_uint(out, u64::from(secs), 10);
        out.extend_from_slice(b"*s");
    }
    close(out);
    for (i, obis) in ["1-0:32.32.0", "1-0:52.32.0", "1-0:72.32.0"]
        .iter()
        .enumerate()
    {
        count(out, obis, s.sags[i], 5);
    }
    for (i, obis) in ["1-0:32.36.0", "1-0:52.36.0", "1-0:72.36.0"]
        .iter()
        .enumerate()
    {
        count(out, obis, s.swells[i], 5);
    }
}

fn phase_powers(out: &mut Vec<u8>, s: &MeterState) {
    for (i, obis) in ["1-0:21.7.0", "1-0:41.7.0", "1-0:61.7.0"]
        .iter()
        .enumerate()
    {
        kw(out, obis, s.phases[i].import_w);
    }
    for (i, obis) in ["1-0:22.7.0", "1-0:42.7.0", "1-0:62.7.0"]
        .iter()
        .enumerate()
    {
        kw(out, obis, s.phases[i].export_w);
    }
}

/// Currents in whole amperes, `(003*A)`, as DSMR 4.2 and 5 meters print them.
fn whole_amps(out: &mut Vec<u8>, s: &MeterState) {
    for (i, obis) in ["1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0"]
        .iter()
        .enumerate()
    {
        open(out, obis);
        put_uint(out, u64::from((s.phases[i].current_ca + 50) / 100), 3);
        out.extend_from_slice(b"*A");
        close(out);
    }
}

fn voltages(out: &mut Vec<u8>, s: &MeterState, int: usize) {
    for (i, obis) in ["1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"]
        .iter()
        .enumerate()
    {
        open(out, obis);
        put_fixed(out, u64::from(s.phases[i].voltage_dv), int, 1);
        out.extend_from_slice(b"*V");
        close(out);
    }
}

/// A DSMR 5.0.2 telegram as an Iskra AM550 writes it (CRC, 5-minute gas).
pub fn dsmr5(s: &MeterState, out: &mut Vec<u8>) {
    let start = out.len();
    line(out, "/ISK5\\2M550T-1012");
    line(out, "");
    line(out, "1-3:0.2.8(50)");
    open(out, "0-0:1.0.0");
    put_time(out, s.time, true);
    close(out);
    hex_id(out, "0-0:96.1.1", &s.meter_id);
    energy_block(out, s);
    tariff(out, s);
    kw(out, "1-0:1.7.0", s.import_w);
    kw(out, "1-0:2.7.0", s.export_w);
    failures(out, s);
    line(out, "0-0:96.13.0()");
    voltages(out, s, 4);
    whole_amps(out, s);
    phase_powers(out, s);
    line(out, "0-1:24.1.0(003)");
    hex_id(out, "0-1:96.1.0", &s.gas_id);
    mbus(out, "0-1:24.2.1", &s.gas_5min);
    finish_crc(out, start);
}

/// A DSMR 4.2 telegram as a Kaifa MA105 writes it (CRC, hourly gas, no voltages).
pub fn dsmr42(s: &MeterState, out: &mut Vec<u8>) {
    let start = out.len();
    line(out, "/KFM5KAIFA-METER");
    line(out, "");
    line(out, "1-3:0.2.8(42)");
    open(out, "0-0:1.0.0");
    put_time(out, s.time, true);
    close(out);
    hex_id(out, "0-0:96.1.1", &s.meter_id);
    energy_block(out, s);
    tariff(out, s);
    kw(out, "1-0:1.7.0", s.import_w);
    kw(out, "1-0:2.7.0", s.export_w);
    failures(out, s);
    line(out, "0-0:96.13.1()");
    line(out, "0-0:96.13.0()");
    whole_amps(out, s);
    for i in 0..3 {
        let (imp, exp) = [
            ("1-0:21.7.0", "1-0:22.7.0"),
            ("1-0:41.7.0", "1-0:42.7.0"),
            ("1-0:61.7.0", "1-0:62.7.0"),
        ][i];
        kw(out, imp, s.phases[i].import_w);
        kw(out, exp, s.phases[i].export_w);
    }
    line(out, "0-1:24.1.0(003)");
    hex_id(out, "0-1:96.1.0", &s.gas_id);
    mbus(out, "0-1:24.2.1", &s.gas_hourly);
    finish_crc(out, start);
}

/// A DSMR 2.2 telegram as an Iskra MT382 writes it: no CRC, no clock, powers in 10 W
/// steps, identifiers as plain digits, hourly gas on a `0-1:24.3.0` line continued by
/// `(value)` on the next.
pub fn dsmr22(s: &MeterState, out: &mut Vec<u8>) {
    line(out, "/ISk5\\2MT382-1000");
    line(out, "");
    open(out, "0-0:96.1.1");
    let digits = |id: &str, n: usize| {
        let d: u64 = id.bytes().filter(u8::is_ascii_digit).fold(0u64, |a, b| {
            a.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
        });
        d % 10u64.pow(n as u32)
    };
    put_uint(out, digits(&s.meter_id, 14), 14);
    close(out);
    for (obis, wh) in [
        ("1-0:1.8.1", s.import_wh[0]),
        ("1-0:1.8.2", s.import_wh[1]),
        ("1-0:2.8.1", s.export_wh[0]),
        ("1-0:2.8.2", s.export_wh[1]),
    ] {
        kwh(out, obis, wh, 5);
    }
    tariff(out, s);
    for (obis, w) in [("1-0:1.7.0", s.import_w), ("1-0:2.7.0", s.export_w)] {
        open(out, obis);
        put_fixed(out, u64::from((w + 5) / 10), 4, 2);
        out.extend_from_slice(b"*kW");
        close(out);
    }
    line(out, "0-0:17.0.0(0999.00*kW)");
    line(out, "0-0:96.3.10(1)");
    line(out, "0-0:96.13.1()");
    line(out, "0-0:96.13.0()");
    line(out, "0-1:24.1.0(3)");
    open(out, "0-1:96.1.0");
    put_uint(out, digits(&s.gas_id, 12), 12);
    close(out);
    open(out, "0-1:24.3.0");
    put_time(out, s.gas_hourly.at, false);
    out.extend_from_slice(b")(00)(60)(1)(0-1:24.2.1)(m3)\r\n(");
    put_fixed(out, s.gas_hourly.litres, 5, 3);
    close(out);
    line(out, "0-1:24.4.0(1)");
    out.extend_from_slice(b"!\r\n");
}

/// A Fluvius e-MUCS (Belgian DSMR 5 variant) telegram: capacity-tariff registers,
/// gas on `0-1:24.2.3`, a water meter on channel 2.
pub fn fluvius(s: &MeterState, out: &mut Vec<u8>) {
    let start = out.len();
    line(out, "/FLU5\\253769484_A");
    line(out, "");
    line(out, "0-0:96.1.4(50217)");
    hex_id(out, "0-0:96.1.1", &s.meter_id);
    open(out, "0-0:1.0.0");
    put_time(out, s.time, true);
    close(out);
    energy_block(out, s);
    kw(out, "1-0:1.4.0", s.quarter_avg_w);
    open(out, "1-0:1.6.0");
    match s.month_peak {
        Some((at, w)) => {
            put_time(out, at, true);
            out.extend_from_slice(b")(");
            put_fixed(out, u64::from(w), 2, 3);
        }
        None => out.extend_from_slice(b"632525252525W)(00.000"),
    }
    out.extend_from_slice(b"*kW");
    close(out);
    open(out, "0-0:98.1.0");
    put_uint(out, s.peak_history.len() as u64, 1);
    out.extend_from_slice(b")(1-0:1.6.0)(1-0:1.6.0");
    for p in &s.peak_history {
        out.extend_from_slice(b")(");
        put_time(out, p.period, true);
        out.extend_from_slice(b")(");
        put_time(out, p.at, true);
        out.extend_from_slice(b")(");
        put_fixed(out, u64::from(p.watts), 2, 3);
        out.extend_from_slice(b"*kW");
    }
    close(out);
    tariff(out, s);
    kw(out, "1-0:1.7.0", s.import_w);
    kw(out, "1-0:2.7.0", s.export_w);
    phase_powers(out, s);
    voltages(out, s, 3);
    for (i, obis) in ["1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0"]
        .iter()
        .enumerate()
    {
        open(out, obis);
        put_fixed(out, u64::from(s.phases[i].current_ca), 3, 2);
        out.extend_from_slice(b"*A");
        close(out);
    }
    line(out, "0-0:96.3.10(1)");
    line(out, "0-0:17.0.0(999.9*kW)");
    line(out, "1-0:31.4.0(999*A)");
    line(out, "0-0:96.13.0()");
    line(out, "0-1:24.1.0(003)");
    hex_id(out, "0-1:96.1.1", &s.gas_id);
    line(out, "0-1:24.4.0(1)");
    mbus(out, "0-1:24.2.3", &s.gas_5min);
    line(out, "0-2:24.1.0(007)");
    hex_id(out, "0-2:96.1.1", &s.water_id);
    mbus(out, "0-2:24.2.1", &s.water_5min);
    finish_crc(out, start);
}

/// A Luxembourg Smarty telegram as a Sagemcom T210-D writes it inside the encryption:
/// single-register totals in kWh, the 0-0:42.0.0 logical device name, 5-minute gas.
pub fn smarty(s: &MeterState, out: &mut Vec<u8>) {
    let start = out.len();
    line(out, "/Lux5\\253663629_D");
    line(out, "");
    line(out, "1-3:0.2.8(42)");
    open(out, "0-0:1.0.0");
    put_time(out, s.time, true);
    close(out);
    hex_id(out, "0-0:42.0.0", &s.meter_id);
    kwh(out, "1-0:1.8.0", s.import_wh[0] + s.import_wh[1], 6);
    kwh(out, "1-0:2.8.0", s.export_wh[0] + s.export_wh[1], 6);
    kw(out, "1-0:1.7.0", s.import_w);
    kw(out, "1-0:2.7.0", s.export_w);
    line(out, "0-0:96.13.0()");
    line(out, "0-0:96.13.2()");
    voltages(out, s, 3);
    whole_amps(out, s);
    phase_powers(out, s);
    line(out, "0-1:24.1.0(003)");
    hex_id(out, "0-1:96.1.0", &s.gas_id);
    mbus(out, "0-1:24.2.1", &s.gas_5min);
    finish_crc(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::{Household, Region};
    use meterkast_codec::{Decoder, Dialect};

    fn decode_one(bytes: &[u8]) -> (Dialect, Option<Timestamp>, usize) {
        let mut d = Decoder::new();
        d.push(bytes);
        d.finish();
        let f = d.next().expect("a frame").expect("accepted");
        (
            f.telegram.dialect,
            f.telegram.timestamp,
            f.telegram.objects.len(),
        )
    }

    #[test]
    fn numbers_are_fixed_width() {
        let mut v = Vec::new();
        put_fixed(&mut v, 1234, 2, 3);
        v.push(b' ');
        put_fixed(&mut v, 5, 6, 3);
        v.push(b' ');
        put_uint(&mut v, 0, 3);
        v.push(b' ');
        put_fixed(&mut v, 123_456, 2, 3);
        assert_eq!(v, b"01.234 000000.005 000 123.456");
    }

    #[test]
    fn every_dialect_decodes_as_itself() {
        let start = 1_774_742_400; // 2026-03-29T00:00:00Z
        for (region, write, dialect, objects) in [
            (
                Region::Nl,
                dsmr5 as fn(&MeterState, &mut Vec<u8>),
                Dialect::Dsmr50,
                35,
            ),
            (Region::Nl, dsmr42, Dialect::Dsmr42, 33),
            (Region::Nl, dsmr22, Dialect::Dsmr22, 16),
            (Region::Be, fluvius, Dialect::FluviusEmucs, 36),
        ] {
            let h = Household::new(1, region, start * 1000);
            let mut out = Vec::new();
            write(h.state(), &mut out);
            let text = String::from_utf8(out.clone()).unwrap();
            let lines: Vec<&str> = text.split('\n').collect();
            assert_eq!(lines.last(), Some(&""));
            assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with('\r')));
            let (d, t, n) = decode_one(&out);
            assert_eq!(d, dialect, "{text}");
            assert_eq!(n, objects, "{text}");
            if dialect != Dialect::Dsmr22 {
                assert_eq!(t, Some(Timestamp(start)), "{text}");
            }
        }
    }
}
