//! The raw telegram bridge forwards whole telegrams, byte-exact from `/` through
//! `!XXXX\r\n`, whatever the read boundaries of the source: the real dsmr_parser TCP
//! reader (what Home Assistant's DSMR integration runs) connected to `--tcp-bridge`
//! gets every one of 10,000 telegrams that arrive over a TCP source in random pieces.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{free_port, get, python_venv, telegram, tmpdir, wait_for, Daemon};

const TELEGRAMS: usize = 10_000;
/// Telegrams sent ahead of what the client has reported: well inside the bridge's
/// per-client queue, so that a slow interpreter is never dropped as a stalled client.
const AHEAD: usize = 300;

const CLIENT: &str = r#"
import asyncio, sys
from dsmr_parser import obis_references as o
from dsmr_parser.clients.protocol import create_tcp_dsmr_reader

async def main(port):
    def got(t):
        print(t[o.ELECTRICITY_USED_TARIFF_1].value, flush=True)
    make = create_tcp_dsmr_reader("127.0.0.1", port, "5", got)
    transport, _ = await make
    print("connected", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(int(sys.argv[1])))
"#;

/// A tiny deterministic generator for the piece sizes.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
#[ignore = "needs PyPI (installs dsmr-parser into a venv under target/)"]
fn dsmr_parser_gets_every_telegram_through_the_bridge() {
    let py = python_venv("dsmr-parser-venv", "dsmr-parser", "1.11.2", "dsmr_parser");
    let dir = tmpdir("bridge-framing");
    let meter = TcpListener::bind("127.0.0.1:0").unwrap();
    let meter_port = meter.local_addr().unwrap().port();
    let bridge_port = free_port();
    let d = Daemon::run(
        &dir,
        &[
            "--db".into(),
            dir.join("m.db").display().to_string(),
            "--source".into(),
            format!("tcp://127.0.0.1:{meter_port}"),
            "--tcp-bridge".into(),
            format!("127.0.0.1:{bridge_port}"),
        ],
        &[("MK_NO_MDNS", "1")],
    );
    let (mut sock, _) = meter.accept().unwrap();
    sock.set_nodelay(true).unwrap();

    let mut client = Command::new(&py)
        .args(["-c", CLIENT, &bridge_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(client.stdout.take().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let received = received.clone();
        std::thread::spawn(move || {
            let mut values = Vec::new();
            for line in out.lines() {
                let line = line.unwrap();
                if line == "connected" {
                    tx.send(()).unwrap();
                    continue;
                }
                values.push(line);
                if received.fetch_add(1, Ordering::SeqCst) + 1 == TELEGRAMS {
                    break;
                }
            }
            values
        })
    };
    rx.recv_timeout(Duration::from_secs(60))
        .expect("dsmr_parser connected to the bridge");
    // The bridge counts a client once it is subscribed to the telegrams.
    wait_for("the bridge to count its client", 20, || {
        get(d.port, "/metrics").is_some_and(|m| m.contains("meterkast_bridge_clients 1"))
    });

    // 10,000 telegrams in random pieces; every tenth with its CRC and its line end in
    // different writes (and reads: the daemon is given time to take the first part).
    let start = 1_770_000_000;
    let mut x = 0x5EED_u64;
    let mut expected = Vec::with_capacity(TELEGRAMS);
    for i in 0..TELEGRAMS {
        // A lost telegram shows here: the client's count stops growing.
        wait_for("dsmr_parser to keep up (a telegram was lost?)", 60, || {
            i < received.load(Ordering::SeqCst) + AHEAD
        });
        let wh = 1_000_000 + i as i64 * 7;
        expected.push(format!("{}.{:03}", wh / 1000, wh % 1000));
        let t = telegram("E0012345678901234", start + i as i64, wh);
        let mut rest = &t[..];
        if i % 10 == 3 {
            let (a, b) = t.split_at(t.len() - 2);
            sock.write_all(a).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            sock.write_all(b).unwrap();
            continue;
        }
        while !rest.is_empty() {
            let n = (1 + xorshift(&mut x) as usize % 400).min(rest.len());
            sock.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
    }
    wait_for("dsmr_parser to get every telegram", 120, || {
        received.load(Ordering::SeqCst) >= TELEGRAMS
    });
    let values = reader.join().unwrap();
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(values.len(), TELEGRAMS);
    assert_eq!(
        values, expected,
        "dsmr_parser got other telegrams than were sent"
    );
    d.stop();
}
