//! Every DSMR telegram in the conformance corpus decodes to exactly the values its
//! publisher asserts, through the public stream decoder and the JSON output shape.

mod common;

use common::{manifest, matches, parse_rfc3339};
use meterkast_codec::{Decoder, ObjectMap, Reading};
use serde_json::{json, Value as J};

/// One accepted frame: its objects as JSON, its reading, its own time.
type Accepted = (J, Reading, Option<String>);

/// Decodes a file and returns the accepted frames and the rejection causes.
fn decode(bytes: &[u8]) -> (Vec<Accepted>, Vec<&'static str>) {
    let mut d = Decoder::new();
    d.push(bytes);
    // A telegram is complete at its line end; nothing more arrives.
    let mut ok = vec![];
    let mut bad = vec![];
    while let Some(ev) = d.next() {
        match ev {
            Ok(f) => ok.push((
                serde_json::to_value(ObjectMap(&f.telegram.objects)).unwrap(),
                Reading::from_telegram(&f.telegram),
                f.telegram.timestamp.map(|t| t.to_string()),
            )),
            Err(r) => bad.push(r.cause),
        }
    }
    (ok, bad)
}

fn check_entry(file: &str, key: &str, ours: &J, exp: &J, errors: &mut Vec<String>) {
    if let Some(e) = exp.get("value") {
        let o = ours.get("value").unwrap_or(&J::Null);
        if !matches(o, e) {
            errors.push(format!("{file} {key}: value {o} != asserted {e}"));
        }
    }
    if let Some(u) = exp.get("unit") {
        let o = ours.get("unit").unwrap_or(&J::Null);
        // A value without a unit asserts nothing about one when we print none.
        if !(u.is_null() && o.is_null()) && o != u {
            errors.push(format!("{file} {key}: unit {o} != asserted {u}"));
        }
    }
    for (ek, ok) in [("datetime", "timestamp"), ("occurred", "timestamp")] {
        if let Some(e) = exp.get(ek) {
            if ek == "datetime" && key.contains('[') {
                continue;
            }
            let o = ours.get(ok).unwrap_or(&J::Null);
            if !matches(o, e) {
                errors.push(format!("{file} {key}: {ek} {o} != asserted {e}"));
            }
        }
    }
}

#[test]
fn every_plaintext_telegram_decodes_to_the_asserted_values() {
    let m = manifest("dsmr");
    let mut errors = vec![];
    let mut checked = 0;
    for v in m["vectors"].as_array().unwrap() {
        let file = v["file"].as_str().unwrap();
        if !file.ends_with(".txt") {
            continue;
        }
        let bytes = std::fs::read(common::corpus().join("dsmr").join(file)).unwrap();
        let (ok, bad) = decode(&bytes);
        if v["crc"]["present"] == json!(true) && v["crc"]["valid"] == json!(false) {
            assert!(
                ok.is_empty(),
                "{file}: a telegram with a wrong CRC was output"
            );
            assert_eq!(bad, vec!["checksum"], "{file}");
            continue;
        }
        assert_eq!(
            ok.len(),
            1,
            "{file}: expected one telegram, rejections {bad:?}"
        );
        assert!(bad.is_empty(), "{file}: {bad:?}");
        let (objects, _reading, timestamp) = &ok[0];
        for (key, exp) in v["expected"].as_object().unwrap() {
            checked += 1;
            if key == "0-0:1.0.0" {
                let e = exp["value"].as_str().unwrap();
                assert_eq!(
                    timestamp.as_deref().map(parse_rfc3339),
                    Some(parse_rfc3339(e)),
                    "{file}"
                );
            }
            if let Some((base, idx)) = key.strip_suffix(']').and_then(|k| k.split_once('[')) {
                let i: usize = idx.parse().unwrap();
                let entry = &objects[base]["entries"][i];
                check_entry(file, key, entry, exp, &mut errors);
                for (ek, ok_key) in [("datetime", "period"), ("occurred", "timestamp")] {
                    if let Some(e) = exp.get(ek) {
                        if !matches(&entry[ok_key], e) {
                            errors.push(format!(
                                "{file} {key}: {ok_key} {} != asserted {e}",
                                entry[ok_key]
                            ));
                        }
                    }
                }
                continue;
            }
            let Some(ours) = objects.get(key) else {
                errors.push(format!("{file} {key}: missing"));
                continue;
            };
            if let Some(buf) = exp.get("buffer") {
                let entries = ours["entries"].as_array().cloned().unwrap_or_default();
                assert_eq!(entries.len(), buf.as_array().unwrap().len(), "{file} {key}");
                for (o, e) in entries.iter().zip(buf.as_array().unwrap()) {
                    check_entry(file, key, o, e, &mut errors);
                }
                continue;
            }
            check_entry(file, key, ours, exp, &mut errors);
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(checked >= 250, "only {checked} asserted values checked");
}

#[test]
fn the_readings_of_known_telegrams() {
    let read = |f: &str| {
        let (ok, bad) = decode(&std::fs::read(common::corpus().join("dsmr").join(f)).unwrap());
        assert!(bad.is_empty(), "{f}: {bad:?}");
        ok.into_iter().next().unwrap().1
    };
    let r = read("dsmr_parser_v5.txt");
    assert_eq!(r.total_power_import_kwh, Some(6.825));
    assert_eq!(r.total_power_export_kwh, Some(2.444));
    assert_eq!(r.active_power_w, Some(244.0));
    assert_eq!(r.active_power_l3_w, Some(142.0));
    assert_eq!(r.active_voltage_l3_v, Some(229.0));
    assert_eq!(r.active_tariff, Some(2));
    assert_eq!(r.total_gas_m3, Some(0.107));
    assert_eq!(r.gas_timestamp.unwrap().to_string(), "2017-01-02T15:10:05Z");

    let r = read("dsmr_parser_fluvius_v171.txt");
    assert_eq!(r.active_power_average_w, Some(2351.0));
    assert_eq!(r.monthly_power_peak_w, Some(2589.0));
    assert_eq!(
        r.monthly_power_peak_timestamp.unwrap().to_string(),
        "2020-05-09T11:45:58Z"
    );
    assert_eq!(r.external.len(), 2);
    assert_eq!(
        (r.external[0].kind, r.external[0].value),
        ("gas_meter", Some(112.384))
    );
    assert_eq!(
        (r.external[1].kind, r.external[1].value),
        ("water_meter", Some(872.234))
    );

    let r = read("sagemcom_t210_d_r_steiermark_plain.txt");
    assert_eq!(r.total_power_import_kwh, Some(7112.944));
    assert_eq!(r.active_power_w, Some(8.0));

    let r = read("dsmr_parser_v5_unpadded_crc_warmtelink.txt");
    assert_eq!(r.external[0].kind, "heat_meter");
    assert_eq!(r.external[0].unit.as_deref(), Some("GJ"));

    let r = read("dsmr_parser_q3d_esy5q3db1024_v304.txt");
    assert_eq!(r.active_power_w, Some(2124.86));
    assert_eq!(r.total_power_import_kwh, Some(52185.7825309));
}

#[test]
fn every_plaintext_telegram_is_recognised() {
    let m = manifest("dsmr");
    let mut seen = vec![];
    for v in m["vectors"].as_array().unwrap() {
        let file = v["file"].as_str().unwrap();
        if !file.ends_with(".txt") || v["crc"]["valid"] == json!(false) {
            continue;
        }
        let mut d = Decoder::new();
        d.push(&std::fs::read(common::corpus().join("dsmr").join(file)).unwrap());
        let f = d.next().unwrap().unwrap();
        seen.push((file.to_string(), f.telegram.dialect.as_str()));
    }
    let dialect = |f: &str| seen.iter().find(|(n, _)| n == f).unwrap().1;
    assert_eq!(dialect("dsmr_parser_v2_2.txt"), "dsmr-2.2");
    assert_eq!(dialect("dsmr_parser_v3.txt"), "dsmr-3.0");
    assert_eq!(dialect("dsmr_parser_v4_2.txt"), "dsmr-4.2");
    assert_eq!(dialect("dsmr_parser_v5.txt"), "dsmr-5.0");
    assert_eq!(dialect("dsmr_parser_fluvius_v171.txt"), "fluvius-emucs");
    assert_eq!(dialect("luxembourg_smarty_plain.txt"), "smarty");
    assert_eq!(dialect("sagemcom_t210_d_r_steiermark_plain.txt"), "at-p1");
    assert_eq!(dialect("dsmr_parser_v5_eon_hu.txt"), "eon-hu");
    assert_eq!(dialect("dsmr_parser_iskra_ie.txt"), "iskra-ie");
    assert_eq!(
        dialect("dsmr_parser_q3d_esy5q3da1004_v304.txt"),
        "easymeter-q3d"
    );
}
