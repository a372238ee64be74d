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

/// The summary line's counts: (accepted, rejected).
fn summary(out: &Output) -> (u64, u64) {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .rfind(|l| l.starts_with("parse: "))
        .unwrap_or_else(|| panic!("no summary line in {err}"));
    let n = |word: &str| -> u64 {
        let before = line.split(&format!(" {word}")).next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (n("accepted"), n("rejected"))
}

#[test]
fn every_corpus_frame_is_accepted_or_rejected() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../codec/tests/corpus");
    let mut files = 0;
    for dir in ["dsmr", "dlms"] {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(dir).join("MANIFEST.json")).unwrap())
                .unwrap();
        for v in m["vectors"].as_array().unwrap() {
            let f = v["file"].as_str().unwrap();
            // The M-Bus frame with an overflowed length byte is for the DLMS decoders.
            if f.contains("length_overflow") {
                continue;
            }
            let path = root.join(dir).join(f);
            let out = meterkast(&["parse", "--quiet", path.to_str().unwrap()], b"");
            let (accepted, rejected) = summary(&out);
            assert_eq!(
                accepted + rejected,
                1,
                "{f}: one frame in, {accepted} accepted and {rejected} rejected: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            files += 1;
        }
    }
    assert!(files >= 50, "only {files} corpus files");
}

/// 150 Smarty frames, one of 2.6 KiB straddling offset 65,536 (the file reader's read
/// size), as in the report of a frame dropped without a word.
fn smarty_capture() -> (Vec<u8>, usize) {
    use meterkast_codec::dlms::encode::Encoder;
    use meterkast_codec::testkit::{dsmr5, KEY};
    let mut enc = Encoder::new(&KEY, None, *b"SAG\x05\0\0\0\x07", 1);
    let mut out = Vec::new();
    let mut frames = 0;
    while frames < 150 {
        let long = enc.clone().smarty(&dsmr5(frames, 1900));
        let f = if out.len() < 65_536 && out.len() + long.len() > 65_536 + 1000 {
            long
        } else {
            enc.clone().smarty(&dsmr5(frames, 200))
        };
        enc.frame_counter += 1;
        out.extend(f);
        frames += 1;
    }
    (out, frames as usize)
}

#[test]
fn a_long_smarty_frame_across_a_read_boundary_is_not_lost() {
    let (capture, frames) = smarty_capture();
    assert!(capture.len() > 70_000, "{} bytes", capture.len());
    let key: String = meterkast_codec::testkit::KEY
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let dir = std::env::temp_dir().join(format!("mk-parse-smarty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("smarty.bin");
    std::fs::write(&file, &capture).unwrap();
    let out = meterkast(
        &["parse", "--quiet", "--key", &key, file.to_str().unwrap()],
        b"",
    );
    assert_eq!(
        summary(&out),
        (frames as u64, 0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Through a pipe in 4,096-byte writes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .args(["parse", "--quiet", "--key", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for piece in capture.chunks(4096) {
        stdin.write_all(piece).unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(summary(&out), (frames as u64, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn input_that_ends_mid_telegram_is_reported_as_such() {
    let good = with_crc(GOOD);
    let mut input = good.clone();
    input.extend_from_slice(&good[..good.len() / 2]);
    let out = meterkast(&["parse", "--quiet"], &input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(summary(&out), (1, 1), "{err}");
    assert!(
        err.contains("rejected (truncated): the input ended"),
        "{err}"
    );
    assert!(
        !err.contains("cut off by the start of the next one"),
        "{err}"
    );
}
