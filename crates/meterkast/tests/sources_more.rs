//! The HomeWizard-dongle HTTP source against a real HTTP server, and the MQTT source
//! against the real Mosquitto broker (run by `.ci/run`, which starts one).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn http_source_polls_a_dongle_and_skips_repeats() {
    let dir = tmpdir("http");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicI64::new(0));
    let s2 = served.clone();
    let t0 = now() - 600;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = [0u8; 1024];
            let n = c.read(&mut req).unwrap_or(0);
            let req = String::from_utf8_lossy(&req[..n]);
            let (status, body) = if req.starts_with("GET /api/v1/telegram ") {
                // A new telegram every second poll, as a dongle answers with its latest.
                let k = s2.fetch_add(1, Ordering::SeqCst) / 2;
                ("200 OK", telegram("H1", t0 + k, 7000 + k))
            } else {
                ("404 Not Found", b"not found".to_vec())
            };
            let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = c.write_all(&body);
        }
    });
    let d = Daemon::start(
        &dir,
        &[format!(
            "http://127.0.0.1:{port}/api/v1/telegram?interval=100ms"
        )],
        &[],
    );
    wait_for("five telegrams from the dongle", 20, || {
        latest_import_kwh(&d).is_some_and(|v| v >= 7.005)
    });
    let h = d.json("/healthz");
    let accepted = h["sources"][0]["accepted"].as_i64().unwrap();
    let polls = served.load(Ordering::SeqCst);
    assert!(
        accepted * 2 <= polls + 2,
        "repeats were fed again: {accepted} accepted of {polls} polls"
    );
    d.stop();
}

#[test]
#[ignore = "needs the Mosquitto broker on 127.0.0.1:1883; .ci/run starts it and runs this"]
fn mqtt_source_takes_raw_and_hex_payloads() {
    use rumqttc::{Client, MqttOptions, QoS};
    let dir = tmpdir("mqtt");
    let prefix = format!("meterkast-test-{}-{}", std::process::id(), now());
    let d = Daemon::start(
        &dir,
        &[format!(
            "mqtt://127.0.0.1:1883/{prefix}/+/raw?key=36C66639E48A8CA4D6BC8B282A793BBB"
        )],
        &[],
    );
    wait_for("the source to subscribe", 10, || {
        d.json("/healthz")["sources"][0]["connected"] == true
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut opts = MqttOptions::new(format!("{prefix}-pub"), "127.0.0.1", 1883);
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut conn) = Client::new(opts, 16);
    std::thread::spawn(move || for _ in conn.iter() {});
    // A DSMR telegram as raw bytes.
    let t = now() - 300;
    client
        .publish(
            format!("{prefix}/p1/raw"),
            QoS::AtLeastOnce,
            false,
            telegram("M1", t, 3000),
        )
        .unwrap();
    // The Netz NÖ (EVN) documentation frame as hex text, as ESP bridges publish it.
    let hex = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../codec/tests/corpus/dlms/at_evn_noe_doc_kaifa_mbus.hex"),
    )
    .unwrap();
    client
        .publish(
            format!("{prefix}/evn/raw"),
            QoS::AtLeastOnce,
            false,
            hex.trim().as_bytes().to_vec(),
        )
        .unwrap();
    wait_for("both meters", 15, || {
        d.json("/api/v1/now")
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let now_json = d.json("/api/v1/now");
    let readings: Vec<&serde_json::Value> = now_json
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["reading"])
        .collect();
    assert!(readings
        .iter()
        .any(|r| r["total_power_import_kwh"].as_f64() == Some(3.0)));
    assert!(
        readings
            .iter()
            .any(|r| r["total_power_import_kwh"].as_f64() == Some(12.937)),
        "{now_json}"
    );
    let _ = client.disconnect();
    d.stop();
}

/// A bridge that drops the connection in the middle of a telegram: the half telegram
/// is counted as a rejection saying the input ended (never dropped in silence), and
/// the telegrams on either side of the reconnect are stored.
#[test]
fn a_connection_lost_mid_telegram_is_a_rejection_not_silence() {
    let dir = tmpdir("tcp-cut");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t0 = now() - 600;
    std::thread::spawn(move || {
        for (k, conn) in listener.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            if k == 0 {
                let _ = c.write_all(&telegram("C1", t0, 5000));
                let half = telegram("C1", t0 + 1, 5001);
                let _ = c.write_all(&half[..half.len() / 2]);
            } else {
                let _ = c.write_all(&telegram("C1", t0 + 2 + k as i64, 5002 + k as i64));
                std::thread::sleep(Duration::from_secs(30));
            }
        }
    });
    let d = Daemon::start(&dir, &[format!("tcp://127.0.0.1:{port}")], &[]);
    wait_for("the telegram after the reconnect", 30, || {
        latest_import_kwh(&d).is_some_and(|v| v >= 5.003)
    });
    let metrics = get(d.port, "/metrics").unwrap();
    let truncated: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("meterkast_telegrams_rejected_total") && l.contains("truncated"))
        .collect();
    assert_eq!(truncated.len(), 1, "{metrics}");
    assert!(truncated[0].ends_with(" 1"), "{truncated:?}");
    d.stop();
}
