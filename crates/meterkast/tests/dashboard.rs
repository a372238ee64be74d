//! The dashboard over real HTTP: its embedded files with types and ETags, and the
//! endpoints it relies on (cost, base load, recent power, prices, status) equal to what
//! went in, with a 4xx and a useful message for bad input, never a 5xx.

mod support;

use meterkast::store::calendar::local_midnight;
use meterkast_codec::Timestamp;
use serde_json::Value as J;
use support::*;

/// Night 480 W with a dip to 240 W from 02:00 to 02:30 local, day 960 W; one telegram a
/// minute from two local midnights ago until a minute ago. Returns the file and the
/// first midnight.
fn capture(dir: &std::path::Path) -> (std::path::PathBuf, i64) {
    let now = meterkast::source::now();
    let (c, _) = Timestamp(now).to_cet();
    let start = local_midnight(c.year, c.month, c.day) - 2 * 86_400;
    let mut bytes = vec![];
    let mut wh = 1_000_000;
    let mut t = start;
    while t < now - 60 {
        bytes.extend(telegram("DASH1", t, wh));
        let (l, _) = Timestamp(t).to_cet();
        let w = match (l.hour, l.minute) {
            (2, m) if m < 30 => 240,
            (h, _) if h < 6 => 480,
            _ => 960,
        };
        wh += w / 60; // Wh per minute
        t += 60;
    }
    let p = dir.join("dash.txt");
    std::fs::write(&p, bytes).unwrap();
    (p, start)
}

fn start(dir: &std::path::Path) -> Daemon {
    let (file, _) = capture(dir);
    import(&dir.join("meterkast.db"), &file);
    Daemon::start(
        dir,
        &[format!("tcp://127.0.0.1:{}", free_port())],
        &[("MK_RETENTION_DAYS", "100000")],
    )
}

fn json(port: u16, method: &str, path: &str, body: &str) -> (u16, J) {
    let (status, _, b) = request(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let j = serde_json::from_slice(&b)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", String::from_utf8_lossy(&b)));
    (status, j)
}

#[test]
fn the_dashboard_and_every_file_it_loads_are_served_with_types_and_etags() {
    let dir = tmpdir("dash-files");
    let d = start(&dir);
    let (status, head, body) = request(d.port, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    let html = String::from_utf8(body).unwrap();
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(assets.len() >= 4, "{assets:?}");
    // Modules the entry imports are served too.
    let mut all: Vec<String> = assets.iter().map(|s| s.to_string()).collect();
    for name in meterkast::http::web::names() {
        all.push(format!("/assets/{name}"));
    }
    for path in &all {
        let (status, head, body) = request(d.port, "GET", path, &[], b"");
        assert_eq!(status, 200, "{path}");
        assert!(!body.is_empty(), "{path}");
        let want = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "svg" => "image/svg+xml",
            _ => "text/html",
        };
        assert!(
            head.contains(&format!("content-type: {want}")),
            "{path}: {head}"
        );
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .unwrap_or_else(|| panic!("{path}: no ETag"))
            .to_string();
        let (status, _, body) = request(d.port, "GET", path, &[("If-None-Match", &etag)], b"");
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty());
    }
    let (status, _, body) = request(d.port, "GET", "/assets/../Cargo.toml", &[], b"");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    d.stop();
}

#[test]
fn cost_baseload_power_prices_and_status_equal_what_went_in() {
    let dir = tmpdir("dash-values");
    let d = start(&dir);
    let (_, first) = capture(&dir);
    let day = |n: i64| meterkast::store::calendar::local_date(first + n * 86_400 + 3600);

    // Base load: each night's lowest quarter is the 240 W dip.
    let b = d.json(&format!("/api/v1/baseload?from={}&to={}", day(0), day(2)));
    let nights = b["nights"].as_array().unwrap();
    assert_eq!(nights.len(), 2, "{b}");
    for (i, n) in nights.iter().enumerate() {
        assert_eq!(n["date"], day(i as i64));
        assert_eq!(n["power_w"], 240.0, "{n}");
    }
    assert_eq!(b["typical_w"], 240.0);
    let kwh = b["yearly_kwh"].as_f64().unwrap();
    assert!((kwh - 240.0 * 8766.0 / 1000.0).abs() < 1e-6);
    let price = d.json("/api/v1/prices");
    let p = price["import_kwh"][0].as_f64().unwrap();
    assert!((b["yearly_cost"].as_f64().unwrap() - kwh * p).abs() < 1e-6);

    // Cost of a whole day equals its series, priced at tariff 1 (all of it is T1).
    let q = format!("from={}&to={}", day(0), day(1));
    let s = d.json(&format!("/api/v1/series?{q}&step=1h"));
    let used: f64 = s["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["import_kwh"].as_f64().unwrap_or(0.0))
        .sum();
    let c = d.json(&format!("/api/v1/cost?{q}"));
    assert!(
        (c["usage"]["import_kwh"].as_f64().unwrap() - used).abs() < 1e-9,
        "{c}"
    );
    assert!(used > 10.0, "a whole day: {used} kWh");
    assert!((c["cost"]["import"].as_f64().unwrap() - used * p).abs() < 1e-6);
    assert_eq!(c["days"], 1.0);

    // Edited prices are used from then on, and kept.
    let mut edited = price.clone();
    edited["import_kwh"] = serde_json::json!([0.5, 0.5, 0.5, 0.5]);
    let (status, back) = json(d.port, "PUT", "/api/v1/prices", &edited.to_string());
    assert_eq!(status, 200, "{back}");
    assert_eq!(back, edited);
    assert_eq!(d.json("/api/v1/prices"), edited);
    let c = d.json(&format!("/api/v1/cost?{q}"));
    assert!((c["cost"]["import"].as_f64().unwrap() - used * 0.5).abs() < 1e-6);

    // Recent power: the stored readings of the last minutes, by the meter's clock.
    let pw = d.json("/api/v1/power?minutes=5");
    let points = pw["points"].as_array().unwrap();
    assert!((4..=6).contains(&points.len()), "{pw}");
    assert!(points.iter().all(|p| p[1] == 360.0), "{pw}");
    assert!(points
        .windows(2)
        .all(|w| w[0][0].as_i64() < w[1][0].as_i64()));

    // Status: the source that never answers shows as disconnected.
    let st = d.json("/api/v1/status");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["sources"][0]["connected"], false, "{st}");
    assert!(st["sources"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("tcp://"));
    d.stop();
}

#[test]
fn bad_dashboard_requests_get_a_useful_4xx_and_change_nothing() {
    let dir = tmpdir("dash-bad");
    let d = start(&dir);
    let before = d.json("/api/v1/prices");
    for (path, want) in [
        ("/api/v1/cost?from=yesterday", 400),
        ("/api/v1/cost?from=2026-01-02&to=2026-01-01", 400),
        ("/api/v1/cost?from=1990-01-01&to=2026-01-01T00:07:00Z", 400),
        ("/api/v1/cost?meter=nope", 404),
        ("/api/v1/baseload?from=2020-01-01&to=2026-01-01", 400),
        ("/api/v1/baseload?to=2026-13-01", 400),
        ("/api/v1/baseload?meter=nope", 404),
        ("/api/v1/power?minutes=0", 400),
        ("/api/v1/power?minutes=100000", 400),
        ("/api/v1/power?minutes=abc", 400),
        ("/api/v1/power?meter=nope", 404),
        ("/assets/nope.js", 404),
    ] {
        let (status, body) = get_with(d.port, path, &[]);
        assert_eq!(status, want, "{path}: {body}");
        let j: J = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert!(
            j["error"].as_str().is_some_and(|e| e.len() > 10),
            "{path}: {body}"
        );
    }
    let huge = format!("{{\"currency\": \"{}\"}}", "E".repeat(3 << 20));
    for body in [
        "",
        "not json",
        "{\"gas_m3\": -1}",
        "{\"gas_m3\": 1e400}",
        "{\"gass_m3\": 1}",
        "{\"currency\": \"euro\"}",
        "{\"import_kwh\": [1, 2]}",
        "[]",
        huge.as_str(),
    ] {
        let (status, _, b) = request(
            d.port,
            "PUT",
            "/api/v1/prices",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let shown = &body[..body.len().min(40)];
        assert!((400..500).contains(&status), "{shown}: {status}");
        if status == 400 {
            let j: J = serde_json::from_slice(&b).unwrap();
            assert!(
                j["error"].as_str().is_some_and(|e| e.len() > 10),
                "{shown}: {j}"
            );
        }
    }
    // Without a JSON content type: still a 400 that says what to send.
    let (status, _, b) = request(d.port, "PUT", "/api/v1/prices", &[], b"{}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&b));
    assert_eq!(d.json("/api/v1/prices"), before);
    d.stop();
}
