//! `meterkast parse` on the DLMS frames that used to vanish or come out empty: the
//! T210-D's M-Bus frame whose length wrapped around, and the Austrian and Slovenian
//! positional lists. Every frame gives exactly one line: a JSON object on stdout or a
//! rejection on stderr.

mod support;

use std::path::{Path, PathBuf};

use meterkast_codec::dlms::encode::{self, Encoder, Layout};
use meterkast_codec::{Decimal, Obis, Object, Timestamp, Value};
use serde_json::Value as Json;

fn corpus(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../codec/tests/corpus/dlms")
        .join(file)
}

/// The JSON objects on stdout, the rejection lines and the summary on stderr.
struct Parsed {
    frames: Vec<Json>,
    rejections: Vec<String>,
    summary: String,
}

fn parse(file: &Path, key: Option<&str>) -> Parsed {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_meterkast"));
    cmd.arg("parse").env_remove("MK_KEY");
    if let Some(k) = key {
        cmd.args(["--key", k]);
    }
    let out = cmd.arg(file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut lines: Vec<String> = stderr.lines().map(String::from).collect();
    let summary = lines.pop().unwrap_or_default();
    Parsed {
        frames: String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        rejections: lines,
        summary,
    }
}

fn manifest_key(file: &str) -> Option<String> {
    let m: Json = serde_json::from_slice(&std::fs::read(corpus("MANIFEST.json")).unwrap()).unwrap();
    m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in the manifest"))["key_hex"]
        .as_str()
        .map(String::from)
}

#[test]
fn each_new_corpus_frame_gives_one_line() {
    // (file, what its reading must hold)
    let cases = [
        (
            "ams_iskraemeco_gh787-1.hex",
            "total_power_import_kwh",
            14370.048,
        ),
        (
            "ams_iskraemeco_gh956-2.hex",
            "total_power_import_kwh",
            471.547,
        ),
        ("ams_iskraemeco_gh869-8.hex", "active_voltage_l1_v", 233.6),
        ("ams_iskraemeco_gh615-8.hex", "active_power_w", 2399.0),
        ("ams_iskraemeco_gh869-2.hex", "active_voltage_l1_v", 231.3),
        (
            "ams_iskraemeco_gh869-6.hex",
            "total_power_import_t2_kwh",
            7057.048,
        ),
    ];
    for (file, field, want) in cases {
        let p = parse(&corpus(file), manifest_key(file).as_deref());
        assert_eq!(p.frames.len(), 1, "{file}: {:?}", p.rejections);
        assert!(p.rejections.is_empty(), "{file}: {:?}", p.rejections);
        assert_eq!(p.summary, "parse: 1 accepted, 0 rejected", "{file}");
        assert_eq!(p.frames[0]["reading"][field].as_f64(), Some(want), "{file}");
    }
}

#[test]
fn the_t210d_frame_without_its_key_is_one_rejection_naming_the_meter() {
    let file = corpus("at_evn_t210d_length_overflow_decoder_readme.hex");
    let p = parse(&file, None);
    assert!(p.frames.is_empty());
    assert_eq!(p.rejections.len(), 1, "{:?}", p.rejections);
    assert!(
        p.rejections[0].contains("rejected (no_key)"),
        "{}",
        p.rejections[0]
    );
    assert!(
        p.rejections[0].contains("SAG5905E6DBE2"),
        "{}",
        p.rejections[0]
    );
    assert_eq!(p.summary, "parse: 0 accepted, 1 rejected (no_key: 1)");
    let p = parse(&file, Some("36C66639E48A8CA4D6BC8B282A793BBB"));
    assert_eq!(p.rejections.len(), 1, "{:?}", p.rejections);
    assert!(
        p.rejections[0].contains("rejected (key)"),
        "{}",
        p.rejections[0]
    );
}

#[test]
fn a_t210d_stream_with_its_key_decodes_every_frame() {
    let key = *b"0123456789abcdef";
    let mut enc = Encoder::new(&key, None, *b"SAGY\x05\xE6\xDB\xE2", 7);
    let mut stream = Vec::new();
    for i in 0..5i64 {
        let mut objects = vec![Object {
            obis: Obis::new(0, 0, 96, 1, 0),
            value: Value::Text("1SAG1100000292".repeat(12).into()),
        }];
        for (c, d, v) in [(1, 8, 6_842_204 + i), (2, 8, 6_430_217), (1, 7, 100 + i)] {
            objects.push(Object {
                obis: Obis::new(1, 0, c, d, 0),
                value: Value::Number {
                    value: Decimal::new(v, 0),
                    unit: Some((if d == 8 { "Wh" } else { "W" }).into()),
                },
            });
        }
        let t = Timestamp(1_715_109_077 + 5 * i);
        let apdu = encode::notification(1, Some(t), &objects, Layout::Flat);
        let frames = encode::mbus_frames_with(&enc.cipher(&apdu, false), 252);
        assert_eq!(frames[..4], [0x68, 0x01, 0x01, 0x68]);
        stream.extend_from_slice(&frames);
    }
    let dir = support::tmpdir("parse-dlms-t210d");
    let file = dir.join("t210d.bin");
    std::fs::write(&file, &stream).unwrap();
    let p = parse(&file, Some("30313233343536373839616263646566"));
    assert!(p.rejections.is_empty(), "{:?}", p.rejections);
    assert_eq!(p.summary, "parse: 5 accepted, 0 rejected");
    for (i, f) in p.frames.iter().enumerate() {
        assert_eq!(
            f["reading"]["active_power_w"].as_f64(),
            Some(100.0 + i as f64)
        );
        assert_eq!(
            f["reading"]["total_power_import_kwh"].as_f64(),
            Some((6_842_204 + i) as f64 / 1000.0)
        );
    }
}

#[test]
fn a_list_of_unknown_layout_is_one_rejection_asking_for_a_capture() {
    // A positional list with a list identifier no layout knows.
    let apdu = [
        0x0F, 0, 0, 0, 1, 0x00, 0x02, 0x03, 0x09, 0x03, b'X', b'Y', b'Z', 0x06, 0, 0, 0, 1, 0x06,
        0, 0, 0, 2,
    ];
    let dir = support::tmpdir("parse-dlms-unknown");
    let file = dir.join("unknown.hex");
    let hex: String = encode::hdlc_frames(&apdu, 2000)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    std::fs::write(&file, format!("{hex}\n{hex}\n")).unwrap();
    let p = parse(&file, None);
    assert!(p.frames.is_empty());
    assert_eq!(p.rejections.len(), 2, "{:?}", p.rejections);
    for r in &p.rejections {
        assert!(r.contains("rejected (unknown_layout)"), "{r}");
        assert!(r.contains("capture"), "{r}");
    }
    assert_eq!(
        p.summary,
        "parse: 0 accepted, 2 rejected (unknown_layout: 2)"
    );
}
