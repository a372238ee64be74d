//! `meterkast simulate` as users run it: the real binary, piped into `meterkast parse`,
//! and served over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn meterkast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meterkast"))
}

fn simulate(dialect: &str, count: usize) -> Vec<u8> {
    let out = meterkast()
        .args([
            "simulate",
            "--dialect",
            dialect,
            "--count",
            &count.to_string(),
            "--seed",
            "1",
            "--start",
            "2026-03-29T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    out.stdout
}

fn parse_strict(input: &[u8]) -> Vec<serde_json::Value> {
    let mut child = meterkast()
        .args(["parse", "--strict"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn obj(j: &serde_json::Value, obis: &str) -> f64 {
    j["objects"][obis]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{obis} in {j}"))
}

#[test]
fn every_plaintext_dialect_parses_strictly() {
    // 2026-03-29 is the night summer time starts: 02:00 CET jumps to 03:00 CEST.
    let n = 4000;
    for (dialect, detected, gas) in [
        ("dsmr5", "dsmr-5.0", "0-1:24.2.1"),
        ("dsmr4", "dsmr-4.2", "0-1:24.2.1"),
        ("dsmr22", "dsmr-2.2", "0-1:24.3.0"),
        ("be", "fluvius-emucs", "0-1:24.2.3"),
    ] {
        let frames = parse_strict(&simulate(dialect, n));
        assert_eq!(frames.len(), n, "{dialect}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["dialect"], detected, "{dialect} frame {i}");
        }
        if dialect != "dsmr22" {
            // DSMR 2.2 meters have no clock; everyone else's is 1 s apart in UTC,
            // straight through the DST switch.
            assert_eq!(frames[0]["timestamp"], "2026-03-29T00:00:00Z");
            assert_eq!(frames[n - 1]["timestamp"], "2026-03-29T01:06:39Z");
            let secs: Vec<i64> = frames
                .iter()
                .map(|f| {
                    let s = f["timestamp"].as_str().unwrap();
                    let hms: Vec<i64> = s[11..19].split(':').map(|x| x.parse().unwrap()).collect();
                    hms[0] * 3600 + hms[1] * 60 + hms[2]
                })
                .collect();
            assert!(secs.windows(2).all(|w| w[1] - w[0] == 1), "{dialect}");
        }
        for w in frames.windows(2) {
            for o in ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"] {
                assert!(obj(&w[1], o) >= obj(&w[0], o), "{dialect} {o}");
            }
            let gas_of = |f: &serde_json::Value| f["reading"]["total_gas_m3"].as_f64().unwrap();
            assert!(gas_of(&w[1]) >= gas_of(&w[0]), "{dialect} gas");
        }
        assert!(frames[0]["objects"].get(gas).is_some(), "{dialect}");
    }
}

#[test]
fn same_seed_same_bytes_and_encrypted_dialects_need_their_key() {
    assert_eq!(simulate("dsmr5", 50), simulate("dsmr5", 50));
    let out = meterkast()
        .args(["simulate", "--dialect", "smarty", "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("give the meter key with --key"), "{err}");
    let out = meterkast()
        .args(["simulate", "--dialect", "smarty", "--key", "abc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("32 hex digits"));
}

/// Reads whole telegrams (`/` … `!XXXX\r\n`) from a socket.
fn read_telegrams(stream: &mut TcpStream, n: usize) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(Instant::now() < deadline, "timed out");
        let k = stream.read(&mut chunk).unwrap();
        assert!(k > 0, "server closed");
        buf.extend_from_slice(&chunk[..k]);
        while let Some(bang) = buf.iter().position(|&b| b == b'!') {
            if buf.len() < bang + 7 {
                break;
            }
            out.push(buf.drain(..bang + 7).collect());
        }
    }
    out
}

#[test]
fn tcp_clients_receive_the_same_live_stream() {
    let mut child = meterkast()
        .args(["simulate", "--dialect", "dsmr5", "--interval", "100ms"])
        .args(["--seed", "3", "--tcp-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut a = TcpStream::connect(&addr).unwrap();
    let mut b = TcpStream::connect(&addr).unwrap();
    let ta = read_telegrams(&mut a, 8);
    let tb = read_telegrams(&mut b, 8);
    child.kill().unwrap();
    child.wait().unwrap();
    for t in ta.iter().chain(&tb) {
        assert!(t.starts_with(b"/ISK5"), "{}", String::from_utf8_lossy(t));
    }
    // The clients joined a telegram or so apart; from the later one's first telegram on,
    // both saw the same bytes.
    let (early, late) = if ta.contains(&tb[0]) {
        (&ta, &tb)
    } else {
        (&tb, &ta)
    };
    let from = early
        .iter()
        .position(|t| *t == late[0])
        .expect("the streams overlap");
    let overlap = early.len() - from;
    assert!(overlap >= 5, "overlap {overlap}");
    assert_eq!(early[from..], late[..overlap]);
}

#[test]
fn encrypted_dialects_round_trip_through_parse_with_the_key_only() {
    let key = "00112233445566778899AABBCCDDEEFF";
    for (dialect, expect) in [
        ("smarty", "smarty"),
        ("evn", "dlms-mbus"),
        ("hdlc", "dlms-hdlc"),
    ] {
        let out = meterkast()
            .args([
                "simulate",
                "--dialect",
                dialect,
                "--count",
                "20",
                "--seed",
                "2",
                "--key",
                key,
            ])
            .args(["--start", "2026-10-25T00:30:00Z"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{dialect}: {out:?}");
        let run = |extra: &[&str]| {
            let mut child = meterkast()
                .arg("parse")
                .args(extra)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), &out.stdout).unwrap();
            child.wait_with_output().unwrap()
        };
        let ok = run(&["--strict", "--key", key]);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{dialect}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let frames: Vec<serde_json::Value> = String::from_utf8(ok.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(frames.len(), 20, "{dialect}");
        assert!(
            frames.iter().all(|f| f["dialect"] == expect),
            "{dialect}: {}",
            frames[0]["dialect"]
        );
        let imports: Vec<f64> = frames
            .iter()
            .map(|f| f["reading"]["total_power_import_kwh"].as_f64().unwrap())
            .collect();
        assert!(
            imports.windows(2).all(|w| w[1] >= w[0]),
            "{dialect}: import went down"
        );
        let wrong = run(&["--strict", "--key", "FFEEDDCCBBAA99887766554433221100"]);
        assert_eq!(
            wrong.status.code(),
            Some(1),
            "{dialect}: a wrong key must be rejected"
        );
        assert!(
            wrong.stdout.is_empty(),
            "{dialect}: output with the wrong key"
        );
        let err = String::from_utf8(wrong.stderr).unwrap();
        assert!(
            !err.contains("FFEEDDCC"),
            "{dialect}: a key appeared in a message"
        );
        let none = run(&["--strict"]);
        assert!(
            String::from_utf8(none.stderr).unwrap().contains("--key"),
            "{dialect}: no hint how to give a key"
        );
    }
}

#[test]
fn a_counted_burst_without_start_ends_now_not_in_the_future() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let out = meterkast()
        .args([
            "simulate",
            "--dialect",
            "dsmr5",
            "--count",
            "60",
            "--interval",
            "1m",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let frames = parse_strict(&out.stdout);
    let time = |j: &serde_json::Value| {
        meterkast::timefmt::parse_rfc3339(j["timestamp"].as_str().unwrap())
            .unwrap()
            .0
    };
    let (first, last) = (time(&frames[0]), time(&frames[59]));
    assert_eq!(last - first, 59 * 60);
    assert!(
        last >= before - 1 && last <= after + 1,
        "the last telegram ({last}) is not now ({before}..{after})"
    );
}
