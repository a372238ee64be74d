//! A newcomer's first hour: sources that cannot connect say so at once, a SQLite store
//! is served without a source, bad input cannot flood the log, secrets never show, and
//! the first mistakes are explained.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{free_port, get, telegram, tmpdir, wait_for, Daemon};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meterkast"))
}

/// Runs `c`, checks it exits with status 2, and gives its stderr.
fn exit_2(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{c:?}: {err}");
    err
}

/// Checks that `/healthz` says degraded with a reason containing each of `says`.
fn assert_degraded(d: &Daemon, says: &[&str]) {
    let h = d.json("/healthz");
    assert_eq!(h["status"], "degraded", "{h}");
    let reasons = h["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| says.iter().all(|w| r.as_str().unwrap().contains(w))),
        "{says:?} not in {h}"
    );
}

fn log_of(dir: &Path, d: &Daemon) -> String {
    std::fs::read_to_string(dir.join(format!("daemon-{}.log", d.port))).unwrap_or_default()
}

fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 3600 - 6 * 3600
}

#[test]
fn a_missing_serial_port_is_logged_at_once_and_healthz_says_degraded() {
    let dir = tmpdir("first-serial");
    let d = Daemon::start(&dir, &["serial:///dev/ttyNOPE".into()], &[]);
    wait_for("the failure in the log", 10, || {
        log_of(&dir, &d).contains("cannot open /dev/ttyNOPE")
    });
    assert_degraded(&d, &["/dev/ttyNOPE", "dialout"]);
    let metrics = get(d.port, "/metrics").unwrap();
    assert!(
        metrics.contains("meterkast_degraded_reasons 1"),
        "{metrics}"
    );
    d.stop();
}

#[test]
fn a_refused_tcp_source_is_logged_at_once_and_healthz_turns_ok_when_it_delivers() {
    let dir = tmpdir("first-tcp");
    let port = free_port();
    let d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{port}")], &[]);
    wait_for("the failure in the log", 10, || {
        log_of(&dir, &d).contains("cannot connect")
    });
    assert_degraded(&d, &[&port.to_string()]);

    // The bridge comes up and delivers: ok, with no reasons.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let t = t0();
        for k in 0..600 {
            if s.write_all(&telegram("FIRST1", t + k, 1_000 + k)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    wait_for("healthz ok", 40, || d.json("/healthz")["status"] == "ok");
    let h = d.json("/healthz");
    assert_eq!(h["reasons"].as_array().map(Vec::len), Some(0), "{h}");
    assert!(get(d.port, "/metrics")
        .unwrap()
        .contains("meterkast_degraded_reasons 0"));
    d.stop();
    let _ = server.join();
}

#[test]
fn a_sqlite_store_is_served_without_a_source() {
    let dir = tmpdir("first-nosource");
    let capture = dir.join("capture.txt");
    let t = t0();
    let mut bytes = Vec::new();
    for k in 0..3600 {
        bytes.extend(telegram("FIRST2", t + k, 5_000_000 + k));
    }
    std::fs::write(&capture, bytes).unwrap();
    let db = dir.join("x.db");
    support::import(&db, &capture);
    let d = Daemon::run(&dir, &["--db".into(), db.display().to_string()], &[]);
    let meters = d.json("/api/v1/meters");
    assert_eq!(meters.as_array().map(Vec::len), Some(1), "{meters}");
    let from = meterkast_codec::Timestamp(t).to_string();
    let to = meterkast_codec::Timestamp(t + 3600).to_string();
    let q = d.json(&format!("/api/v1/series?from={from}&to={to}&step=15m"));
    let buckets = q["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 4, "{q}");
    let kwh: f64 = buckets
        .iter()
        .map(|b| b["import_kwh"].as_f64().unwrap())
        .sum();
    assert!((kwh - 3.599).abs() < 1e-6, "{kwh}");
    assert_eq!(d.json("/healthz")["status"], "ok");
    wait_for("the info line", 5, || {
        log_of(&dir, &d).contains("no source: serving the stored data only")
    });
    d.stop();

    // Not a store that is there: still the advice to name a source.
    let err = exit_2(bin().args(["run", "--db"]).arg(dir.join("typo.db")));
    assert!(
        err.contains("does not exist") && err.contains("--source"),
        "{err}"
    );
    assert!(!dir.join("typo.db").exists());
}

/// A TCP "bridge" that sends `bytes`, then one good telegram when told to, and stays
/// open.
fn serve_once(bytes: Vec<u8>, go: std::sync::mpsc::Receiver<()>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.write_all(&bytes);
        let _ = go.recv();
        let _ = s.write_all(&telegram("FIRST3", t0(), 42));
        std::thread::sleep(Duration::from_secs(120));
    });
    port
}

#[test]
fn a_flood_of_bad_frames_writes_a_bounded_log_whose_counts_add_up() {
    let dir = tmpdir("first-flood");
    let mut bytes = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for k in 0..20_000 {
        let mut t = telegram("FIRST3", t0() + k, 1_000 + k);
        // A wrong checksum, then a little noise.
        let n = t.len();
        t[n - 3] = if t[n - 3] == b'0' { b'1' } else { b'0' };
        bytes.extend(t);
        for _ in 0..(k % 7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
    }
    let (go, wait) = std::sync::mpsc::channel();
    let port = serve_once(bytes, wait);
    let d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{port}")], &[]);
    // Nothing but rejected frames: the source delivers nothing.
    wait_for("the flood to be read", 60, || {
        d.json("/healthz")["sources"][0]["rejected"]["checksum"].as_u64() >= Some(20_000)
    });
    assert_degraded(&d, &["every frame rejected"]);
    go.send(()).unwrap();
    wait_for("the good telegram after the flood", 60, || {
        d.json("/healthz")["sources"][0]["accepted"].as_u64() == Some(1)
    });
    // A source that delivers again is no reason for degraded.
    assert_eq!(d.json("/healthz")["status"], "ok");
    let rejected = d.json("/healthz")["sources"][0]["rejected"].clone();
    let total: u64 = rejected
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(total >= 20_000, "{rejected}");
    let pid = d.child.id();
    let port_http = d.port;
    d.stop();
    let log = std::fs::read_to_string(dir.join(format!("daemon-{port_http}.log"))).unwrap();
    let firsts = log
        .lines()
        .filter(|l| l.contains("frame rejected:"))
        .count() as u64;
    let summaries: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" more frames rejected for ")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    let causes = rejected.as_object().unwrap().len() as u64;
    assert_eq!(firsts, causes, "one first line per cause:\n{log}");
    assert!(
        summaries.len() as u64 <= 3 * causes,
        "{} summary lines for {causes} causes (pid {pid}):\n{log}",
        summaries.len()
    );
    assert_eq!(
        firsts + summaries.iter().sum::<u64>(),
        total,
        "the log's counts add up to /healthz's:\n{log}"
    );
    assert!(log.lines().count() < 40, "{log}");
}

#[test]
fn the_demo_database_is_removed_on_sigint_and_sigterm() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let dir = tmpdir(&format!("first-demo-{sig}"));
        let tmp = dir.display().to_string();
        let d = Daemon::run(&dir, &["--demo".into()], &[("TMPDIR", tmp.as_str())]);
        let file = dir.join(format!("meterkast-demo-{}.db", d.child.id()));
        assert!(file.exists(), "{}", file.display());
        let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
        let mut d = d;
        let status = d.child.wait().unwrap();
        assert!(status.success(), "{sig}: {status}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("meterkast-demo-"))
            .collect();
        assert!(left.is_empty(), "{sig}: left behind {left:?}");
    }
}

#[test]
fn help_never_shows_a_value_from_the_environment() {
    let vars = meterkast::cli::env_vars();
    assert!(vars.len() > 20, "{vars:?}");
    let mut cmd_names: Vec<Vec<String>> = vec![vec![]];
    for s in meterkast::cli::command().get_subcommands() {
        cmd_names.push(vec![s.get_name().to_string()]);
    }
    assert!(cmd_names.len() >= 6);
    for args in cmd_names {
        let mut c = bin();
        c.args(&args).arg("--help");
        for v in &vars {
            c.env(v, format!("postgres://u:s3cret-{v}@host/db"));
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(
            !text.contains("s3cret"),
            "{args:?} --help shows a secret:\n{text}"
        );
    }
}

#[test]
fn errors_never_repeat_a_password() {
    let dir = tmpdir("first-redact");
    let db = dir.join("x.db").display().to_string();
    let refused = free_port();
    for args in [
        vec![
            "run",
            "--source",
            "mqtt://user:hunter2@127.0.0.1:notaport/x",
        ],
        vec!["run", "--db", "postgres://u:hunter2@127.0.0.1:notaport/db"],
        vec![
            "run",
            "--db",
            &db,
            "--source",
            "sim://dsmr5",
            "--mqtt",
            "mqtt://u:hunter2@h:notaport",
        ],
        vec![
            "run",
            "--db",
            &db,
            "--source",
            "sim://dsmr5",
            "--sql-sink",
            "mysql://root:hunter2@h:nope/e",
        ],
        vec!["run", "--db", &db, "--forward", "mqtt://u:hunter2@h/meters"],
        vec!["run", "--source", "tcp://127.0.0.1:1?key=hunter2"],
        vec![
            "import",
            "--db",
            "postgres://u:hunter2@127.0.0.1:notaport/db",
            "x.txt",
        ],
        vec![
            "report",
            "--db",
            "postgres://u:hunter2@127.0.0.1:notaport/db",
            "--date",
            "2026-01-01",
            "--out",
            "x.png",
        ],
    ] {
        let err = exit_2(bin().args(&args).current_dir(&dir));
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }
    // At run time too: the log, /healthz and /api/v1/status.
    let d = Daemon::start(
        &dir,
        &[format!("mqtt://user:hunter2@127.0.0.1:{refused}/x")],
        &[],
    );
    wait_for("the failure in the log", 15, || {
        log_of(&dir, &d).contains("127.0.0.1")
    });
    for path in ["/healthz", "/api/v1/status"] {
        let body = get(d.port, path).unwrap();
        assert!(!body.contains("hunter2"), "{path}: {body}");
    }
    let log_file = dir.join(format!("daemon-{}.log", d.port));
    d.stop();
    let log = std::fs::read_to_string(log_file).unwrap();
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn secrets_are_read_from_file_variables() {
    let dir = tmpdir("first-file");
    let capture = dir.join("capture.txt");
    std::fs::write(&capture, telegram("FIRST4", t0(), 7)).unwrap();
    let db = dir.join("from-file.db");
    let secret = dir.join("db-secret");
    std::fs::write(&secret, format!("{}\n", db.display())).unwrap();
    let out = bin()
        .arg("import")
        .arg(&capture)
        .env("MK_DB_FILE", &secret)
        .env_remove("MK_DB")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        db.exists(),
        "the file's value, without its newline, is the database"
    );

    let err = exit_2(
        bin()
            .arg("import")
            .arg(&capture)
            .env("MK_DB_FILE", &secret)
            .env("MK_DB", db.display().to_string()),
    );
    assert!(err.contains("both MK_DB and MK_DB_FILE are set"), "{err}");

    let err = exit_2(
        bin()
            .args(["run", "--demo"])
            .env("MK_AUTH_TOKEN_FILE", dir.join("missing")),
    );
    assert!(
        err.contains("MK_AUTH_TOKEN_FILE") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn run_help_groups_its_flags_and_bare_meterkast_suggests_the_demo() {
    let out = bin().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    for h in [
        "Options:",
        "Sources:",
        "Store:",
        "HTTP API and dashboard:",
        "MQTT and Home Assistant:",
        "Forwarder and ingest workers:",
        "SQL history sink:",
        "Reports:",
    ] {
        assert!(headings.contains(&h), "{h} missing in {headings:?}");
    }
    let options: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Options:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| l.trim_start().starts_with('-'))
        .collect();
    assert!(options.len() <= 3, "ungrouped: {options:?}");

    let err = exit_2(&mut bin());
    assert!(err.contains("meterkast run --demo"), "{err}");
}

#[test]
fn the_first_db_mistakes_are_explained() {
    let dir = tmpdir("first-db");
    let text = dir.join("be.txt");
    std::fs::write(&text, "1-0:1.8.1(000123.456*kWh)\n").unwrap();
    let missing = dir.join("nonexistent/dir/x.db");
    let cases: [(Vec<std::ffi::OsString>, &[&str]); 3] = [
        (
            vec![
                "run".into(),
                "--source".into(),
                "sim://dsmr5".into(),
                "--db".into(),
                text.clone().into(),
            ],
            &[
                "--db",
                "be.txt",
                "not a meterkast database",
                "meterkast import",
            ],
        ),
        (
            vec![
                "run".into(),
                "--source".into(),
                "sim://dsmr5".into(),
                "--db".into(),
                dir.clone().into(),
            ],
            &["is a folder", "meterkast.db"],
        ),
        (
            vec![
                "import".into(),
                "--db".into(),
                missing.clone().into(),
                text.clone().into(),
            ],
            &["directory", "does not exist"],
        ),
    ];
    for (args, want) in cases {
        let err = exit_2(
            bin().args(&args).args(
                ["--http", "127.0.0.1:0"]
                    .iter()
                    .filter(|_| args[0] == "run"),
            ),
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: {w} not in {err}");
        }
    }
    assert!(!dir.join("nonexistent").exists(), "the folder was created");
}
