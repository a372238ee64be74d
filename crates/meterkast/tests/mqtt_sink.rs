//! The MQTT output against a real Mosquitto broker (each test starts its own on a free
//! port): discovery and states, a 30-second broker outage mid-stream, the last will,
//! availability per instance.

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use support::broker::Broker;
use support::{certificates, free_port, telegram, tmpdir, wait_for, Daemon};

type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A subscriber collecting every message on `filter`; with `persistent`, a QoS 1
/// session the broker keeps (and fills) while the subscriber is away.
fn subscribe(port: u16, id: &str, filter: &str, persistent: bool) -> (Client, Seen) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(!persistent);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(1 << 20, 1 << 20);
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
                    s.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    (client, seen)
}

fn last(seen: &Seen, topic: &str) -> Option<Vec<u8>> {
    seen.lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(t, _)| t == topic)
        .map(|(_, p)| p.clone())
}

fn last_str(seen: &Seen, topic: &str) -> Option<String> {
    last(seen, topic).map(|p| String::from_utf8(p).unwrap())
}

fn hex(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02X}")).collect()
}

fn t0() -> i64 {
    // Recent, so retention keeps the readings.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 60 - 3600
}

/// A TCP source the daemon connects to; returns the stream once it did.
fn feeder(listener: &TcpListener) -> TcpStream {
    let (c, _) = listener.accept().unwrap();
    c
}

/// The daemon publishing to `url` (with more `MK_MQTT_…` settings in `env`), reading
/// a TCP source the test feeds; returns the daemon and that feed, connected.
fn daemon_publishing(dir: &Path, url: &str, env: &[(&str, &str)]) -> (Daemon, TcpStream) {
    let src = free_port();
    let listener = TcpListener::bind(("127.0.0.1", src)).unwrap();
    let mut all = vec![("MK_MQTT", url)];
    all.extend_from_slice(env);
    let d = Daemon::start(dir, &[format!("tcp://127.0.0.1:{src}")], &all);
    let c = feeder(&listener);
    (d, c)
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn discovery_configs_and_states_arrive_with_the_right_values() {
    let dir = tmpdir("mqtt-sink-states");
    let broker = Broker::start(&dir, free_port());
    let (sub, seen) = subscribe(broker.port, "t-states", "#", false);
    wait_for("the subscriber", 10, || {
        sub.try_publish("probe", QoS::AtLeastOnce, false, "x")
            .is_ok()
            && last(&seen, "probe").is_some()
    });
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let (d, mut c) = daemon_publishing(
        &dir,
        &url,
        &[
            ("MK_MQTT_FORMAT", "meterkast,fields,evn,dsmr-reader,raw"),
            ("MK_MQTT_INSTANCE", "box-a"),
        ],
    );
    let t = t0();
    let mut last_raw = Vec::new();
    for k in 0..3 {
        last_raw = telegram("M1", t + k, 1_000_000 + k);
        c.write_all(&last_raw).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = hex("M1");
    let state_topic = format!("meterkast/{m}/state");
    wait_for("the third state", 15, || {
        last_str(&seen, &state_topic).is_some_and(|s| s.contains("1000.002"))
    });
    let st: Value = serde_json::from_slice(&last(&seen, &state_topic).unwrap()).unwrap();
    assert_eq!(st["total_power_import_kwh"], 1000.002);
    assert_eq!(st["active_power_w"], 360.0);
    assert_eq!(st["meter"], m);
    assert!(st["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        last_str(&seen, "meterkast/box-a/status").as_deref(),
        Some("online")
    );
    assert_eq!(
        last_str(&seen, &format!("meterkast/{m}/total_power_import_kwh")).as_deref(),
        Some("1000.002")
    );
    let evn: Value =
        serde_json::from_slice(&last(&seen, &format!("meterkast/{m}/evn")).unwrap()).unwrap();
    assert_eq!(evn["WIn"]["value"], 1_000_002);
    assert_eq!(evn["WIn"]["unit"], "Wh");
    assert_eq!(evn["PIn"]["value"], 360);
    assert_eq!(
        last_str(&seen, "dsmr/reading/electricity_delivered_1").as_deref(),
        Some("1000.002")
    );
    assert_eq!(
        last_str(&seen, "dsmr/reading/electricity_currently_delivered").as_deref(),
        Some("0.36")
    );
    assert_eq!(last(&seen, &format!("meterkast/{m}/raw")), Some(last_raw));

    let configs = || -> Vec<(String, Value)> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.starts_with("homeassistant/") && t.ends_with("/config"))
            .map(|(t, p)| (t.clone(), serde_json::from_slice(p).expect("valid JSON")))
            .collect()
    };
    let first = configs();
    assert!(first.len() >= 4, "{first:?}");
    for (topic, c) in &first {
        for k in [
            "name",
            "unique_id",
            "state_topic",
            "state_class",
            "availability_topic",
            "value_template",
        ] {
            assert!(c.get(k).is_some(), "{topic}: no {k}");
        }
        for k in ["identifiers", "name", "manufacturer", "model"] {
            assert!(c["device"].get(k).is_some(), "{topic}: no device.{k}");
        }
        assert_eq!(c["state_topic"], state_topic);
        assert_eq!(c["availability_topic"], "meterkast/box-a/status");
    }
    let energy = &first
        .iter()
        .find(|(t, _)| {
            t == &format!("homeassistant/sensor/meterkast_{m}/total_power_import_kwh/config")
        })
        .expect("an import energy entity")
        .1;
    assert_eq!(energy["device_class"], "energy");
    assert_eq!(energy["state_class"], "total_increasing");
    assert_eq!(energy["unit_of_measurement"], "kWh");
    let power = &first
        .iter()
        .find(|(t, _)| t.ends_with("/active_power_w/config"))
        .expect("a power entity")
        .1;
    assert_eq!(power["device_class"], "power");
    assert_eq!(power["state_class"], "measurement");
    assert_eq!(power["unit_of_measurement"], "W");

    // Home Assistant restarts: discovery comes again.
    sub.publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .unwrap();
    wait_for("discovery again", 10, || configs().len() >= 2 * first.len());
    d.stop();
    wait_for("offline at a clean stop", 10, || {
        last_str(&seen, "meterkast/box-a/status").as_deref() == Some("offline")
    });
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn every_reading_arrives_in_order_across_a_30_second_broker_outage() {
    let dir = tmpdir("mqtt-sink-outage");
    let broker = Broker::start(&dir, free_port());
    // A persistent QoS 1 session: the broker keeps what arrives while we are away.
    let (_sub, seen) = subscribe(broker.port, "t-outage", "meterkast/+/state", true);
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let (_d, mut c) = daemon_publishing(
        &dir,
        &url,
        &[
            ("MK_MQTT_FORMAT", "meterkast,fields"),
            ("MK_MQTT_DISCOVERY_PREFIX", ""),
        ],
    );
    let t = t0();
    let mut k = 0i64;
    let mut feed_for = |c: &mut TcpStream, d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            c.write_all(&telegram("Q1", t + k, 2_000_000 + k)).unwrap();
            k += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    feed_for(&mut c, Duration::from_secs(3));
    let (conf, port) = broker.stop();
    feed_for(&mut c, Duration::from_secs(30));
    let _broker = Broker::spawn(conf, port);
    feed_for(&mut c, Duration::from_secs(3));
    let total = k;
    let imports = || -> Vec<i64> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(_, p)| {
                let v: Value = serde_json::from_slice(p).unwrap();
                (v["total_power_import_kwh"].as_f64().unwrap() * 1000.0).round() as i64 - 2_000_000
            })
            .collect()
    };
    wait_for("every reading", 90, || {
        let mut got = imports();
        got.sort();
        got.dedup();
        got.len() as i64 == total
    });
    // At least once: a message in flight when the broker died may come twice, but
    // the first arrivals are in order and none is missing.
    let mut first_seen = Vec::new();
    for v in imports() {
        if !first_seen.contains(&v) {
            first_seen.push(v);
        }
    }
    assert_eq!(first_seen, (0..total).collect::<Vec<_>>());
}

/// The default instance id: this machine's host name, as the daemon reads it.
fn host_instance() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h = h.trim().to_ascii_lowercase();
    let id: String = h
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        "meterkast".into()
    } else {
        id
    }
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn the_last_will_marks_the_device_offline_when_the_daemon_is_killed() {
    let dir = tmpdir("mqtt-sink-lwt");
    let broker = Broker::start(&dir, free_port());
    // Without --mqtt-instance the availability topic is named after the host.
    let status = format!("meterkast/{}/status", host_instance());
    let (_sub, seen) = subscribe(broker.port, "t-lwt", "meterkast/+/status", false);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut d = Daemon::start(
        &dir,
        &[format!("tcp://127.0.0.1:{}", free_port())],
        &[("MK_MQTT", url.as_str())],
    );
    wait_for("online", 15, || {
        last_str(&seen, &status).as_deref() == Some("online")
    });
    d.child.kill().unwrap(); // SIGKILL: no goodbye, only the will.
    let _ = d.child.wait();
    wait_for("the will", 15, || {
        last_str(&seen, &status).as_deref() == Some("offline")
    });
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn two_instances_on_one_broker_have_their_own_availability() {
    let dir = tmpdir("mqtt-sink-instances");
    let broker = Broker::start(&dir, free_port());
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    // What an older meterkast left behind: a retained `offline` on the shared topic.
    let (old, old_seen) = subscribe(broker.port, "t-old", "probe", false);
    wait_for("the old publisher", 10, || {
        old.try_publish("probe", QoS::AtLeastOnce, false, "x")
            .is_ok()
            && last(&old_seen, "probe").is_some()
    });
    old.publish("meterkast/status", QoS::AtLeastOnce, true, "offline")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (mut a, mut ca) = daemon_publishing(&dir_a, &url, &[("MK_MQTT_INSTANCE", "hall")]);
    let (_b, mut cb) = daemon_publishing(&dir_b, &url, &[("MK_MQTT_INSTANCE", "attic")]);
    let t = t0();
    ca.write_all(&telegram("IA", t, 6_000_000)).unwrap();
    cb.write_all(&telegram("IB", t, 7_000_000)).unwrap();
    let (_sub, seen) = subscribe(broker.port, "t-instances", "#", false);
    let config = |meter: &str| {
        last(
            &seen,
            &format!(
                "homeassistant/sensor/meterkast_{}/total_power_import_kwh/config",
                hex(meter)
            ),
        )
        .map(|p| serde_json::from_slice::<Value>(&p).unwrap())
    };
    wait_for("both meters' discovery", 15, || {
        config("IA").is_some() && config("IB").is_some()
    });
    assert_eq!(
        config("IA").unwrap()["availability_topic"],
        "meterkast/hall/status"
    );
    assert_eq!(
        config("IB").unwrap()["availability_topic"],
        "meterkast/attic/status"
    );
    wait_for("both online", 15, || {
        last_str(&seen, "meterkast/hall/status").as_deref() == Some("online")
            && last_str(&seen, "meterkast/attic/status").as_deref() == Some("online")
    });
    // The shared topic's retained message is gone: a new subscriber gets nothing.
    let (_late, late_seen) = subscribe(broker.port, "t-late", "meterkast/status", false);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(last(&late_seen, "meterkast/status"), None);

    // One instance dies: only its own meters go unavailable.
    a.child.kill().unwrap();
    let _ = a.child.wait();
    wait_for("hall offline", 15, || {
        last_str(&seen, "meterkast/hall/status").as_deref() == Some("offline")
    });
    assert_eq!(
        last_str(&seen, "meterkast/attic/status").as_deref(),
        Some("online")
    );
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn mqtts_with_a_custom_ca_delivers_states() {
    let dir = tmpdir("mqtt-sink-tls");
    certificates(&dir);
    let plain = free_port();
    let tls = free_port();
    let d = dir.display();
    let _broker = Broker::start_with(
        &dir,
        plain,
        &format!(
            "listener {tls} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        ),
    );
    // The subscriber listens on the plain listener of the same broker.
    let (_sub, seen) = subscribe(plain, "t-tls", "meterkast/#", false);
    let url = format!("mqtts://127.0.0.1:{tls}?ca={d}/ca.pem");
    let (_d, mut c) = daemon_publishing(&dir, &url, &[]);
    c.write_all(&telegram("T1", t0(), 5_000_123)).unwrap();
    let topic = format!("meterkast/{}/total_power_import_kwh", hex("T1"));
    wait_for("a state over TLS", 15, || {
        last_str(&seen, &topic).as_deref() == Some("5000.123")
    });
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn readings_queued_before_a_crash_are_delivered_in_order_after_the_restart() {
    let dir = tmpdir("mqtt-sink-restart");
    let port = free_port(); // No broker yet.
    let src = free_port();
    let listener = TcpListener::bind(("127.0.0.1", src)).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let env = [
        ("MK_MQTT", url.as_str()),
        ("MK_MQTT_FORMAT", "meterkast"),
        ("MK_MQTT_DISCOVERY_PREFIX", ""),
    ];
    let mut d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{src}")], &env);
    let mut c = feeder(&listener);
    let t = t0();
    for k in 0..20 {
        c.write_all(&telegram("R1", t + k, 3_000_000 + k)).unwrap();
    }
    let queue = d.db.with_extension("db.mqtt-queue");
    wait_for("the queue on disk", 10, || {
        std::fs::metadata(&queue).is_ok_and(|m| m.len() > 20 * 100)
    });
    std::thread::sleep(Duration::from_millis(300));
    d.child.kill().unwrap(); // A crash: nothing is flushed on the way out.
    let _ = d.child.wait();
    drop(c);

    let broker = Broker::start(&dir, port);
    let (_sub, seen) = subscribe(broker.port, "t-restart", "meterkast/+/state", false);
    std::thread::sleep(Duration::from_millis(500));
    let _d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{}", free_port())], &env);
    let imports = || -> Vec<i64> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(_, p)| {
                let v: Value = serde_json::from_slice(p).unwrap();
                (v["total_power_import_kwh"].as_f64().unwrap() * 1000.0).round() as i64 - 3_000_000
            })
            .collect()
    };
    wait_for("the queued readings", 20, || imports().len() >= 20);
    assert_eq!(imports(), (0..20).collect::<Vec<_>>());
}

#[test]
#[ignore = "needs mosquitto; .ci/run runs it"]
fn a_publish_interval_averages_power_and_keeps_the_latest_register() {
    let dir = tmpdir("mqtt-sink-interval");
    let broker = Broker::start(&dir, free_port());
    let (_sub, seen) = subscribe(broker.port, "t-interval", "meterkast/+/state", false);
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let (_d, mut c) = daemon_publishing(
        &dir,
        &url,
        &[
            ("MK_MQTT_INTERVAL", "10s"),
            ("MK_MQTT_DISCOVERY_PREFIX", ""),
        ],
    );
    let t = t0(); // A multiple of 60 s: intervals start at t, t + 10...
    for k in 0..21 {
        c.write_all(&telegram("V1", t + k, 4_000_000 + k)).unwrap();
    }
    wait_for("two intervals", 15, || seen.lock().unwrap().len() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect();
    // 21 readings, 1 a second: two whole intervals out, the third still open.
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["total_power_import_kwh"], 4000.009);
    assert_eq!(got[1]["total_power_import_kwh"], 4000.019);
    assert_eq!(got[0]["active_power_w"], 360.0);
}
