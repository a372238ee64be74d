//! Switching from the EVN decoder without touching its consumers: its `server.env`
//! read as settings, its JSON on its topic as `mosquitto_sub` receives it (checked key
//! for key and type for type), and the README's views answering its SQL queries on the
//! real MariaDB.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meterkast::sim::dlms::power_factor_milli;
use meterkast::sim::{Dialect, MeterState, Simulator};
use meterkast_codec::Timestamp;
use mysql::prelude::Queryable;
use serde_json::Value;
use support::broker::Broker;
use support::{free_port, tmpdir, wait_for, Daemon};

/// The meter's key, as the grid operator hands it out.
const KEY: &str = "36C66639E48A8CA4D6BC8B282A793BBB";

fn key_bytes() -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KEY[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

/// A simulated T210-D: `n` frames 5 s apart from `start`, each with the meter's state.
fn t210d(n: usize, start: i64) -> Vec<(Vec<u8>, MeterState)> {
    let mut sim = Simulator::new(Dialect::Evn, 11, Timestamp(start), Duration::from_secs(5))
        .unwrap()
        .with_key(key_bytes());
    (0..n)
        .map(|_| {
            let (_, bytes) = sim.next_frame();
            let bytes = bytes.to_vec();
            (bytes, sim.state().clone())
        })
        .collect()
}

/// A recent start on a 5-minute boundary.
fn start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 300 - 1800
}

/// The decoder's environment file as its template documents it, filled in.
fn server_env(dir: &Path, mqtt_port: Option<u16>, more: &str) -> PathBuf {
    let mqtt = match mqtt_port {
        Some(p) => {
            format!("MQTT_USER=\"\"\nMQTT_PASSWORD=\"\"\nMQTT_HOST=\"127.0.0.1\"\nMQTT_PORT={p}\n")
        }
        None => String::new(),
    };
    let text = format!(
        "# Rename either this file or the left server.env in the dockerfile\n\n\
         # MQTT\n{mqtt}\n\
         # Smartmeter\n\
         SMARTMETER_RAWDATA_MQTT_TOPIC=\"sensors/smartmeter\"\n\
         SMARTMETER_VALUES_MQTT_TOPIC=\"sensors/smartmeter/values\"\n\
         SMARTMETER_DB_SCHEMA=\"smartmeter\"\n\
         SMARTMETER_DB_TABLE=\"history\"\n\
         SMARTMETER_KEY=\"{KEY}\"\n{more}"
    );
    let p = dir.join("server.env");
    std::fs::write(&p, text).unwrap();
    p
}

fn log_of(dir: &Path, d: &Daemon) -> String {
    std::fs::read_to_string(dir.join(format!("daemon-{}.log", d.port))).unwrap_or_default()
}

#[test]
fn a_missing_env_file_is_a_clear_error() {
    let dir = tmpdir("evn-env-missing");
    let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .arg("run")
        .arg("--db")
        .arg(dir.join("m.db"))
        .arg("--env-file")
        .arg(dir.join("nope.env"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the EVN decoder's environment file") && err.contains("nope.env"),
        "{err}"
    );
}

#[test]
fn unknown_env_variables_are_listed_once_and_never_stop_the_daemon() {
    let dir = tmpdir("evn-env-unknown");
    let env = server_env(&dir, None, "CONTAINER_PATH=/opt/evn\nTZ=Europe/Vienna\n");
    let d = Daemon::run(
        &dir,
        &[
            "--db".into(),
            dir.join("m.db").display().to_string(),
            "--source".into(),
            "sim://dsmr5".into(),
            "--env-file".into(),
            env.display().to_string(),
        ],
        &[],
    );
    wait_for("the settings in the log", 10, || {
        log_of(&dir, &d).contains("not used by meterkast")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let log = log_of(&dir, &d);
    assert_eq!(log.matches("not used by meterkast").count(), 1, "{log}");
    assert!(log.contains("ignored: CONTAINER_PATH, TZ"), "{log}");
    assert!(!log.contains(KEY), "the key reached the log: {log}");
    // Still running and serving.
    assert!(d.json("/healthz").is_object());
    d.stop();
}

/// The decoder's JSON, key by key: its unit and whether its value is an integer.
const SHAPE: [(&str, &str, bool); 12] = [
    ("WIn", "Wh", true),
    ("WOut", "Wh", true),
    ("PIn", "W", true),
    ("POut", "W", true),
    ("U1", "V", false),
    ("U2", "V", false),
    ("U3", "V", false),
    ("I1", "A", false),
    ("I2", "A", false),
    ("I3", "A", false),
    ("PF", "1", false),
    ("timestamp", "s", true),
];

/// Checks one payload against [`SHAPE`] and against the meter state it came from.
fn check_payload(text: &str, frames: &[(Vec<u8>, MeterState)]) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let o = v.as_object().expect("a JSON object");
    assert_eq!(o.len(), SHAPE.len(), "keys: {text}");
    let mut at = 0;
    for (key, unit, integer) in SHAPE {
        let pos = text
            .find(&format!("\"{key}\":{{"))
            .unwrap_or_else(|| panic!("no {key}: {text}"));
        assert!(pos >= at, "{key} out of the decoder's order: {text}");
        at = pos;
        let e = o[key].as_object().expect("an object");
        assert_eq!(e.len(), 2, "{key}: {text}");
        assert_eq!(e["unit"], unit, "{key}");
        let x = &e["value"];
        if integer {
            assert!(x.is_u64(), "{key} is not an integer: {text}");
        } else {
            assert!(x.is_f64(), "{key} is not a decimal: {text}");
        }
    }
    let ts = v["timestamp"]["value"].as_i64().unwrap();
    let s = &frames
        .iter()
        .find(|(_, s)| s.time.0 == ts)
        .unwrap_or_else(|| panic!("no frame at {ts}"))
        .1;
    let int = |k: &str| v[k]["value"].as_u64().unwrap();
    let dec = |k: &str| v[k]["value"].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert_eq!(int("WIn"), s.import_wh.iter().sum::<u64>());
    assert_eq!(int("WOut"), s.export_wh.iter().sum::<u64>());
    assert_eq!(int("PIn"), u64::from(s.import_w));
    assert_eq!(int("POut"), u64::from(s.export_w));
    for (i, p) in s.phases.iter().enumerate() {
        assert!(close(
            dec(&format!("U{}", i + 1)),
            f64::from(p.voltage_dv) / 10.0
        ));
        assert!(close(
            dec(&format!("I{}", i + 1)),
            f64::from(p.current_ca) / 100.0
        ));
    }
    assert!(close(dec("PF"), f64::from(power_factor_milli(s)) / 1000.0));
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn the_decoders_consumers_get_its_json_on_its_topic() {
    let dir = tmpdir("evn-mqtt");
    let broker = Broker::start(&dir, free_port());
    let port = broker.port.to_string();
    let env = server_env(&dir, Some(broker.port), "");
    // Only the environment file: the source, the output and its topic all come from it.
    let d = Daemon::run(
        &dir,
        &[
            "--db".into(),
            dir.join("m.db").display().to_string(),
            "--env-file".into(),
            env.display().to_string(),
        ],
        &[],
    );
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "sensors/smartmeter/values",
        ])
        .args(["-C", "3", "-W", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (install mosquitto-clients)");
    let frames = t210d(120, start());
    // As the ESP8266 publishes the meter's stream: one hex message per push.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (bytes, _) in &frames {
        if sub.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let ok = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "sensors/smartmeter",
                "-m",
            ])
            .arg(&hex)
            .status()
            .unwrap();
        assert!(ok.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = sub.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let payloads: Vec<&str> = text.lines().collect();
    assert_eq!(payloads.len(), 3, "{text}\n{}", log_of(&dir, &d));
    for p in payloads {
        check_payload(p, &frames);
    }
    d.stop();
}

/// A fresh MariaDB database, dropped at the end.
struct Maria {
    name: String,
    conn: mysql::Conn,
}

impl Maria {
    fn new() -> Maria {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("mk_evn_{}_{seq}", std::process::id());
        let mut conn = mysql::Conn::new("mysql://root@127.0.0.1:3306").unwrap();
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .unwrap();
        conn.query_drop(format!("USE `{name}`")).unwrap();
        Maria { name, conn }
    }

    /// The rows of a query, every value as text (`None` for NULL).
    fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        support::maria::text_rows(&mut self.conn, sql)
    }

    fn one(&mut self, sql: &str) -> f64 {
        self.rows(sql)[0][0].as_deref().unwrap().parse().unwrap()
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        let _ = self
            .conn
            .query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

/// The SQL block of the README's section "Coming from the EVN decoder".
fn readme_views() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let (_, rest) = readme
        .split_once("<!-- evn-views -->")
        .expect("the views in the README");
    let (_, sql) = rest.split_once("```sql\n").unwrap();
    sql.split_once("```").unwrap().0.to_string()
}

/// The decoder's tables as it creates them, with two rows it stored before the switch.
fn decoder_tables(db: &mut Maria) {
    for t in ["history", "historyDebounced"] {
        db.conn
            .query_drop(format!(
                "CREATE TABLE `{t}` (`id` int(10) unsigned NOT NULL AUTO_INCREMENT, \
                 `timestamp` int(10) unsigned NOT NULL DEFAULT 0, \
                 `WIn` int(10) unsigned NOT NULL DEFAULT 0, `WOut` int(10) unsigned NOT NULL DEFAULT 0, \
                 `PIn` double unsigned NOT NULL DEFAULT 0, `POut` double unsigned NOT NULL DEFAULT 0, \
                 `U1` double unsigned NOT NULL DEFAULT 0, `U2` double unsigned NOT NULL DEFAULT 0, \
                 `U3` double unsigned NOT NULL DEFAULT 0, `I1` double unsigned NOT NULL DEFAULT 0, \
                 `I2` double unsigned NOT NULL DEFAULT 0, `I3` double unsigned NOT NULL DEFAULT 0, \
                 `PF` double NOT NULL DEFAULT 0, PRIMARY KEY (`id`,`timestamp`), UNIQUE KEY `id_UNIQUE` (`id`)) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ))
            .unwrap();
        db.conn
            .query_drop(format!(
                "INSERT INTO `{t}` (timestamp, WIn, WOut, PIn, POut, U1, U2, U3, I1, I2, I3, PF) VALUES \
                 (1665581631, 10069016, 219, 366, 0, 233.8, 234.1, 234.8, 0.33, 0.46, 1.41, 0.943), \
                 (1665581931, 10069046, 219, 350, 0, 233.5, 234.0, 234.6, 0.31, 0.45, 1.40, 0.940)"
            ))
            .unwrap();
    }
}

/// Writes 120 frames of a simulated T210-D from `t0` to a capture file.
fn capture(dir: &Path, t0: i64) -> (PathBuf, Vec<(Vec<u8>, MeterState)>) {
    let frames = t210d(120, t0);
    let path = dir.join("t210d.bin");
    std::fs::write(
        &path,
        frames.iter().flat_map(|f| f.0.clone()).collect::<Vec<u8>>(),
    )
    .unwrap();
    (path, frames)
}

/// A daemon replaying `capture` into the SQL sink of `db`, with more arguments.
fn replay_to(dir: &Path, capture: &Path, db: &Maria, more: &[&str]) -> Daemon {
    let mut args = vec![
        "--db".to_string(),
        dir.join("m.db").display().to_string(),
        "--source".into(),
        format!("file://{}?speed=max&key={KEY}", capture.display()),
        "--sql-sink".into(),
        format!("mysql://root@127.0.0.1:3306/{}", db.name),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    Daemon::run(dir, &args, &[])
}

fn count(db: &mut Maria, table: &str) -> Option<i64> {
    db.conn
        .query_first::<i64, _>(format!("SELECT COUNT(*) FROM `{table}`"))
        .ok()
        .flatten()
}

#[test]
#[ignore = "needs MariaDB; .ci/run runs it"]
fn the_readme_views_answer_the_decoders_queries() {
    let dir = tmpdir("evn-views");
    let mut db = Maria::new();
    decoder_tables(&mut db);
    let t0 = start();
    let (capture, frames) = capture(&dir, t0);
    let d = replay_to(&dir, &capture, &db, &[]);
    wait_for("the readings in MariaDB", 60, || {
        count(&mut db, "meter_readings") == Some(120)
    });
    let port = d.port;
    d.stop(); // writes the last interval row
    let log = std::fs::read_to_string(dir.join(format!("daemon-{port}.log"))).unwrap();
    assert!(!log.contains("not meterkast's"), "{log}");

    for stmt in readme_views().split(";\n").filter(|s| !s.trim().is_empty()) {
        db.conn
            .query_drop(stmt)
            .unwrap_or_else(|e| panic!("{e}: {stmt}"));
    }

    // Every reading, before and after the switch.
    assert_eq!(db.one("SELECT COUNT(*) FROM history"), 122.0);
    // One reading by its time, every column as the decoder wrote it.
    for k in [0, 37, 119] {
        let s = &frames[k].1;
        let row = &db.rows(&format!(
            "SELECT timestamp, WIn, WOut, PIn, POut, U1, U2, U3, I1, I2, I3, PF \
             FROM history WHERE timestamp = {}",
            s.time.0
        ))[0];
        let n = |i: usize| -> f64 { row[i].as_deref().unwrap().parse().unwrap() };
        assert_eq!(n(0), s.time.0 as f64);
        assert_eq!(n(1), s.import_wh.iter().sum::<u64>() as f64);
        assert_eq!(n(2), s.export_wh.iter().sum::<u64>() as f64);
        assert_eq!(n(3), f64::from(s.import_w));
        assert_eq!(n(4), f64::from(s.export_w));
        for (i, p) in s.phases.iter().enumerate() {
            assert_eq!(n(5 + i), f64::from(p.voltage_dv) / 10.0, "U{}", i + 1);
            assert_eq!(n(8 + i), f64::from(p.current_ca) / 100.0, "I{}", i + 1);
        }
        assert_eq!(n(11), f64::from(power_factor_milli(s)) / 1000.0);
    }
    // The newest reading, the decoder's way.
    let last = &frames[119].1;
    assert_eq!(
        db.one("SELECT WIn FROM history ORDER BY id DESC LIMIT 1"),
        last.import_wh.iter().sum::<u64>() as f64
    );
    // Energy over a time range, as a Grafana panel asks for it.
    let first = &frames[0].1;
    assert_eq!(
        db.one(&format!(
            "SELECT MAX(WIn) - MIN(WIn) FROM history WHERE timestamp BETWEEN {} AND {}",
            t0,
            t0 + 600
        )),
        (last.import_wh.iter().sum::<u64>() - first.import_wh.iter().sum::<u64>()) as f64
    );
    // One row per 5 minutes: each the last reading of its slot, old rows kept.
    let deb = db.rows(&format!(
        "SELECT timestamp, WIn, PF FROM historyDebounced WHERE timestamp >= {t0} ORDER BY timestamp"
    ));
    assert_eq!(deb.len(), 2, "{deb:?}");
    for (i, row) in deb.iter().enumerate() {
        let s = &frames[60 * i + 59].1;
        assert_eq!(row[0].as_deref(), Some(s.time.0.to_string().as_str()));
        assert_eq!(
            row[1].as_deref(),
            Some(s.import_wh.iter().sum::<u64>().to_string().as_str())
        );
        let pf: f64 = row[2].as_deref().unwrap().parse().unwrap();
        assert_eq!(pf, f64::from(power_factor_milli(s)) / 1000.0);
    }
    assert_eq!(
        db.one(&format!(
            "SELECT COUNT(*) FROM historyDebounced WHERE timestamp < {t0}"
        )),
        2.0
    );
}

#[test]
#[ignore = "needs MariaDB; .ci/run runs it"]
fn the_decoders_tables_are_never_touched_and_the_interval_table_takes_its_name() {
    let dir = tmpdir("evn-tables");
    let mut db = Maria::new();
    decoder_tables(&mut db);
    let columns = |db: &mut Maria| {
        db.rows("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'history'")
    };
    let before = columns(&mut db);
    let (capture, frames) = capture(&dir, start());
    // Pointed at the decoder's own table by mistake: refused, said, nothing changed.
    let d = replay_to(&dir, &capture, &db, &["--sql-table", "history"]);
    wait_for("the refusal in the log", 30, || {
        log_of(&dir, &d).contains("the table history exists and is not meterkast's")
    });
    assert_eq!(columns(&mut db), before);
    assert_eq!(count(&mut db, "history"), Some(2));
    d.stop();

    // Tables of its own, the interval table named as asked and filled.
    let dir = tmpdir("evn-tables-named");
    let d = replay_to(
        &dir,
        &capture,
        &db,
        &[
            "--sql-table",
            "mk_history",
            "--sql-interval-table",
            "mk_historyDebounced",
        ],
    );
    wait_for("the readings in MariaDB", 60, || {
        count(&mut db, "mk_history") == Some(120)
    });
    d.stop();
    assert_eq!(count(&mut db, "mk_historyDebounced"), Some(2));
    assert_eq!(count(&mut db, "mk_history_5min"), None);
    let last = &frames[119].1;
    let wh = db.one("SELECT ROUND(MAX(total_power_import_kwh) * 1000) FROM mk_historyDebounced");
    assert_eq!(wh, last.import_wh.iter().sum::<u64>() as f64);
    assert_eq!(count(&mut db, "history"), Some(2));
}
