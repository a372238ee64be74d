//! Home Assistant MQTT discovery: one device per meter and one per sub-meter, with
//! entities whose `device_class`, `state_class` and unit the Energy dashboard accepts
//! as they are. Every entity reads the meter's JSON state topic.

use serde_json::{json, Value};

use super::payload::{state_topic, topic_level, Snapshot};
use super::queue::Msg;

/// What Home Assistant needs to know about one reading field.
struct Kind {
    device_class: Option<&'static str>,
    state_class: &'static str,
    unit: Option<&'static str>,
}

/// The entity kind of a normalized field, or `None` for fields not offered.
fn kind(field: &str) -> Option<Kind> {
    let k = |device_class, state_class, unit| {
        Some(Kind {
            device_class,
            state_class,
            unit,
        })
    };
    if field.starts_with("total_power_") && field.ends_with("_kwh") {
        k(Some("energy"), "total_increasing", Some("kWh"))
    } else if field == "total_gas_m3" {
        k(Some("gas"), "total_increasing", Some("m³"))
    } else if field.starts_with("active_power") && field.ends_with("_w")
        || field == "monthly_power_peak_w"
    {
        k(Some("power"), "measurement", Some("W"))
    } else if field.starts_with("active_voltage_") {
        k(Some("voltage"), "measurement", Some("V"))
    } else if field.starts_with("active_current_") {
        k(Some("current"), "measurement", Some("A"))
    } else if field == "active_frequency_hz" {
        k(Some("frequency"), "measurement", Some("Hz"))
    } else if field == "active_power_factor" {
        k(Some("power_factor"), "measurement", None)
    } else if field.ends_with("_count") {
        k(None, "total_increasing", None)
    } else {
        None
    }
}

/// A readable entity name from a field name (`active_voltage_l1_v` → `Active voltage l1`).
fn pretty(field: &str) -> String {
    let base = ["_kwh", "_w", "_v", "_a", "_hz", "_m3"]
        .iter()
        .find_map(|s| field.strip_suffix(s))
        .unwrap_or(field);
    let s = base.replace('_', " ");
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// An instance's availability topic, `{base}/{instance}/status` (`online`/`offline`,
/// retained; the last will says offline): each meterkast on a broker has its own.
pub fn status_topic(base: &str, instance: &str) -> String {
    format!("{base}/{instance}/status")
}

/// The availability topic all instances shared before they had their own; cleared on
/// start so that no stale retained `offline` stays behind.
pub fn shared_status_topic(base: &str) -> String {
    format!("{base}/status")
}

/// A topic-level-safe instance id from a name (a host name): ASCII letters and digits,
/// `-` and `_`; anything else becomes `_`; never empty.
pub fn instance_id(name: &str) -> String {
    let id: String = name
        .trim()
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    if id.is_empty() {
        "meterkast".into()
    } else {
        id
    }
}

/// A sub-meter kind's Home Assistant classes, by the unit it reports.
fn external_kind(kind: &str, unit: Option<&str>) -> Option<(Option<&'static str>, &'static str)> {
    let u = unit.unwrap_or("").to_ascii_lowercase();
    let (class, unit) = match (kind, u.as_str()) {
        ("gas_meter", _) => (Some("gas"), "m³"),
        ("water_meter" | "warm_water_meter", _) => (Some("water"), "m³"),
        (_, "gj") => (Some("energy"), "GJ"),
        (_, "kwh") => (Some("energy"), "kWh"),
        (_, "mwh") => (Some("energy"), "MWh"),
        (_, "m3") => (None, "m³"),
        _ => return None,
    };
    Some((class, unit))
}

/// The retained discovery configs for a meter's reading: one per offered field on the
/// meter's device, one per sub-meter on its own device (via the meter's); every entity's
/// availability follows `avail`, the publishing instance's status topic.
pub fn configs(prefix: &str, base: &str, avail: &str, s: &Snapshot) -> Vec<Msg> {
    let m = topic_level(&s.meter);
    let node = format!(
        "meterkast_{}",
        m.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let (manufacturer, model) = match s.header.as_deref() {
        Some(h) if h.len() > 4 && h.starts_with('/') => (
            h.get(1..4).unwrap_or("unknown").to_string(),
            h[1..].to_string(),
        ),
        _ => (
            "unknown".to_string(),
            s.dialect.clone().unwrap_or_else(|| "smart meter".into()),
        ),
    };
    let device = json!({
        "identifiers": [node],
        "name": format!("Meter {}", s.meter),
        "manufacturer": manufacturer,
        "model": model,
    });
    let state = state_topic(base, &s.meter);
    let mut out = Vec::new();
    let mut push = |object_id: String, cfg: Value| {
        out.push(Msg::new(
            format!("{prefix}/sensor/{node}/{object_id}/config"),
            cfg.to_string(),
            true,
        ));
    };
    let gas_submeter = s
        .reading
        .get("external")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x["type"] == "gas_meter"));
    for field in s.reading.keys() {
        let Some(k) = kind(field) else { continue };
        if field == "total_gas_m3" && gas_submeter {
            // The gas meter is its own device; one entity for it is enough.
            continue;
        }
        let mut c = json!({
            "name": pretty(field),
            "unique_id": format!("{node}_{field}"),
            "has_entity_name": true,
            "state_topic": state,
            "value_template": format!("{{{{ value_json.{field} }}}}"),
            "state_class": k.state_class,
            "availability_topic": avail,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        });
        if let Some(d) = k.device_class {
            c["device_class"] = json!(d);
        }
        if let Some(u) = k.unit {
            c["unit_of_measurement"] = json!(u);
        }
        push(field.clone(), c);
    }
    for x in s
        .reading
        .get("external")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(ch), Some(xk)) = (
            x.get("channel").and_then(Value::as_u64),
            x.get("type").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some((class, unit)) = external_kind(xk, x.get("unit").and_then(Value::as_str)) else {
            continue;
        };
        let sub_id = x
            .get("unique_id")
            .and_then(Value::as_str)
            .map(|u| u.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
            .unwrap_or_else(|| format!("{node}_ch{ch}"));
        let sub_node = format!("meterkast_{sub_id}");
        let mut c = json!({
            "name": pretty(xk),
            "unique_id": format!("{sub_node}_{xk}"),
            "has_entity_name": true,
            "state_topic": state,
            "value_template": format!(
                "{{{{ (value_json.external | selectattr('channel', 'equalto', {ch}) | first).value }}}}"
            ),
            "state_class": "total_increasing",
            "unit_of_measurement": unit,
            "availability_topic": avail,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [sub_node],
                "name": format!("{} {}", pretty(xk), x.get("unique_id").and_then(Value::as_str).unwrap_or(&s.meter)),
                "manufacturer": manufacturer,
                "model": xk,
                "via_device": node,
            },
        });
        if let Some(d) = class {
            c["device_class"] = json!(d);
        }
        push(format!("external_{ch}"), c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::from_frame(
            1,
            &json!({"meter": "E1", "timestamp": "t", "header": "/ISK5\\2M550T-1012",
                "reading": {"total_power_import_kwh": 1.0, "active_power_w": 2.0,
                    "active_voltage_l1_v": 230.0, "active_current_l1_a": 1.0,
                    "total_gas_m3": 3.0, "active_tariff": 2,
                    "external": [{"channel": 1, "type": "gas_meter", "unique_id": "G9", "value": 3.0, "unit": "m3"}]}})
            .to_string(),
        )
        .unwrap()
    }

    fn find<'a>(c: &'a [Value], id: &str) -> &'a Value {
        c.iter()
            .find(|v| v["unique_id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))
    }

    #[test]
    fn instance_ids_are_single_topic_levels() {
        assert_eq!(instance_id("Pi-Meterkast.local"), "Pi-Meterkast_local");
        assert_eq!(instance_id(" a/b+#c "), "a_b__c");
        assert_eq!(instance_id(""), "meterkast");
        assert_eq!(instance_id("box_1"), "box_1");
    }

    #[test]
    fn every_config_is_valid_json_with_the_required_keys() {
        let msgs = configs(
            "homeassistant",
            "meterkast",
            &status_topic("meterkast", "box1"),
            &snap(),
        );
        let c: Vec<Value> = msgs
            .iter()
            .map(|m| {
                assert!(m.retain);
                assert!(m.topic.starts_with("homeassistant/sensor/meterkast_E1/"));
                assert!(m.topic.ends_with("/config"));
                serde_json::from_slice(&m.payload).unwrap()
            })
            .collect();
        // Tariff is not offered, gas only on the sub-meter's device.
        assert_eq!(c.len(), 5);
        for v in &c {
            for k in [
                "name",
                "unique_id",
                "state_topic",
                "state_class",
                "availability_topic",
                "value_template",
            ] {
                assert!(v.get(k).is_some(), "{k} missing in {v}");
            }
            for k in ["identifiers", "name", "manufacturer", "model"] {
                assert!(v["device"].get(k).is_some(), "device.{k} missing in {v}");
            }
            assert_eq!(v["state_topic"], "meterkast/E1/state");
            assert_eq!(v["availability_topic"], "meterkast/box1/status");
        }
        let e = find(&c, "meterkast_E1_total_power_import_kwh");
        assert_eq!(e["device_class"], "energy");
        assert_eq!(e["state_class"], "total_increasing");
        assert_eq!(e["unit_of_measurement"], "kWh");
        assert_eq!(e["device"]["manufacturer"], "ISK");
        let p = find(&c, "meterkast_E1_active_power_w");
        assert_eq!(
            (
                &p["device_class"],
                &p["state_class"],
                &p["unit_of_measurement"]
            ),
            (&json!("power"), &json!("measurement"), &json!("W"))
        );
        assert_eq!(
            find(&c, "meterkast_E1_active_voltage_l1_v")["unit_of_measurement"],
            "V"
        );
        assert_eq!(
            find(&c, "meterkast_E1_active_current_l1_a")["device_class"],
            "current"
        );
        let sub = find(&c, "meterkast_G9_gas_meter");
        assert_eq!(sub["device"]["identifiers"][0], "meterkast_G9");
        assert_eq!(sub["device"]["via_device"], "meterkast_E1");
        assert_eq!(sub["state_class"], "total_increasing");
        assert_eq!(
            (&sub["device_class"], &sub["unit_of_measurement"]),
            (&json!("gas"), &json!("m³"))
        );
        assert!(sub["value_template"]
            .as_str()
            .unwrap()
            .contains("'equalto', 1"));
    }
}
