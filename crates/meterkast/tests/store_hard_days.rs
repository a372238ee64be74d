//! The store on hard days, on a real SQLite file and (ignored-marked) a real PostgreSQL
//! database: meter clocks that jump ahead or back, commits that fail (a full disk), and
//! older data that arrives after newer. Whatever the order, the roll-ups of every step
//! add up to the register difference over the counted readings, and equal those of
//! the same readings given once, in time order.

#[macro_use]
mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use meterkast::store::calendar::{local_midnight, Step};
use meterkast::store::ingest::{Ingestor, Outcome};
use meterkast::store::sample::F;
use meterkast::store::{AnyBackend, Location, RollupRow, Sample};

use support::*;

/// Feeds telegrams as an import does (no receive time).
fn feed(ing: &mut Ingestor<AnyBackend>, bytes: &[u8]) -> Vec<Outcome> {
    ingest_telegrams(ing, bytes, None, false)
}

/// Feeds telegrams, as received live at `received` when given.
fn feed_at(ing: &mut Ingestor<AnyBackend>, bytes: &[u8], received: Option<i64>) -> Vec<Outcome> {
    ingest_telegrams(ing, bytes, received, false)
}

fn open(db: &Location) -> Ingestor<AnyBackend> {
    Ingestor::new(db.open_backend().unwrap()).unwrap()
}

/// A day in the past: every reading of these tests is plausible against "now".
fn day0() -> i64 {
    local_midnight(2026, 6, 1)
}

/// One true reading: time and import register (Wh).
type Truth = (i64, i64);

/// `n` readings 10 s apart from `t`, the register rising by 1..=7 Wh each.
fn readings(t: i64, n: usize) -> Vec<Truth> {
    let mut wh = 1_000_000;
    (0..n)
        .map(|k| {
            wh += 1 + (k as i64 * 5) % 7;
            (t + 10 * k as i64, wh)
        })
        .collect()
}

fn bytes(rs: &[Truth]) -> Vec<u8> {
    rs.iter()
        .flat_map(|(t, wh)| telegram("HD1", *t, *wh))
        .collect()
}

/// Every roll-up of every step of the only meter, and its stored samples.
fn contents(db: &Location) -> (Vec<Vec<RollupRow>>, Vec<Sample>) {
    let r = db.open_reader().unwrap();
    let meters = r.meters().unwrap();
    assert_eq!(meters.len(), 1, "one meter");
    let m = meters[0].id;
    let rollups = Step::ALL
        .iter()
        .map(|s| r.rollups(m, *s, i64::MIN / 4, i64::MAX / 4).unwrap())
        .collect();
    (rollups, r.samples(m, i64::MIN / 4, i64::MAX / 4).unwrap())
}

/// The invariant: at every step, the roll-ups' import total equals the register
/// difference between the first and last counted reading, and they count each stored
/// reading once.
fn assert_invariant(db: &Location) {
    let (rollups, samples) = contents(db);
    let first = samples.first().expect("readings").get(F::Import).unwrap();
    let last = samples.last().unwrap().get(F::Import).unwrap();
    for (step, rows) in Step::ALL.iter().zip(&rollups) {
        let wh: i64 = rows.iter().map(|r| r.rollup.sums[0]).sum();
        let n: i64 = rows.iter().map(|r| r.rollup.sums[14]).sum();
        assert_eq!(
            wh,
            last - first,
            "{step:?}: import total = register difference"
        );
        assert_eq!(
            n,
            samples.len() as i64,
            "{step:?}: each reading counted once"
        );
        assert!(
            rows.iter().all(|r| r.rollup.sums[0] >= 0),
            "{step:?}: no negative bucket"
        );
    }
}

/// The same readings given once, in time order, to a fresh SQLite store.
fn in_order(dir: &Path, rs: &[Truth]) -> Location {
    let db = Location::Sqlite(dir.join("in-order.db"));
    let mut ing = open(&db);
    feed(&mut ing, &bytes(rs));
    ing.commit().unwrap();
    db
}

on_both_stores!(
    clock_jumps,
    meter_clocks_that_jump_are_kept_as_suspect_and_storage_goes_on,
    meter_clocks_that_jump_are_kept_as_suspect_and_storage_goes_on_postgres
);
on_both_stores!(
    late_data,
    older_data_after_newer_gives_the_roll_ups_of_a_fresh_import_in_order,
    older_data_after_newer_gives_the_roll_ups_of_a_fresh_import_in_order_postgres
);
on_both_stores!(
    live_clock,
    a_live_meter_clock_ahead_is_suspect_said_once_and_recovers,
    a_live_meter_clock_ahead_is_suspect_said_once_and_recovers_postgres
);

fn clock_jumps(dir: &Path, db: &Path) {
    let db = &location(db);
    let rs = readings(day0(), 181);
    let mut ing = open(db);
    let mut s = bytes(&rs[..60]);
    // 2099, and 600 MWh more: a clock gone wrong (far past now).
    s.extend(telegram("HD1", 4_070_908_800, rs[59].1 + 600_000_000));
    s.extend(bytes(&rs[60..120]));
    // A lone reading a day ahead of its neighbours (both in the past).
    s.extend(telegram("HD1", rs[119].0 + 86_400, rs[119].1 + 2));
    s.extend(bytes(&rs[120..121]));
    // A clock reset to 2000 with the registers of now: older than every reading, but
    // its registers are higher than theirs.
    s.extend(telegram("HD1", 946_684_800, rs[120].1 + 1));
    s.extend(bytes(&rs[121..180]));
    let outcomes = feed(&mut ing, &s);
    ing.release_held().unwrap();
    ing.commit().unwrap();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Suspect).count(),
        1,
        "the one dated after now is suspect at once"
    );
    assert_eq!(ing.stats.suspect, 3, "{:?}", ing.stats);
    assert_eq!(ing.stats.stored, 180);
    assert!(ing.clock_trouble().0.is_empty(), "recovered");
    drop(ing);

    // Storage goes on, after a restart too.
    let mut ing = open(db);
    let outcomes = feed(&mut ing, &bytes(&rs[180..]));
    assert_eq!(outcomes, vec![Outcome::Stored]);
    ing.commit().unwrap();
    assert_invariant(db);
    let (rollups, samples) = contents(db);
    assert_eq!(samples.len(), 181);
    assert_eq!(
        rollups,
        contents(&in_order(dir, &rs)).0,
        "the suspect readings changed nothing"
    );
    let r = db.open_reader().unwrap();
    assert_eq!(r.meters().unwrap()[0].last_seen, rs[180].0);
}

fn late_data(dir: &Path, db: &Path) {
    let db = &location(db);
    let rs = readings(day0() + 7 * 3600, 1080); // 3 hours
    let (older, newer) = rs.split_at(540);
    let mut ing = open(db);
    // Live first: the second half, with a gap (a dongle's buffer fills it later).
    let gap = 700..760usize;
    let live: Vec<Truth> = newer
        .iter()
        .copied()
        .filter(|(t, _)| !gap.contains(&(((t - rs[0].0) / 10) as usize)))
        .collect();
    for part in live.chunks(100) {
        feed_at(&mut ing, &bytes(part), Some(part[part.len() - 1].0 + 1));
        ing.commit().unwrap();
    }
    // Then last year's capture, so to speak: the older half, in time order, with
    // commits in between; then the buffered backfill, and some readings again.
    for part in older.chunks(77) {
        feed(&mut ing, &bytes(part));
        ing.commit().unwrap();
    }
    feed(&mut ing, &bytes(&rs[gap.clone()]));
    feed(&mut ing, &bytes(&rs[500..600]));
    ing.commit().unwrap();
    assert_eq!(ing.stats.stored, 1080);
    assert_eq!(ing.stats.duplicates, 100);
    assert_eq!(ing.stats.late, 540 + 60);
    drop(ing);

    assert_invariant(db);
    let fresh = contents(&in_order(dir, &rs));
    let got = contents(db);
    assert_eq!(got.1, fresh.1, "the same readings");
    for (step, (a, b)) in Step::ALL.iter().zip(got.0.iter().zip(&fresh.0)) {
        assert_eq!(a, b, "{step:?} roll-ups equal a fresh import in time order");
    }
}

/// A SQLite store whose baseline an older version set from a telegram dated 2099:
/// storage goes on after a restart, from the latest plausible reading.
#[test]
fn a_baseline_stored_in_the_future_is_left_behind_on_start() {
    let dir = tmpdir("poisoned");
    let db = Location::Sqlite(dir.join("m.db"));
    let rs = readings(day0(), 120);
    let mut ing = open(&db);
    feed(&mut ing, &bytes(&rs[..60]));
    ing.commit().unwrap();
    drop(ing);
    // What an older version stored: the 2099 reading as a sample and as the baseline.
    let c = rusqlite::Connection::open(dir.join("m.db")).unwrap();
    let (state, data): (Vec<u8>, Vec<u8>) = {
        let mut other = open(&Location::Sqlite(dir.join("other.db")));
        feed(&mut other, &telegram("HD1", 4_070_908_800, rs[59].1 + 1));
        other.release_held().unwrap();
        other.commit().unwrap();
        drop(other);
        let o = rusqlite::Connection::open(dir.join("other.db")).unwrap();
        o.query_row("SELECT data FROM suspect_readings", [], |r| {
            Ok((r.get(0)?, r.get(0)?))
        })
        .unwrap()
    };
    c.execute("UPDATE meters SET state = ?1", [&state]).unwrap();
    c.execute(
        "INSERT INTO chunks (meter_id, start, end, n, data) SELECT id, 4070908800, 4070908800, 1, ?1 FROM meters",
        [&data],
    )
    .unwrap();
    drop(c);
    let mut ing = open(&db);
    let outcomes = feed(&mut ing, &bytes(&rs[60..]));
    assert!(outcomes.iter().all(|o| *o == Outcome::Stored));
    ing.commit().unwrap();
    assert_eq!(ing.stats.stored, 60);
    assert_eq!(
        ing.stats.late, 0,
        "newer than the plausible baseline, not late"
    );
    let (rollups, _) = contents(&db);
    let fresh = contents(&in_order(&dir, &rs)).0;
    assert_eq!(
        rollups, fresh,
        "counted as if the 2099 reading had never come"
    );
}

/// The import command on the reproduction of the bug: 60 telegrams, one dated 2099,
/// 60 more.
#[test]
fn import_after_a_telegram_dated_2099_stores_the_rest() {
    let dir = tmpdir("import-2099");
    let rs = readings(day0(), 120);
    let mut s = bytes(&rs[..60]);
    s.extend(telegram("HD1", 4_070_908_800, rs[59].1 + 1));
    s.extend(bytes(&rs[60..]));
    let file = dir.join("capture.txt");
    std::fs::write(&file, s).unwrap();
    let db = dir.join("m.db");
    let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .arg("import")
        .arg("--db")
        .arg(&db)
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("121 telegrams accepted, 120 stored, 0 already stored or out of order"),
        "{text}"
    );
    assert!(text.contains("1 suspect"), "{text}");
    assert_eq!(
        text.matches("kept as suspect").count(),
        1,
        "said once: {text}"
    );
    assert_invariant(&Location::Sqlite(db));
}

fn live_clock(dir: &Path, db: &Path) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let d = Daemon::start_db(dir, db, &[format!("tcp://127.0.0.1:{port}")], &[]);
    let (mut c, _) = listener.accept().unwrap();
    let rs = readings(now() - 3600, 40);
    c.write_all(&bytes(&rs[..20])).unwrap();
    // The meter's clock jumps a day ahead of the receive time, then returns.
    let mut ahead = vec![];
    for k in 0..5 {
        ahead.extend(telegram("HD1", now() + 86_400 + k, rs[19].1 + 600_000_000));
    }
    c.write_all(&ahead).unwrap();
    wait_for("the meter flagged on /api/v1/status", 15, || {
        d.json("/api/v1/status")["meters"][0]["clock_suspect"].is_string()
    });
    let metrics = get(d.port, "/metrics").unwrap();
    assert!(
        metrics.contains("meterkast_store_suspect_readings_total 5"),
        "{metrics}"
    );
    c.write_all(&bytes(&rs[20..])).unwrap();
    wait_for("the clock right again", 15, || {
        d.json("/api/v1/status")["meters"][0]
            .get("clock_suspect")
            .is_none()
            && latest_import_kwh(&d) == Some(rs[39].1 as f64 / 1000.0)
    });
    d.stop();
    let log = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert_eq!(
        log.matches("kept as suspect").count(),
        1,
        "said once: {log}"
    );
    assert_eq!(log.matches("plausible again").count(), 1, "{log}");
    let loc = location(db);
    assert_invariant(&loc);
    assert_eq!(contents(&loc).1.len(), 40);
}

/// Commits that fail (the store's page limit, as a full disk would) lose nothing: once
/// writing works again the roll-ups hold every register rise.
#[test]
fn failed_commits_lose_no_energy() {
    let dir = tmpdir("failed-commits");
    let path = dir.join("m.db");
    let db = Location::Sqlite(path.clone());
    let rs = readings(day0(), 3000);
    let mut ing = open(&db);
    feed(&mut ing, &bytes(&rs[..100]));
    ing.commit().unwrap();
    let limit = |ing: &mut Ingestor<AnyBackend>, pages: i64| match ing.backend_mut() {
        AnyBackend::Sqlite(b) => b.limit_pages(pages).unwrap(),
        _ => unreachable!(),
    };
    let pages: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    limit(&mut ing, pages);
    let mut failed = 0;
    for part in rs[100..2500].chunks(50) {
        feed(&mut ing, &bytes(part));
        if ing.commit().is_err() {
            failed += 1;
        }
    }
    assert!(failed > 10, "the limit made commits fail ({failed})");
    // Space comes back.
    limit(&mut ing, 0);
    feed(&mut ing, &bytes(&rs[2500..]));
    ing.commit().unwrap();
    drop(ing);
    assert_invariant(&db);
    let (rollups, samples) = contents(&db);
    assert_eq!(samples.len(), rs.len());
    assert_eq!(rollups, contents(&in_order(&dir, &rs)).0);
}

/// A small PRNG (xorshift), so that the mixed-up orders are the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The invariant under any sequence: readings in order, out of order, twice, clock
/// outliers, failed commits; each roll-up level's total equals the register difference
/// over the counted readings, and the roll-ups equal those of an in-order import.
#[test]
fn every_roll_up_level_adds_up_whatever_the_order() {
    for seed in [1u64, 7, 42, 1234] {
        let dir = tmpdir(&format!("invariant-{seed}"));
        let path = dir.join("m.db");
        let db = Location::Sqlite(path.clone());
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rs = readings(day0() + 3 * 3600, 1500);
        let mut ing = open(&db);
        let mut limited = false;
        let mut held: Vec<Truth> = vec![];
        let mut failed = 0u32;
        let mut k = 0;
        while k < rs.len() {
            let n = 1 + rng.next(60) as usize;
            let mut part: Vec<Truth> = rs[k..(k + n).min(rs.len())].to_vec();
            k += n;
            match rng.next(6) {
                0 => part.reverse(),
                1 => {
                    // Some again, from anywhere before.
                    let from = rng.next(k as u64) as usize;
                    part.extend_from_slice(&rs[from..(from + 5).min(k)]);
                }
                2 => {
                    // Held back, delivered later (out of order).
                    held.append(&mut part);
                }
                3 if !held.is_empty() => part.append(&mut held),
                _ => {}
            }
            let mut s = bytes(&part);
            if rng.next(10) == 0 {
                let wh = rs[k.min(rs.len()) - 1].1;
                s.extend(telegram("HD1", 4_070_908_800 + k as i64, wh + 5));
                s.extend(telegram("HD1", 946_684_800 + k as i64, wh + 1_000_000));
            }
            feed(&mut ing, &s);
            // Commits fail in every other stretch of 300 readings.
            if limited != ((k / 300) % 2 == 1) {
                limited = !limited;
                let pages = if limited {
                    rusqlite::Connection::open(&path)
                        .unwrap()
                        .query_row("PRAGMA page_count", [], |r| r.get(0))
                        .unwrap()
                } else {
                    0
                };
                match ing.backend_mut() {
                    AnyBackend::Sqlite(b) => b.limit_pages(pages).unwrap(),
                    _ => unreachable!(),
                }
            }
            failed += u32::from(ing.commit().is_err());
        }
        // Everything once more, in order: whatever was held back arrives.
        feed(&mut ing, &bytes(&rs));
        if let AnyBackend::Sqlite(b) = ing.backend_mut() {
            b.limit_pages(0).unwrap();
        }
        ing.commit().unwrap();
        drop(ing);
        assert_invariant(&db);
        let (rollups, samples) = contents(&db);
        assert!(failed > 0, "seed {seed}: some commits failed");
        assert_eq!(samples.len(), rs.len(), "seed {seed}");
        assert_eq!(rollups, contents(&in_order(&dir, &rs)).0, "seed {seed}");
    }
}

/// A real full disk: a small tmpfs. While commits fail, `/healthz` says degraded with
/// the reason and `/metrics` counts them; once space is back, the roll-ups hold the
/// whole register rise.
#[test]
#[ignore = "needs root to mount a tmpfs"]
fn a_full_disk_degrades_health_and_loses_no_energy() {
    let dir = tmpdir("full-disk");
    let mnt = dir.join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount a tmpfs (needs root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let db = mnt.join("m.db");
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let d = Daemon::start_db(&dir, &db, &[format!("tcp://127.0.0.1:{port}")], &[]);
    let (mut c, _) = listener.accept().unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 20 * 86_400;
    let rs = readings(t0, 60_000);
    c.write_all(&bytes(&rs[..100])).unwrap();
    wait_for("the first readings", 15, || {
        latest_import_kwh(&d) == Some(rs[99].1 as f64 / 1000.0)
    });
    // Fill the disk.
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let mut sent = 100;
    let mut degraded = false;
    while sent < rs.len() && !degraded {
        let next = (sent + 500).min(rs.len());
        c.write_all(&bytes(&rs[sent..next])).unwrap();
        sent = next;
        std::thread::sleep(std::time::Duration::from_millis(200));
        degraded = d.json("/healthz")["status"] == "degraded";
    }
    assert!(degraded, "the full disk showed on /healthz");
    let health = d.json("/healthz");
    assert!(
        health["reasons"][0].as_str().unwrap().contains("store"),
        "{health}"
    );
    let metrics = get(d.port, "/metrics").unwrap();
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meterkast_store_commit_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures > 0, "{metrics}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Space comes back.
    std::fs::remove_file(&filler).unwrap();
    c.write_all(&bytes(&rs[sent..sent + 10])).unwrap();
    sent += 10;
    wait_for("/healthz ok again", 20, || {
        d.json("/healthz")["status"] == "ok"
    });
    wait_for("the last reading", 20, || {
        latest_import_kwh(&d) == Some(rs[sent - 1].1 as f64 / 1000.0)
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.stop();
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    let said = log.matches("commit failed").count() as u64;
    assert!(
        said >= 1 && said < failures.max(2),
        "rate-limited: {said} lines for {failures} failures"
    );
    let loc = Location::Sqlite(db);
    assert_invariant(&loc);
    assert_eq!(contents(&loc).1.len(), sent);
}
