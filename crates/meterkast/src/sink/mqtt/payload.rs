//! The topics and payloads the MQTT sink publishes, as pure functions: meterkast's own
//! JSON state, one topic per field, the raw telegram, the EVN decoder's JSON and
//! dsmr-reader's split topics; and the averaging for a publish interval.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::queue::Msg;

/// A payload format, chosen with `--mqtt-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{base}/{meter}/state`: the normalized reading as JSON, with its timestamp.
    Meterkast,
    /// `{base}/{meter}/{field}`: one plain value per topic.
    Fields,
    /// The EVN decoder's JSON (`WIn`, `PIn`, `U1`...) on `{base}/{meter}/evn` or
    /// `--mqtt-evn-topic`.
    Evn,
    /// `dsmr/reading/...`: dsmr-reader's split topics.
    DsmrReader,
    /// `{base}/{meter}/raw`: the raw telegram.
    Raw,
}

impl Format {
    /// Parses a comma list such as `meterkast,fields,raw`.
    pub fn parse_list(items: &[String]) -> Result<Vec<Format>> {
        let mut out = Vec::new();
        for item in items.iter().flat_map(|s| s.split(',')) {
            let f = match item.trim() {
                "" => continue,
                "meterkast" | "state" | "json" => Format::Meterkast,
                "fields" => Format::Fields,
                "evn" => Format::Evn,
                "dsmr-reader" | "dsmr_reader" => Format::DsmrReader,
                "raw" => Format::Raw,
                other => bail!(
                    "--mqtt-format {other}: use a comma list of meterkast, fields, evn, dsmr-reader, raw"
                ),
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        Ok(out)
    }
}

/// One reading as the sink sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The meter key (equipment id).
    pub meter: String,
    /// Unix seconds.
    pub ts: i64,
    /// RFC 3339 time.
    pub timestamp: String,
    /// The normalized reading (`total_power_import_kwh`...).
    pub reading: Map<String, Value>,
    /// The telegram's header (`/ISK5\2M550T-1012`), if any.
    pub header: Option<String>,
    /// The dialect (`dsmr5`...).
    pub dialect: Option<String>,
}

impl Snapshot {
    /// From the pipeline's frame JSON.
    pub fn from_frame(ts: i64, frame: &str) -> Option<Snapshot> {
        let v: Value = serde_json::from_str(frame).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Snapshot {
            meter: s("meter")?,
            ts,
            timestamp: s("timestamp").unwrap_or_default(),
            reading: v.get("reading")?.as_object()?.clone(),
            header: s("header"),
            dialect: s("dialect"),
        })
    }

    fn num(&self, k: &str) -> Option<f64> {
        self.reading.get(k).and_then(Value::as_f64)
    }
}

/// A meter key made safe as one topic level (no `/`, `+`, `#`).
pub fn topic_level(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// `{base}/{meter}/state`: the reading with its timestamp.
pub fn state_topic(base: &str, meter: &str) -> String {
    format!("{base}/{}/state", topic_level(meter))
}

/// The state message.
pub fn state(base: &str, s: &Snapshot) -> Msg {
    let mut o = Map::new();
    o.insert("meter".into(), json!(s.meter));
    o.insert("timestamp".into(), json!(s.timestamp));
    for (k, v) in &s.reading {
        o.insert(k.clone(), v.clone());
    }
    Msg::new(
        state_topic(base, &s.meter),
        Value::Object(o).to_string(),
        false,
    )
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// One topic per field: `{base}/{meter}/{field}`, and for sub-meters
/// `{base}/{meter}/external/{channel}/{value|unit|timestamp|type|unique_id}`.
pub fn fields(base: &str, s: &Snapshot) -> Vec<Msg> {
    let m = topic_level(&s.meter);
    let mut out = vec![Msg::new(
        format!("{base}/{m}/timestamp"),
        s.timestamp.clone(),
        false,
    )];
    for (k, v) in &s.reading {
        if k == "external" {
            for x in v.as_array().into_iter().flatten() {
                let Some(ch) = x.get("channel").and_then(Value::as_u64) else {
                    continue;
                };
                for (xk, xv) in x.as_object().into_iter().flatten() {
                    if xk != "channel" && !xv.is_null() {
                        out.push(Msg::new(
                            format!("{base}/{m}/external/{ch}/{xk}"),
                            plain(xv),
                            false,
                        ));
                    }
                }
            }
        } else if !v.is_null() {
            out.push(Msg::new(format!("{base}/{m}/{k}"), plain(v), false));
        }
    }
    out
}

/// `{base}/{meter}/raw`: the telegram as received.
pub fn raw(base: &str, meter: &str, raw: &[u8]) -> Msg {
    Msg::new(format!("{base}/{}/raw", topic_level(meter)), raw, false)
}

/// The EVN decoder's default values topic, where its consumers listen.
pub const EVN_DECODER_TOPIC: &str = "sensors/smartmeter/values";

/// Where the EVN JSON goes: `--mqtt-evn-topic` with `{meter}` filled in, else
/// `{base}/{meter}/evn`.
pub fn evn_topic(base: &str, custom: Option<&str>, meter: &str) -> String {
    match custom {
        Some(t) => t.replace("{meter}", &topic_level(meter)),
        None => format!("{base}/{}/evn", topic_level(meter)),
    }
}

/// Checks an `--mqtt-evn-topic`: a topic to publish to, so no wildcards.
pub fn check_evn_topic(t: &str) -> Result<()> {
    if t.is_empty() || t.contains(['+', '#', '\0']) {
        bail!("--mqtt-evn-topic {t:?}: give a topic without + or # (like {EVN_DECODER_TOPIC}, or meters/{{meter}}/values)");
    }
    Ok(())
}

/// The EVN decoder's JSON, key for key and type for type as it publishes it: `WIn`/`WOut`
/// (Wh) and `PIn`/`POut` (W) as integers, `U1`–`U3` (V), `I1`–`I3` (A) and `PF` (unit
/// `1`) as decimals with the meter's scaling, each `{"value": …, "unit": …}`, and
/// `timestamp` as `{"value": <unix seconds>, "unit": "s"}`. What the meter does not send
/// is left out, as the decoder does.
pub fn evn(topic: String, s: &Snapshot) -> Msg {
    let mut body: Vec<String> = Vec::with_capacity(12);
    let int = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| json!(x.round() as i64));
    // In the meter's steps (0.1 V, 0.01 A, 0.001), also when --mqtt-interval averaged.
    let dec = |v: Option<f64>, places: i32| {
        let k = 10f64.powi(places);
        v.filter(|x| x.is_finite())
            .map(|x| json!((x * k).round() / k))
    };
    let p = s.num("active_power_w");
    let wh = |k: &str| s.num(k).map(|kwh| kwh * 1000.0);
    let fields = [
        ("WIn", int(wh("total_power_import_kwh")), "Wh"),
        ("WOut", int(wh("total_power_export_kwh")), "Wh"),
        ("PIn", int(p.map(|p| p.max(0.0))), "W"),
        ("POut", int(p.map(|p| (-p).max(0.0))), "W"),
        ("U1", dec(s.num("active_voltage_l1_v"), 1), "V"),
        ("U2", dec(s.num("active_voltage_l2_v"), 1), "V"),
        ("U3", dec(s.num("active_voltage_l3_v"), 1), "V"),
        ("I1", dec(s.num("active_current_l1_a"), 2), "A"),
        ("I2", dec(s.num("active_current_l2_a"), 2), "A"),
        ("I3", dec(s.num("active_current_l3_a"), 2), "A"),
        ("PF", dec(s.num("active_power_factor"), 3), "1"),
        ("timestamp", Some(json!(s.ts)), "s"),
    ];
    // Written out in the decoder's key order (a JSON map would sort the keys).
    for (k, v, unit) in fields {
        if let Some(v) = v {
            body.push(format!(r#""{k}":{{"value":{v},"unit":"{unit}"}}"#));
        }
    }
    Msg::new(topic, format!("{{{}}}", body.join(",")), false)
}

/// dsmr-reader's split topics (`dsmr/reading/electricity_delivered_1`...), in its units
/// (kWh, kW, V, A, m³). They name no meter: meant for a single-meter home.
pub fn dsmr_reader(s: &Snapshot) -> Vec<Msg> {
    let mut out = vec![Msg::new(
        "dsmr/reading/timestamp",
        s.timestamp.clone(),
        false,
    )];
    let mut put = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push(Msg::new(format!("dsmr/reading/{name}"), fmt_num(v), false));
        }
    };
    put(
        "electricity_delivered_1",
        s.num("total_power_import_t1_kwh"),
    );
    put(
        "electricity_delivered_2",
        s.num("total_power_import_t2_kwh"),
    );
    put("electricity_returned_1", s.num("total_power_export_t1_kwh"));
    put("electricity_returned_2", s.num("total_power_export_t2_kwh"));
    let p = s.num("active_power_w");
    put(
        "electricity_currently_delivered",
        p.map(|p| p.max(0.0) / 1000.0),
    );
    put(
        "electricity_currently_returned",
        p.map(|p| (-p).max(0.0) / 1000.0),
    );
    for l in ["l1", "l2", "l3"] {
        let pl = s.num(&format!("active_power_{l}_w"));
        put(
            &format!("phase_currently_delivered_{l}"),
            pl.map(|p| p.max(0.0) / 1000.0),
        );
        put(
            &format!("phase_currently_returned_{l}"),
            pl.map(|p| (-p).max(0.0) / 1000.0),
        );
        put(
            &format!("phase_voltage_{l}"),
            s.num(&format!("active_voltage_{l}_v")),
        );
        put(
            &format!("phase_power_current_{l}"),
            s.num(&format!("active_current_{l}_a")),
        );
    }
    let gas = s.num("total_gas_m3");
    put("extra_device_delivered", gas);
    if let Some(t) = s.reading.get("gas_timestamp").and_then(Value::as_str) {
        out.push(Msg::new("dsmr/reading/extra_device_timestamp", t, false));
    }
    out
}

fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Whether a field is averaged over a publish interval (instantaneous values); the
/// others (registers, counters) take the latest value.
pub fn is_averaged(field: &str) -> bool {
    (field.starts_with("active_power") && field != "active_power_average_w")
        || field.starts_with("active_voltage")
        || field.starts_with("active_current")
        || field == "active_frequency_hz"
}

/// Collects readings for one publish interval: instantaneous values are averaged,
/// everything else is the latest.
#[derive(Debug, Default)]
pub struct Averager {
    bucket: Option<i64>,
    latest: Option<Snapshot>,
    sums: BTreeMap<String, (f64, u32)>,
}

impl Averager {
    /// Adds a reading; returns the previous interval's result when this reading starts
    /// a new interval (intervals are aligned to multiples of `secs`).
    pub fn add(&mut self, secs: i64, s: Snapshot) -> Option<Snapshot> {
        let b = s.ts.div_euclid(secs.max(1));
        let done = match self.bucket {
            Some(cur) if cur != b => self.take(),
            _ => None,
        };
        self.bucket = Some(b);
        for (k, v) in &s.reading {
            if let (true, Some(x)) = (is_averaged(k), v.as_f64()) {
                let e = self.sums.entry(k.clone()).or_insert((0.0, 0));
                e.0 += x;
                e.1 += 1;
            }
        }
        self.latest = Some(s);
        done
    }

    /// The interval so far, averaged; empties the collector.
    pub fn take(&mut self) -> Option<Snapshot> {
        let mut s = self.latest.take()?;
        for (k, (sum, n)) in std::mem::take(&mut self.sums) {
            let avg = (sum / f64::from(n) * 1000.0).round() / 1000.0;
            s.reading.insert(k, json!(avg));
        }
        self.bucket = None;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::from_frame(
            1_700_000_000,
            &json!({
                "meter": "E0012/x", "timestamp": "2023-11-14T22:13:20Z", "dialect": "dsmr5",
                "header": "/ISK5\\2M550T-1012",
                "reading": {
                    "total_power_import_kwh": 1234.567, "total_power_import_t1_kwh": 1000.5,
                    "total_power_import_t2_kwh": 234.067, "total_power_export_kwh": 10.0,
                    "total_power_export_t1_kwh": 4.0, "total_power_export_t2_kwh": 6.0,
                    "active_power_w": -360.0, "active_voltage_l1_v": 230.1,
                    "active_current_l1_a": 1.5, "active_power_l1_w": -360.0,
                    "total_gas_m3": 99.5, "gas_timestamp": "2023-11-14T22:10:00Z",
                    "external": [{"channel": 1, "type": "gas_meter", "unique_id": "G1",
                                  "value": 99.5, "unit": "m3", "timestamp": null}]
                }
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn formats_parse_from_comma_lists() {
        let f = Format::parse_list(&["meterkast,fields".into(), "evn".into()]).unwrap();
        assert_eq!(f, vec![Format::Meterkast, Format::Fields, Format::Evn]);
        assert!(Format::parse_list(&["xml".into()]).is_err());
    }

    #[test]
    fn state_holds_the_reading_and_time_on_a_safe_topic() {
        let m = state("mk", &snap());
        assert_eq!(m.topic, "mk/E0012_x/state");
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["total_power_import_kwh"], 1234.567);
        assert_eq!(v["external"][0]["value"], 99.5);
    }

    #[test]
    fn fields_are_one_plain_value_per_topic() {
        let f = fields("mk", &snap());
        let get = |t: &str| {
            f.iter()
                .find(|m| m.topic == t)
                .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        };
        assert_eq!(get("mk/E0012_x/active_power_w").as_deref(), Some("-360.0"));
        assert_eq!(
            get("mk/E0012_x/gas_timestamp").as_deref(),
            Some("2023-11-14T22:10:00Z")
        );
        assert_eq!(get("mk/E0012_x/external/1/value").as_deref(), Some("99.5"));
        assert_eq!(get("mk/E0012_x/external/1/timestamp"), None);
    }

    #[test]
    fn evn_json_has_the_decoder_keys_types_and_order() {
        let mut sn = snap();
        sn.reading
            .insert("active_power_factor".into(), json!(0.943));
        sn.reading
            .insert("active_voltage_l2_v".into(), json!(230.0));
        let m = evn(evn_topic("mk", None, &sn.meter), &sn);
        assert_eq!(m.topic, "mk/E0012_x/evn");
        let text = String::from_utf8(m.payload.clone()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["WIn"], json!({"value": 1234567, "unit": "Wh"}));
        assert!(v["WIn"]["value"].is_i64());
        assert_eq!(v["WOut"]["value"], 10000);
        assert!(v["PIn"]["value"].is_i64());
        assert_eq!(v["PIn"]["value"], 0);
        assert_eq!(v["POut"], json!({"value": 360, "unit": "W"}));
        assert_eq!(v["U1"], json!({"value": 230.1, "unit": "V"}));
        // A whole voltage stays a decimal, as the decoder's consumers expect.
        assert!(v["U2"]["value"].is_f64());
        assert!(
            text.contains(r#""U2":{"value":230.0,"unit":"V"}"#),
            "{text}"
        );
        assert_eq!(v["I1"], json!({"value": 1.5, "unit": "A"}));
        assert_eq!(v["PF"], json!({"value": 0.943, "unit": "1"}));
        assert_eq!(v["timestamp"], json!({"value": 1_700_000_000, "unit": "s"}));
        assert!(v.get("U3").is_none() && v.get("I2").is_none());
        let keys: Vec<usize> = [
            "WIn",
            "WOut",
            "PIn",
            "POut",
            "U1",
            "U2",
            "I1",
            "PF",
            "timestamp",
        ]
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "decoder order: {text}"
        );
    }

    #[test]
    fn the_evn_topic_can_be_the_decoders_own() {
        assert_eq!(
            evn_topic("mk", Some(EVN_DECODER_TOPIC), "E1"),
            "sensors/smartmeter/values"
        );
        assert_eq!(
            evn_topic("mk", Some("home/{meter}/values"), "a/b"),
            "home/a_b/values"
        );
        assert!(check_evn_topic("sensors/+/values").is_err());
        assert!(check_evn_topic("").is_err());
        assert!(check_evn_topic(EVN_DECODER_TOPIC).is_ok());
    }

    #[test]
    fn dsmr_reader_topics_use_its_names_and_units() {
        let f = dsmr_reader(&snap());
        let get = |t: &str| {
            f.iter()
                .find(|m| m.topic == format!("dsmr/reading/{t}"))
                .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        };
        assert_eq!(get("electricity_delivered_1").as_deref(), Some("1000.5"));
        assert_eq!(get("electricity_returned_2").as_deref(), Some("6"));
        assert_eq!(get("electricity_currently_delivered").as_deref(), Some("0"));
        assert_eq!(
            get("electricity_currently_returned").as_deref(),
            Some("0.36")
        );
        assert_eq!(get("phase_voltage_l1").as_deref(), Some("230.1"));
        assert_eq!(get("phase_power_current_l1").as_deref(), Some("1.5"));
        assert_eq!(get("extra_device_delivered").as_deref(), Some("99.5"));
        assert_eq!(get("timestamp").as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn the_interval_averages_power_and_keeps_the_latest_register() {
        let mut a = Averager::default();
        let mk = |ts: i64, p: f64, kwh: f64| {
            let mut s = snap();
            s.ts = ts;
            s.reading.insert("active_power_w".into(), json!(p));
            s.reading
                .insert("total_power_import_kwh".into(), json!(kwh));
            s
        };
        assert!(a.add(10, mk(100, 100.0, 1.0)).is_none());
        assert!(a.add(10, mk(105, 300.0, 2.0)).is_none());
        let out = a.add(10, mk(110, 1000.0, 3.0)).unwrap();
        assert_eq!(out.reading["active_power_w"], 200.0);
        assert_eq!(out.reading["total_power_import_kwh"], 2.0);
        assert_eq!(out.ts, 105);
        let last = a.take().unwrap();
        assert_eq!(last.reading["active_power_w"], 1000.0);
    }
}
