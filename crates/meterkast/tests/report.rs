//! `meterkast report` and the daemon's scheduled reports, as users run them: a store
//! filled by the simulator through `meterkast import`, the real binary, the pictures
//! decoded, the figures checked against `/api/v1/series`, and (in the ignored suite) a
//! real SMTP server on loopback receiving the mails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value as J;
use support::{free_port, get, tmpdir, wait_for, Daemon};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meterkast"))
}

/// A database filled by the simulator (a Belgian meter with gas and water, one
/// telegram a minute) from `start` for `count` telegrams. The simulator is
/// deterministic, so the database is made once under the target folder and reused.
fn simulated_db(name: &str, start: &str, count: u32) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{start}-{count}"));
    let db = dir.join("meterkast.db");
    if dir.join("complete").exists() {
        return db;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("capture.txt");
    let out = bin()
        .args([
            "simulate",
            "--dialect",
            "be",
            "--seed",
            "5",
            "--interval",
            "1m",
        ])
        .args(["--start", start, "--count", &count.to_string()])
        .stdout(std::fs::File::create(&capture).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    support::import(&db, &capture);
    std::fs::remove_file(&capture).unwrap();
    std::fs::write(dir.join("complete"), "").unwrap();
    db
}

/// 2026-03-21 to 2026-03-31 (the spring DST day 2026-03-29 and the Sunday before).
fn march() -> &'static Path {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| simulated_db("report-march", "2026-03-20T23:00:00Z", 11 * 1440))
}

/// 2026-10-24 to 2026-10-26 (the autumn DST day 2026-10-25 has 25 hours).
fn october() -> &'static Path {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| simulated_db("report-october", "2026-10-23T22:00:00Z", 3 * 1440 + 60))
}

fn report(db: &Path, args: &[&str]) -> Output {
    bin()
        .arg("report")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a report that must succeed; its stdout (the mail's plain text).
fn report_ok(db: &Path, args: &[&str]) -> String {
    let out = report(db, args);
    assert!(
        out.status.success(),
        "report {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Decodes a PNG: (width, height, RGB pixels).
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let px = buf[..info.buffer_size()]
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// Checks a picture is phone-sized and not blank; returns how many pixels have the
/// import colour (orange) and the export colour (green).
fn check_picture(path: &Path, width: u32) -> (usize, usize) {
    let (w, h, px) = decode_png(path);
    assert_eq!(w, width);
    assert!(h > w && h < 3 * w, "{w}×{h} is not a phone-shaped picture");
    let inked = px.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(
        inked * 20 > px.len(),
        "only {inked} of {} pixels are not white",
        px.len()
    );
    let colours: std::collections::HashSet<_> = px.iter().collect();
    assert!(colours.len() > 50, "only {} colours", colours.len());
    let orange = px.iter().filter(|p| **p == [230, 115, 25]).count();
    let green = px.iter().filter(|p| **p == [34, 160, 90]).count();
    (orange, green)
}

/// The number after `label: ` in the report text (`Import: 9.965 kWh (...)`).
fn figure(text: &str, label: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{label}: ")))?;
    let rest = &line[label.len() + 2..];
    let num: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit() && *c != '-')
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

/// A number from the detail of a line: the value after `key ` (`T1 5.100`).
fn detail(text: &str, label: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(label))?;
    let (_, rest) = line.split_once(&format!("{key} "))?;
    rest.split([' ', ')']).next()?.parse().ok()
}

/// Renders a day of the March store as PNG in a fresh folder: the folder, the printed
/// figures, and the import and export pixel counts.
fn march_day(name: &str, date: &str) -> (PathBuf, String, (usize, usize)) {
    let dir = tmpdir(name);
    let png = dir.join(format!("{date}.png"));
    let text = report_ok(march(), &["--date", date, "--out", png.to_str().unwrap()]);
    let colours = check_picture(&png, 1080);
    (dir, text, colours)
}

#[test]
fn a_day_renders_as_png_and_svg() {
    let (dir, text, (orange, green)) = march_day("report-day", "2026-03-25");
    assert!(
        orange > 5000,
        "the import curve and bars are missing ({orange} px)"
    );
    assert!(green > 1000, "the solar export is missing ({green} px)");
    assert!(
        text.starts_with("Wednesday 25 March 2026 · meter "),
        "{text}"
    );
    for label in [
        "Import",
        "Export",
        "Cost",
        "Gas",
        "Water",
        "Peak (15 min)",
        "Base load",
    ] {
        assert!(figure(&text, label).is_some(), "no {label} in\n{text}");
    }
    assert!(text.contains("vs last Wednesday (2026-03-18): –"), "{text}");

    let narrow = dir.join("narrow.png");
    report_ok(
        march(),
        &[
            "--date",
            "2026-03-25",
            "--out",
            narrow.to_str().unwrap(),
            "--width",
            "540",
        ],
    );
    check_picture(&narrow, 540);

    let svg = dir.join("day.svg");
    report_ok(
        march(),
        &["--date", "2026-03-25", "--out", svg.to_str().unwrap()],
    );
    let xml = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1080"));
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"Wednesday 25 March 2026"), "{texts:?}");
    assert!(doc.descendants().filter(|n| n.has_tag_name("rect")).count() > 24);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_day_without_data_is_a_clear_picture_not_an_error() {
    let (dir, text, (orange, green)) = march_day("report-nodata", "2026-03-10");
    assert_eq!((orange, green), (0, 0), "no data must draw no curve");
    assert!(
        text.contains("Import: – (no data stored for this day)"),
        "{text}"
    );
    let month = dir.join("empty-month.png");
    let text = report_ok(
        march(),
        &["--month", "2025-07", "--out", month.to_str().unwrap()],
    );
    check_picture(&month, 1080);
    assert!(text.contains("no data stored for this month"), "{text}");
    // The local day's bounds are named: the date is not a UTC day.
    let out = report(
        march(),
        &["--date", "2026-03-10", "--out", month.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no data stored for 2026-03-10: the local day from 2026-03-10T00:00:00+01:00 to 2026-03-11T00:00:00+01:00"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The daemon on a database, reading nothing new (its only source never answers).
fn api(db: &Path) -> Daemon {
    let dir = tmpdir(&format!("report-api-{}", free_port()));
    std::fs::copy(db, dir.join("meterkast.db")).unwrap();
    Daemon::start(&dir, &[format!("tcp://127.0.0.1:{}", free_port())], &[])
}

fn bucket_sum(buckets: &J, key: &str) -> f64 {
    buckets
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b[key].as_f64())
        .sum()
}

/// The report's figures for a day equal what `/api/v1/series` says for it.
fn check_day_against_api(d: &Daemon, db: &Path, date: &str, next: &str, quarters: usize) {
    let out = d.db.parent().unwrap().join(format!("{date}.png"));
    let text = report_ok(db, &["--date", date, "--out", out.to_str().unwrap()]);
    check_picture(&out, 1080);
    let day = d.json(&format!("/api/v1/series?from={date}&to={next}&step=1d"));
    let b = &day["buckets"][0];
    let close = |a: f64, b: f64| (a - b).abs() < 0.0005;
    let import = figure(&text, "Import").unwrap();
    assert!(
        close(import, b["import_kwh"].as_f64().unwrap()),
        "{text}\n{b}"
    );
    let export = figure(&text, "Export").unwrap();
    assert!(
        close(export, b["export_kwh"].as_f64().unwrap()),
        "{text}\n{b}"
    );
    for (t, key) in [("T1", "import_t1_kwh"), ("T2", "import_t2_kwh")] {
        let api = b[key].as_f64().unwrap();
        match detail(&text, "Import", t) {
            Some(v) => assert!(close(v, api), "{t}: {v} vs {api}"),
            None => assert_eq!(api, 0.0, "{t} missing from\n{text}"),
        }
    }
    assert!(close(
        figure(&text, "Gas").unwrap(),
        b["gas_m3"].as_f64().unwrap()
    ));
    assert!(close(
        figure(&text, "Water").unwrap(),
        b["water_m3"].as_f64().unwrap()
    ));
    // The quarter-hours: as many as the local day has, and the peak is their maximum.
    let q = d.json(&format!("/api/v1/series?from={date}&to={next}&step=15m"));
    let qs = q["buckets"].as_array().unwrap();
    assert_eq!(qs.len(), quarters);
    assert!(close(bucket_sum(&q["buckets"], "import_kwh"), import));
    let peak_w = qs
        .iter()
        .filter_map(|b| b["import_kwh"].as_f64())
        .fold(0.0, f64::max)
        * 4000.0;
    let shown = figure(&text, "Peak (15 min)").unwrap();
    let shown_w = if shown < 100.0 { shown * 1000.0 } else { shown };
    assert!(
        (shown_w - peak_w).abs() <= 5.0,
        "peak {shown} vs {peak_w} W"
    );
    // The same weekday a week before, from the API too.
    let prev = day_minus_7(date);
    let before = d.json(&format!(
        "/api/v1/series?from={prev}&to={}&step=1d",
        day_minus_7(next)
    ));
    if let Some(kwh) = before["buckets"][0]["import_kwh"].as_f64() {
        let v = detail(&text, &format!("vs last {}", weekday_of(&text)), "import").unwrap();
        assert!(close(v, kwh), "{v} vs {kwh}");
    }
}

fn day_minus_7(date: &str) -> String {
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let days = meterkast_codec::time::days_from_civil(d[0], d[1] as u32, d[2] as u32) - 7;
    let (y, m, dd) = meterkast_codec::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{dd:02}")
}

fn weekday_of(text: &str) -> &str {
    text.split(' ').next().unwrap()
}

#[test]
fn figures_equal_the_api_including_dst_days() {
    let d = api(march());
    // Spring forward: 23 hours, 92 quarter-hours, compared with the Sunday before.
    check_day_against_api(&d, march(), "2026-03-29", "2026-03-30", 92);
    check_day_against_api(&d, march(), "2026-03-26", "2026-03-27", 96);
    // The month: totals and the capacity peak as /api/v1/series and /api/v1/peaks say.
    let out = d.db.parent().unwrap().join("month.png");
    let text = report_ok(
        march(),
        &["--month", "2026-03", "--out", out.to_str().unwrap()],
    );
    check_picture(&out, 1080);
    let m = d.json("/api/v1/series?from=2026-03-01&to=2026-04-01&step=1mo");
    let api_import = m["buckets"][0]["import_kwh"].as_f64().unwrap();
    assert!((figure(&text, "Import").unwrap() - api_import).abs() < 0.0005);
    let peaks = d.json("/api/v1/peaks?month=2026-03");
    let peak_kw = peaks["peak"]["average_power_w"].as_f64().unwrap() / 1000.0;
    let shown = figure(&text, "Capacity peak").unwrap();
    assert!((shown - peak_kw).abs() < 0.006, "{shown} vs {peak_kw}");
    let folder = d.db.parent().unwrap().to_path_buf();
    d.stop();
    std::fs::remove_dir_all(folder).unwrap();

    // Fall back: 25 hours, 100 quarter-hours.
    let d = api(october());
    check_day_against_api(&d, october(), "2026-10-25", "2026-10-26", 100);
    let folder = d.db.parent().unwrap().to_path_buf();
    d.stop();
    std::fs::remove_dir_all(folder).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error_and_no_file() {
    let dir = tmpdir("report-bad");
    let out = dir.join("x.png");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--date", "2026-02-30", "--out", o], "no such day"),
        (vec!["--date", "yesterday", "--out", o], "2026-03-29"),
        (vec!["--month", "2026-13", "--out", o], "YYYY-MM"),
        (
            vec!["--date", "2026-03-25", "--out", o, "--meter", "NOPE"],
            "no meter NOPE",
        ),
        (
            vec!["--date", "2026-03-25", "--out", "/tmp/x.jpg"],
            ".png or .svg",
        ),
        (
            vec!["--date", "2026-03-25", "--out", "/nonexistent-folder/x.png"],
            "cannot write /nonexistent-folder/x.png",
        ),
        (
            vec!["--date", "2026-03-25", "--out", o, "--mail"],
            "--report-smtp",
        ),
        (
            vec!["--date", "2026-03-25", "--month", "2026-03", "--out", o],
            "cannot be used with",
        ),
        (vec!["--out", o], "--date"),
    ];
    for (args, want) in cases {
        let r = report(march(), &args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
        assert!(!out.exists(), "{args:?} wrote a file");
    }
    let r = report(
        &dir.join("missing.db"),
        &["--date", "2026-03-25", "--out", o],
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no database at"));
    assert!(
        !dir.join("missing.db").exists(),
        "a missing database must not be created"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- a real SMTP server on loopback ----

/// The python venv with the pinned aiosmtpd, made once under `target/smtp-venv`.
fn venv() -> PathBuf {
    support::python_venv("smtp-venv", "aiosmtpd", "1.4.6", "aiosmtpd")
}

/// An SMTP server that saves every message (envelope, content, whether it came over
/// TLS and who logged in) as JSON in a folder. Modes: `plain`; `starttls` (required,
/// login mk/secret required); `tls` (implicit TLS, login mk/secret required).
const SERVER: &str = r#"
import json, os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, folder, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def login(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mk" and auth_data.password == b"secret"
    return AuthResult(success=ok, auth_data=auth_data)

class Save:
    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(folder, "%d-%d.json" % (time.time_ns(), os.getpid()))
        with open(name + ".tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": server.transport.get_extra_info("ssl_object") is not None,
                       "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
                       "content": envelope.original_content.decode("utf-8", "replace")}, f)
        os.rename(name + ".tmp", name)
        return "250 OK"

kw = {}
if mode != "plain":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    kw = dict(authenticator=login, auth_required=True)
    if mode == "starttls":
        kw.update(tls_context=ctx, require_starttls=True)
    else:
        kw.update(ssl_context=ctx, auth_require_tls=False)
c = Controller(Save(), hostname="127.0.0.1", port=port, **kw)
c.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
"#;

/// Parses a saved message with Python's email package: subject, recipients, and the
/// MIME tree with each part's type, Content-ID and decoded text or size.
const PARSE: &str = r#"
import email, json, sys
from email import policy
saved = json.load(open(sys.argv[1]))
m = email.message_from_string(saved["content"], policy=policy.default)
def walk(p):
    d = {"type": p.get_content_type(), "cid": p.get("Content-ID"),
         "disposition": p.get_content_disposition()}
    if p.is_multipart():
        d["parts"] = [walk(x) for x in p.iter_parts()]
    elif p.get_content_maintype() == "text":
        d["text"] = p.get_content()
    else:
        d["size"] = len(p.get_content())
        d["png"] = p.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    return d
print(json.dumps({"tls": saved["tls"], "login": saved["login"], "subject": m["Subject"], "to": m["To"], "from": m["From"],
                  "mail_from": saved["mail_from"], "rcpt_tos": saved["rcpt_tos"], "tree": walk(m)}))
"#;

struct Smtp {
    child: Child,
    folder: PathBuf,
}

impl Smtp {
    fn start(py: &Path, port: u16, folder: &Path) -> Smtp {
        Smtp::start_mode(py, port, folder, &["plain"])
    }

    /// Starts the server in a mode (`plain`, or `starttls`/`tls` with cert and key).
    fn start_mode(py: &Path, port: u16, folder: &Path, mode: &[&str]) -> Smtp {
        std::fs::create_dir_all(folder).unwrap();
        let mut child = Command::new(py)
            .args(["-W", "ignore", "-c", SERVER])
            .arg(port.to_string())
            .arg(folder)
            .args(mode)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Smtp {
            child,
            folder: folder.to_path_buf(),
        }
    }

    /// The messages received so far, parsed.
    fn messages(&self, py: &Path) -> Vec<J> {
        let mut files: Vec<_> = std::fs::read_dir(&self.folder)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let out = Command::new(py)
                    .arg("-c")
                    .arg(PARSE)
                    .arg(f)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a report mail's structure: alternative(plain, related(html, png by cid)).
/// Returns (plain text, html).
fn check_mail(m: &J, recipients: &[&str]) -> (String, String) {
    let rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(rcpt, recipients);
    for r in recipients {
        assert!(m["to"].as_str().unwrap().contains(r), "{m}");
    }
    let t = &m["tree"];
    assert_eq!(t["type"], "multipart/alternative", "{t}");
    let plain = &t["parts"][0];
    assert_eq!(plain["type"], "text/plain");
    let related = &t["parts"][1];
    assert_eq!(related["type"], "multipart/related");
    let html = &related["parts"][0];
    assert_eq!(html["type"], "text/html");
    let img = &related["parts"][1];
    assert_eq!(img["type"], "image/png");
    assert_eq!(img["disposition"], "inline");
    assert_eq!(img["png"], true);
    assert!(img["size"].as_u64().unwrap() > 10_000);
    let cid = img["cid"].as_str().unwrap().trim_matches(['<', '>']);
    let html_text = html["text"].as_str().unwrap().to_string();
    assert!(
        html_text.contains(&format!("src=\"cid:{cid}\"")),
        "{html_text}"
    );
    (plain["text"].as_str().unwrap().to_string(), html_text)
}

/// `meterkast report --mail` for 2026-03-29 of the March store.
fn mail_day(out: &Path, smtp: &str, from: &str, to: &str) -> Output {
    let out = out.to_str().unwrap();
    let args = [
        "--date",
        "2026-03-29",
        "--out",
        out,
        "--mail",
        "--report-smtp",
        smtp,
    ];
    let mut args = args.to_vec();
    args.extend(["--report-from", from, "--report-to", to]);
    report(march(), &args)
}

#[test]
#[ignore = "installs aiosmtpd from PyPI and runs an SMTP server on loopback; .ci/run runs it"]
fn a_report_mail_arrives_with_recipients_subject_html_and_chart() {
    let py = venv();
    let dir = tmpdir("report-mail");
    let port = free_port();
    let smtp = Smtp::start(&py, port, &dir.join("inbox"));
    let out = dir.join("day.png");
    let url = format!("smtp://127.0.0.1:{port}?starttls=never");
    let r = mail_day(
        &out,
        &url,
        "meterkast <mk@home.example>",
        "ann@example.com,bob@example.org",
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = String::from_utf8(r.stdout).unwrap();
    let msgs = smtp.messages(&py);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["mail_from"], "mk@home.example");
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("meterkast day: Sunday 29 March 2026: "),
        "{subject}"
    );
    let import = figure(&text, "Import").unwrap();
    assert!(subject.contains(&format!("{import:.3} kWh")), "{subject}");
    let (plain, html) = check_mail(m, &["ann@example.com", "bob@example.org"]);
    // The mail's text is the command's output, and the HTML carries the same numbers.
    assert_eq!(plain.replace("\r\n", "\n"), text);
    for label in ["Import", "Export", "Gas", "Water"] {
        let line = text.lines().find(|l| l.starts_with(label)).unwrap();
        let value = line.split(": ").nth(1).unwrap().split(" (").next().unwrap();
        assert!(html.contains(value), "{value} not in the HTML");
    }
    drop(smtp);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "installs aiosmtpd from PyPI and runs a TLS SMTP server on loopback; .ci/run runs it"]
fn mail_goes_over_starttls_and_implicit_tls_with_a_login() {
    let py = venv();
    let dir = tmpdir("report-tls");
    support::certificates(&dir);
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let ca = dir.join("ca.pem");
    let out = dir.join("day.png");
    for (mode, scheme) in [("starttls", "smtp"), ("tls", "smtps")] {
        let port = free_port();
        let inbox = dir.join(format!("inbox-{mode}"));
        let smtp = Smtp::start_mode(
            &py,
            port,
            &inbox,
            &[mode, cert.to_str().unwrap(), key.to_str().unwrap()],
        );
        let send = |url: &str| mail_day(&out, url, "mk@home.example", "ann@example.com");
        // The server's certificate is not signed by a CA the system knows: refused.
        let r = send(&format!("{scheme}://mk:secret@127.0.0.1:{port}"));
        assert_eq!(
            r.status.code(),
            Some(2),
            "{mode}: an unknown CA must be refused"
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("mailing the report through 127.0.0.1"),
            "{err}"
        );
        // A wrong password is refused too.
        let r = send(&format!(
            "{scheme}://mk:wrong@127.0.0.1:{port}?ca={}",
            ca.display()
        ));
        assert_eq!(
            r.status.code(),
            Some(2),
            "{mode}: a wrong password must fail"
        );
        assert!(smtp.messages(&py).is_empty());
        // With the CA trusted and the right login it goes through, encrypted.
        let r = send(&format!(
            "{scheme}://mk:secret@127.0.0.1:{port}?ca={}",
            ca.display()
        ));
        assert!(
            r.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let msgs = smtp.messages(&py);
        assert_eq!(msgs.len(), 1, "{mode}");
        assert_eq!(msgs[0]["tls"], true, "{mode}");
        assert_eq!(msgs[0]["login"], "mk", "{mode}");
        check_mail(&msgs[0], &["ann@example.com"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let body = get(d.port, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(&format!("{name} ")))?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[test]
#[ignore = "installs aiosmtpd from PyPI and runs an SMTP server on loopback; .ci/run runs it"]
fn the_daemon_writes_reports_on_schedule_and_retries_mail_until_it_is_delivered() {
    let py = venv();
    let dir = tmpdir("report-daemon");
    std::fs::copy(march(), dir.join("meterkast.db")).unwrap();
    let reports = dir.join("reports");
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}?starttls=never");
    let env = [
        ("MK_REPORT_DIR", reports.to_str().unwrap()),
        ("MK_REPORT_SMTP", url.as_str()),
        ("MK_REPORT_TO", "ann@example.com"),
        ("MK_REPORT_FROM", "mk@home.example"),
        ("MK_REPORT_RETRY", "1s"),
        // Shortly after 01:00 local on the 30th: the 29th's report and February's are due.
        ("MK_REPORT_AT", "2026-03-30T01:05:00+02:00"),
    ];
    let dead = format!("tcp://127.0.0.1:{}", free_port());
    // No SMTP server yet: the reports are written, the mails wait and are retried.
    let d = Daemon::start(&dir, std::slice::from_ref(&dead), &env);
    wait_for("two failed sends of each mail", 30, || {
        metric(&d, "meterkast_report_mail_failures_total").is_some_and(|v| v >= 4.0)
    });
    assert_eq!(metric(&d, "meterkast_report_mail_pending"), Some(2.0));
    assert_eq!(metric(&d, "meterkast_reports_written_total"), Some(2.0));
    assert_eq!(metric(&d, "meterkast_report_mail_sent_total"), Some(0.0));
    // Degraded by the dead source only: the mail failures leave ingestion unaffected.
    let h = d.json("/healthz");
    let reasons = h["reasons"].as_array().unwrap();
    assert!(
        reasons.len() == 1
            && reasons[0]
                .as_str()
                .unwrap()
                .starts_with(&format!("source {dead}")),
        "ingestion side must be unaffected: {h}"
    );
    d.stop();
    check_picture(&reports.join("2026-03-29.png"), 1080);
    check_picture(&reports.join("2026-02.png"), 1080);
    let mut outbox: Vec<_> = std::fs::read_dir(reports.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    outbox.sort();
    assert_eq!(outbox, ["2026-02.eml", "2026-03-29.eml"]);

    // The server comes up; after a restart the waiting mails go out, nothing is redrawn.
    let smtp = Smtp::start(&py, port, &dir.join("inbox"));
    let started = Instant::now();
    let d = Daemon::start(&dir, &[dead], &env);
    wait_for("the waiting mails to be delivered", 30, || {
        metric(&d, "meterkast_report_mail_sent_total") == Some(2.0)
    });
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(metric(&d, "meterkast_report_mail_pending"), Some(0.0));
    assert_eq!(metric(&d, "meterkast_reports_written_total"), Some(0.0));
    d.stop();
    let msgs = smtp.messages(&py);
    assert_eq!(msgs.len(), 2);
    let mut subjects: Vec<String> = msgs
        .iter()
        .map(|m| {
            check_mail(m, &["ann@example.com"]);
            m["subject"].as_str().unwrap().to_string()
        })
        .collect();
    subjects.sort();
    assert!(
        subjects[0].starts_with("meterkast day: Sunday 29 March 2026: "),
        "{subjects:?}"
    );
    assert_eq!(subjects[1], "meterkast month: February 2026: no data");
    assert_eq!(
        std::fs::read_dir(reports.join("outbox")).unwrap().count(),
        0
    );
    drop(smtp);
    std::fs::remove_dir_all(&dir).unwrap();
}
