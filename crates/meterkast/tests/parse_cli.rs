//! `meterkast parse` as other tools use it: the real binary, real files and pipes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn corpus(f: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../codec/tests/corpus/dsmr")
        .join(f)
}

fn meterkast(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

const GOOD: &[u8] = b"/ISk5\\2MT382-1000\r\n\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n0-0:1.0.0(101209113020W)\r\n1-0:1.8.1(123456.789*kWh)\r\n1-0:1.7.0(01.193*kW)\r\n1-0:2.7.0(02.423*kW)\r\n0-1:24.2.1(101209112500W)(12785.123*m3)\r\n!";

fn with_crc(body: &[u8]) -> Vec<u8> {
    let crc = meterkast_codec::crc::crc16_arc(body);
    let mut v = body.to_vec();
    v.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
    v
}

#[test]
fn stdin_to_json_lines() {
    let good = with_crc(GOOD);
    let mut input = b"noise".to_vec();
    input.extend_from_slice(&good);
    input.extend_from_slice(&good);
    let out = meterkast(&["parse"], &input);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let j = &lines[0];
    assert_eq!(j["header"], "/ISk5\\2MT382-1000");
    assert_eq!(j["meter_id"], "4B384547303034303436333935353037");
    assert_eq!(j["timestamp"], "2010-12-09T10:30:20Z");
    assert_eq!(
        j["objects"]["1-0:1.8.1"]["value"].as_f64(),
        Some(123456.789)
    );
    assert_eq!(j["objects"]["1-0:1.8.1"]["unit"], "kWh");
    assert_eq!(
        j["objects"]["0-1:24.2.1"]["timestamp"],
        "2010-12-09T10:25:00Z"
    );
    assert_eq!(j["reading"]["active_power_w"].as_f64(), Some(-1230.0));
    assert_eq!(j["reading"]["total_gas_m3"].as_f64(), Some(12785.123));
    assert_eq!(j["reading"]["external"][0]["type"], "gas_meter");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().last().unwrap(), "parse: 2 accepted, 0 rejected");
}

#[test]
fn rejections_are_reported_and_strict_fails() {
    let mut bad = with_crc(GOOD);
    bad[40] ^= 1;
    let mut input = bad.clone();
    input.extend_from_slice(&with_crc(GOOD));
    let out = meterkast(&["parse"], &input);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("rejected (checksum)"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("1 rejected (checksum: 1)"),
        "{err}"
    );
    let out = meterkast(&["parse", "--strict"], &input);
    assert_eq!(out.status.code(), Some(1));
    let out = meterkast(&["parse", "--strict", "--quiet"], &with_crc(GOOD));
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("1 accepted"));
}

#[test]
fn files_are_read_in_order_and_errors_exit_2() {
    let a = corpus("dsmr_parser_v5.txt");
    let b = corpus("dsmr_parser_v2_2.txt");
    if !a.exists() {
        return;
    }
    let out = meterkast(&["parse", a.to_str().unwrap(), b.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    let dialects: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["dialect"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(dialects, ["dsmr-5.0", "dsmr-2.2"]);

    let out = meterkast(&["parse", "/nonexistent/capture.txt"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot open /nonexistent/capture.txt"));
    let out = meterkast(&["parse", "--no-such-flag"], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_truncated_last_telegram_is_reported() {
    let good = with_crc(GOOD);
    let mut input = good.clone();
    input.extend_from_slice(&good[..100]);
    let out = meterkast(&["parse"], &input);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("truncated: 1"));
}
