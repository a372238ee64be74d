//! Helpers shared by the corpus tests: where the corpus is, and how a decoded value is
//! compared with a value a publisher asserted.
#![allow(dead_code)]

use meterkast_codec::time::Civil;
use meterkast_codec::{Decimal, Timestamp};
use std::path::PathBuf;

/// The conformance corpus, kept in the repository (`crates/codec/tests/corpus`).
pub fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Reads a manifest. The corpus is part of the repository, so a missing one is a test
/// failure, never a silent skip.
pub fn manifest(dir: &str) -> serde_json::Value {
    let p = corpus().join(dir).join("MANIFEST.json");
    let b = std::fs::read(&p)
        .unwrap_or_else(|e| panic!("the conformance corpus is missing at {}: {e}", p.display()));
    serde_json::from_slice(&b).expect("manifest is JSON")
}

/// Parses `2016-11-13T19:57:57+00:00` (RFC 3339 with a numeric offset or Z); without
/// an offset the time is Central European local time.
pub fn parse_rfc3339(s: &str) -> Timestamp {
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap();
    let c = Civil {
        year: i64::from(n(0..4)),
        month: n(5..7),
        day: n(8..10),
        hour: n(11..13),
        minute: n(14..16),
        second: n(17..19),
    };
    match s.get(19..) {
        Some("Z") => Timestamp(c.to_epoch().unwrap()),
        Some(off) if off.len() >= 6 => {
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let mins = i64::from(
                off[1..3].parse::<u32>().unwrap() * 60 + off[4..6].parse::<u32>().unwrap(),
            );
            Timestamp(c.to_epoch().unwrap() - sign * mins * 60)
        }
        _ => meterkast_codec::time::cet_to_utc(&c, None).unwrap(),
    }
}

/// Whether two decimal strings denote the same number (`"0"` equals `0.000`).
pub fn same_number(a: &str, b: &str) -> bool {
    fn norm(mut d: Decimal) -> Decimal {
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d = Decimal::new(d.mantissa / 10, d.scale - 1);
        }
        d
    }
    match (Decimal::parse(a.as_bytes()), Decimal::parse(b.as_bytes())) {
        (Some(x), Some(y)) => norm(x) == norm(y),
        _ => false,
    }
}

/// Compares one JSON value of our output with an asserted one: numbers numerically,
/// strings exactly (or numerically when both are numbers), timestamps as instants.
pub fn matches(ours: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (ours, expected) {
        (J::Null, J::Null) => true,
        (J::String(o), J::String(e)) if o == e => true,
        (J::String(o), J::String(e))
            if o.len() >= 20
                && e.len() >= 20
                && o.as_bytes()[4] == b'-'
                && e.as_bytes()[4] == b'-' =>
        {
            parse_rfc3339(o) == parse_rfc3339(e)
        }
        (J::Number(o), J::String(e)) | (J::String(e), J::Number(o)) => {
            same_number(&o.to_string(), e)
        }
        (J::Number(o), J::Number(e)) => same_number(&o.to_string(), &e.to_string()),
        _ => false,
    }
}
