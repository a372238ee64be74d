//! The SQL history sink against the real MariaDB (127.0.0.1:3306, root) and PostgreSQL
//! (127.0.0.1:5432, postgres): every reading exactly once with exact values, the
//! interval table's buckets, restarts, custom and older tables, killed connections,
//! and a database that is away for a while. Each test makes its own database and
//! drops it afterwards.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meterkast_codec::crc::crc16_arc;
use mysql::prelude::Queryable;
use support::{free_port, get, telegram, tmpdir, wait_for, Daemon};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Starts a local service if nothing listens on its port.
fn ensure_service(port: u16, start: &[&str]) {
    if port_open(port) {
        return;
    }
    let _ = Command::new(start[0]).args(&start[1..]).status();
    wait_for("the database server to listen", 60, || port_open(port));
}

/// A fresh database on one of the real servers, dropped at the end.
enum TestDb {
    Maria {
        name: String,
        admin: Box<mysql::Conn>,
    },
    Pg {
        name: String,
        admin: Box<postgres::Client>,
    },
}

impl TestDb {
    fn name(kind: &str) -> String {
        format!(
            "mk_sink_{kind}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn maria() -> TestDb {
        ensure_service(
            3306,
            &[
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ],
        );
        let name = TestDb::name("my");
        let mut admin = mysql::Conn::new("mysql://root@127.0.0.1:3306").unwrap();
        admin
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .unwrap();
        admin.query_drop(format!("USE `{name}`")).unwrap();
        admin.query_drop("SET time_zone = '+00:00'").unwrap();
        TestDb::Maria {
            name,
            admin: Box::new(admin),
        }
    }

    fn pg() -> TestDb {
        if !port_open(5432) {
            let version = std::fs::read_dir("/etc/postgresql")
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name();
            let version = version.to_string_lossy().into_owned();
            ensure_service(
                5432,
                &[
                    "pg_ctlcluster",
                    "--skip-systemctl-redirect",
                    &version,
                    "main",
                    "start",
                ],
            );
        }
        let name = TestDb::name("pg");
        let mut admin =
            postgres::Client::connect("postgres://postgres@127.0.0.1:5432/test", postgres::NoTls)
                .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        let admin =
            postgres::Client::connect(&TestDb::pg_url_for(&name, 5432), postgres::NoTls).unwrap();
        TestDb::Pg {
            name,
            admin: Box::new(admin),
        }
    }

    fn pg_url_for(name: &str, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    /// The sink URL, to the server itself or to a port in front of it.
    fn url_via(&self, port: Option<u16>) -> String {
        match self {
            TestDb::Maria { name, .. } => {
                format!("mysql://root@127.0.0.1:{}/{name}", port.unwrap_or(3306))
            }
            TestDb::Pg { name, .. } => TestDb::pg_url_for(name, port.unwrap_or(5432)),
        }
    }

    fn url(&self) -> String {
        self.url_via(None)
    }

    fn server_port(&self) -> u16 {
        match self {
            TestDb::Maria { .. } => 3306,
            TestDb::Pg { .. } => 5432,
        }
    }

    /// Seconds since the epoch of a time column, as SQL.
    fn epoch(&self, col: &str) -> String {
        match self {
            TestDb::Maria { .. } => format!("UNIX_TIMESTAMP({col})"),
            TestDb::Pg { .. } => format!("EXTRACT(EPOCH FROM {col})::bigint"),
        }
    }

    /// Quotes an identifier.
    fn q(&self, s: &str) -> String {
        match self {
            TestDb::Maria { .. } => format!("`{s}`"),
            TestDb::Pg { .. } => format!("\"{s}\""),
        }
    }

    /// Runs a query; every value as text.
    fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            TestDb::Maria { admin, .. } => support::maria::text_rows(admin, sql),
            TestDb::Pg { admin, .. } => admin
                .simple_query(sql)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    fn exec(&mut self, sql: &str) {
        match self {
            TestDb::Maria { admin, .. } => admin.query_drop(sql).unwrap(),
            TestDb::Pg { admin, .. } => admin.batch_execute(sql).unwrap(),
        }
    }

    /// Creates a readings table as another program (or an older version) might have:
    /// `meter VARCHAR(meter_len)`, `time`, then `more` columns.
    fn table_from_elsewhere(&mut self, name: &str, meter_len: u32, more: &str) {
        let time = match self {
            TestDb::Maria { .. } => "DATETIME",
            TestDb::Pg { .. } => "TIMESTAMPTZ",
        };
        let sql = format!(
            "CREATE TABLE {} (meter VARCHAR({meter_len}) NOT NULL, time {time} NOT NULL{more}, PRIMARY KEY (meter, time))",
            self.q(name)
        );
        self.exec(&sql);
    }

    fn count(&mut self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}", self.q(table));
        match self {
            TestDb::Maria { admin, .. } => admin
                .query_first::<i64, _>(sql)
                .ok()
                .flatten()
                .unwrap_or(-1),
            TestDb::Pg { admin, .. } => admin
                .query_one(sql.as_str(), &[])
                .map(|r| r.get(0))
                .unwrap_or(-1),
        }
    }

    /// Ends every other connection to this database (the sink's).
    fn kill_others(&mut self) -> usize {
        match self {
            TestDb::Maria { name, admin } => {
                let ids: Vec<u64> = admin
                    .exec(
                        "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
                        (name.as_str(),),
                    )
                    .unwrap();
                for id in &ids {
                    let _ = admin.query_drop(format!("KILL {id}"));
                }
                ids.len()
            }
            TestDb::Pg { name, admin } => admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name.as_str()],
                )
                .unwrap()
                .len(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.kill_others();
        match self {
            TestDb::Maria { name, admin } => {
                let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"));
            }
            TestDb::Pg { name, .. } => {
                if let Ok(mut c) = postgres::Client::connect(
                    "postgres://postgres@127.0.0.1:5432/test",
                    postgres::NoTls,
                ) {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                }
            }
        }
    }
}

/// One test per server for a check written once.
macro_rules! both_servers {
    ($check:ident: $maria:ident, $pg:ident) => {
        #[test]
        #[ignore = "needs MariaDB; .ci/run runs it"]
        fn $maria() {
            $check(TestDb::maria(), "my");
        }

        #[test]
        #[ignore = "needs PostgreSQL; .ci/run runs it"]
        fn $pg() {
            $check(TestDb::pg(), "pg");
        }
    };
}

/// Bucket-aligned, two hours ago (recent, so retention keeps the readings).
fn t0() -> i64 {
    // Fixed once per run: computed afresh, a test crossing a 5-minute boundary would
    // expect other times than it fed.
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        now - now % 300 - 7200
    })
}

/// Reading `i` of a test meter: every 10 s, import rising by 7 Wh, power varying.
fn reading(i: i64) -> (i64, i64, i64) {
    let t = t0() + i * 10;
    let wh = 1_000_000 + i * 7;
    let w = 100 + (i * 37) % 900;
    (t, wh, w)
}

/// A DSMR 5 telegram as in [`telegram`], with power `w` watts.
fn telegram_w(id: &str, t: i64, wh: i64, w: i64) -> Vec<u8> {
    let base = telegram(id, t, wh);
    let text = String::from_utf8(base).unwrap();
    let body = &text[..text.find('!').unwrap() + 1];
    let body = body.replace(
        "1-0:1.7.0(00.360*kW)",
        &format!("1-0:1.7.0({:02}.{:03}*kW)", w / 1000, w % 1000),
    );
    let mut v = body.into_bytes();
    v.extend_from_slice(format!("{:04X}\r\n", crc16_arc(&v)).as_bytes());
    v
}

/// A daemon reading a TCP source the test feeds, with extra environment.
fn daemon(dir: &Path, env: &[(&str, &str)]) -> (Daemon, TcpStream) {
    let src = free_port();
    let listener = TcpListener::bind(("127.0.0.1", src)).unwrap();
    let d = Daemon::start(dir, &[format!("tcp://127.0.0.1:{src}")], env);
    let (c, _) = listener.accept().unwrap();
    (d, c)
}

fn feed(c: &mut TcpStream, meter: &str, range: std::ops::Range<i64>) {
    for i in range {
        let (t, wh, w) = reading(i);
        c.write_all(&telegram_w(meter, t, wh, w)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn daemon_log(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("daemon-"))
        {
            s.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
    }
    s
}

fn metric(port: u16, name: &str) -> Option<i64> {
    let page = get(port, "/metrics")?;
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// The meter id as the store keys it: the hex of the equipment id as sent.
fn meter_key(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02X}")).collect::<String>()
}

/// The meter's readings in the table: (time, import kWh text, power W, import W, export W).
type RawRow = (i64, String, i64, i64, i64);

fn raw_rows(db: &mut TestDb, table: &str, meter: &str) -> Vec<RawRow> {
    let sql = format!(
        "SELECT {}, total_power_import_kwh, active_power_w, active_power_import_w, active_power_export_w FROM {} WHERE meter = '{}' ORDER BY time",
        db.epoch("time"),
        db.q(table),
        meter_key(meter)
    );
    db.rows(&sql)
        .into_iter()
        .map(|r| {
            let n = |i: usize| r[i].as_deref().unwrap().parse::<i64>().unwrap();
            (n(0), r[1].clone().unwrap(), n(2), n(3), n(4))
        })
        .collect()
}

fn expected_raw(range: impl IntoIterator<Item = i64>) -> Vec<RawRow> {
    range
        .into_iter()
        .map(|i| {
            let (t, wh, w) = reading(i);
            (t, format!("{}.{:03}", wh / 1000, wh % 1000), w, w, 0)
        })
        .collect()
}

/// Checks the interval table holds, for each bucket the readings `range` touch,
/// the right count, last values and power statistics.
fn check_buckets(db: &mut TestDb, table: &str, meter: &str, range: impl IntoIterator<Item = i64>) {
    let sql = format!(
        "SELECT {}, readings, {}, total_power_import_kwh, active_power_avg_w, active_power_min_w, active_power_max_w FROM {} WHERE meter = '{}' ORDER BY bucket",
        db.epoch("bucket"),
        db.epoch("last_time"),
        db.q(&format!("{table}_5min")),
        meter_key(meter)
    );
    let got = db.rows(&sql);
    // Per bucket start, its readings as (time, Wh, W).
    type Bucket = (i64, Vec<(i64, i64, i64)>);
    let mut want: Vec<Bucket> = Vec::new();
    for i in range {
        let (t, wh, w) = reading(i);
        let b = t - t % 300;
        match want.last_mut() {
            Some((lb, v)) if *lb == b => v.push((t, wh, w)),
            _ => want.push((b, vec![(t, wh, w)])),
        }
    }
    assert_eq!(got.len(), want.len(), "buckets: {got:?}");
    for (g, (b, v)) in got.iter().zip(&want) {
        let s = |i: usize| g[i].clone().unwrap();
        assert_eq!(s(0).parse::<i64>().unwrap(), *b);
        assert_eq!(s(1).parse::<usize>().unwrap(), v.len(), "bucket {b}");
        let (lt, lwh, _) = *v.last().unwrap();
        assert_eq!(s(2).parse::<i64>().unwrap(), lt);
        assert_eq!(s(3), format!("{}.{:03}", lwh / 1000, lwh % 1000));
        let sum: i64 = v.iter().map(|x| x.2).sum();
        let avg = sum as f64 / v.len() as f64;
        let got_avg: f64 = s(4).parse().unwrap();
        assert!((got_avg - avg).abs() < 0.0006, "avg {got_avg} vs {avg}");
        assert_eq!(
            s(5).parse::<i64>().unwrap(),
            v.iter().map(|x| x.2).min().unwrap()
        );
        assert_eq!(
            s(6).parse::<i64>().unwrap(),
            v.iter().map(|x| x.2).max().unwrap()
        );
    }
}

/// Creates the tables, fills them; a restart reuses them, completes the bucket left
/// open and duplicates nothing that comes twice.
fn every_reading_exactly_once(mut db: TestDb, tag: &str) {
    let dir = tmpdir(&format!("sql-once-{tag}"));
    let url = db.url();
    let env = [("MK_SQL_SINK", url.as_str())];
    // Readings 0..45 end in the middle of the third bucket.
    let (d, mut c) = daemon(&dir, &env);
    feed(&mut c, "S1", 0..45);
    wait_for("45 readings", 30, || db.count("meter_readings") == 45);
    wait_for("the metrics to count them", 10, || {
        metric(d.port, "meterkast_sql_sink_written_total") == Some(45)
    });
    d.stop();
    assert_eq!(
        raw_rows(&mut db, "meter_readings", "S1"),
        expected_raw(0..45)
    );
    // The open bucket was written at shutdown, with what it had.
    check_buckets(&mut db, "meter_readings", "S1", 0..45);

    // Again, with readings 40..45 sent twice.
    let (d, mut c) = daemon(&dir, &env);
    feed(&mut c, "S1", 40..100);
    wait_for("100 readings", 30, || db.count("meter_readings") == 100);
    d.stop();
    assert_eq!(
        raw_rows(&mut db, "meter_readings", "S1"),
        expected_raw(0..100)
    );
    check_buckets(&mut db, "meter_readings", "S1", 0..100);

    // A crash leaves the last bucket's newest readings out of the interval table; the
    // next start puts them in.
    let (mut d, mut c) = daemon(&dir, &env);
    feed(&mut c, "S1", 100..110);
    wait_for("110 readings", 30, || db.count("meter_readings") == 110);
    // Committed and gone from the queue, so the next start has nothing to replay.
    wait_for("an empty queue", 10, || {
        metric(d.port, "meterkast_sql_sink_queued") == Some(0)
    });
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    drop(d);
    let (d, mut c) = daemon(&dir, &env);
    feed(&mut c, "S1", 130..140);
    wait_for("120 readings", 30, || db.count("meter_readings") == 120);
    d.stop();
    let all: Vec<i64> = (0..110).chain(130..140).collect();
    assert_eq!(
        raw_rows(&mut db, "meter_readings", "S1"),
        expected_raw(all.clone())
    );
    check_buckets(&mut db, "meter_readings", "S1", all);
    let log = daemon_log(&dir);
    assert!(!log.contains("WARN"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

both_servers!(every_reading_exactly_once: mariadb_gets_every_reading_exactly_once_and_the_5_minute_buckets, postgres_gets_every_reading_exactly_once_and_the_5_minute_buckets);

/// A custom table name, and a table from an older version missing columns.
fn custom_and_older_tables(mut db: TestDb, tag: &str) {
    let dir = tmpdir(&format!("sql-custom-{tag}"));
    db.table_from_elsewhere(
        "Hist_Old",
        128,
        ", dialect VARCHAR(32), total_power_import_kwh DECIMAL(19,3), active_power_w BIGINT",
    );
    let url = db.url();
    let env = [
        ("MK_SQL_SINK", url.as_str()),
        ("MK_SQL_TABLE", "Hist_Old"),
        ("MK_SQL_INTERVAL", "15m"),
    ];
    let (d, mut c) = daemon(&dir, &env);
    feed(&mut c, "C1", 0..20);
    wait_for("20 readings", 30, || db.count("Hist_Old") == 20);
    d.stop();
    let rows = raw_rows(&mut db, "Hist_Old", "C1");
    assert_eq!(rows, expected_raw(0..20));
    // The added columns got the values too.
    let rows = db.rows(&format!(
        "SELECT total_power_import_t1_kwh, active_power_export_w FROM {} ORDER BY time",
        db.q("Hist_Old")
    ));
    assert_eq!(
        rows[3],
        [Some("1000.021".to_string()), Some("0".to_string())]
    );
    // 15-minute buckets, in their own table: 0..20 at 10 s spans two of them.
    let n = db.rows(&format!(
        "SELECT readings FROM {} ORDER BY bucket",
        db.q("Hist_Old_15min")
    ));
    let counts: Vec<i64> = n
        .iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    let first = (900 - (reading(0).0 % 900)) / 10;
    let first = first.min(20);
    let want: Vec<i64> = [first, 20 - first].into_iter().filter(|x| *x > 0).collect();
    assert_eq!(counts, want);
    assert_eq!(db.count("meter_readings"), -1, "no default table created");
}

both_servers!(custom_and_older_tables: mariadb_takes_a_custom_table_and_updates_an_older_one, postgres_takes_a_custom_table_and_updates_an_older_one);

/// A table from elsewhere that cannot hold some readings (a meter id too long for it):
/// those are refused and dropped with an error, nothing cut is stored, the rest
/// arrive.
fn refused_readings_are_dropped_alone(mut db: TestDb, tag: &str) {
    let dir = tmpdir(&format!("sql-refused-{tag}"));
    db.table_from_elsewhere("narrow", 4, "");
    let url = db.url();
    let env = [("MK_SQL_SINK", url.as_str()), ("MK_SQL_TABLE", "narrow")];
    let (d, mut c) = daemon(&dir, &env);
    // "AB" is 4142 (fits), "ABC" 414243 (does not); interleaved, so batches mix them.
    for i in 0..30 {
        let (t, wh, w) = reading(i);
        c.write_all(&telegram_w("AB", t, wh, w)).unwrap();
        c.write_all(&telegram_w("ABC", t, wh, w)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for("30 dropped", 30, || {
        metric(d.port, "meterkast_sql_sink_dropped_total") == Some(30)
    });
    wait_for("an empty queue", 10, || {
        metric(d.port, "meterkast_sql_sink_queued") == Some(0)
    });
    assert_eq!(db.count("narrow"), 30);
    assert_eq!(raw_rows(&mut db, "narrow", "AB"), expected_raw(0..30));
    assert!(daemon_log(&dir).contains("a reading refused and dropped"));
    // Still writing afterwards.
    feed(&mut c, "AB", 30..35);
    wait_for("35 readings", 30, || db.count("narrow") == 35);
    d.stop();
}

both_servers!(refused_readings_are_dropped_alone: mariadb_refuses_what_a_table_cannot_hold, postgres_refuses_what_a_table_cannot_hold);

/// A TCP relay in front of the database that can be switched off (connections cut,
/// port closed) and on again: a database outage without touching the shared server.
struct Relay {
    port: u16,
    target: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn new(target: u16) -> Relay {
        Relay {
            port: free_port(),
            target,
            up: Arc::new(AtomicBool::new(false)),
            conns: Arc::default(),
        }
    }

    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, conns, target) = (self.up.clone(), self.conns.clone(), self.target);
        std::thread::spawn(move || {
            for c in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let Ok(s) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut all = conns.lock().unwrap();
                all.push(c.try_clone().unwrap());
                all.push(s.try_clone().unwrap());
                for (mut a, mut b) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match a.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if b.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = b.shutdown(Shutdown::Both);
                    });
                }
            }
        });
    }

    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        // Wake the accept loop so it lets go of the port.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        wait_for("the relay to close", 10, || !port_open(self.port));
    }
}

/// Killed connections, a database away at start, a crash with readings queued:
/// all readings arrive, once.
fn nothing_lost_when_the_database_is_away(mut db: TestDb, tag: &str) {
    let dir = tmpdir(&format!("sql-away-{tag}"));
    let relay = Relay::new(db.server_port());
    let url = db.url_via(Some(relay.port));
    let env = [("MK_SQL_SINK", url.as_str())];

    // Away from the start: the daemon runs, says why once, and queues.
    let (mut d, mut c) = daemon(&dir, &env);
    feed(&mut c, "K1", 0..20);
    wait_for("20 readings queued", 20, || {
        metric(d.port, "meterkast_sql_sink_queued") == Some(20)
    });
    wait_for("a few failed attempts", 20, || {
        metric(d.port, "meterkast_sql_sink_failures_total").is_some_and(|n| n >= 3)
    });
    let log = daemon_log(&dir);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("cannot connect"), "{log}");
    assert!(warnings[0].contains("written when it works again"), "{log}");
    // A crash now keeps them on disk for the next start.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    drop(d);
    drop(c);

    relay.start();
    let (d, mut c) = daemon(&dir, &env);
    wait_for("the queued 20", 30, || db.count("meter_readings") == 20);
    assert!(daemon_log(&dir).contains("20 readings left from the last run"));

    // Connections killed mid-stream, and an outage of the relay.
    for (i, from) in (20..140).step_by(20).enumerate() {
        feed(&mut c, "K1", from..from + 20);
        if i % 2 == 0 {
            db.kill_others();
        } else {
            relay.stop();
            std::thread::sleep(Duration::from_millis(1500));
            relay.start();
        }
    }
    wait_for("all 140 readings", 60, || db.count("meter_readings") == 140);
    wait_for("an empty queue", 10, || {
        metric(d.port, "meterkast_sql_sink_queued") == Some(0)
    });
    assert_eq!(metric(d.port, "meterkast_sql_sink_dropped_total"), Some(0));
    d.stop();
    assert_eq!(
        raw_rows(&mut db, "meter_readings", "K1"),
        expected_raw(0..140)
    );
    check_buckets(&mut db, "meter_readings", "K1", 0..140);
    assert!(daemon_log(&dir).contains("connected again"));
}

both_servers!(nothing_lost_when_the_database_is_away: mariadb_away_or_killed_loses_nothing, postgres_away_or_killed_loses_nothing);

/// Wrong settings stop the daemon before it starts, saying what to write instead.
#[test]
fn bad_sink_settings_are_refused_with_a_clear_message() {
    let dir = tmpdir("sql-bad-settings");
    for (args, says) in [
        (vec!["--sql-sink", "redis://h/x"], "unknown scheme `redis`"),
        (
            vec!["--sql-sink", "mysql://root:hunter2@h"],
            "name the database",
        ),
        (
            vec![
                "--sql-sink",
                "mysql://root@h/x",
                "--sql-table",
                "x; DROP TABLE y",
            ],
            "letters, digits and underscores",
        ),
        (
            vec!["--sql-sink", "postgres://h/x", "--sql-interval", "7m"],
            "divide a day",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
            .args([
                "run",
                "--source",
                "sim://dsmr5",
                "--http",
                "127.0.0.1:0",
                "--db",
            ])
            .arg(dir.join("m.db"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
