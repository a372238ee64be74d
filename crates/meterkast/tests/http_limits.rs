//! The HTTP and bridge listeners against clients that stall, dawdle, flood or lie:
//! stalled exports cannot starve the dashboard and the next one gets 429, slowloris
//! connections are closed, running out of file descriptors neither spins nor kills the
//! daemon, only local or configured Host names are served with the browser headers,
//! and meter ids cannot break response headers.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// A whole GET with headers over HTTP/1.0; status, head and body.
fn fetch(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    get_head(port, path, headers)
}

/// The value of a Prometheus sample line `name` (with its labels), if present.
fn metric(port: u16, name: &str) -> Option<f64> {
    let text = get(port, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A day of readings at 10 s for meter `id`, imported into `dir/meterkast.db`.
fn stored_day(dir: &Path, id: &str) {
    let day = meterkast::store::calendar::local_midnight(2026, 1, 12);
    let mut bytes = vec![];
    for i in 0..8640 {
        bytes.extend(telegram(id, day + i * 10, 100_000 + i));
    }
    let p = dir.join("day.txt");
    std::fs::write(&p, bytes).unwrap();
    import(&dir.join("meterkast.db"), &p);
}

/// A source that never answers: the API serves what is stored.
fn quiet_source() -> String {
    format!("tcp://127.0.0.1:{}", free_port())
}

/// Opens an export and reads only its first bytes: a client that stopped reading.
fn stalled_export(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // 26 years of quarter-hours: ~180 MB of CSV, far beyond any socket buffer.
    write!(
        s,
        "GET /api/v1/export?from=2000-01-01&to=2026-01-01&step=15m HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    s
}

#[test]
fn stalled_exports_leave_the_dashboard_answering_and_the_next_export_gets_429() {
    let dir = tmpdir("stalled-exports");
    stored_day(&dir, "EXP1");
    let d = Daemon::start(
        &dir,
        &[quiet_source()],
        &[("MK_MAX_EXPORTS", "3"), ("MK_RETENTION_DAYS", "100000")],
    );
    let stalled: Vec<TcpStream> = (0..3).map(|_| stalled_export(d.port)).collect();
    wait_for("three exports running", 20, || {
        metric(d.port, "meterkast_http_exports_running") == Some(3.0)
    });

    let (status, head, body) = fetch(d.port, "/api/v1/export?step=1h", &[]);
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: "), "{head}");
    assert!(body.contains("--max-exports"), "{body}");
    assert_eq!(
        metric(d.port, "meterkast_http_exports_refused_total"),
        Some(1.0)
    );

    // The dashboard's reads are not the exports' to take.
    for path in [
        "/api/v1/meters",
        "/api/v1/series?from=2026-01-12&to=2026-01-13&step=15m",
        "/api/v1/series?from=2026-01-12&to=2026-01-13&step=raw",
        "/api/v1/prices",
        "/api/v1/status",
    ] {
        let (status, _, body) = fetch(d.port, path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", &body[..body.len().min(200)]));
    }
    let raw: serde_json::Value = serde_json::from_str(
        &fetch(
            d.port,
            "/api/v1/series?from=2026-01-12&to=2026-01-13&step=raw",
            &[],
        )
        .2,
    )
    .unwrap();
    assert_eq!(raw["readings"].as_array().unwrap().len(), 8640);

    // A client that leaves frees its place.
    drop(stalled);
    wait_for("the exports to end", 20, || {
        metric(d.port, "meterkast_http_exports_running") == Some(0.0)
    });
    let (status, head, body) = fetch(
        d.port,
        "/api/v1/export?step=1h&from=2026-01-12&to=2026-01-13",
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("filename=\"meterkast-"), "{head}");
    assert_eq!(body.lines().count(), 25, "a header and 24 hours");
    d.stop();
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let dir = tmpdir("write-timeout");
    stored_day(&dir, "EXP2");
    let d = Daemon::start(
        &dir,
        &[quiet_source()],
        &[("MK_WRITE_TIMEOUT", "1s"), ("MK_RETENTION_DAYS", "100000")],
    );
    let _stalled = stalled_export(d.port);
    wait_for("the stalled export to be cut off", 30, || {
        metric(d.port, "meterkast_http_exports_running") == Some(0.0)
            && metric(
                d.port,
                "meterkast_listener_timeouts_total{listener=\"http\"}",
            )
            .is_some_and(|n| n >= 1.0)
    });
    d.stop();
}

#[test]
fn slowloris_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tmpdir("slowloris");
    let d = Daemon::start(&dir, &[quiet_source()], &[("MK_HEADER_TIMEOUT", "1s")]);
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
            if i % 2 == 0 {
                // Half send a request line and then dribble; half send nothing.
                s.write_all(b"GET /api/v1/meters HTTP/1.1\r\nHost: localhost\r\n")
                    .unwrap();
            }
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    // Dribble a header byte now and then: still closed, the timeout is for the whole head.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        for s in slow.iter_mut().step_by(2) {
            let _ = s.write_all(b"X");
        }
    }
    for (i, s) in slow.iter_mut().enumerate() {
        let mut buf = [0u8; 512];
        // Closed: end of stream, a reset, or hyper's 408; never a read that hangs.
        match s.read(&mut buf) {
            Ok(n) => assert!(
                n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "connection {i} got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => assert!(
                matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
                "connection {i}: {e}"
            ),
        }
    }
    let closed = metric(
        d.port,
        "meterkast_listener_timeouts_total{listener=\"http\"}",
    );
    assert!(closed.is_some_and(|n| n >= 20.0), "{closed:?}");
    assert!(get(d.port, "/healthz").is_some());
    d.stop();
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn out_of_descriptors_the_daemon_neither_spins_nor_dies_and_recovers() {
    let dir = tmpdir("emfile");
    let (port, bridge) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    // 128 descriptors, and caps above that, so accept runs into EMFILE itself.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec \"$0\" run --db {} --source {} --http 127.0.0.1:{port} --tcp-bridge 127.0.0.1:{bridge} --max-connections 2000 --header-timeout 1h",
            dir.join("meterkast.db").display(),
            quiet_source()
        ))
        .arg(env!("CARGO_BIN_EXE_meterkast"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for("the daemon to answer", 20, || {
        get(port, "/healthz").is_some()
    });

    // Idle clients on both listeners, more than the descriptors allow.
    let mut idle = Vec::new();
    for i in 0..300 {
        let p = if i % 2 == 0 { port } else { bridge };
        // A full accept queue may drop the handshake: do not wait for it.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    // A spinning accept loop burns a whole core (3 s); backing off uses next to nothing.
    assert!(
        used < 1.0,
        "{used} CPU seconds in 3 s: the accept loop spins"
    );
    assert!(child.try_wait().unwrap().is_none(), "the daemon died");

    drop(idle);
    wait_for("answers once clients left", 30, || {
        get(port, "/healthz").is_some()
    });
    let errors = metric(
        port,
        "meterkast_listener_accept_errors_total{listener=\"http\"}",
    );
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");
    let text = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    let notes = text.matches("cannot accept connections").count();
    assert!(
        (1..=4).contains(&notes),
        "the log says it once per listener (and minute), not per attempt: {notes}\n{text}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

#[test]
fn only_local_or_allowed_hosts_are_served_with_browser_headers() {
    let dir = tmpdir("hosts");
    let d = Daemon::start(
        &dir,
        &[quiet_source()],
        &[("MK_ALLOWED_HOST", "meter.example.org,*.home.arpa")],
    );
    let port = d.port.to_string();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "192.168.1.20".into(),
        format!("localhost:{port}"),
        "meter.example.org".into(),
        format!("Pi.Home.Arpa:{port}"),
        meterkast::http::homewizard::hostname(),
    ] {
        let (status, head, body) = fetch(d.port, "/api/v1/meters", &[("Host", &host)]);
        assert_eq!(status, 200, "{host}: {body}");
        assert!(head.contains("frame-ancestors 'none'"), "{head}");
    }
    for host in [
        "evil.example",
        "meter.example.org.evil.example",
        "rebind.attacker.net:8080",
    ] {
        for path in ["/", "/api/v1/meters", "/healthz", "/api/v1/data"] {
            let (status, _, body) = fetch(d.port, path, &[("Host", host)]);
            assert_eq!(status, 421, "{host}{path}: {body}");
            let j: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                j["error"].as_str().unwrap().contains("--allowed-host"),
                "{j}"
            );
        }
    }
    // HomeWizard clients call by IP address.
    let (status, _, _) = fetch(d.port, "/api", &[("Host", "192.168.1.20")]);
    assert_eq!(status, 200);

    // Every answer carries the browser headers, errors included.
    for path in ["/", "/assets/app.js", "/api/v1/meters", "/nope"] {
        let (_, head, _) = fetch(d.port, path, &[]);
        for h in [
            "content-security-policy: default-src 'self'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
        ] {
            assert!(head.contains(h), "{path} lacks {h}: {head}");
        }
    }
    // The dashboard runs under that policy: no inline scripts, handlers or styles.
    for name in meterkast::http::web::names() {
        if !(name.ends_with(".html") || name.ends_with(".js")) || name.contains("vendor/") {
            continue;
        }
        let (status, _, body) = fetch(d.port, &format!("/assets/{name}"), &[]);
        let body = if name == "index.html" {
            fetch(d.port, "/", &[]).2
        } else {
            assert_eq!(status, 200, "{name}");
            body
        };
        for bad in [
            "style=",
            " onclick=",
            " onload=",
            "<script>",
            "javascript:",
            "eval(",
        ] {
            assert!(
                !body.contains(bad),
                "{name} has {bad}, which the CSP blocks"
            );
        }
    }
    d.stop();
}

/// `telegram` with the equipment id line holding `id` as is (not hex-encoded).
fn telegram_with_raw_id(id: &str, t: i64, wh: i64) -> Vec<u8> {
    let t = telegram("X", t, wh);
    let text = String::from_utf8(t).unwrap();
    let body = text
        .split('!')
        .next()
        .unwrap()
        .replace("0-0:96.1.1(58)", &format!("0-0:96.1.1({id})"));
    let mut v = format!("{body}!").into_bytes();
    v.extend_from_slice(format!("{:04X}\r\n", meterkast_codec::crc::crc16_arc(&v)).as_bytes());
    v
}

#[test]
fn meter_ids_never_break_the_export_headers() {
    let dir = tmpdir("filenames");
    let day = meterkast::store::calendar::local_midnight(2026, 1, 12);
    let mut bytes = vec![];
    for id in ["ab\"c; x=1", "a\u{1}b", "zähler"] {
        for i in 0..10 {
            bytes.extend(telegram_with_raw_id(id, day + i * 10, 100_000 + i));
        }
    }
    let p = dir.join("ids.txt");
    std::fs::write(&p, bytes).unwrap();
    import(&dir.join("meterkast.db"), &p);
    let d = Daemon::start(&dir, &[quiet_source()], &[("MK_RETENTION_DAYS", "100000")]);
    let ids: Vec<String> = d
        .json("/api/v1/meters")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.is_empty(), "the odd ids were stored");
    for id in &ids {
        let q: String = url_escape(id);
        let (status, head, body) = fetch(
            d.port,
            &format!("/api/v1/export?meter={q}&from=2026-01-12&to=2026-01-13&step=raw"),
            &[],
        );
        assert_eq!(status, 200, "{id:?}: {body}");
        let cd = head
            .lines()
            .find(|l| l.starts_with("content-disposition:"))
            .unwrap();
        assert!(cd.bytes().all(|b| (0x20..0x7f).contains(&b)), "{cd}");
        assert_eq!(cd.matches('"').count(), 2, "{cd}");
        assert!(!cd.contains("x=1-"), "a parameter smuggled in: {cd}");
        assert_eq!(body.lines().count(), 11, "{id:?}: a header and 10 readings");
    }
    // An id nobody has, with a control character: a 404, never a 500.
    let (status, _, body) = fetch(d.port, "/api/v1/export?meter=a%01b%22", &[]);
    assert_eq!(status, 404, "{body}");
    d.stop();
}

fn url_escape(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A request with a body; status and body.
fn send(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn partial_prices_need_patch_and_odd_times_get_a_400() {
    let dir = tmpdir("prices-patch");
    let d = Daemon::start(&dir, &[quiet_source()], &[]);
    let before = d.json("/api/v1/prices");
    for body in ["{}", r#"{"gas_m3": 1.5}"#] {
        let (status, j) = send(d.port, "PUT", "/api/v1/prices", body);
        assert_eq!(status, 400, "{body}: {j}");
        let e = j["error"].as_str().unwrap();
        assert!(e.contains("import_kwh") && e.contains("PATCH"), "{e}");
        assert_eq!(
            e.contains("gas_m3"),
            body == "{}",
            "only what is missing: {e}"
        );
    }
    assert_eq!(
        d.json("/api/v1/prices"),
        before,
        "a refused PUT changes nothing"
    );

    let (status, j) = send(
        d.port,
        "PATCH",
        "/api/v1/prices",
        r#"{"gas_m3": 1.5, "import_kwh": [0.3, 0.2, 0.3, 0.2]}"#,
    );
    assert_eq!(status, 200, "{j}");
    let mut want = before.clone();
    want["gas_m3"] = 1.5.into();
    want["import_kwh"] = serde_json::json!([0.3, 0.2, 0.3, 0.2]);
    assert_eq!(j, want);
    assert_eq!(
        d.json("/api/v1/prices"),
        want,
        "the others kept, the change stored"
    );
    for bad in [
        r#"{"gas_m3": -1}"#,
        r#"{"nope": 1}"#,
        r#"{"gas_m3": null}"#,
        "[]",
    ] {
        let (status, j) = send(d.port, "PATCH", "/api/v1/prices", bad);
        assert_eq!(status, 400, "{bad}: {j}");
    }
    assert_eq!(d.json("/api/v1/prices"), want);

    for q in [
        "from=2026-03-29T00:00:00%2B99:99",
        "from=2026-03-29T23:59:60Z",
        "from=0000-01-01",
        "to=0000-01-01T00:00:00%2B01:00",
    ] {
        let (status, _, body) = fetch(d.port, &format!("/api/v1/series?{q}"), &[]);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(!body.contains("-001-"), "{q}: {body}");
    }
    d.stop();
}

#[test]
fn connections_beyond_the_cap_get_503_and_the_bridge_closes_them() {
    let dir = tmpdir("conn-cap");
    let bridge = free_port();
    let d = Daemon::run(
        &dir,
        &[
            "--source".into(),
            quiet_source(),
            "--tcp-bridge".into(),
            format!("127.0.0.1:{bridge}"),
            "--max-connections".into(),
            "4".into(),
        ],
        &[],
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    wait_for("four connections open", 10, || {
        let (status, _, body) = get_head(d.port, "/healthz", &[]);
        status == 503
            && serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|j| j["error"].as_str().is_some_and(|e| e.contains("try again")))
    });
    drop(held);
    wait_for("room again", 20, || {
        get_head(d.port, "/healthz", &[]).0 == 200
    });
    assert!(metric(
        d.port,
        "meterkast_listener_refused_total{listener=\"http\"}"
    )
    .is_some_and(|n| n >= 1.0));

    let bridged: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", bridge)).unwrap())
        .collect();
    wait_for("the bridge to count them", 10, || {
        metric(
            d.port,
            "meterkast_listener_connections{listener=\"bridge\"}",
        ) == Some(4.0)
    });
    let mut extra = TcpStream::connect(("127.0.0.1", bridge)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the fifth bridge client is closed");
    // Clients that hang up free their places though no telegram comes to notice it.
    drop(bridged);
    wait_for("the bridge to see them leave", 10, || {
        metric(
            d.port,
            "meterkast_listener_connections{listener=\"bridge\"}",
        ) == Some(0.0)
    });
    d.stop();
}
