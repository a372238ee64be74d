//! Load generator for the ingest benchmark (`bench/ingest-load.sh`): N simulated
//! meters, each publishing one raw frame per interval to `meters/{meter}` at QoS 1,
//! the way house boxes running `meterkast run --forward` do, with the `received` user
//! property set to the moment of publishing. The ingest workers' commit latency
//! histogram then measures publish-to-committed.
//!
//! The meters are spread over a few MQTT connections and, within a connection, evenly
//! over the interval (real meters are not synchronized). At the end one JSON line sums
//! up what was published, what the broker acknowledged and how far the generator fell
//! behind its own schedule (if it does, the figures measure the generator, not the
//! workers).
//!
//! ```text
//! cargo run --release -p meterkast --example loadgen -- \
//!     --url mqtt://127.0.0.1:1883/meters/{meter} --meters 5000 --seconds 600
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use meterkast::mqtt_url::BrokerUrl;
use meterkast::sim::{Dialect, Simulator};
use meterkast_codec::Timestamp;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use tokio::time::Instant;

/// Publishes simulated meters' frames to MQTT at a steady rate.
#[derive(Parser, Debug)]
struct Args {
    /// Broker and topic template; `{meter}` becomes each meter's equipment id.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883/meters/{meter}")]
    url: String,
    /// Number of simulated meters.
    #[arg(long, default_value_t = 100)]
    meters: usize,
    /// How long to publish.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Milliseconds between two frames of one meter.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// MQTT connections the meters are spread over.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// The meters' dialect (plaintext ones: the workers get no keys).
    #[arg(long, value_enum, default_value_t = Dialect::Dsmr5)]
    dialect: Dialect,
    /// The seed of the first meter; the others follow.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// MQTT client ids are this plus a number.
    #[arg(long, default_value = "mk-loadgen")]
    client_prefix: String,
}

/// Counters shared by the connections.
#[derive(Default)]
struct Counts {
    published: AtomicU64,
    acked: AtomicU64,
    /// The largest delay of a publish behind its schedule, milliseconds.
    behind_max_ms: AtomicU64,
    /// Publishes more than 100 ms behind schedule.
    behind: AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One connection: its meters' publishing loop, and its event loop driving the socket.
async fn connection(
    n: usize,
    args: Arc<Args>,
    broker: BrokerUrl,
    mut meters: Vec<(String, Simulator)>,
    counts: Arc<Counts>,
    start: Instant,
) -> Result<()> {
    let mut opts = MqttOptions::new(
        format!("{}-{n}", args.client_prefix),
        broker.host.clone(),
        broker.port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_outgoing_inflight_upper_limit(u16::MAX);
    if let Some((u, p)) = broker.credentials() {
        opts.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(opts, 65_536);
    let c = counts.clone();
    let driver = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    c.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(
                    Event::Incoming(Packet::Disconnect(_)) | Event::Outgoing(Outgoing::Disconnect),
                ) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("loadgen connection {n}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    let interval = Duration::from_millis(args.interval_ms);
    let slot = interval / meters.len().max(1) as u32;
    let end = start + Duration::from_secs(args.seconds);
    let mut round = 0u32;
    'run: loop {
        let round_start = start + interval * round;
        for (i, (topic, sim)) in meters.iter_mut().enumerate() {
            let due = round_start + slot * i as u32;
            if due >= end {
                break 'run;
            }
            tokio::time::sleep_until(due).await;
            let late = Instant::now().saturating_duration_since(due).as_millis() as u64;
            counts.behind_max_ms.fetch_max(late, Ordering::Relaxed);
            if late > 100 {
                counts.behind.fetch_add(1, Ordering::Relaxed);
            }
            let (_, frame) = sim.next_frame();
            let props = PublishProperties {
                user_properties: vec![("received".into(), now_ms().to_string())],
                ..Default::default()
            };
            client
                .publish_with_properties(
                    topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    frame.to_vec(),
                    props,
                )
                .await
                .context("the MQTT client stopped")?;
            counts.published.fetch_add(1, Ordering::Relaxed);
        }
        round += 1;
    }
    // Give the broker time to acknowledge what is in flight.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while counts.acked.load(Ordering::Relaxed) < counts.published.load(Ordering::Relaxed)
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    if args.dialect.is_encrypted() {
        bail!(
            "--dialect {}: the load test gives the workers no keys; use dsmr5, dsmr4 or be",
            args.dialect
        );
    }
    if args.meters == 0 || args.connections == 0 || args.interval_ms == 0 {
        bail!("--meters, --connections and --interval-ms must be at least 1");
    }
    let broker = BrokerUrl::parse("--url", &args.url)?;
    if !broker.path.contains("{meter}") {
        bail!("--url: the topic needs {{meter}}, e.g. mqtt://127.0.0.1:1883/meters/{{meter}}");
    }
    let t0 = Timestamp(now_ms() / 1000);
    let mut groups: Vec<Vec<(String, Simulator)>> = (0..args.connections).map(|_| vec![]).collect();
    let mut ids = HashSet::new();
    for i in 0..args.meters {
        let seed = args.first_seed + i as u64;
        let sim = Simulator::new(
            args.dialect,
            seed,
            t0,
            Duration::from_millis(args.interval_ms),
        )?;
        let id = sim.state().meter_id.clone();
        if !ids.insert(id.clone()) {
            bail!("seed {seed} gives meter id {id} again; choose another --first-seed");
        }
        groups[i % args.connections].push((broker.path.replace("{meter}", &id), sim));
    }
    let counts = Arc::new(Counts::default());
    let start = Instant::now() + Duration::from_millis(500);
    let started_ms = now_ms() + 500;
    let mut tasks = vec![];
    for (n, g) in groups.into_iter().enumerate() {
        tasks.push(tokio::spawn(connection(
            n,
            args.clone(),
            broker.clone(),
            g,
            counts.clone(),
            start,
        )));
    }
    for t in tasks {
        t.await??;
    }
    let summary = serde_json::json!({
        "meters": args.meters,
        "seconds": args.seconds,
        "interval_ms": args.interval_ms,
        "started_ms": started_ms,
        "published": counts.published.load(Ordering::Relaxed),
        "broker_acked": counts.acked.load(Ordering::Relaxed),
        "behind_schedule_over_100ms": counts.behind.load(Ordering::Relaxed),
        "behind_schedule_max_ms": counts.behind_max_ms.load(Ordering::Relaxed),
    });
    println!("{summary}");
    Ok(())
}
