//! Forwarder mode (`--forward mqtt://broker/meters/{meter}`): every frame a source
//! receives goes to an MQTT 5 broker exactly as it came from the meter (encrypted
//! frames stay encrypted: the box at the meter needs no keys), with its receive time,
//! for ingest workers elsewhere to decode and store.
//!
//! Each frame is written to an on-disk queue (the MQTT output's) at once and published
//! from it at QoS 1 to the topic with `{meter}` replaced by the meter id: the DSMR
//! equipment id, or for DLMS frames the system title as 16 hex digits. User
//! properties: `received` (unix milliseconds), `source` (the source's name); content
//! type `application/octet-stream`. A frame leaves the queue only when the broker
//! acknowledged it, so a broker outage (or a restart) loses nothing up to the queue's
//! bound, and frames leave in the order they came (a reconnect re-sends everything
//! unacknowledged from the head: at least once, never out of order).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::mqtt::outbox::{self, Ev, Link, Outbox};
use super::mqtt::queue::{DiskQueue, Msg};
use crate::mqtt_url::BrokerUrl;

/// Frames published but not yet acknowledged, at most.
const WINDOW: usize = 256;
/// Frames waiting between the sources and this task before new ones are dropped.
const FRAME_QUEUE: usize = 16_384;
/// The on-disk queue's bound: days of one meter's frames.
const QUEUE_MAX_BYTES: u64 = 1 << 30;
/// What replaces the meter id in the topic.
pub const METER: &str = "{meter}";

/// One frame as it came from the meter.
#[derive(Debug, Clone)]
pub struct Wire {
    /// The meter id for the topic.
    pub meter: String,
    /// The frame's bytes exactly as received.
    pub bytes: Vec<u8>,
    /// When it was received, unix milliseconds.
    pub received_ms: i64,
    /// The source's name.
    pub source: Arc<str>,
}

/// A system title as 16 upper-case hex digits (the forwarded topic's meter id).
pub fn title_hex(st: &[u8; 8]) -> String {
    st.iter().map(|b| format!("{b:02X}")).collect()
}

/// A meter id made safe as one topic level (no `/`, `+`, `#`).
fn topic_level(meter: &str) -> String {
    meter.replace(['/', '+', '#', '\0'], "_")
}

/// The forwarder's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardSettings {
    /// The broker.
    pub broker: BrokerUrl,
    /// The topic template, with `{meter}`.
    pub topic: String,
    /// The MQTT client id.
    pub client_id: String,
    /// The on-disk queue.
    pub queue_path: PathBuf,
}

impl ForwardSettings {
    /// Checks `--forward URL`; the queue lives at `queue_path`.
    pub fn parse(url: &str, queue_path: &Path) -> Result<ForwardSettings> {
        let broker = BrokerUrl::parse("--forward", url)?;
        let topic = broker.path.clone();
        if !topic.contains(METER) {
            bail!(
                "--forward {}: the topic must contain {METER}, e.g. mqtt://broker/meters/{METER}",
                crate::redact::text(url)
            );
        }
        if topic.contains(['+', '#']) || topic.starts_with('$') {
            bail!("--forward: the topic {topic:?} must not contain + or # nor start with $");
        }
        Ok(ForwardSettings {
            topic,
            client_id: format!(
                "meterkast-fwd-{}-{}",
                crate::http::homewizard::hostname(),
                std::process::id()
            ),
            broker,
            queue_path: queue_path.to_path_buf(),
        })
    }

    /// The topic for a meter.
    pub fn topic_for(&self, meter: &str) -> String {
        self.topic.replace(METER, &topic_level(meter))
    }
}

/// The MQTT 5 client's events, as the outbox needs them.
struct FwdLink(rumqttc::v5::EventLoop);

impl Link for FwdLink {
    type Other = ();

    async fn next(&mut self) -> Result<Option<Ev<()>>, String> {
        Ok(match self.0.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::ConnAck(_)) => Some(Ev::Connected),
            Event::Incoming(Packet::PubAck(_)) => Some(Ev::Acked),
            Event::Outgoing(Outgoing::Disconnect) => Some(Ev::Closed),
            _ => None,
        })
    }

    fn clean(&mut self) {
        self.0.clean();
    }
}

/// Opens the queue and starts forwarding. Frames go into the returned sender (with
/// `try_send`); the task ends, after a last flush, when every sender is dropped.
pub fn start(s: ForwardSettings) -> Result<(mpsc::Sender<Wire>, JoinHandle<()>)> {
    let q = DiskQueue::open(&s.queue_path, QUEUE_MAX_BYTES)?;
    if !q.is_empty() {
        tracing::info!(
            "forwarder: {} kB of frames from before are still to be delivered",
            q.pending_bytes() / 1024
        );
    }
    let b = &s.broker;
    let mut opts = MqttOptions::new(s.client_id.clone(), b.host.clone(), b.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_start(true);
    opts.set_outgoing_inflight_upper_limit(WINDOW as u16 + 8);
    opts.set_max_packet_size(Some(1 << 20));
    if let Some((u, p)) = b.credentials() {
        opts.set_credentials(u, p);
    }
    if let Some(t) = b.transport()? {
        opts.set_transport(t);
    }
    let (client, el) = AsyncClient::new(opts, 2 * WINDOW);
    let events = outbox::spawn(FwdLink(el), "forwarder", "frames", b.addr());
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    let task = tokio::spawn(async move {
        let mut f = Forwarder {
            s,
            client,
            out: Outbox::new(q, WINDOW),
        };
        if let Err(e) = f.run(rx, events).await {
            tracing::error!("forwarder stopped: {e:#}");
        }
    });
    Ok((tx, task))
}

struct Forwarder {
    s: ForwardSettings,
    client: AsyncClient,
    out: Outbox,
}

/// Publishes one queued frame.
fn publish(client: &AsyncClient, m: Msg) -> Result<()> {
    let props = PublishProperties {
        user_properties: m.props,
        content_type: Some("application/octet-stream".into()),
        ..Default::default()
    };
    client
        .try_publish_with_properties(m.topic, QoS::AtLeastOnce, false, m.payload, props)
        .context("the MQTT client refused a frame")
}

impl Forwarder {
    async fn run(
        &mut self,
        mut frames: mpsc::Receiver<Wire>,
        mut events: mpsc::UnboundedReceiver<Ev<()>>,
    ) -> Result<()> {
        loop {
            let client = &self.client;
            self.out.fill(|m| publish(client, m))?;
            tokio::select! {
                w = frames.recv() => match w {
                    Some(w) => self.enqueue(w)?,
                    None => break,
                },
                ev = events.recv() => match ev {
                    Some(ev) => {
                        self.out.event(ev)?;
                    }
                    None => return self.out.q.flush(),
                },
            }
        }
        // Shutting down: a moment for the last acknowledgements; the rest stays queued.
        let client = &self.client;
        self.out
            .drain(&mut events, 3, |m| publish(client, m))
            .await?;
        if self.out.connected {
            let _ = self.client.try_disconnect();
        }
        self.out.q.flush()
    }

    fn enqueue(&mut self, w: Wire) -> Result<()> {
        let m = Msg::new(self.s.topic_for(&w.meter), w.bytes, false).with_props(vec![
            ("received".into(), w.received_ms.to_string()),
            ("source".into(), w.source.to_string()),
        ]);
        self.out.q.push(&m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_the_meter_in_one_level() {
        let s = ForwardSettings::parse("mqtt://b/meters/{meter}/raw", Path::new("q")).unwrap();
        assert_eq!(s.topic_for("E0012345"), "meters/E0012345/raw");
        assert_eq!(
            s.topic_for("unidentified@tcp://h:23"),
            "meters/unidentified@tcp:__h:23/raw"
        );
        assert_eq!(title_hex(b"SAGgp\x01\xbdT"), "534147677001BD54");
        for bad in [
            "mqtt://b/meters",
            "mqtt://b/m/+/{meter}",
            "mqtt://b/$SYS/{meter}",
        ] {
            assert!(
                ForwardSettings::parse(bad, Path::new("q")).is_err(),
                "{bad}"
            );
        }
    }
}
