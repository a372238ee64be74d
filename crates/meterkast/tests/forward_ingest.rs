//! Forwarder mode and ingest workers against a real Mosquitto (each test starts its own
//! on a free port): what the forwarder publishes, a broker outage, an encrypted meter
//! forwarded without its key and decoded in the centre, and a worker killed mid-stream.

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meterkast::store::sqlite::SqliteReader;
use meterkast::store::{Location, StoreRead};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use support::broker::Broker;
use support::{free_port, telegram, tmpdir, wait_for, Daemon};

/// What the ingest tests' broker needs: room for many unacknowledged messages per
/// client and for a stopped worker's queue.
const LIMITS: &str = "max_inflight_messages 1000\nmax_queued_messages 100000\n";

/// One received message: topic, payload, user properties, content type.
#[derive(Debug, Clone)]
struct Got {
    topic: String,
    payload: Vec<u8>,
    props: Vec<(String, String)>,
    content_type: Option<String>,
}

impl Got {
    fn prop(&self, k: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

type Seen = Arc<Mutex<Vec<Got>>>;

/// An MQTT 5 subscriber collecting every message on `filter`, with a persistent
/// session (kept by the broker across its restarts).
fn subscribe(port: u16, id: &str, filter: &str) -> (Client, Seen) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(o, 100);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let c = client.clone();
    let filter = filter.to_string();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = c.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.clone().unwrap_or_default();
                    s.lock().unwrap().push(Got {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        props: props.user_properties,
                        content_type: props.content_type,
                    });
                }
                Ok(_) => {}
                Err(rumqttc::v5::ConnectionError::RequestsDone) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    (client, seen)
}

/// Waits until the subscriber receives (its subscription is in place), then forgets
/// the probe.
fn ready(sub: &Client, seen: &Seen, topic: &str) {
    wait_for("the subscriber", 10, || {
        let _ = sub.try_publish(topic, QoS::AtLeastOnce, false, "probe");
        std::thread::sleep(Duration::from_millis(100));
        !seen.lock().unwrap().is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    seen.lock().unwrap().clear();
}

/// A broker (with `extra` settings) and a subscriber on `meters/#`, ready.
fn watched_broker(dir: &Path, id: &str, extra: &str) -> (Broker, Client, Seen) {
    let broker = Broker::start_with(dir, free_port(), extra);
    let (sub, seen) = subscribe(broker.port, id, "meters/#");
    ready(&sub, &seen, "meters/probe");
    (broker, sub, seen)
}

/// A publisher standing in for house boxes (QoS 1, MQTT 5).
fn publisher(port: u16) -> Client {
    let o = MqttOptions::new(format!("t-pub-{port}"), "127.0.0.1", port);
    let (client, mut conn) = Client::new(o, 1000);
    std::thread::spawn(move || {
        for ev in conn.iter() {
            if let Err(rumqttc::v5::ConnectionError::RequestsDone) = ev {
                return;
            }
        }
    });
    client
}

fn publish_frame(c: &Client, topic: &str, frame: &[u8]) {
    let props = PublishProperties {
        user_properties: vec![
            ("received".into(), now_ms().to_string()),
            ("source".into(), "test".into()),
        ],
        ..Default::default()
    };
    c.publish_with_properties(topic, QoS::AtLeastOnce, false, frame.to_vec(), props)
        .unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hex(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02X}")).collect()
}

fn t0() -> i64 {
    // Recent, so retention keeps the readings.
    let now = now_ms() / 1000;
    now - now % 60 - 3600
}

/// A forwarder without a database, reading a TCP source the test feeds.
fn forwarder(dir: &Path, broker: u16) -> (Daemon, TcpStream, String) {
    let src = free_port();
    let listener = TcpListener::bind(("127.0.0.1", src)).unwrap();
    let source = format!("tcp://127.0.0.1:{src}");
    let d = Daemon::run(
        dir,
        &[
            "--source".into(),
            source.clone(),
            "--forward".into(),
            format!("mqtt://127.0.0.1:{broker}/meters/{{meter}}"),
            "--forward-queue".into(),
            dir.join("fwd.queue").display().to_string(),
        ],
        &[],
    );
    let (c, _) = listener.accept().unwrap();
    (d, c, source)
}

/// An ingest worker storing into `dir/meterkast.db`.
fn worker(dir: &Path, broker: u16, client_id: &str, extra: &[String]) -> Daemon {
    let db = dir.join("meterkast.db").display().to_string();
    worker_db(dir, &db, broker, client_id, extra)
}

/// An ingest worker storing into `db` (a file or a `postgres://` URL), logging to `dir`.
fn worker_db(dir: &Path, db: &str, broker: u16, client_id: &str, extra: &[String]) -> Daemon {
    let mut args = vec![
        "--db".to_string(),
        db.to_string(),
        "--ingest".into(),
        format!("mqtt://127.0.0.1:{broker}/meters/+"),
        "--ingest-client-id".into(),
        client_id.into(),
    ];
    args.extend_from_slice(extra);
    let d = Daemon::run(dir, &args, &[]);
    // Subscribed: the worker says it is connected only once the broker took the
    // subscription.
    wait_for("the worker's subscription", 20, || {
        support::get(d.port, "/metrics").is_some_and(|m| {
            m.lines()
                .any(|l| l.starts_with("meterkast_source_connected{") && l.ends_with(" 1"))
        })
    });
    d
}

/// Readings stored per meter (equipment id), read from the database (a SQLite file
/// or a `postgres://` URL).
fn stored(db: &Path) -> Vec<(String, Vec<i64>)> {
    let Ok(r) = Location::parse(&db.to_string_lossy()).and_then(|l| l.open_reader()) else {
        return vec![];
    };
    let mut out = vec![];
    for m in r.meters().unwrap_or_default() {
        let ts = r
            .samples(m.id, 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|s| s.ts)
            .collect();
        out.push((m.equipment_id, ts));
    }
    out
}

fn stored_count(db: &Path) -> usize {
    stored(db).iter().map(|(_, t)| t.len()).sum()
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn the_forwarder_publishes_every_frame_as_received_with_its_receive_time() {
    let dir = tmpdir("fwd-publish");
    let (broker, _sub, seen) = watched_broker(&dir, "t-fwd-sub", "");
    let (d, mut c, source) = forwarder(&dir, broker.port);
    let t = t0();
    let mut sent = vec![];
    for k in 0..6 {
        let id = if k % 2 == 0 { "M1" } else { "M2" };
        let tg = telegram(id, t + k, 1_000_000 + k);
        let before = now_ms();
        c.write_all(&tg).unwrap();
        sent.push((id, tg, before));
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_for("six forwarded frames", 15, || {
        seen.lock().unwrap().len() >= 6
    });
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 6, "{got:?}");
    for ((id, tg, before), g) in sent.iter().zip(&got) {
        assert_eq!(g.topic, format!("meters/{}", hex(id)));
        assert_eq!(&g.payload, tg, "the frame's bytes as sent");
        let received: i64 = g.prop("received").unwrap().parse().unwrap();
        assert!(
            received >= *before && received <= before + 5_000,
            "received {received} vs sent at {before}"
        );
        assert_eq!(g.prop("source"), Some(source.as_str()));
        assert_eq!(g.content_type.as_deref(), Some("application/octet-stream"));
    }
    // No database: nothing was written beside the queue.
    assert!(!dir.join("meterkast.db").exists());
    assert!(dir.join("fwd.queue").exists());
    d.stop();
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn a_broker_outage_loses_no_frame_and_keeps_their_order() {
    let dir = tmpdir("fwd-outage");
    let (broker, _sub, seen) = watched_broker(&dir, "t-outage-sub", "");
    let (d, mut c, _) = forwarder(&dir, broker.port);
    let t = t0();
    let frame = |k: i64| telegram("M1", t + k, 2_000_000 + k);
    let mut k = 0;
    let mut send = |n: i64| {
        for _ in 0..n {
            c.write_all(&frame(k)).unwrap();
            k += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    send(10);
    wait_for("the frames before the outage", 15, || {
        seen.lock().unwrap().len() >= 10
    });
    let (conf, port) = broker.stop();
    // About 20 s without a broker, frames still coming.
    send(200);
    let _broker = Broker::spawn(conf, port);
    send(10);
    let total = 220;
    wait_for("every frame after the outage", 60, || {
        let mut ids: Vec<Vec<u8>> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.payload.clone())
            .collect();
        ids.dedup();
        ids.len() >= total
    });
    // At least once, in order: the first sighting of every frame follows the meter's order.
    let got = seen.lock().unwrap().clone();
    let mut first = vec![];
    for g in &got {
        if !first.contains(&g.payload) {
            first.push(g.payload.clone());
        }
    }
    let want: Vec<Vec<u8>> = (0..total as i64).map(frame).collect();
    assert_eq!(first.len(), want.len());
    assert!(first == want, "frames out of order or changed");
    d.stop();
}

/// 20 frames of a simulated encrypted meter (`smarty`, `evn`), written to `path`.
fn simulate(dialect: &str, key: &str, path: &Path) -> Vec<u8> {
    let start = meterkast_codec::Timestamp(t0()).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .args(["simulate", "--dialect", dialect, "--key", key])
        .args(["--count", "20", "--interval", "10s", "--start", &start])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, &out.stdout).unwrap();
    out.stdout
}

/// A house box without database or keys, forwarding a capture file.
fn forward_file(dir: &Path, broker: u16, capture: &Path) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    Daemon::run(
        dir,
        &[
            "--source".into(),
            format!("file://{}?speed=max", capture.display()),
            "--forward".into(),
            format!("mqtt://127.0.0.1:{broker}/meters/{{meter}}"),
            "--forward-queue".into(),
            dir.join("fwd.queue").display().to_string(),
        ],
        &[],
    )
}

/// The meter id and time of every frame the key decodes.
fn decoded(bytes: &[u8], key: &str) -> Vec<(Option<String>, i64)> {
    let mut want = vec![];
    let keys = meterkast_codec::Keys::from_hex(Some(key), None).unwrap();
    let mut d = meterkast_codec::Decoder::with_keys(keys);
    d.push(bytes);
    d.finish();
    while let Some(Ok(x)) = d.next() {
        want.push((
            x.telegram.meter_id().map(|m| m.to_string()),
            x.telegram.timestamp.unwrap().0,
        ));
    }
    want
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn an_encrypted_meter_is_forwarded_without_its_key_and_stored_with_it() {
    let dir = tmpdir("fwd-smarty");
    let key = "D491470F47126332B07D1923B3504188";
    let capture = dir.join("smarty.bin");
    let out = simulate("smarty", key, &capture);
    let (broker, _sub, seen) = watched_broker(&dir, "t-smarty-sub", LIMITS);
    let keys = dir.join("keys.toml");
    // Keyed by the system title as the meter prints it.
    let w_dir = dir.join("centre");
    std::fs::create_dir_all(&w_dir).unwrap();
    let title = {
        let mut d = meterkast_codec::Decoder::new();
        d.push(&out);
        d.finish();
        assert_eq!(d.next().unwrap().unwrap_err().cause, "no_key");
        d.rejected_frame().unwrap().system_title.unwrap()
    };
    let readable = format!(
        "{}{}",
        String::from_utf8_lossy(&title[..3]),
        title[3..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    // A bad key stops a worker at start, naming the line and not the key.
    std::fs::write(
        &keys,
        format!("[[meter]]\nid = \"{readable}\"\nkey = \"{}\"\n", &key[..30]),
    )
    .unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .args(["run", "--ingest", "mqtt://127.0.0.1:1/meters/+", "--keys"])
        .arg(&keys)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("line 1") && err.contains("32 hex digits"),
        "{err}"
    );
    assert!(!err.contains(&key[..30]), "{err}");
    std::fs::write(
        &keys,
        format!("[[meter]]\nid = \"{readable}\"\nkey = \"{key}\"\n"),
    )
    .unwrap();
    let w = worker(
        &w_dir,
        broker.port,
        "t-smarty-worker",
        &["--keys".into(), keys.display().to_string()],
    );
    std::thread::sleep(Duration::from_millis(500));

    let f_dir = dir.join("house");
    let f = forward_file(&f_dir, broker.port, &capture);
    wait_for("20 stored readings", 30, || stored_count(&w.db) >= 20);
    let got = seen.lock().unwrap().clone();
    let title_hex: String = title.iter().map(|b| format!("{b:02X}")).collect();
    assert!(got.len() >= 20);
    for g in &got {
        assert_eq!(g.topic, format!("meters/{title_hex}"));
        assert_eq!(g.payload.first(), Some(&0xDB), "still encrypted");
    }
    // The centre decrypted what the house could not: the same readings the key gives.
    let want = decoded(&out, key);
    assert_eq!(want.len(), 20);
    let s = stored(&w.db);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(Some(&s[0].0), want[0].0.as_ref());
    assert_eq!(s[0].1, want.iter().map(|w| w.1).collect::<Vec<_>>());
    // And the house box kept no database.
    assert!(!f_dir.join("meterkast.db").exists());
    f.stop();
    w.stop();
}

/// One unlabelled value from the daemon's metrics.
fn metric(port: u16, name: &str) -> f64 {
    let m = support::get(port, "/metrics").unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {m}"))
}

/// Frames the daemon's sources decoded and passed on, from its metrics.
fn accepted(port: u16) -> u64 {
    support::get(port, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("meterkast_telegrams_accepted_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Something that keeps the store from committing while it lives.
type Hold = Box<dyn std::any::Any>;

/// Kills a worker whose store cannot commit (`hold`) after it received frames, and
/// checks that its restart stores every frame exactly once.
fn killed_mid_stream(dir: &Path, db: &str, id: &str, hold: impl FnOnce() -> Hold) {
    let broker = Broker::start_with(dir, free_port(), LIMITS);
    let pubc = publisher(broker.port);
    let w = worker_db(dir, db, broker.port, id, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let t = t0();
    let total = 600i64;
    let frame = |k: i64| telegram(&format!("K{}", k % 3), t + k / 3, 3_000_000 + k);
    let topic = |k: i64| format!("meters/{}", hex(&format!("K{}", k % 3)));
    let db = Path::new(db);
    for k in 0..150 {
        publish_frame(&pubc, &topic(k), &frame(k));
    }
    wait_for("the first frames stored", 30, || stored_count(db) == 150);
    // The store cannot commit for a while (another writer holds it): frames arrive and
    // decode, but none may be acknowledged.
    let lock = hold();
    for k in 150..300 {
        publish_frame(&pubc, &topic(k), &frame(k));
    }
    wait_for("the next frames received", 30, || accepted(w.port) >= 300);
    drop(w); // SIGKILL, before any commit of them
    assert_eq!(stored_count(db), 150);
    drop(lock);
    for k in 300..total {
        publish_frame(&pubc, &topic(k), &frame(k));
    }
    let w = worker_db(dir, &db.to_string_lossy(), broker.port, id, &[]);
    wait_for("every frame stored", 60, || {
        stored_count(db) >= total as usize
    });
    std::thread::sleep(Duration::from_millis(500));
    let s = stored(db);
    let n: usize = s.iter().map(|(_, t)| t.len()).sum();
    assert_eq!(n, total as usize, "each frame stored exactly once");
    for (_, ts) in &s {
        assert_eq!(ts.len(), (total / 3) as usize);
    }
    // The restarted worker committed what the killed one had not: 450 new readings,
    // each with its latency.
    assert_eq!(metric(w.port, "meterkast_ingest_committed_total"), 450.0);
    assert_eq!(
        metric(w.port, "meterkast_ingest_commit_latency_seconds_count"),
        450.0
    );
    w.stop();
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn a_worker_killed_mid_stream_loses_nothing() {
    let dir = tmpdir("ingest-kill");
    let db = dir.join("meterkast.db");
    let file = db.display().to_string();
    killed_mid_stream(&dir, &file, "t-kill-worker", || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        Box::new(c)
    });
}

#[test]
#[ignore = "needs mosquitto and PostgreSQL; .ci/run runs it"]
fn a_worker_killed_mid_stream_loses_nothing_on_postgresql() {
    let dir = tmpdir("ingest-kill-pg");
    let pg = support::pg::PgDb::new();
    killed_mid_stream(&dir, &pg.url(None), "t-kill-pg-worker", || {
        let mut c = pg.client();
        // Readers go on; writers wait.
        c.batch_execute("BEGIN; LOCK TABLE readings IN EXCLUSIVE MODE")
            .unwrap();
        Box::new(c)
    });
}

#[test]
#[ignore = "needs mosquitto and PostgreSQL; .ci/run runs it"]
fn two_workers_share_the_subscription_and_store_every_frame_once() {
    let dir = tmpdir("ingest-share");
    let pg = support::pg::PgDb::new();
    let url = pg.url(None);
    let broker = Broker::start_with(&dir, free_port(), LIMITS);
    let pubc = publisher(broker.port);
    let workers: Vec<Daemon> = (0..2)
        .map(|i| {
            let d = dir.join(format!("w{i}"));
            std::fs::create_dir_all(&d).unwrap();
            worker_db(&d, &url, broker.port, &format!("t-share-{i}"), &[])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = t0();
    let total = 400i64;
    let meters = 8;
    for k in 0..total {
        let id = format!("S{}", k % meters);
        publish_frame(
            &pubc,
            &format!("meters/{}", hex(&id)),
            &telegram(&id, t + k / meters, 4_000_000 + k),
        );
    }
    let db = Path::new(&url);
    wait_for("every frame stored", 60, || {
        stored_count(db) >= total as usize
    });
    std::thread::sleep(Duration::from_millis(500));
    // Each worker committed its share, and together every frame once.
    let shares: Vec<f64> = workers
        .iter()
        .map(|w| metric(w.port, "meterkast_ingest_committed_total"))
        .collect();
    assert!(
        shares.iter().all(|n| *n > 0.0),
        "both took a share: {shares:?}"
    );
    assert_eq!(shares.iter().sum::<f64>(), total as f64, "{shares:?}");
    let s = stored(db);
    assert_eq!(s.len(), meters as usize);
    for (m, ts) in &s {
        let want: Vec<i64> = (0..total / meters).map(|k| t + k).collect();
        assert_eq!(ts, &want, "meter {m}");
    }
    // A daemon with the database alone serves every meter, its latest frame at most
    // FRAME_EVERY seconds behind the newest reading.
    let last = t + total / meters - 1;
    let fresh: Vec<String> = (last - meterkast::store::ingest::FRAME_EVERY + 1..=last)
        .map(|x| meterkast_codec::Timestamp(x).to_string())
        .collect();
    let api_dir = dir.join("api");
    std::fs::create_dir_all(&api_dir).unwrap();
    let api = Daemon::run(&api_dir, &["--db".to_string(), url.clone()], &[]);
    let now = |port| -> Vec<serde_json::Value> {
        support::get(port, "/api/v1/now")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default()
    };
    wait_for(
        "all meters in the API-only daemon's /api/v1/now",
        20,
        || now(api.port).len() == meters as usize,
    );
    for f in now(api.port) {
        let ts = f["timestamp"].as_str().unwrap_or_default().to_string();
        assert!(
            fresh.contains(&ts),
            "{} at {ts}, want one of {fresh:?}",
            f["meter"]
        );
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&support::get(api.port, "/api/v1/meters").unwrap()).unwrap();
    assert_eq!(listed.len(), meters as usize);
    api.stop();
    for w in workers {
        w.stop();
    }
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn a_worker_takes_meter_keys_from_the_store_setting() {
    let dir = tmpdir("ingest-setting");
    let key = "36C66639E48A8CA4D6BC8B282A793BBB";
    let capture = dir.join("evn.bin");
    let out = simulate("evn", key, &capture);
    let title = {
        let mut d = meterkast_codec::Decoder::new();
        d.push(&out);
        d.finish();
        assert_eq!(d.next().unwrap().unwrap_err().cause, "no_key");
        d.rejected_frame().unwrap().system_title.unwrap()
    };
    let title_hex: String = title.iter().map(|b| format!("{b:02x}")).collect();
    let broker = Broker::start_with(&dir, free_port(), LIMITS);
    let db = dir.join("meterkast.db");
    SqliteReader::open(&db)
        .unwrap()
        .put_setting(
            "meter_keys",
            &format!(r#"{{"meter": [{{"id": "{title_hex}", "key": "{key}"}}]}}"#),
        )
        .unwrap();
    let w = worker(&dir, broker.port, "t-setting-worker", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let f = forward_file(&dir.join("house"), broker.port, &capture);
    wait_for("20 stored readings", 30, || stored_count(&db) >= 20);
    let want = decoded(&out, key);
    assert_eq!(want.len(), 20);
    let s = stored(&db);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].1, want.iter().map(|w| w.1).collect::<Vec<_>>());
    f.stop();
    w.stop();
}
