//! The store end to end on a real SQLite file: telegrams in, samples and roll-ups out,
//! with exactly the expected values — DST days, a meter swap, duplicates and resets.

use meterkast::pipeline::incoming;
use meterkast::store::calendar::{local_midnight, Step};
use meterkast::store::ingest::{Ingestor, Outcome};
use meterkast::store::sqlite::{SqliteBackend, SqliteReader};
use meterkast::store::StoreRead;
use meterkast_codec::crc::crc16_arc;
use meterkast_codec::time::Civil;
use meterkast_codec::{Decoder, Timestamp};

/// A minimal DSMR 5 telegram with a valid CRC. `import_wh`/`export_wh` are the T1
/// registers; `power_w` is the net power.
fn telegram(
    id: &str,
    t: i64,
    import_wh: i64,
    export_wh: i64,
    power_w: i64,
    gas_dm3: i64,
) -> Vec<u8> {
    let (c, off): (Civil, i64) = Timestamp(t).to_cet();
    let flag = if off == 7200 { 'S' } else { 'W' };
    let ts = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}{flag}",
        c.year % 100,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second
    );
    let gas_t = t - t.rem_euclid(300);
    let (gc, goff) = Timestamp(gas_t).to_cet();
    let gflag = if goff == 7200 { 'S' } else { 'W' };
    let gts = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}{gflag}",
        gc.year % 100,
        gc.month,
        gc.day,
        gc.hour,
        gc.minute,
        gc.second
    );
    let hex: String = id.bytes().map(|b| format!("{b:02X}")).collect();
    let body = format!(
        "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0({ts})\r\n0-0:96.1.1({hex})\r\n\
         1-0:1.8.1({:06}.{:03}*kWh)\r\n1-0:1.8.2(000000.000*kWh)\r\n1-0:2.8.1({:06}.{:03}*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n\
         0-0:96.14.0(0001)\r\n1-0:1.7.0({:02}.{:03}*kW)\r\n1-0:2.7.0({:02}.{:03}*kW)\r\n1-0:32.7.0(230.{}*V)\r\n\
         0-1:24.1.0(003)\r\n0-1:96.1.0(4730)\r\n0-1:24.2.1({gts})({:05}.{:03}*m3)\r\n!",
        import_wh / 1000,
        import_wh % 1000,
        export_wh / 1000,
        export_wh % 1000,
        power_w.max(0) / 1000,
        power_w.max(0) % 1000,
        (-power_w).max(0) / 1000,
        (-power_w).max(0) % 1000,
        t % 10,
        gas_dm3 / 1000,
        gas_dm3 % 1000,
    );
    let mut v = body.into_bytes();
    v.extend_from_slice(format!("{:04X}\r\n", crc16_arc(&v)).as_bytes());
    v
}

fn ingest(ing: &mut Ingestor<SqliteBackend>, bytes: &[u8]) -> Vec<Outcome> {
    let mut d = Decoder::new();
    d.push(bytes);
    d.finish();
    let mut out = vec![];
    while let Some(ev) = d.next() {
        let f = ev.expect("valid telegram");
        out.push(
            ing.add(incoming("test", &f.telegram, f.raw, 0, true))
                .unwrap(),
        );
    }
    out
}

fn tmpdb(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meterkast-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("store.db")
}

#[test]
fn a_dst_spring_day_at_ten_seconds() {
    let db = tmpdb("dst");
    let mut ing = Ingestor::new(SqliteBackend::open(&db).unwrap()).unwrap();
    let day = local_midnight(2026, 3, 29);
    let end = local_midnight(2026, 3, 30);
    assert_eq!(end - day, 23 * 3600);
    // 1 Wh every 10 s (360 W) from midnight to midnight; gas 1 dm³ per 5 minutes.
    let mut wh = 1_000_000;
    let mut stream = vec![];
    let mut t = day;
    while t <= end {
        stream.extend(telegram("E0001", t, wh, 0, 360, 5000 + (t - day) / 300));
        t += 10;
        wh += 1;
    }
    let outcomes = ingest(&mut ing, &stream);
    assert!(outcomes.iter().all(|o| *o == Outcome::Stored));
    ing.commit().unwrap();

    let r = SqliteReader::open(&db).unwrap();
    let meters = r.meters().unwrap();
    assert_eq!(meters.len(), 1);
    assert_eq!(meters[0].equipment_id, "4530303031");
    let m = meters[0].id;
    let quarters = r.rollups(m, Step::Quarter, day, end).unwrap();
    assert_eq!(quarters.len(), 92, "a spring day has 92 quarter-hours");
    assert!(
        quarters.iter().all(|q| q.rollup.sums[0] == 90),
        "90 Wh per quarter-hour"
    );
    let hours = r.rollups(m, Step::Hour, day, end).unwrap();
    assert_eq!(hours.len(), 23);
    let days = r.rollups(m, Step::Day, day, end).unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].start, day);
    assert_eq!(days[0].end, end);
    assert_eq!(
        days[0].rollup.sums[0],
        23 * 360,
        "the day's import equals the register delta"
    );
    assert_eq!(days[0].rollup.sums[2], 23 * 360, "all of it on tariff 1");
    assert_eq!(
        days[0].rollup.sums[10],
        23 * 12,
        "gas: one dm³ per 5 minutes"
    );
    assert_eq!(days[0].rollup.max[0], Some(360));
    let samples = r.samples(m, day, end + 1).unwrap();
    assert_eq!(samples.len() as i64, (end - day) / 10 + 1);
    let month = r.rollups(m, Step::Month, day - 40 * 86400, end).unwrap();
    assert_eq!(month.len(), 1);
    assert_eq!(
        Timestamp(month[0].start).to_string(),
        "2026-02-28T23:00:00Z"
    );
}

#[test]
fn duplicates_resets_and_meter_swaps_never_give_bad_deltas() {
    let db = tmpdb("swap");
    let mut ing = Ingestor::new(SqliteBackend::open(&db).unwrap()).unwrap();
    let t0 = local_midnight(2026, 6, 1);
    let a = |t, wh| telegram("A", t0 + t, wh, 0, 100, 0);
    let mut s = vec![];
    s.extend(a(0, 5000));
    s.extend(a(10, 5010));
    s.extend(a(10, 5010)); // twice
    s.extend(a(5, 5005)); // late
    s.extend(a(20, 4000)); // register went backwards
    s.extend(a(30, 4010));
    s.extend(a(40, 9_000_000)); // absurd jump
    s.extend(a(50, 9_000_010));
    let outcomes = ingest(&mut ing, &s);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Duplicate)
            .count(),
        2
    );
    // Meter replaced on the same source: a new meter, starting from its own registers.
    let mut s = vec![];
    s.extend(telegram("B", t0 + 60, 100, 0, 100, 0));
    s.extend(telegram("B", t0 + 70, 110, 0, 100, 0));
    ingest(&mut ing, &s);
    ing.commit().unwrap();
    assert_eq!(ing.stats.refused_deltas, 2);
    drop(ing);

    let r = SqliteReader::open(&db).unwrap();
    let meters = r.meters().unwrap();
    assert_eq!(meters.len(), 2);
    assert_eq!(meters[1].replaces, Some(meters[0].id));
    let day = |m| {
        r.rollups(m, Step::Day, t0, t0 + 86400).unwrap()[0]
            .rollup
            .sums[0]
    };
    assert_eq!(
        day(meters[0].id),
        10 + 10 + 10,
        "only the sane deltas count"
    );
    assert_eq!(day(meters[1].id), 10);

    // A restart keeps the baseline: the next telegram continues the deltas, and
    // re-importing what is stored changes nothing.
    let mut ing = Ingestor::new(SqliteBackend::open(&db).unwrap()).unwrap();
    let mut s = telegram("B", t0 + 70, 110, 0, 100, 0);
    s.extend(telegram("B", t0 + 80, 125, 0, 100, 0));
    let outcomes = ingest(&mut ing, &s);
    assert_eq!(outcomes, vec![Outcome::Duplicate, Outcome::Stored]);
    ing.commit().unwrap();
    assert_eq!(
        r.rollups(meters[1].id, Step::Day, t0, t0 + 86400).unwrap()[0]
            .rollup
            .sums[0],
        25
    );
    let latest: serde_json::Value =
        serde_json::from_str(r.meters().unwrap()[1].last_frame.as_deref().unwrap()).unwrap();
    assert_eq!(
        latest["reading"]["total_power_import_kwh"].as_f64(),
        Some(0.125)
    );
    assert_eq!(latest["meter"], "42");
}
