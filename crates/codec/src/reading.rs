//! The normalized reading: one flat record with unit-suffixed names, the same for every
//! dialect, in the style of the HomeWizard P1 API. Everything after decoding uses it.

use alloc::string::String;
use alloc::vec::Vec;
use serde::Serialize;

use crate::model::{Telegram, Value};
use crate::obis::Obis;
use crate::time::Timestamp;

/// One M-Bus sub-meter (gas, water, heat...) as reported on a channel.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct External {
    /// The channel (1–4).
    pub channel: u8,
    /// The sub-meter's equipment identifier, as sent.
    pub unique_id: Option<String>,
    /// `gas_meter`, `water_meter`, `heat_meter`, `warm_water_meter`, `inlet_heat_meter`...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the sub-meter's value was captured (UTC).
    pub timestamp: Option<Timestamp>,
    /// The register value.
    pub value: Option<f64>,
    /// Its unit as sent (`m3`, `GJ`...).
    pub unit: Option<String>,
}

/// The normalized view of one telegram. Fields the meter does not send are `None`
/// and left out of JSON.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct Reading {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_t1_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_t2_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_t3_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_t4_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_import_t5_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_t1_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_t2_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_t3_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_t4_kwh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_power_export_t5_kwh: Option<f64>,
    /// Import minus export, in W (negative while exporting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_l1_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_l2_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_l3_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_voltage_l1_v: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_voltage_l2_v: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_voltage_l3_v: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_current_l1_a: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_current_l2_a: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_current_l3_a: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_frequency_hz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_tariff: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_power_fail_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_power_fail_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_sag_l1_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_sag_l2_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_sag_l3_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_swell_l1_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_swell_l2_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voltage_swell_l3_count: Option<u32>,
    /// The current quarter-hour's average import power (Fluvius `1-0:1.4.0`), in W.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_power_average_w: Option<f64>,
    /// This month's peak quarter-hour (Fluvius `1-0:1.6.0`), in W.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_power_peak_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_power_peak_timestamp: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_gas_m3: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gas_timestamp: Option<Timestamp>,
    /// Every M-Bus sub-meter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<External>,
}

/// The power of ten from a unit to the base unit of its quantity (`kWh` → `Wh`: 3).
fn factor(unit: Option<&str>, base: &str) -> Option<i8> {
    let Some(u) = unit else { return Some(0) };
    if u.eq_ignore_ascii_case(base) {
        return Some(0);
    }
    // Checked: a unit from a meter may hold any UTF-8 (`°C`), and the split must not
    // fall inside a character.
    let (prefix, rest) = u.split_at_checked(u.len().checked_sub(base.len())?)?;
    if !rest.eq_ignore_ascii_case(base) {
        return None;
    }
    match prefix {
        "k" | "K" => Some(3),
        "M" => Some(6),
        "m" => Some(-3),
        _ => None,
    }
}

/// The M-Bus device type's name, as the HomeWizard API spells it.
pub fn device_type_name(t: i64) -> &'static str {
    match t {
        2 => "electricity_meter",
        3 => "gas_meter",
        4 => "heat_meter",
        6 => "warm_water_meter",
        7 => "water_meter",
        10 | 11 => "cooling_meter",
        12 => "inlet_heat_meter",
        _ => "unknown",
    }
}

fn round9(x: f64) -> f64 {
    // Sums and differences of exact decimals: remove the float noise they gain.
    let y = x * 1e9;
    let r = if y >= 0.0 {
        (y + 0.5) as i64
    } else {
        (y - 0.5) as i64
    };
    r as f64 / 1e9
}

impl Reading {
    /// Builds the normalized reading from a decoded telegram.
    pub fn from_telegram(t: &Telegram<'_>) -> Reading {
        let mut r = Reading::default();
        let mut power_in: Option<f64> = None;
        let mut power_out: Option<f64> = None;
        let mut phase = [[None::<f64>; 2]; 3];
        let mut import_tariffs = 0.0;
        let mut export_tariffs = 0.0;
        let mut externals: Vec<External> = Vec::new();
        // The value in `base` units times 10^-`to` (exact for decimals: no float noise).
        let scaled = |v: &Value<'_>, base: &str, to: i8| -> Option<f64> {
            let exp = factor(v.unit(), base)? - to;
            match v.number() {
                Some((d, _)) => Some(d.scaled(exp).to_f64()),
                None => Some(v.as_f64()? * crate::decimal::pow10_f64(exp)),
            }
        };
        let count = |v: &Value<'_>| {
            v.as_f64()
                .filter(|x| *x >= 0.0 && *x <= u32::MAX as f64)
                .map(|x| x as u32)
        };
        for o in &t.objects {
            let v = &o.value;
            let Obis { a, b, c, d, e } = o.obis;
            // Kamstrup and Landis+Gyr number their electricity registers on channel 1
            // (`1-1:1.8.0`) where DSMR and IDIS use 0.
            let b = if a == 1 && b == 1 { 0 } else { b };
            match (a, b, c, d, e) {
                (1, 0, 1, 8, 0) => r.total_power_import_kwh = scaled(v, "Wh", 3),
                (1, 0, 2, 8, 0) => r.total_power_export_kwh = scaled(v, "Wh", 3),
                (1, 0, 1 | 2, 8, 1..=5) => {
                    let kwh = scaled(v, "Wh", 3);
                    let slot = match (c, e) {
                        (1, 1) => &mut r.total_power_import_t1_kwh,
                        (1, 2) => &mut r.total_power_import_t2_kwh,
                        (1, 3) => &mut r.total_power_import_t3_kwh,
                        (1, 4) => &mut r.total_power_import_t4_kwh,
                        (1, _) => &mut r.total_power_import_t5_kwh,
                        (_, 1) => &mut r.total_power_export_t1_kwh,
                        (_, 2) => &mut r.total_power_export_t2_kwh,
                        (_, 3) => &mut r.total_power_export_t3_kwh,
                        (_, 4) => &mut r.total_power_export_t4_kwh,
                        _ => &mut r.total_power_export_t5_kwh,
                    };
                    *slot = kwh;
                    if c == 1 {
                        import_tariffs += kwh.unwrap_or(0.0);
                    } else {
                        export_tariffs += kwh.unwrap_or(0.0);
                    }
                }
                (1, 0, 1, 7, 0) => power_in = scaled(v, "W", 0),
                (1, 0, 2, 7, 0) => power_out = scaled(v, "W", 0),
                (1, 0, 16, 7, 0) if power_in.is_none() => power_in = scaled(v, "W", 0),
                (1, 0, 21 | 41 | 61, 7, 0) => {
                    phase[usize::from((c - 21) / 20)][0] = scaled(v, "W", 0)
                }
                (1, 0, 22 | 42 | 62, 7, 0) => {
                    phase[usize::from((c - 22) / 20)][1] = scaled(v, "W", 0)
                }
                (1, 0, 32, 7, 0) => r.active_voltage_l1_v = scaled(v, "V", 0),
                (1, 0, 52, 7, 0) => r.active_voltage_l2_v = scaled(v, "V", 0),
                (1, 0, 72, 7, 0) => r.active_voltage_l3_v = scaled(v, "V", 0),
                (1, 0, 31, 7, 0) => r.active_current_l1_a = scaled(v, "A", 0),
                (1, 0, 51, 7, 0) => r.active_current_l2_a = scaled(v, "A", 0),
                (1, 0, 71, 7, 0) => r.active_current_l3_a = scaled(v, "A", 0),
                (1, 0, 14, 7, 0) => r.active_frequency_hz = scaled(v, "Hz", 0),
                (1, 0, 13, 7, 0) => r.active_power_factor = v.as_f64(),
                (0, 0, 96, 14, 0) => {
                    // `0002`, or E.ON Hungary's `TARIFF 1`: the digits at the end.
                    r.active_tariff = match v {
                        Value::Text(s) => {
                            let digits = s
                                .trim_end()
                                .rsplit(|c: char| !c.is_ascii_digit())
                                .next()
                                .unwrap_or("");
                            digits.parse().ok()
                        }
                        _ => count(v),
                    }
                }
                (0, 0, 96, 7, 21) => r.any_power_fail_count = count(v),
                (0, 0, 96, 7, 9) => r.long_power_fail_count = count(v),
                (1, 0, 32, 32, 0) => r.voltage_sag_l1_count = count(v),
                (1, 0, 52, 32, 0) => r.voltage_sag_l2_count = count(v),
                (1, 0, 72, 32, 0) => r.voltage_sag_l3_count = count(v),
                (1, 0, 32, 36, 0) => r.voltage_swell_l1_count = count(v),
                (1, 0, 52, 36, 0) => r.voltage_swell_l2_count = count(v),
                (1, 0, 72, 36, 0) => r.voltage_swell_l3_count = count(v),
                (1, 0, 1, 4, 0) => r.active_power_average_w = scaled(v, "W", 0),
                (1, 0, 1, 6, 0) => {
                    r.monthly_power_peak_w = scaled(v, "W", 0);
                    r.monthly_power_peak_timestamp = v.timestamp();
                }
                (0, 1..=4, 24, 1, 0) | (0, 1..=4, 96, 1, 0 | 1) | (0, 1..=4, 24, 2 | 3, _) => {
                    let i = match externals.iter().position(|x| x.channel == b) {
                        Some(i) => i,
                        None => {
                            externals.push(External {
                                channel: b,
                                unique_id: None,
                                kind: "unknown",
                                timestamp: None,
                                value: None,
                                unit: None,
                            });
                            externals.len() - 1
                        }
                    };
                    let x = &mut externals[i];
                    match (c, d) {
                        (24, 1) => {
                            x.kind = v.as_f64().map_or("unknown", |t| device_type_name(t as i64))
                        }
                        (96, 1) => {
                            x.unique_id = v.as_text().filter(|s| !s.is_empty()).map(String::from)
                        }
                        _ => {
                            if x.value.is_none() {
                                x.value = v.as_f64();
                                x.unit = v.unit().map(String::from);
                                x.timestamp = v.timestamp();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if r.total_power_import_kwh.is_none() && r.total_power_import_t1_kwh.is_some() {
            r.total_power_import_kwh = Some(round9(import_tariffs));
        }
        if r.total_power_export_kwh.is_none() && r.total_power_export_t1_kwh.is_some() {
            r.total_power_export_kwh = Some(round9(export_tariffs));
        }
        r.active_power_w = match (power_in, power_out) {
            (Some(i), Some(o)) => Some(round9(i - o)),
            (Some(i), None) => Some(i),
            (None, Some(o)) => Some(-o),
            _ => None,
        };
        let [l1, l2, l3] = phase.map(|[i, o]| match (i, o) {
            (Some(i), Some(o)) => Some(round9(i - o)),
            (Some(i), None) => Some(i),
            (None, Some(o)) => Some(-o),
            _ => None,
        });
        (
            r.active_power_l1_w,
            r.active_power_l2_w,
            r.active_power_l3_w,
        ) = (l1, l2, l3);
        // A channel that only announces itself (no reading, no id) is not a sub-meter.
        externals.retain(|x| x.value.is_some() || x.unique_id.is_some());
        // Without a device type, the unit tells: DSMR meters without one carry gas.
        for x in externals.iter_mut().filter(|x| x.kind == "unknown") {
            x.kind = match x.unit.as_deref() {
                Some("m3") | Some("m³") => "gas_meter",
                Some("GJ") | Some("MJ") | Some("kWh") => "heat_meter",
                _ => "unknown",
            };
        }
        if let Some(gas) = externals
            .iter()
            .find(|x| x.kind == "gas_meter" && x.value.is_some())
        {
            r.total_gas_m3 = gas.value;
            r.gas_timestamp = gas.timestamp;
        }
        r.external = externals;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_of_units() {
        assert_eq!(factor(None, "Wh"), Some(0));
        assert_eq!(factor(Some("kWh"), "Wh"), Some(3));
        assert_eq!(factor(Some("MWH"), "Wh"), Some(6));
        assert_eq!(factor(Some("V"), "Wh"), None);
    }

    /// Found by the `cosem_notification` fuzz target: a COSEM unit code of `°C` on a
    /// register read as energy panicked by slicing inside the `°`.
    #[test]
    fn factor_of_a_multibyte_unit_does_not_panic() {
        assert_eq!(factor(Some("°C"), "Wh"), None);
        assert_eq!(factor(Some("°C"), "W"), None);
        assert_eq!(factor(Some("µWh"), "Wh"), None);
        assert_eq!(factor(Some("m³"), "m3"), None);
    }
}
