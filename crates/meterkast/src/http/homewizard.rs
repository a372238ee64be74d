//! The HomeWizard P1 meter's local API v1 (`GET /api`, `GET /api/v1/data`,
//! `GET`/`PUT /api/v1/system`, `PUT /api/v1/identify`; the raw `GET /api/v1/telegram`
//! is shared with the meterkast API), so that Home Assistant's HomeWizard integration
//! and other clients of the dongle read meterkast instead.
//!
//! Field names, units and shapes follow the HomeWizard v1 documentation, including its
//! spelling `montly_power_peak_w`; fields the meter does not send are left out;
//! timestamps are numbers `YYMMDDhhmmss` in the meter's local (Central European) time.
//! `wifi_ssid` and `wifi_strength` describe this host (see [`super::hostwifi`]).
//! Refused requests get the dongle's error shape, `{"error": {"id", "description"}}`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;
use serde_json::{json, Map, Number, Value as J};

use super::{ApiError, AppState};
use crate::config::FileConfig;
use meterkast_codec::Timestamp;

/// The HomeWizard and mDNS flags of `meterkast run`.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "HomeWizard API and mDNS")]
pub struct HwArgs {
    /// The meter (equipment id) the HomeWizard-compatible API serves [default: the one
    /// with the most recent reading].
    #[arg(long, env = "MK_HOMEWIZARD_METER")]
    pub homewizard_meter: Option<String>,
    /// Require the API's authentication on the HomeWizard-compatible endpoints too
    /// (`/api`, `/api/v1/data`, `/api/v1/telegram`); their usual clients send none.
    #[arg(long, env = "MK_HOMEWIZARD_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub homewizard_auth: bool,
    /// Do not advertise the service with mDNS (`_hwenergy._tcp`, `_http._tcp`).
    #[arg(long, env = "MK_NO_MDNS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_mdns: bool,
}

/// The HomeWizard and mDNS settings after merging file, environment and flags.
#[derive(Debug, Clone, Default)]
pub struct HwSettings {
    /// The meter to serve; `None` for the most recent one.
    pub meter: Option<String>,
    /// Whether the HomeWizard-compatible endpoints require authentication.
    pub require_auth: bool,
    /// Whether to advertise with mDNS.
    pub mdns: bool,
}

impl HwArgs {
    /// Merges the configuration file under the flags and environment.
    pub fn settings(&self, file: &FileConfig) -> HwSettings {
        HwSettings {
            meter: self
                .homewizard_meter
                .clone()
                .or(file.homewizard_meter.clone())
                .filter(|m| !m.is_empty()),
            require_auth: self.homewizard_auth || file.homewizard_auth.unwrap_or(false),
            mdns: !self.no_mdns && file.mdns.unwrap_or(true),
        }
    }
}

/// The product type real P1 dongles report.
pub const PRODUCT_TYPE: &str = "HWE-P1";
/// The product name real P1 dongles report.
pub const PRODUCT_NAME: &str = "P1 Meter";

/// The meter the HomeWizard API serves: the configured one, else the one with the most
/// recent reading (the first on a tie); with its frame JSON.
pub fn primary(s: &AppState) -> Option<(String, std::sync::Arc<str>)> {
    let latest = s.latest.read().expect("latest lock");
    if let Some(m) = &s.homewizard.meter {
        return latest.get(m).map(|l| (m.clone(), l.frame.clone()));
    }
    let mut best: Option<(&String, &super::Latest)> = None;
    for (k, l) in latest.iter() {
        if best.is_none_or(|(_, b)| l.ts > b.ts) {
            best = Some((k, l));
        }
    }
    best.map(|(k, l)| (k.clone(), l.frame.clone()))
}

/// The serial this server reports: 12 lowercase hex digits (like the dongles' MAC-based
/// serials), derived stably from the meter's equipment id, or from the host name before
/// any meter has been seen.
pub fn serial(s: &AppState) -> String {
    match primary(s) {
        Some((id, _)) => serial_of(&id),
        None => serial_of(&format!("host:{}", hostname())),
    }
}

/// 12 hex digits from a text: FNV-1a, 48 bits.
pub fn serial_of(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// This machine's host name (for mDNS and a serial before any meter is known).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meterkast".into())
}

/// `GET /api`: the device description.
pub async fn device(State(s): State<AppState>) -> impl IntoResponse {
    let body = json!({
        "product_type": PRODUCT_TYPE,
        "product_name": PRODUCT_NAME,
        "serial": serial(&s),
        "firmware_version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// `GET /api/v1/data`: the primary meter's latest reading in HomeWizard's v1 shape.
pub async fn data(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (_, frame) = primary(&s).ok_or_else(|| match &s.homewizard.meter {
        Some(m) => ApiError::not_found(format!(
            "meter {m} (--homewizard-meter) has not sent a reading yet"
        )),
        None => ApiError::not_found("no meter has sent a reading yet"),
    })?;
    let frame: J = serde_json::from_str(&frame)
        .map_err(|e| ApiError::internal(format!("stored frame is not JSON: {e}")))?;
    let mut body = data_json(&frame);
    let wifi = super::hostwifi::current().await;
    body["wifi_ssid"] = wifi.ssid.into();
    body["wifi_strength"] = wifi.strength.into();
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    ))
}

/// The dongle's error codes (HomeWizard API v1, "Error handling").
pub mod error_id {
    /// The body is not valid JSON.
    pub const INVALID_JSON: u16 = 2;
    /// A value of the wrong type or out of range.
    pub const INVALID_VALUE: u16 = 7;
    /// A setting that cannot be changed.
    pub const NOT_MODIFIABLE: u16 = 8;
    /// The request body is too large.
    pub const REQUEST_TOO_LARGE: u16 = 201;
}

/// The largest request body the settings endpoints read.
pub const MAX_BODY: usize = 1024;

/// An answer in the dongle's error shape: `{"error": {"id", "description"}}`.
pub fn hw_error(status: StatusCode, id: u16, description: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"id": id, "description": description.into()}}).to_string(),
    )
        .into_response()
}

fn json_ok(body: J) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refused request: status, the dongle's error id, and what is wrong.
type Refusal = (StatusCode, u16, String);

fn refuse((status, id, description): Refusal) -> Response {
    hw_error(status, id, description)
}

fn too_large() -> Refusal {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        error_id::REQUEST_TOO_LARGE,
        format!("request body larger than {MAX_BODY} bytes"),
    )
}

/// A settings request's body as a JSON object, or why it is refused.
fn settings_body(body: Result<Bytes, BytesRejection>) -> Result<Map<String, J>, Refusal> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            (
                StatusCode::BAD_REQUEST,
                error_id::INVALID_JSON,
                e.body_text(),
            )
        }
    })?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    match serde_json::from_slice::<J>(&body) {
        Ok(J::Object(o)) => Ok(o),
        Ok(_) => Err((
            StatusCode::BAD_REQUEST,
            error_id::INVALID_JSON,
            "body must be a JSON object".into(),
        )),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            error_id::INVALID_JSON,
            format!("body contains invalid JSON: {e}"),
        )),
    }
}

/// `GET /api/v1/system`: cloud communication is off, and always will be.
pub async fn get_system() -> Response {
    json_ok(json!({"cloud_enabled": false}))
}

/// `PUT /api/v1/system`: `{"cloud_enabled": false}` is accepted (nothing changes);
/// turning the cloud on is refused the way the dongle refuses a setting (400, id 8).
pub async fn put_system(body: Result<Bytes, BytesRejection>) -> Response {
    let o = match settings_body(body) {
        Ok(o) => o,
        Err(r) => return refuse(r),
    };
    for (k, v) in &o {
        match (k.as_str(), v) {
            ("cloud_enabled", J::Bool(false)) => {}
            ("cloud_enabled", J::Bool(true)) => {
                return hw_error(
                    StatusCode::BAD_REQUEST,
                    error_id::NOT_MODIFIABLE,
                    "cloud_enabled cannot be turned on: meterkast never talks to a cloud",
                )
            }
            ("cloud_enabled", _) => {
                return hw_error(
                    StatusCode::BAD_REQUEST,
                    error_id::INVALID_VALUE,
                    "cloud_enabled must be true or false",
                )
            }
            _ => {
                return hw_error(
                    StatusCode::BAD_REQUEST,
                    error_id::NOT_MODIFIABLE,
                    format!("{k} is not a setting of this device; only cloud_enabled is"),
                )
            }
        }
    }
    json_ok(json!({"cloud_enabled": false}))
}

/// Identify requests logged, at most one line per this interval.
const IDENTIFY_LOG_EVERY: Duration = Duration::from_secs(10);
static IDENTIFY_LOG: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// `PUT /api/v1/identify`: the dongle blinks its light; meterkast logs a line and sends
/// an `identify` event on `/api/v1/live`, which the dashboard's Meter page flashes.
pub async fn identify(State(s): State<AppState>) -> Response {
    {
        let mut last = IDENTIFY_LOG.lock().expect("identify log");
        match &mut *last {
            Some((at, skipped)) if at.elapsed() < IDENTIFY_LOG_EVERY => *skipped += 1,
            _ => {
                let skipped = last.map_or(0, |(_, n)| n);
                tracing::info!(
                    "HomeWizard identify: a client (Home Assistant's Identify button?) asks \
                     which device this is; shown on the dashboard's Meter page{}",
                    if skipped > 0 {
                        format!(" ({skipped} more requests not logged)")
                    } else {
                        String::new()
                    }
                );
                *last = Some((Instant::now(), 0));
            }
        }
    }
    let _ = s.identify.send(());
    json_ok(json!({"identify": "ok"}))
}

/// A timestamp as HomeWizard writes it: the number `YYMMDDhhmmss`, Central European time.
pub fn hw_timestamp(t: i64) -> u64 {
    let (c, _) = Timestamp(t).to_cet();
    let n = [
        c.year.rem_euclid(100) as u64,
        u64::from(c.month),
        u64::from(c.day),
        u64::from(c.hour),
        u64::from(c.minute),
        u64::from(c.second),
    ];
    n.iter().fold(0, |acc, v| acc * 100 + v)
}

fn rfc3339_to_hw(v: &J) -> Option<J> {
    let t = crate::timefmt::parse_rfc3339(v.as_str()?).ok()?;
    Some(J::from(hw_timestamp(t.0)))
}

/// Whole watts as integers (as the dongles send them), others unchanged.
fn watts(v: &J) -> J {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => J::from(f as i64),
        _ => v.clone(),
    }
}

fn int_of(v: &J) -> Option<i64> {
    match v {
        J::Number(n) => n.as_i64(),
        J::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The v1 `/api/v1/data` object for one frame JSON (`{"header", "meter_id", "objects",
/// "reading", ...}`).
pub fn data_json(frame: &J) -> J {
    let r = &frame["reading"];
    let objects = &frame["objects"];
    let mut o = Map::new();
    let smr = objects["1-3:0.2.8"]["value"]
        .as_str()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or_else(|| int_of(&objects["1-3:0.2.8"]["value"]))
        .or_else(|| {
            // Belgian e-MUCS: `0-0:96.1.4(50217)`, DSMR 5.0.2 based: 50.
            let v = objects["0-0:96.1.4"]["value"].as_str()?;
            v.get(..2)?.parse().ok()
        });
    if let Some(v) = smr {
        o.insert("smr_version".into(), v.into());
    }
    if let Some(h) = frame["header"].as_str() {
        o.insert("meter_model".into(), h.trim_start_matches('/').into());
    }
    if let Some(id) = frame["meter_id"].as_str() {
        o.insert("unique_id".into(), id.into());
    }
    let copy = |o: &mut Map<String, J>, from: &str, to: &str, f: &dyn Fn(&J) -> J| {
        if let Some(v) = r.get(from).filter(|v| !v.is_null()) {
            o.insert(to.into(), f(v));
        }
    };
    let same = |v: &J| v.clone();
    copy(&mut o, "active_tariff", "active_tariff", &same);
    for dir in ["import", "export"] {
        for t in ["", "_t1", "_t2", "_t3", "_t4"] {
            let k = format!("total_power_{dir}{t}_kwh");
            copy(&mut o, &k, &k, &same);
        }
    }
    for k in [
        "active_power_w",
        "active_power_l1_w",
        "active_power_l2_w",
        "active_power_l3_w",
    ] {
        copy(&mut o, k, k, &watts);
    }
    for k in [
        "active_voltage_l1_v",
        "active_voltage_l2_v",
        "active_voltage_l3_v",
    ] {
        copy(&mut o, k, k, &same);
    }
    let abs = |v: &J| match v.as_f64().and_then(|f| Number::from_f64(f.abs())) {
        Some(n) if v.is_f64() => J::Number(n),
        _ => match v.as_i64() {
            Some(i) => J::from(i.abs()),
            None => v.clone(),
        },
    };
    for k in [
        "active_current_l1_a",
        "active_current_l2_a",
        "active_current_l3_a",
    ] {
        copy(&mut o, k, k, &abs);
    }
    for k in [
        "voltage_sag_l1_count",
        "voltage_sag_l2_count",
        "voltage_sag_l3_count",
        "voltage_swell_l1_count",
        "voltage_swell_l2_count",
        "voltage_swell_l3_count",
        "any_power_fail_count",
        "long_power_fail_count",
    ] {
        copy(&mut o, k, k, &same);
    }
    copy(&mut o, "active_frequency_hz", "active_frequency_hz", &same);
    copy(
        &mut o,
        "active_power_average_w",
        "active_power_average_w",
        &watts,
    );
    copy(
        &mut o,
        "monthly_power_peak_w",
        "montly_power_peak_w",
        &watts,
    );
    if let Some(t) = rfc3339_to_hw(&r["monthly_power_peak_timestamp"]) {
        o.insert("montly_power_peak_timestamp".into(), t);
    }
    copy(&mut o, "total_gas_m3", "total_gas_m3", &same);
    if let Some(t) = rfc3339_to_hw(&r["gas_timestamp"]) {
        o.insert("gas_timestamp".into(), t);
    }
    let ext = r["external"].as_array().cloned().unwrap_or_default();
    if o.contains_key("total_gas_m3") {
        if let Some(id) = ext
            .iter()
            .find(|e| e["type"] == "gas_meter")
            .and_then(|e| e["unique_id"].as_str())
        {
            o.insert("gas_unique_id".into(), id.into());
        }
    }
    let external: Vec<J> = ext
        .iter()
        .map(|e| {
            let mut x = Map::new();
            x.insert("unique_id".into(), e["unique_id"].clone());
            x.insert("type".into(), e["type"].clone());
            x.insert(
                "timestamp".into(),
                rfc3339_to_hw(&e["timestamp"]).unwrap_or(J::Null),
            );
            x.insert("value".into(), e["value"].clone());
            x.insert("unit".into(), e["unit"].clone());
            J::Object(x)
        })
        .collect();
    o.insert("external".into(), J::Array(external));
    J::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_cet_numbers() {
        // 2020-05-09T11:45:58Z is 13:45:58 CEST.
        assert_eq!(hw_timestamp(1_589_024_758), 200_509_134_558);
        // 2026-01-01T00:00:00Z is 01:00 CET.
        assert_eq!(hw_timestamp(1_767_225_600), 260_101_010_000);
    }

    #[test]
    fn serials_are_stable_12_hex_digits() {
        let s = serial_of("3153414733313031303231363035");
        assert_eq!(s.len(), 12);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(s, serial_of("3153414733313031303231363035"));
        assert_ne!(s, serial_of("3153414733313031303231363036"));
    }
}
