//! The stored form of a reading: a fixed set of integer quantities in exact units,
//! and the compact chunk encoding that keeps a full-resolution reading near 20 bytes.
//!
//! The field order and units are part of the on-disk format: append new fields at
//! the end, never reorder or rescale.

use meterkast_codec::Reading;
use serde_json::{Map, Value as J};

/// One stored quantity: its JSON name in a reading and its integer scale (value =
/// stored integer / scale).
pub struct Field {
    /// The normalized reading's field name.
    pub name: &'static str,
    /// Stored integer per unit of the reading's field (1000 for kWh stored as Wh).
    pub scale: f64,
}

macro_rules! fields {
    ($($id:ident = $name:literal / $scale:literal),* $(,)?) => {
        /// Indexes of the stored fields.
        #[allow(missing_docs, non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(usize)]
        pub enum F { $($id),* }
        /// Every stored field, in on-disk order.
        pub const FIELDS: &[Field] = &[$(Field { name: $name, scale: $scale }),*];
    };
}

fields! {
    ImportT1 = "total_power_import_t1_kwh" / 1000.0,
    ImportT2 = "total_power_import_t2_kwh" / 1000.0,
    ImportT3 = "total_power_import_t3_kwh" / 1000.0,
    ImportT4 = "total_power_import_t4_kwh" / 1000.0,
    ExportT1 = "total_power_export_t1_kwh" / 1000.0,
    ExportT2 = "total_power_export_t2_kwh" / 1000.0,
    ExportT3 = "total_power_export_t3_kwh" / 1000.0,
    ExportT4 = "total_power_export_t4_kwh" / 1000.0,
    Import = "total_power_import_kwh" / 1000.0,
    Export = "total_power_export_kwh" / 1000.0,
    Power = "active_power_w" / 1.0,
    PowerL1 = "active_power_l1_w" / 1.0,
    PowerL2 = "active_power_l2_w" / 1.0,
    PowerL3 = "active_power_l3_w" / 1.0,
    VoltL1 = "active_voltage_l1_v" / 10.0,
    VoltL2 = "active_voltage_l2_v" / 10.0,
    VoltL3 = "active_voltage_l3_v" / 10.0,
    CurrL1 = "active_current_l1_a" / 100.0,
    CurrL2 = "active_current_l2_a" / 100.0,
    CurrL3 = "active_current_l3_a" / 100.0,
    Tariff = "active_tariff" / 1.0,
    Gas = "total_gas_m3" / 1000.0,
    GasTime = "gas_timestamp" / 1.0,
    Water = "total_water_m3" / 1000.0,
    Heat = "total_heat_gj" / 1000.0,
    AvgPower = "active_power_average_w" / 1.0,
    PeakPower = "monthly_power_peak_w" / 1.0,
}

/// How many fields a sample has.
pub const N: usize = FIELDS.len();

/// One full-resolution reading as stored: a time and integer quantities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Telegram time, unix seconds.
    pub ts: i64,
    /// The quantities, `None` where the meter does not send them.
    pub v: [Option<i64>; N],
}

fn to_int(x: Option<f64>, scale: f64) -> Option<i64> {
    x.filter(|x| x.is_finite())
        .map(|x| (x * scale).round() as i64)
}

impl Sample {
    /// The stored form of a normalized reading taken at `ts`.
    pub fn from_reading(ts: i64, r: &Reading) -> Sample {
        let mut v = [None; N];
        let mut set = |f: F, x: Option<f64>| v[f as usize] = to_int(x, FIELDS[f as usize].scale);
        set(F::ImportT1, r.total_power_import_t1_kwh);
        set(F::ImportT2, r.total_power_import_t2_kwh);
        set(F::ImportT3, r.total_power_import_t3_kwh);
        set(F::ImportT4, r.total_power_import_t4_kwh);
        set(F::ExportT1, r.total_power_export_t1_kwh);
        set(F::ExportT2, r.total_power_export_t2_kwh);
        set(F::ExportT3, r.total_power_export_t3_kwh);
        set(F::ExportT4, r.total_power_export_t4_kwh);
        set(F::Import, r.total_power_import_kwh);
        set(F::Export, r.total_power_export_kwh);
        set(F::Power, r.active_power_w);
        set(F::PowerL1, r.active_power_l1_w);
        set(F::PowerL2, r.active_power_l2_w);
        set(F::PowerL3, r.active_power_l3_w);
        set(F::VoltL1, r.active_voltage_l1_v);
        set(F::VoltL2, r.active_voltage_l2_v);
        set(F::VoltL3, r.active_voltage_l3_v);
        set(F::CurrL1, r.active_current_l1_a);
        set(F::CurrL2, r.active_current_l2_a);
        set(F::CurrL3, r.active_current_l3_a);
        set(F::Tariff, r.active_tariff.map(f64::from));
        set(F::Gas, r.total_gas_m3);
        set(F::GasTime, r.gas_timestamp.map(|t| t.0 as f64));
        let ext = |kind: &str| {
            r.external
                .iter()
                .find(|x| x.kind == kind)
                .and_then(|x| x.value.map(|v| (v, x.unit.clone())))
        };
        set(F::Water, ext("water_meter").map(|(v, _)| v));
        let heat_gj = ext("heat_meter").and_then(|(v, u)| match u.as_deref() {
            Some("GJ") => Some(v),
            Some("MJ") => Some(v / 1000.0),
            Some("kWh") => Some(v * 0.0036),
            _ => None,
        });
        set(F::Heat, heat_gj);
        set(F::AvgPower, r.active_power_average_w);
        set(F::PeakPower, r.monthly_power_peak_w);
        Sample { ts, v }
    }

    /// A field's value.
    pub fn get(&self, f: F) -> Option<i64> {
        self.v[f as usize]
    }

    /// The JSON reading this sample stands for (the fields that were stored).
    pub fn to_json(&self) -> J {
        let mut m = Map::new();
        for (f, v) in FIELDS.iter().zip(self.v.iter()) {
            let Some(v) = v else { continue };
            let val = if f.name == "gas_timestamp" {
                J::String(meterkast_codec::Timestamp(*v).to_string())
            } else if f.scale == 1.0 {
                J::from(*v)
            } else {
                J::from(*v as f64 / f.scale)
            };
            m.insert(f.name.to_string(), val);
        }
        J::Object(m)
    }
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        x |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Some(x);
        }
    }
    None
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

/// Appends samples to a chunk: per sample the time delta, the field mask when it
/// changes, and each present field as a zigzag varint delta from its previous value.
#[derive(Default)]
pub struct ChunkWriter {
    buf: Vec<u8>,
    prev: Option<Sample>,
    mask: u64,
    count: usize,
}

fn mask_of(s: &Sample) -> u64 {
    s.v.iter()
        .enumerate()
        .fold(0, |m, (i, v)| if v.is_some() { m | 1 << i } else { m })
}

impl ChunkWriter {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample; samples must come in time order.
    pub fn push(&mut self, s: &Sample) {
        let mask = mask_of(s);
        let (prev_ts, prev_v) = match &self.prev {
            Some(p) => (p.ts, p.v),
            None => (0, [None; N]),
        };
        let changed = u64::from(mask != self.mask || self.prev.is_none());
        put_varint(&mut self.buf, zigzag(s.ts - prev_ts) << 1 | changed);
        if changed == 1 {
            put_varint(&mut self.buf, mask);
        }
        for (i, v) in s.v.iter().enumerate() {
            if let Some(v) = v {
                let base = prev_v[i].unwrap_or(0);
                put_varint(&mut self.buf, zigzag(v.wrapping_sub(base)));
            }
        }
        self.mask = mask;
        // Keep the last value of each field, also across samples that lack it.
        let mut keep = prev_v;
        for (k, v) in keep.iter_mut().zip(s.v.iter()) {
            if v.is_some() {
                *k = *v;
            }
        }
        self.prev = Some(Sample { ts: s.ts, v: keep });
        self.count += 1;
    }

    /// The encoded bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Samples so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Decodes a chunk written by [`ChunkWriter`]; `None` when it is damaged.
pub fn decode_chunk(b: &[u8]) -> Option<Vec<Sample>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut ts = 0i64;
    let mut mask = 0u64;
    let mut last = [None::<i64>; N];
    while pos < b.len() {
        let head = get_varint(b, &mut pos)?;
        ts = ts.checked_add(unzigzag(head >> 1))?;
        if head & 1 == 1 {
            mask = get_varint(b, &mut pos)?;
            if mask >> N != 0 {
                return None;
            }
        }
        let mut v = [None; N];
        for (i, slot) in v.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                let x = last[i]
                    .unwrap_or(0)
                    .wrapping_add(unzigzag(get_varint(b, &mut pos)?));
                *slot = Some(x);
                last[i] = Some(x);
            }
        }
        out.push(Sample { ts, v });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ts: i64, k: i64) -> Sample {
        let mut v = [None; N];
        v[F::Import as usize] = Some(1_234_567 + k);
        v[F::Power as usize] = Some(if k % 7 == 0 { -1500 } else { 300 + k % 50 });
        v[F::VoltL1 as usize] = Some(2300 + k % 5);
        if k % 300 == 0 {
            v[F::Gas as usize] = Some(12_785_123 + k / 300);
        }
        Sample { ts, v }
    }

    #[test]
    fn chunks_round_trip_and_are_small() {
        let mut w = ChunkWriter::new();
        let samples: Vec<Sample> = (0..900).map(|k| sample(1_700_000_000 + k, k)).collect();
        for s in &samples {
            w.push(s);
        }
        assert_eq!(decode_chunk(w.bytes()).unwrap(), samples);
        assert!(w.bytes().len() < 900 * 10, "{} bytes", w.bytes().len());
    }

    #[test]
    fn damaged_chunks_are_refused_not_misread() {
        assert!(decode_chunk(&[0xFF; 20]).is_none());
        assert!(decode_chunk(&[0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).is_none());
        let mut w = ChunkWriter::new();
        w.push(&sample(5, 1));
        let b = w.bytes();
        assert!(decode_chunk(&b[..b.len() - 1]).is_none());
    }
}
