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
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
            bail!("--forward {url}: the topic must contain {METER}, e.g. mqtt://broker/meters/{METER}");
        }
        if topic.contains(['+', '#']) || topic.starts_with('$') {
            bail!("--forward: the topic {topic:?} must not contain + or # nor start with $");
        }
        Ok(ForwardSettings {
            topic,
            client_id: format!(
                "meterkast-fwd-{}-{}",
                crate::mqtt_url::hostname(),
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

/// What the connection task reports.
enum Ev {
    Connected,
    Acked,
    /// The connection broke; answer once nothing more will be handed to the client.
    Down(oneshot::Sender<()>),
    Closed,
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
    if let Some(u) = &b.user {
        opts.set_credentials(u.clone(), b.password.clone().unwrap_or_default());
    }
    if b.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(super::mqtt::tls_config(b.ca.as_deref())?)),
        ));
    }
    let (client, mut el) = AsyncClient::new(opts, 2 * WINDOW);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let addr = b.addr();
    tokio::spawn(async move {
        let mut logged = false;
        loop {
            let ev = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("forwarder: connected to {addr}");
                    logged = false;
                    Ev::Connected
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => Ev::Acked,
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    let _ = ev_tx.send(Ev::Closed);
                    return;
                }
                Ok(_) => continue,
                Err(e) => {
                    if !logged {
                        tracing::warn!("forwarder: no connection to {addr} ({e}); queueing frames on disk and retrying");
                        logged = true;
                    }
                    let (tx, rx) = oneshot::channel();
                    if ev_tx.send(Ev::Down(tx)).is_err() {
                        return;
                    }
                    // Once nothing more is handed out, drop what the client holds:
                    // the queue sends it again, in order.
                    let _ = rx.await;
                    el.clean();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if ev_tx.send(ev).is_err() {
                return;
            }
        }
    });
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    let task = tokio::spawn(async move {
        let mut f = Forwarder {
            s,
            client,
            q,
            connected: false,
            inflight: 0,
        };
        if let Err(e) = f.run(rx, ev_rx).await {
            tracing::error!("forwarder stopped: {e:#}");
        }
    });
    Ok((tx, task))
}

struct Forwarder {
    s: ForwardSettings,
    client: AsyncClient,
    q: DiskQueue,
    connected: bool,
    inflight: usize,
}

impl Forwarder {
    async fn run(
        &mut self,
        mut frames: mpsc::Receiver<Wire>,
        mut events: mpsc::UnboundedReceiver<Ev>,
    ) -> Result<()> {
        loop {
            self.fill()?;
            tokio::select! {
                w = frames.recv() => match w {
                    Some(w) => self.enqueue(w)?,
                    None => break,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev)?,
                    None => return self.q.flush(),
                },
            }
        }
        // Shutting down: a moment for the last acknowledgements; the rest stays queued.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.connected && !self.q.is_empty() {
            self.fill()?;
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => self.event(ev)?,
                _ => break,
            }
        }
        if self.connected {
            let _ = self.client.try_disconnect();
        }
        self.q.flush()
    }

    fn enqueue(&mut self, w: Wire) -> Result<()> {
        let m = Msg::new(self.s.topic_for(&w.meter), w.bytes, false).with_props(vec![
            ("received".into(), w.received_ms.to_string()),
            ("source".into(), w.source.to_string()),
        ]);
        self.q.push(&m)
    }

    /// Hands queued frames to the client while the window allows.
    fn fill(&mut self) -> Result<()> {
        while self.connected && self.inflight < WINDOW {
            let Some(m) = self.q.next_unsent()? else {
                break;
            };
            let props = PublishProperties {
                user_properties: m.props,
                content_type: Some("application/octet-stream".into()),
                ..Default::default()
            };
            self.client
                .try_publish_with_properties(m.topic, QoS::AtLeastOnce, false, m.payload, props)
                .context("the MQTT client refused a frame")?;
            self.inflight += 1;
        }
        Ok(())
    }

    fn event(&mut self, ev: Ev) -> Result<()> {
        match ev {
            Ev::Connected => {
                self.connected = true;
                self.inflight = 0;
                self.q.rewind();
            }
            Ev::Acked => {
                if self.inflight > 0 {
                    self.inflight -= 1;
                    self.q.ack()?;
                }
            }
            Ev::Down(ack) => {
                self.connected = false;
                self.inflight = 0;
                self.q.rewind();
                let _ = ack.send(());
            }
            Ev::Closed => self.connected = false,
        }
        Ok(())
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
