//! The HomeWizard P1 local API v1 over real HTTP: `/api` and `/api/v1/data` carry the
//! same values as `/api/v1/now` in HomeWizard's names, units and timestamp numbers; the
//! real client library Home Assistant uses reads them; auth exempts them unless told;
//! mDNS advertises `_hwenergy._tcp` with the dongle's TXT records.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use meterkast_codec::crc::crc16_arc;
use serde_json::Value as J;
use support::*;

/// A Belgian (Fluvius e-MUCS) telegram: two tariffs, exporting 120 W on one phase,
/// capacity-tariff registers, gas on channel 1 and water on channel 2; no sag/swell
/// counters, no phases 2 and 3.
fn fluvius() -> Vec<u8> {
    let body = [
        "/FLU5\\253770234_A",
        "",
        "0-0:96.1.4(50217)",
        "0-0:96.1.1(3153414733313031303231363035)",
        "0-0:1.0.0(200512135409S)",
        "1-0:1.8.1(000000.034*kWh)",
        "1-0:1.8.2(000015.758*kWh)",
        "1-0:2.8.1(000000.000*kWh)",
        "1-0:2.8.2(000000.011*kWh)",
        "1-0:1.4.0(02.351*kW)",
        "1-0:1.6.0(200509134558S)(02.589*kW)",
        "0-0:96.14.0(0001)",
        "1-0:1.7.0(00.000*kW)",
        "1-0:2.7.0(00.120*kW)",
        "1-0:21.7.0(00.000*kW)",
        "1-0:22.7.0(00.120*kW)",
        "1-0:32.7.0(234.7*V)",
        "1-0:31.7.0(001.25*A)",
        "0-0:96.3.10(1)",
        "0-0:17.0.0(999.9*kW)",
        "1-0:31.4.0(999*A)",
        "0-0:96.13.0()",
        "0-1:24.1.0(003)",
        "0-1:96.1.1(37464C4F32313139303333373333)",
        "0-1:24.4.0(1)",
        "0-1:24.2.3(200512134558S)(00112.384*m3)",
        "0-2:24.1.0(007)",
        "0-2:96.1.1(3853414731323334353637383930)",
        "0-2:24.2.1(200512134558S)(00872.234*m3)",
        "!",
    ]
    .join("\r\n");
    let mut v = body.into_bytes();
    v.extend_from_slice(format!("{:04X}\r\n", crc16_arc(&v)).as_bytes());
    v
}

/// Starts a daemon replaying one file, without mDNS unless `env` says otherwise, and
/// waits until its reading is served.
fn start(dir: &Path, telegrams: &[u8], env: &[(&str, &str)]) -> (Daemon, PathBuf) {
    let file = dir.join("capture.txt");
    std::fs::write(&file, telegrams).unwrap();
    let mut e = vec![("MK_NO_MDNS", "true")];
    e.extend_from_slice(env);
    let d = Daemon::start(dir, &[format!("file://{}?speed=max", file.display())], &e);
    wait_for("a reading", 20, || {
        d.json("/api/v1/now")
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    (d, file)
}

#[test]
fn data_has_homewizard_names_units_and_timestamps() {
    let dir = tmpdir("hw-data");
    let (d, file) = start(&dir, &fluvius(), &[]);
    let now = d.json("/api/v1/now");
    let r = &now[0]["reading"];
    let data = d.json("/api/v1/data");

    assert_eq!(data["smr_version"], 50);
    assert_eq!(data["meter_model"], "FLU5\\253770234_A");
    assert_eq!(data["unique_id"], "3153414733313031303231363035");
    assert_eq!(data["active_tariff"], 1);
    for k in [
        "total_power_import_kwh",
        "total_power_import_t1_kwh",
        "total_power_import_t2_kwh",
        "total_power_export_kwh",
        "total_power_export_t1_kwh",
        "total_power_export_t2_kwh",
        "active_power_w",
        "active_power_l1_w",
        "active_voltage_l1_v",
        "active_current_l1_a",
        "active_power_average_w",
        "total_gas_m3",
    ] {
        assert_eq!(
            data[k].as_f64(),
            r[k].as_f64(),
            "{k}: /api/v1/data {data} vs /api/v1/now {r}"
        );
    }
    assert_eq!(data["total_power_import_kwh"], 15.792);
    assert_eq!(data["active_power_w"], -120, "whole watts as integers");
    assert_eq!(data["montly_power_peak_w"], 2589, "HomeWizard's spelling");
    assert_eq!(
        data["montly_power_peak_w"].as_f64(),
        r["monthly_power_peak_w"].as_f64()
    );
    // Timestamps: numbers YYMMDDhhmmss in local (CEST) time, as the meter sent them.
    assert_eq!(data["montly_power_peak_timestamp"], 200509134558u64);
    assert_eq!(data["gas_timestamp"], 200512134558u64);
    assert_eq!(data["gas_unique_id"], "37464C4F32313139303333373333");
    let ext = data["external"].as_array().unwrap();
    assert_eq!(ext.len(), 2);
    assert_eq!(
        ext[0],
        serde_json::json!({"unique_id": "37464C4F32313139303333373333", "type": "gas_meter",
            "timestamp": 200512134558u64, "value": 112.384, "unit": "m3"})
    );
    assert_eq!(ext[1]["type"], "water_meter");
    assert_eq!(ext[1]["value"], 872.234);
    // What the meter does not send is absent, not null; no meterkast-only names leak.
    for k in [
        "voltage_sag_l1_count",
        "voltage_swell_l1_count",
        "any_power_fail_count",
        "long_power_fail_count",
        "active_power_l2_w",
        "active_voltage_l3_v",
        "active_current_l2_a",
        "total_power_import_t3_kwh",
        "monthly_power_peak_w",
        "monthly_power_peak_timestamp",
    ] {
        assert!(data.get(k).is_none(), "{k} should be absent: {data}");
    }
    assert!(data.as_object().unwrap().values().all(|v| !v.is_null()));

    let dev = d.json("/api");
    assert_eq!(dev["product_type"], "HWE-P1");
    assert_eq!(dev["product_name"], "P1 Meter");
    assert_eq!(dev["api_version"], "v1");
    assert_eq!(dev["firmware_version"], env!("CARGO_PKG_VERSION"));
    let serial = dev["serial"].as_str().unwrap();
    assert_eq!(serial.len(), 12);
    assert!(serial.bytes().all(|b| b.is_ascii_hexdigit()));

    // The raw telegram, byte for byte.
    let (status, raw) = get_with(d.port, "/api/v1/telegram", &[]);
    assert_eq!(status, 200);
    assert_eq!(raw.as_bytes(), std::fs::read(&file).unwrap());
    d.stop();

    // The serial is stable across restarts (clients key the device on it).
    let (d, _) = start(&dir, &fluvius(), &[]);
    assert_eq!(d.json("/api")["serial"], serial);
    d.stop();
}

#[test]
fn dsmr5_phases_sags_and_currents_are_mapped() {
    let dir = tmpdir("hw-dsmr5");
    let body = [
        "/ISK5\\2M550T-1012",
        "",
        "1-3:0.2.8(50)",
        "0-0:1.0.0(260115101500W)",
        "0-0:96.1.1(4530303435303034303031363930323137)",
        "1-0:1.8.1(001234.567*kWh)",
        "1-0:1.8.2(002345.678*kWh)",
        "1-0:2.8.1(000012.345*kWh)",
        "1-0:2.8.2(000023.456*kWh)",
        "0-0:96.14.0(0002)",
        "1-0:1.7.0(01.500*kW)",
        "1-0:2.7.0(00.000*kW)",
        "0-0:96.7.21(00012)",
        "0-0:96.7.9(00003)",
        "1-0:99.97.0(0)(0-0:96.7.19)",
        "1-0:32.32.0(00004)",
        "1-0:52.32.0(00005)",
        "1-0:72.32.0(00006)",
        "1-0:32.36.0(00001)",
        "1-0:52.36.0(00000)",
        "1-0:72.36.0(00002)",
        "0-0:96.13.0()",
        "1-0:32.7.0(230.1*V)",
        "1-0:52.7.0(231.2*V)",
        "1-0:72.7.0(232.3*V)",
        "1-0:31.7.0(003*A)",
        "1-0:51.7.0(002*A)",
        "1-0:71.7.0(001*A)",
        "1-0:21.7.0(00.700*kW)",
        "1-0:41.7.0(00.500*kW)",
        "1-0:61.7.0(00.300*kW)",
        "1-0:22.7.0(00.000*kW)",
        "1-0:42.7.0(00.000*kW)",
        "1-0:62.7.0(00.000*kW)",
        "0-1:24.1.0(003)",
        "0-1:96.1.0(4730303332353631323831373930313137)",
        "0-1:24.2.1(260115101000W)(01234.567*m3)",
        "!",
    ]
    .join("\r\n");
    let mut t = body.into_bytes();
    t.extend_from_slice(format!("{:04X}\r\n", crc16_arc(&t)).as_bytes());
    let (d, _) = start(&dir, &t, &[]);
    let r = d.json("/api/v1/now")[0]["reading"].clone();
    let data = d.json("/api/v1/data");
    assert_eq!(data["smr_version"], 50);
    assert_eq!(data["meter_model"], "ISK5\\2M550T-1012");
    assert_eq!(data["active_tariff"], 2);
    assert_eq!(data["active_power_w"], 1500);
    for (k, v) in [
        ("voltage_sag_l1_count", 4),
        ("voltage_sag_l2_count", 5),
        ("voltage_sag_l3_count", 6),
        ("voltage_swell_l1_count", 1),
        ("voltage_swell_l2_count", 0),
        ("voltage_swell_l3_count", 2),
        ("any_power_fail_count", 12),
        ("long_power_fail_count", 3),
    ] {
        assert_eq!(data[k], v, "{k}: {data}");
        assert_eq!(data[k], r[k], "{k} equals /api/v1/now");
    }
    for k in [
        "active_power_l1_w",
        "active_power_l2_w",
        "active_power_l3_w",
        "active_voltage_l1_v",
        "active_voltage_l2_v",
        "active_voltage_l3_v",
        "active_current_l1_a",
        "active_current_l2_a",
        "active_current_l3_a",
        "total_power_import_t1_kwh",
        "total_power_export_t2_kwh",
        "total_gas_m3",
    ] {
        assert_eq!(data[k].as_f64(), r[k].as_f64(), "{k}");
        assert!(data[k].is_number(), "{k}: {data}");
    }
    // Winter time: 10:10:00 CET as sent.
    assert_eq!(data["gas_timestamp"], 260115101000u64);
    assert!(data.get("active_power_average_w").is_none());
    assert!(data.get("montly_power_peak_w").is_none());
    d.stop();
}

/// A request with a JSON body; the status and the answer as JSON.
fn send(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, J) {
    let (status, head, b) = request(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    );
    assert!(head.contains("application/json"), "{method} {path}: {head}");
    let j = serde_json::from_slice(&b)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", String::from_utf8_lossy(&b)));
    (status, j)
}

/// The dongle's error shape, `{"error": {"id", "description"}}`: its id.
fn error_id(j: &J) -> u64 {
    assert!(
        j["error"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "no description: {j}"
    );
    j["error"]["id"].as_u64().expect("an error id")
}

#[test]
fn data_names_the_hosts_wifi_as_the_dongle_does() {
    let dir = tmpdir("hw-wifi");
    let (d, _) = start(&dir, &fluvius(), &[]);
    let data = d.json("/api/v1/data");
    let ssid = data["wifi_ssid"].as_str().expect("wifi_ssid, a string");
    assert!(!ssid.is_empty());
    let strength = data["wifi_strength"]
        .as_u64()
        .expect("wifi_strength, a number");
    assert!(strength <= 100, "{strength}");
    // A host without a wireless interface reports the documented fixed values.
    let wireless = std::fs::read_to_string("/proc/net/wireless").unwrap_or_default();
    if wireless.lines().skip(2).all(|l| l.trim().is_empty()) {
        assert_eq!((ssid, strength), ("wired", 100));
    }
    d.stop();
}

#[test]
fn system_and_identify_answer_as_the_dongle_does() {
    let dir = tmpdir("hw-system");
    let (d, _) = start(&dir, &fluvius(), &[]);
    assert_eq!(
        send(d.port, "GET", "/api/v1/system", b""),
        (200, serde_json::json!({"cloud_enabled": false}))
    );
    assert_eq!(
        send(
            d.port,
            "PUT",
            "/api/v1/system",
            br#"{"cloud_enabled": false}"#
        ),
        (200, serde_json::json!({"cloud_enabled": false}))
    );
    // Turning the cloud on is a setting the device refuses (id 8), not a missing page.
    let (status, j) = send(
        d.port,
        "PUT",
        "/api/v1/system",
        br#"{"cloud_enabled": true}"#,
    );
    assert_eq!((status, error_id(&j)), (400, 8), "{j}");
    // Bad input: wrong type, unknown setting, garbage, truncation, not an object, huge.
    for (body, id) in [
        (&br#"{"cloud_enabled": "yes"}"#[..], 7),
        (br#"{"status_led_brightness_pct": 50}"#, 8),
        (b"\x00\xffgarbage", 2),
        (br#"{"cloud_enabled": fal"#, 2),
        (b"[true]", 2),
        (b"", 2),
    ] {
        let (status, j) = send(d.port, "PUT", "/api/v1/system", body);
        assert_eq!(
            (status, error_id(&j)),
            (400, id),
            "{}: {j}",
            String::from_utf8_lossy(body)
        );
    }
    let huge = format!(
        r#"{{"cloud_enabled": false, "x": "{}"}}"#,
        "a".repeat(1 << 20)
    );
    let (status, j) = send(d.port, "PUT", "/api/v1/system", huge.as_bytes());
    assert_eq!((status, error_id(&j)), (413, 201), "{j}");

    // Identify: 200 as the dongle answers, a line in the log, an event on the live stream.
    let mut live = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(live, "GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The stream's headers first, so that the subscription exists before the request.
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = live.read(&mut buf).unwrap();
        assert!(n > 0, "the live stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        send(d.port, "PUT", "/api/v1/identify", b""),
        (200, serde_json::json!({"identify": "ok"}))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("event: identify") {
        assert!(
            Instant::now() < deadline,
            "no identify event: {}",
            String::from_utf8_lossy(&seen)
        );
        let n = live.read(&mut buf).unwrap();
        assert!(n > 0, "the live stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    // A flood of identify requests is answered, and logged once, not once each.
    for _ in 0..50 {
        assert_eq!(send(d.port, "PUT", "/api/v1/identify", b"").0, 200);
    }
    assert_eq!(get_with(d.port, "/api/v1/identify", &[]).0, 405);
    let log = std::fs::read_to_string(dir.join(format!("daemon-{}.log", d.port))).unwrap();
    let lines = log.matches("HomeWizard identify").count();
    assert!((1..=2).contains(&lines), "{lines} identify lines:\n{log}");
    d.stop();
}

#[test]
fn homewizard_endpoints_skip_auth_unless_told() {
    let dir = tmpdir("hw-auth");
    let token = [("MK_AUTH_TOKEN", "s3cret")];
    let (d, _) = start(&dir, &fluvius(), &[]);
    d.stop();
    // (The reading is stored now; the next daemons serve it from the store.)
    let src = format!("tcp://127.0.0.1:{}", free_port());
    let mut env = vec![("MK_NO_MDNS", "1")];
    env.extend_from_slice(&token);
    let d = Daemon::start(&dir, std::slice::from_ref(&src), &env);
    for p in ["/api", "/api/v1/data", "/api/v1/telegram", "/api/v1/system"] {
        assert_eq!(get_with(d.port, p, &[]).0, 200, "{p} without credentials");
    }
    assert_eq!(get_with(d.port, "/api/v1/now", &[]).0, 401);
    assert_eq!(get_with(d.port, "/api/v1/meters", &[]).0, 401);
    d.stop();

    env.push(("MK_HOMEWIZARD_AUTH", "true"));
    let d = Daemon::start(&dir, &[src], &env);
    for p in ["/api", "/api/v1/data", "/api/v1/telegram", "/api/v1/system"] {
        assert_eq!(
            get_with(d.port, p, &[]).0,
            401,
            "{p} with --homewizard-auth"
        );
        let ok = get_with(d.port, p, &[("Authorization", "Bearer s3cret")]);
        assert_eq!(ok.0, 200, "{p} with the token");
    }
    d.stop();
}

#[test]
fn homewizard_meter_picks_the_meter() {
    let dir = tmpdir("hw-pick");
    let t = 1_767_225_600;
    let mut both = telegram("AAA1", t, 1_000_000);
    both.extend(telegram("BBB2", t + 10, 2_000_000));
    let (d, _) = start(&dir, &both, &[]);
    wait_for("two meters", 20, || {
        d.json("/api/v1/now")
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    // The most recent one by default.
    assert_eq!(d.json("/api/v1/data")["total_power_import_kwh"], 2000.0);
    d.stop();
    let src = format!("tcp://127.0.0.1:{}", free_port());
    let d = Daemon::start(
        &dir,
        &[src],
        &[("MK_NO_MDNS", "1"), ("MK_HOMEWIZARD_METER", "41414131")],
    );
    assert_eq!(d.json("/api/v1/data")["total_power_import_kwh"], 1000.0);
    d.stop();
}

/// The newest python-homewizard-energy (the library Home Assistant's HomeWizard
/// integration uses) on Python 3.13 from pyenv, made once under `target/hw313-venv`.
fn venv() -> PathBuf {
    python_venv_with(
        &pyenv_python("3.13"),
        "hw313-venv",
        "python-homewizard-energy",
        HW_CLIENT_VERSION,
        "homewizard_energy",
    )
}

/// The client library's version under test.
const HW_CLIENT_VERSION: &str = "10.2.0";

const CLIENT: &str = r#"
import asyncio, dataclasses, json, sys
from enum import Enum
from homewizard_energy import HomeWizardEnergyV1
from homewizard_energy.errors import RequestError

def plain(o):
    if isinstance(o, Enum):
        return o.name
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)

async def main():
    async with HomeWizardEnergyV1(sys.argv[1]) as api:
        device = await api.device()
        data = await api.measurement()
        system = await api.system()
        off = await api.system(cloud_enabled=False)
        try:
            await api.system(cloud_enabled=True)
            refused = None
        except RequestError as e:
            refused = str(e)
        identified = await api.identify()
        combined = await api.combined()
    print(json.dumps({
        "device": dataclasses.asdict(device),
        "data": dataclasses.asdict(data),
        "system": dataclasses.asdict(system),
        "system_off": dataclasses.asdict(off),
        "cloud_on_refused": refused,
        "identified": identified,
        "combined_system": dataclasses.asdict(combined.system),
    }, default=plain))

asyncio.run(main())
"#;

#[test]
#[ignore = "installs python-homewizard-energy from PyPI on pyenv's Python 3.13; .ci/run runs it"]
fn the_home_assistant_client_library_reads_the_same_values() {
    let py = venv();
    let dir = tmpdir("hw-python");
    let (d, _) = start(&dir, &fluvius(), &[]);
    let out = Command::new(&py)
        .arg("-c")
        .arg(CLIENT)
        .arg(format!("127.0.0.1:{}", d.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: J = serde_json::from_slice(&out.stdout).unwrap();
    let r = d.json("/api/v1/now")[0]["reading"].clone();
    let dev = &got["device"];
    assert_eq!(dev["product_type"], "HWE-P1");
    // The library reads our "v1" as version 1.
    assert!(
        dev["api_version"]
            .as_str()
            .is_some_and(|v| v.starts_with('1')),
        "{dev}"
    );
    assert_eq!(dev["serial"], d.json("/api")["serial"]);
    let data = &got["data"];
    // The library's own names on the left, meterkast's on the right. The library maps
    // these only when `wifi_ssid` is present (it takes a v1 answer for v2 otherwise).
    for (lib, ours) in [
        ("energy_import_kwh", "total_power_import_kwh"),
        ("energy_import_t1_kwh", "total_power_import_t1_kwh"),
        ("energy_import_t2_kwh", "total_power_import_t2_kwh"),
        ("energy_export_kwh", "total_power_export_kwh"),
        ("energy_export_t1_kwh", "total_power_export_t1_kwh"),
        ("energy_export_t2_kwh", "total_power_export_t2_kwh"),
        ("power_w", "active_power_w"),
        ("power_l1_w", "active_power_l1_w"),
        ("voltage_l1_v", "active_voltage_l1_v"),
        ("current_l1_a", "active_current_l1_a"),
        ("average_power_15m_w", "active_power_average_w"),
        ("monthly_power_peak_w", "monthly_power_peak_w"),
        ("tariff", "active_tariff"),
    ] {
        assert!(!data[lib].is_null(), "{lib} not mapped: {data}");
        assert_eq!(
            data[lib].as_f64(),
            r[ours].as_f64(),
            "{lib} vs {ours}: {data}"
        );
    }
    assert_eq!(data["protocol_version"], 50);
    assert_eq!(data["meter_model"], "FLU5\\253770234_A");
    // The library decodes the hex equipment ids to text.
    assert_eq!(data["unique_id"], "1SAG3101021605");
    // Local (CEST) wall-clock times, as the meter shows them.
    assert_eq!(data["monthly_power_peak_timestamp"], "2020-05-09T13:45:58");
    let ext = data["external_devices"].as_object().unwrap();
    assert_eq!(ext.len(), 2, "{ext:?}");
    let gas = ext
        .values()
        .find(|e| e["unique_id"] == "7FLO2119033733")
        .expect("the gas meter");
    assert_eq!(gas["type"], "gas_meter");
    assert_eq!(gas["value"], r["external"][0]["value"]);
    assert_eq!(gas["unit"], "m3");
    assert_eq!(gas["timestamp"], "2020-05-12T13:45:58");
    let water = ext
        .values()
        .find(|e| e["unique_id"] == "8SAG1234567890")
        .expect("the water meter");
    assert_eq!(water["value"], 872.234);
    // Absent stays absent (None), never a made-up zero.
    assert!(data["voltage_sag_l1_count"].is_null());
    assert!(data["power_l2_w"].is_null());
    // The host's Wi-Fi, as the dongle's own: the name and a percentage.
    let wifi = d.json("/api/v1/data");
    assert_eq!(data["wifi_ssid"], wifi["wifi_ssid"]);
    assert_eq!(data["wifi_strength"], wifi["wifi_strength"]);
    assert_eq!(got["combined_system"]["wifi_ssid"], wifi["wifi_ssid"]);
    // Cloud: off, may be set off, refused on; identify answers.
    assert_eq!(got["system"]["cloud_enabled"], false);
    assert_eq!(got["system_off"]["cloud_enabled"], false);
    let refused = got["cloud_on_refused"].as_str().expect("cloud on refused");
    assert!(refused.contains("400"), "{refused}");
    assert_eq!(got["identified"], true);
    d.stop();
}

#[test]
fn mdns_advertises_hwenergy_with_the_dongle_txt_records() {
    use mdns_sd::{ServiceDaemon, ServiceEvent};
    let dir = tmpdir("hw-mdns");
    let file = dir.join("capture.txt");
    std::fs::write(&file, fluvius()).unwrap();
    let browser = ServiceDaemon::new().unwrap();
    let rx = browser.browse("_hwenergy._tcp.local.").unwrap();
    // On all interfaces: a loopback-only server is not advertised.
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .arg("run")
        .arg("--db")
        .arg(dir.join("meterkast.db"))
        .arg("--http")
        .arg(format!("0.0.0.0:{port}"))
        .arg("--source")
        .arg(format!("file://{}?speed=max", file.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        port,
        db: dir.join("meterkast.db"),
    };
    wait_for("a reading", 20, || {
        get(port, "/api/v1/now").is_some_and(|b| b.len() > 2)
    });
    let serial = d.json("/api")["serial"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut found = None;
    while Instant::now() < deadline && found.is_none() {
        if let Ok(ServiceEvent::ServiceResolved(s)) = rx.recv_timeout(Duration::from_millis(200)) {
            // Other daemons (parallel tests) may advertise too: ours has our port, and
            // the serial of our meter (it may first announce a host-based serial).
            if s.get_port() == d.port && s.get_property_val_str("serial") == Some(serial.as_str()) {
                found = Some(s);
            }
        }
    }
    let s = found.expect("no _hwenergy._tcp service with our port resolved within 15 s");
    assert_eq!(s.get_property_val_str("api_enabled"), Some("1"));
    assert_eq!(s.get_property_val_str("path"), Some("/api/v1"));
    assert_eq!(s.get_property_val_str("product_name"), Some("P1 Meter"));
    assert_eq!(s.get_property_val_str("product_type"), Some("HWE-P1"));
    assert!(s.get_fullname().starts_with("p1meter-"));
    assert!(!s.get_addresses().is_empty());

    let rx = browser.browse("_http._tcp.local.").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut http = false;
    while Instant::now() < deadline && !http {
        if let Ok(ServiceEvent::ServiceResolved(s)) = rx.recv_timeout(Duration::from_millis(200)) {
            http = s.get_port() == d.port;
        }
    }
    assert!(http, "no _http._tcp service with our port");
    let _ = browser.shutdown();
    d.stop();
}
