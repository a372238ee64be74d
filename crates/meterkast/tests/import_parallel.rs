//! `meterkast import` decodes DSMR text on worker threads, in pieces cut at telegram
//! starts. It must store exactly what the one-thread path stores and report the same
//! rejections in the same order — with damaged telegrams, noise and two meters.

use std::path::{Path, PathBuf};
use std::process::Command;

use meterkast::store::calendar::Step;
use meterkast::store::sqlite::SqliteReader;
use meterkast::store::StoreRead;

fn meterkast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meterkast"))
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meterkast-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Simulated DSMR 5 telegrams, one `Vec` each.
fn telegrams(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let out = meterkast()
        .args([
            "simulate",
            "--dialect",
            "dsmr5",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
            "--start",
            "2026-01-01T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut v = vec![];
    let mut cur = vec![];
    for line in out.stdout.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"/") && !cur.is_empty() {
            v.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(line);
    }
    v.push(cur);
    assert_eq!(v.len(), count);
    v
}

/// Imports `file` into a new database; returns the database and stderr without the
/// timing at the end of the summary line.
fn import(file: &Path, db: &Path, extra: &[&str]) -> String {
    let out = meterkast()
        .arg("import")
        .arg("--db")
        .arg(db)
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let (before, _) = err.rsplit_once(" in ").expect("a summary line");
    before.to_string()
}

/// Everything the store holds, in a comparable form.
fn contents(db: &Path) -> String {
    let r = SqliteReader::open(db).unwrap();
    let mut out = String::new();
    let meters = r.meters().unwrap();
    for m in &meters {
        out += &format!(
            "meter {} {} {} {} {} {} {:?} {} {:?} {:?}\n",
            m.id,
            m.equipment_id,
            m.dialect,
            m.source,
            m.first_seen,
            m.last_seen,
            m.replaces,
            m.submeters,
            m.last_frame,
            m.last_raw
        );
        for step in Step::ALL {
            for row in r.rollups(m.id, step, 0, i64::MAX / 2).unwrap() {
                out += &format!("rollup {step:?} {row:?}\n");
            }
        }
        for s in r.samples(m.id, 0, i64::MAX / 2).unwrap() {
            out += &format!("sample {s:?}\n");
        }
    }
    out
}

/// Imports `data` with one thread and with several (small pieces, so that many telegrams
/// sit at piece boundaries) and checks that both store and report the same.
fn same_both_ways(name: &str, data: &[u8]) -> (String, String) {
    let dir = tmpdir(name);
    let file = dir.join("capture.txt");
    std::fs::write(&file, data).unwrap();
    let (one, many, big) = (dir.join("one.db"), dir.join("many.db"), dir.join("big.db"));
    let err_one = import(&file, &one, &["--threads", "1"]);
    let err_many = import(&file, &many, &["--threads", "2", "--chunk", "4096"]);
    let err_big = import(&file, &big, &["--threads", "3", "--chunk", "70000"]);
    let (c_one, c_many, c_big) = (contents(&one), contents(&many), contents(&big));
    assert!(c_one.contains("sample"), "something was stored");
    assert_eq!(err_one, err_many);
    assert_eq!(err_one, err_big);
    assert!(c_one == c_many, "4 KiB pieces store the same");
    assert!(c_one == c_big, "70 kB pieces store the same");
    let _ = std::fs::remove_dir_all(&dir);
    (err_one, c_one)
}

#[test]
fn a_clean_capture_stores_the_same_in_pieces() {
    let data: Vec<u8> = telegrams(1, 400).concat();
    let (err, _) = same_both_ways("clean", &data);
    assert!(err.contains("400 telegrams accepted, 400 stored"), "{err}");
}

#[test]
fn two_meters_interleaved_store_the_same_in_pieces() {
    let (a, b) = (telegrams(1, 300), telegrams(2, 300));
    let mut data = vec![];
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        // Not strictly alternating: runs of one meter cross piece boundaries too.
        if i % 7 < 3 {
            data.extend_from_slice(y);
            data.extend_from_slice(x);
        } else {
            data.extend_from_slice(x);
            data.extend_from_slice(y);
        }
    }
    let (err, contents) = same_both_ways("two", &data);
    assert!(err.contains("600 telegrams accepted, 600 stored"), "{err}");
    assert_eq!(contents.matches("meter ").count(), 2);
}

#[test]
fn damage_and_noise_are_reported_and_stored_the_same_in_pieces() {
    let t = telegrams(1, 600);
    let mut data = b"\r\n".to_vec();
    for (i, tg) in t.iter().enumerate() {
        let mut tg = tg.clone();
        if i % 41 == 5 {
            // A damaged digit: the CRC does not match.
            let p = tg.iter().position(|&b| b == b'(').unwrap() + 3;
            tg[p] = if tg[p] == b'1' { b'2' } else { b'1' };
        }
        if i % 23 == 7 || i == 4 || (300..303).contains(&i) {
            // No CRC from a meter that sends one: refused once a CRC was seen, which
            // pieces starting with such a telegram cannot know by themselves.
            let bang = tg.iter().rposition(|&b| b == b'!').unwrap();
            tg.truncate(bang + 1);
            tg.extend_from_slice(b"\r\n");
        }
        if i % 37 == 11 {
            // Cut off by the next telegram.
            tg.truncate(tg.len() / 2);
        }
        if i % 59 == 13 {
            // A damaged checksum field.
            let bang = tg.iter().rposition(|&b| b == b'!').unwrap();
            tg[bang + 1] = b'x';
        }
        data.extend_from_slice(&tg);
        match i % 17 {
            3 => data.extend_from_slice(b"noise between telegrams\r\n"),
            4 => data.extend_from_slice(b"/ab\r\n"),
            5 => data.extend_from_slice(b"\x00\xff binary /garbage! 12\r\n"),
            6 => data.extend_from_slice(b"/XYZ5 a header without a telegram\r\n"),
            _ => {}
        }
        if i % 97 == 50 {
            // A repeated telegram: already stored.
            data.extend_from_slice(&t[i - 1]);
        }
    }
    // The file ends in the middle of a telegram.
    data.extend_from_slice(&t[0][..100]);
    let (err, _) = same_both_ways("damaged", &data);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() > 60, "{err}");
    assert!(lines[..lines.len() - 1]
        .iter()
        .all(|l| l.contains("capture.txt: rejected (")));
    for cause in ["checksum", "truncated"] {
        assert!(
            err.contains(&format!("rejected ({cause})")),
            "{cause}: {err}"
        );
    }
    assert!(err.contains("already stored or out of order"), "{err}");
    assert!(
        err.contains("without the checksum this meter sends"),
        "CRC-less telegrams are refused: {err}"
    );
}
