//! The HomeWizard P1 local API v1 over real HTTP: `/api` and `/api/v1/data` carry the
//! same values as `/api/v1/now` in HomeWizard's names, units and timestamp numbers; the
//! real client library Home Assistant uses reads them; auth exempts them unless told;
//! mDNS advertises `_hwenergy._tcp` with the dongle's TXT records.

mod support;

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
    for p in ["/api", "/api/v1/data", "/api/v1/telegram"] {
        assert_eq!(get_with(d.port, p, &[]).0, 200, "{p} without credentials");
    }
    assert_eq!(get_with(d.port, "/api/v1/now", &[]).0, 401);
    assert_eq!(get_with(d.port, "/api/v1/meters", &[]).0, 401);
    d.stop();

    env.push(("MK_HOMEWIZARD_AUTH", "true"));
    let d = Daemon::start(&dir, &[src], &env);
    for p in ["/api", "/api/v1/data", "/api/v1/telegram"] {
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

/// The python venv with the pinned client, made once under `target/hw-venv`.
fn venv() -> PathBuf {
    python_venv(
        "hw-venv",
        "python-homewizard-energy",
        "6.3.0",
        "homewizard_energy",
    )
}

const CLIENT: &str = r#"
import asyncio, dataclasses, json, sys
from enum import Enum
from homewizard_energy import HomeWizardEnergy

def plain(o):
    if isinstance(o, Enum):
        return o.name
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(repr(o))

async def main():
    async with HomeWizardEnergy(sys.argv[1]) as api:
        device = await api.device()
        data = await api.data()
    print(json.dumps({"device": dataclasses.asdict(device), "data": dataclasses.asdict(data)}, default=plain))

asyncio.run(main())
"#;

#[test]
#[ignore = "installs python-homewizard-energy from PyPI; .ci/run runs it"]
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
    assert_eq!(dev["api_version"], "v1");
    assert_eq!(dev["serial"], d.json("/api")["serial"]);
    let data = &got["data"];
    // The library's own names on the left, meterkast's on the right.
    for (lib, ours) in [
        ("total_energy_import_kwh", "total_power_import_kwh"),
        ("total_energy_import_t1_kwh", "total_power_import_t1_kwh"),
        ("total_energy_import_t2_kwh", "total_power_import_t2_kwh"),
        ("total_energy_export_kwh", "total_power_export_kwh"),
        ("total_energy_export_t1_kwh", "total_power_export_t1_kwh"),
        ("total_energy_export_t2_kwh", "total_power_export_t2_kwh"),
        ("active_power_w", "active_power_w"),
        ("active_power_l1_w", "active_power_l1_w"),
        ("active_voltage_l1_v", "active_voltage_l1_v"),
        ("active_current_l1_a", "active_current_l1_a"),
        ("active_power_average_w", "active_power_average_w"),
        ("monthly_power_peak_w", "monthly_power_peak_w"),
        ("total_gas_m3", "total_gas_m3"),
        ("active_tariff", "active_tariff"),
    ] {
        assert_eq!(
            data[lib].as_f64(),
            r[ours].as_f64(),
            "{lib} vs {ours}: {data}"
        );
        assert!(!data[lib].is_null(), "{lib}");
    }
    assert_eq!(data["smr_version"], 50);
    assert_eq!(data["meter_model"], "FLU5\\253770234_A");
    // The library decodes the hex equipment ids to text.
    assert_eq!(data["unique_meter_id"], "1SAG3101021605");
    assert_eq!(data["gas_unique_id"], "7FLO2119033733");
    // Local (CEST) wall-clock times, as the meter shows them.
    assert_eq!(data["monthly_power_peak_timestamp"], "2020-05-09T13:45:58");
    assert_eq!(data["gas_timestamp"], "2020-05-12T13:45:58");
    let ext = data["external_devices"].as_object().unwrap();
    assert_eq!(ext.len(), 2, "{ext:?}");
    let gas = &ext["gas_meter_7FLO2119033733"];
    assert_eq!(gas["meter_type"], "GAS_METER");
    assert_eq!(gas["value"], 112.384);
    assert_eq!(gas["unit"], "m3");
    assert_eq!(gas["timestamp"], "2020-05-12T13:45:58");
    assert_eq!(ext["water_meter_8SAG1234567890"]["value"], 872.234);
    // Absent stays absent (None), never a made-up zero.
    assert!(data["voltage_sag_l1_count"].is_null());
    assert!(data["active_power_l2_w"].is_null());
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
