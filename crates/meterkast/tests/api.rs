//! The REST API over real HTTP against a real store: every endpoint's values equal what
//! went in (a DST day's 92 quarters, a planted capacity peak), bad queries get a 4xx
//! with a useful message, the raw bridge serves identical streams, auth holds.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use meterkast::store::calendar::local_midnight;
use serde_json::Value as J;
use support::*;

/// 2026-03-29 (23 hours) at 10 s: +1 Wh per telegram, and the quarter from 12:00 local
/// (10:00 UTC) planted with +6 Wh per telegram, 2160 W on average.
fn dst_day_capture(dir: &std::path::Path) -> (std::path::PathBuf, i64, i64) {
    let day = local_midnight(2026, 3, 29);
    let end = local_midnight(2026, 3, 30);
    let peak = day + 11 * 3600; // 12:00 CEST is 11 hours after midnight CET
    let mut bytes = vec![];
    let mut wh = 500_000;
    let mut t = day;
    while t <= end {
        bytes.extend(telegram("API1", t, wh));
        t += 10;
        wh += if t > peak && t <= peak + 900 { 6 } else { 1 };
    }
    let p = dir.join("dst.txt");
    std::fs::write(&p, bytes).unwrap();
    (p, day, peak)
}

fn start_with_db(dir: &Path, extra: &[(&str, &str)]) -> Daemon {
    start_on(dir, &dir.join("meterkast.db"), extra)
}

fn start_on(dir: &Path, db: &Path, extra: &[(&str, &str)]) -> Daemon {
    // A source that never answers: the API serves what is stored.
    let mut env = vec![("MK_RETENTION_DAYS", "100000")];
    env.extend_from_slice(extra);
    Daemon::start_db(dir, db, &[format!("tcp://127.0.0.1:{}", free_port())], &env)
}

on_both_stores!(
    series_peaks_and_export,
    series_peaks_and_export_equal_what_went_in,
    series_peaks_and_export_equal_what_went_in_postgres
);
on_both_stores!(
    bad_queries,
    bad_queries_get_a_useful_4xx_never_a_5xx,
    bad_queries_get_a_useful_4xx_never_a_5xx_postgres
);

fn series_peaks_and_export(dir: &Path, db: &Path) {
    let (capture, day, peak) = dst_day_capture(dir);
    import(db, &capture);
    let d = start_on(dir, db, &[]);

    let meters = d.json("/api/v1/meters");
    assert_eq!(meters[0]["id"], "41504931");
    assert_eq!(meters[0]["dialect"], "dsmr-5.0");

    let q = d.json("/api/v1/series?from=2026-03-29&to=2026-03-30&step=15m");
    let buckets = q["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 92, "a spring day has 92 quarter-hours");
    let planted = meterkast_codec::Timestamp(peak).to_string();
    for b in buckets {
        let want = if b["start"] == planted.as_str() {
            0.54
        } else {
            0.09
        };
        assert_eq!(b["import_kwh"].as_f64(), Some(want), "{}", b["start"]);
        assert_eq!(b["samples"], 90);
    }
    let hours = d.json("/api/v1/series?from=2026-03-29&to=2026-03-30&step=1h");
    assert_eq!(hours["buckets"].as_array().unwrap().len(), 23);
    let days = d.json("/api/v1/series?from=2026-03-29&to=2026-03-30&step=1d");
    assert_eq!(
        days["buckets"][0]["import_kwh"].as_f64(),
        Some(8.73),
        "23 h at 360 W plus the planted 450 Wh"
    );
    assert_eq!(days["buckets"][0]["avg_power_w"].as_f64(), Some(360.0));
    assert_eq!(days["buckets"][0]["start"], "2026-03-28T23:00:00Z");
    assert_eq!(days["buckets"][0]["end"], "2026-03-29T22:00:00Z");

    let raw = d.json("/api/v1/series?from=2026-03-29T10:00:00Z&to=2026-03-29T10:01:00Z&step=raw");
    let readings = raw["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 6);
    assert_eq!(readings[0]["timestamp"], "2026-03-29T10:00:00Z");
    assert!(readings[0]["reading"]["total_power_import_kwh"]
        .as_f64()
        .is_some());

    let p = d.json("/api/v1/peaks?month=2026-03");
    assert_eq!(p["peak"]["start"], planted.as_str());
    assert_eq!(p["peak"]["average_power_w"].as_f64(), Some(2160.0));
    assert_eq!(p["days"][0]["date"], "2026-03-29");
    assert_eq!(p["days"][0]["start"], planted.as_str());
    assert_eq!(p["days"][0]["average_power_w"].as_f64(), Some(2160.0));
    assert_eq!(p["months"].as_array().unwrap().len(), 13);
    assert_eq!(p["months"][12]["month"], "2026-03");
    assert_eq!(p["months"][12]["peak_w"].as_f64(), Some(2160.0));
    assert_eq!(p["rolling_12_month_average_w"].as_f64(), Some(2160.0));
    assert_eq!(
        p["rolling_12_month_average_billed_w"].as_f64(),
        Some(2500.0)
    );

    let (status, csv) = get_with(
        d.port,
        "/api/v1/export?from=2026-03-29&to=2026-03-30&step=15m&format=csv",
        &[],
    );
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 93);
    assert!(lines[0].starts_with("start,end,import_kwh,export_kwh"));
    let (_, jsonl) = get_with(
        d.port,
        "/api/v1/export?from=2026-03-29&to=2026-03-30&step=raw&format=json",
        &[],
    );
    assert_eq!(
        jsonl.lines().count() as i64,
        23 * 360,
        "[from, to): the reading at midnight belongs to the next day"
    );

    let (status, text) = get_with(d.port, "/api/v1/telegram", &[]);
    assert_eq!(status, 200);
    assert!(text.starts_with("/ISK5") && text.contains("!"), "{text}");
    let _ = day;
    d.stop();
}

fn bad_queries(dir: &Path, db: &Path) {
    let (capture, _, _) = dst_day_capture(dir);
    import(db, &capture);
    let d = start_on(dir, db, &[]);
    for (path, want) in [
        ("/api/v1/series?from=yesterday", 400),
        ("/api/v1/series?from=2026-02-30", 400),
        ("/api/v1/series?from=2026-03-30&to=2026-03-29", 400),
        ("/api/v1/series?step=2h", 400),
        ("/api/v1/series?from=2000-01-01&to=2026-01-01&step=15m", 400),
        ("/api/v1/series?from=2026-01-01&to=2026-03-01&step=raw", 400),
        ("/api/v1/series?meter=nope", 404),
        ("/api/v1/series?from=%ZZ", 400),
        ("/api/v1/peaks?month=2026-13", 400),
        ("/api/v1/peaks?month=26-01", 400),
        ("/api/v1/export?format=xml", 400),
        ("/api/v1/telegram?meter=nope", 404),
        ("/api/v1/nothing", 404),
        ("/api/v1/series?from=99999-01-01T00:00:00Z", 400),
    ] {
        let (status, body) = get_with(d.port, path, &[]);
        assert_eq!(status, want, "{path}: {body}");
        let j: J =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            j["error"].as_str().is_some_and(|e| e.len() > 10),
            "{path}: {body}"
        );
    }
    // A year of quarter-hours exports fine (streamed).
    let (status, csv) = get_with(
        d.port,
        "/api/v1/export?from=2025-06-01&to=2026-06-01&step=15m",
        &[],
    );
    assert_eq!(status, 200);
    assert!(csv.lines().count() > 35_000);
    // Streamed: the daemon's peak memory stays far below what the answer weighs.
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    assert!(
        hwm_kb < 64 * 1024,
        "peak memory {hwm_kb} kB while exporting"
    );
    d.stop();
}

#[test]
fn auth_rejects_missing_and_wrong_credentials() {
    let dir = tmpdir("api-auth");
    let d = start_with_db(&dir, &[("MK_AUTH_TOKEN", "s3cret-token")]);
    assert_eq!(get_with(d.port, "/api/v1/now", &[]).0, 401);
    assert_eq!(
        get_with(d.port, "/api/v1/now", &[("Authorization", "Bearer wrong")]).0,
        401
    );
    assert_eq!(get_with(d.port, "/metrics", &[]).0, 401);
    assert_eq!(
        get_with(
            d.port,
            "/api/v1/now",
            &[("Authorization", "Bearer s3cret-token")]
        )
        .0,
        200
    );
    assert_eq!(get_with(d.port, "/healthz", &[]).0, 200);
    d.stop();
    let dir = tmpdir("api-basic");
    let d = start_with_db(&dir, &[("MK_AUTH_BASIC", "user:pass")]);
    assert_eq!(
        get_with(
            d.port,
            "/api/v1/meters",
            &[("Authorization", "Basic dXNlcjp3cm9uZw==")]
        )
        .0,
        401
    );
    assert_eq!(
        get_with(
            d.port,
            "/api/v1/meters",
            &[("Authorization", "Basic dXNlcjpwYXNz")]
        )
        .0,
        200
    );
    d.stop();
}

#[test]
fn bridge_clients_get_identical_streams_while_one_stalls() {
    let dir = tmpdir("bridge");
    let port = free_port();
    let source = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let bridge_port = free_port();
    let bridge = format!("127.0.0.1:{bridge_port}");
    let d = Daemon::start(
        &dir,
        &[format!("tcp://127.0.0.1:{port}")],
        &[("MK_TCP_BRIDGE", bridge.as_str())],
    );
    let (mut feed, _) = source.accept().unwrap();
    // Three readers, and one that never reads with a tiny receive buffer.
    let stalled = {
        use nix::sys::socket::{
            connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        setsockopt(&fd, sockopt::RcvBuf, &2048).unwrap();
        connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::new(127, 0, 0, 1, bridge_port),
        )
        .unwrap();
        fd
    };
    let readers: Vec<_> = (0..3)
        .map(|_| TcpStream::connect(&bridge).unwrap())
        .collect();
    wait_for("the bridge clients", 10, || {
        d.json("/healthz")["status"] == "ok"
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 86_400;
    let mut sent = Vec::new();
    for k in 0..20_000 {
        sent.extend(telegram("BR1", t0 + k, 100_000 + k));
    }
    let want = sent.len();
    let writer = std::thread::spawn(move || {
        for c in sent.chunks(64 * 1024) {
            feed.write_all(c).unwrap();
        }
        sent
    });
    let handles: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                r.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut got = vec![0u8; want];
                r.read_exact(&mut got).unwrap();
                got
            })
        })
        .collect();
    let sent = writer.join().unwrap();
    for h in handles {
        assert!(
            h.join().unwrap() == sent,
            "a bridge client got a different byte stream"
        );
    }
    wait_for("the stalled client to be dropped", 10, || {
        get(d.port, "/metrics")
            .unwrap()
            .contains("meterkast_bridge_dropped_total 1")
    });
    drop(stalled);
    d.stop();
}

#[test]
fn live_events_arrive_as_readings_are_accepted() {
    let dir = tmpdir("live");
    let port = free_port();
    let source = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{port}")], &[]);
    let (mut feed, _) = source.accept().unwrap();
    let mut sse = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sse.write_all(
        b"GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
    )
    .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    // Wait for the response head before sending, so the subscription exists.
    while !got.contains("\r\n\r\n") {
        let n = sse.read(&mut buf).unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("text/event-stream"), "{got}");
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 60;
    feed.write_all(&telegram("LV1", t, 4321)).unwrap();
    while !got.contains("event: reading")
        || !got[got.find("event: reading").unwrap()..].contains("\n\n")
    {
        let n = sse.read(&mut buf).unwrap();
        assert!(n > 0, "the event stream ended");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let data = got.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let frame: J = serde_json::from_str(data).unwrap();
    assert_eq!(
        frame["reading"]["total_power_import_kwh"].as_f64(),
        Some(4.321)
    );
    assert_eq!(frame["meter"], "4C5631");
    d.stop();
}
