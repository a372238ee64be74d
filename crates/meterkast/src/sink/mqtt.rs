//! Publishes readings to an MQTT broker: meterkast's JSON state, per-field topics, the
//! raw telegram, the EVN and dsmr-reader formats, and Home Assistant discovery.
//!
//! The pipeline hands frames over with `try_send`; this task writes the messages to an
//! on-disk queue at once and publishes from it at QoS 1, forgetting a message only when
//! the broker acknowledges it. A broker outage (or a restart of meterkast) therefore
//! loses nothing up to the queue's bound, and messages leave in order.
//!
//! Ordering across reconnects: see [`outbox`].

pub mod discovery;
pub mod outbox;
pub mod payload;
pub mod queue;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mqtt_url::BrokerUrl;
use outbox::{Ev, Link, Outbox};
use payload::{Averager, Format, Snapshot};
use queue::{DiskQueue, Msg};

/// Messages published but not yet acknowledged, at most.
const WINDOW: usize = 64;
/// Frames waiting between the pipeline and this task before new ones are dropped.
const FRAME_QUEUE: usize = 4096;
/// The on-disk queue's bound.
const QUEUE_MAX_BYTES: u64 = 100 << 20;

/// One accepted reading, as the pipeline hands it over.
#[derive(Debug, Clone)]
pub struct SinkFrame {
    /// The reading's time (unix seconds).
    pub ts: i64,
    /// The frame JSON (`{"meter", "timestamp", "reading": {...}, ...}`).
    pub frame: Arc<str>,
    /// The raw telegram.
    pub raw: Arc<[u8]>,
}

/// The MQTT output's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// The broker.
    pub broker: BrokerUrl,
    /// The MQTT client id.
    pub client_id: String,
    /// The base topic (`meterkast`).
    pub base: String,
    /// This instance's id: its availability topic is `{base}/{instance}/status`.
    pub instance: String,
    /// What to publish.
    pub formats: Vec<Format>,
    /// Home Assistant's discovery prefix; `None` disables discovery.
    pub discovery_prefix: Option<String>,
    /// Publish at most once per this interval, averaging instantaneous values.
    pub interval: Option<Duration>,
    /// The exact topic of the EVN JSON (`{meter}` filled in); `None` for
    /// `{base}/{meter}/evn`.
    pub evn_topic: Option<String>,
    /// The on-disk queue.
    pub queue_path: PathBuf,
}

/// The MQTT options as given on the command line, environment or config file.
#[derive(Debug, Clone, Default)]
pub struct MqttArgs {
    /// Broker URL: `mqtt://user:pass@host:1883/basetopic`, `mqtts://...?ca=/ca.pem`.
    pub url: String,
    /// Formats (comma lists).
    pub formats: Vec<String>,
    /// Discovery prefix; empty disables.
    pub discovery_prefix: Option<String>,
    /// Publish interval (`10s`).
    pub interval: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
    /// Base topic, overriding the URL's path.
    pub base: Option<String>,
    /// The EVN JSON's exact topic (`sensors/smartmeter/values`); implies the evn format.
    pub evn_topic: Option<String>,
    /// Instance id for the availability topic [default: from the host name].
    pub instance: Option<String>,
}

impl MqttSettings {
    /// Checks the options; the queue goes next to the database (`<db>.mqtt-queue`).
    pub fn from_args(a: &MqttArgs, db: &Path) -> Result<MqttSettings> {
        let broker = BrokerUrl::parse("--mqtt", &a.url)?;
        let path_base = broker.path.trim_matches('/').to_string();
        let base = a
            .base
            .clone()
            .or((!path_base.is_empty()).then_some(path_base))
            .unwrap_or_else(|| "meterkast".into());
        if base.is_empty() || base.contains(['+', '#']) {
            bail!("--mqtt: the base topic {base:?} must be non-empty and without + or #");
        }
        let mut formats = if a.formats.is_empty() {
            vec![Format::Meterkast, Format::Fields]
        } else {
            Format::parse_list(&a.formats)?
        };
        let discovery_prefix = match &a.discovery_prefix {
            Some(p) if p.trim().is_empty() => None,
            Some(p) => Some(p.trim_matches('/').to_string()),
            None => Some("homeassistant".into()),
        };
        let evn_topic = match a.evn_topic.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => {
                payload::check_evn_topic(t)?;
                if !formats.contains(&Format::Evn) {
                    formats.push(Format::Evn);
                }
                Some(t.to_string())
            }
        };
        // Home Assistant's entities read the JSON state topic.
        if discovery_prefix.is_some() && !formats.contains(&Format::Meterkast) {
            formats.insert(0, Format::Meterkast);
        }
        let interval = match &a.interval {
            None => None,
            Some(s) if s.trim().is_empty() || s.trim() == "0" => None,
            Some(s) => {
                let d = humantime::parse_duration(s.trim())
                    .with_context(|| format!("--mqtt-interval {s}: use a duration like 10s"))?;
                if d < Duration::from_secs(1) {
                    bail!("--mqtt-interval {s}: use whole seconds (at least 1s)");
                }
                Some(d)
            }
        };
        let instance = match &a.instance {
            Some(i) if !i.trim().is_empty() => {
                let i = i.trim();
                if discovery::instance_id(i) != i {
                    bail!("--mqtt-instance {i:?}: use letters, digits, - and _ only");
                }
                i.to_string()
            }
            _ => discovery::instance_id(&crate::http::homewizard::hostname().to_ascii_lowercase()),
        };
        Ok(MqttSettings {
            broker,
            instance,
            client_id: a
                .client_id
                .clone()
                .unwrap_or_else(|| format!("meterkast-{}", std::process::id())),
            base,
            formats,
            discovery_prefix,
            interval,
            evn_topic,
            queue_path: PathBuf::from(format!("{}.mqtt-queue", db.display())),
        })
    }
}

pub use crate::mqtt_url::tls_config;

/// What only the MQTT output's owner understands.
enum HaEv {
    /// Home Assistant announced itself online: discovery is sent again.
    Online,
}

/// The MQTT 3.1.1 client's events, as the outbox needs them.
struct SinkLink {
    el: rumqttc::EventLoop,
    /// Home Assistant's status topic, if discovery is on.
    ha: Option<String>,
}

impl Link for SinkLink {
    type Other = HaEv;

    async fn next(&mut self) -> Result<Option<Ev<HaEv>>, String> {
        Ok(match self.el.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::ConnAck(_)) => Some(Ev::Connected),
            Event::Incoming(Packet::PubAck(_)) => Some(Ev::Acked),
            Event::Incoming(Packet::Publish(p))
                if Some(&p.topic) == self.ha.as_ref() && &p.payload[..] == b"online" =>
            {
                Some(Ev::Other(HaEv::Online))
            }
            Event::Outgoing(Outgoing::Disconnect) => Some(Ev::Closed),
            _ => None,
        })
    }

    fn clean(&mut self) {
        self.el.clean();
    }
}

/// Opens the queue and starts publishing. Frames go into the returned sender (with
/// `try_send`); the task ends, after a last flush, when every sender is dropped.
pub fn start(s: MqttSettings) -> Result<(mpsc::Sender<SinkFrame>, JoinHandle<()>)> {
    let q = DiskQueue::open(&s.queue_path, QUEUE_MAX_BYTES)?;
    if !q.is_empty() {
        tracing::info!(
            "MQTT: {} kB of readings from before are still to be delivered",
            q.pending_bytes() / 1024
        );
    }
    let status = discovery::status_topic(&s.base, &s.instance);
    let mut opts = MqttOptions::new(s.client_id.clone(), s.broker.host.clone(), s.broker.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    opts.set_inflight(WINDOW as u16 + 8);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_last_will(LastWill::new(&status, "offline", QoS::AtLeastOnce, true));
    if let Some((u, p)) = s.broker.credentials() {
        opts.set_credentials(u, p);
    }
    if let Some(t) = s.broker.transport()? {
        opts.set_transport(t);
    }
    let (client, el) = AsyncClient::new(opts, 10_000);
    let ha_status = s.discovery_prefix.as_ref().map(|p| format!("{p}/status"));
    let link = SinkLink {
        el,
        ha: ha_status.clone(),
    };
    let ev_rx = outbox::spawn(link, "MQTT", "readings", s.broker.addr());
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    let task = tokio::spawn(async move {
        let mut p = Publisher {
            s,
            client,
            out: Outbox::new(q, WINDOW),
            status,
            ha_status,
            discovery: HashMap::new(),
            avg: HashMap::new(),
            last_raw: HashMap::new(),
        };
        if let Err(e) = p.run(rx, ev_rx).await {
            tracing::error!("MQTT output stopped: {e:#}");
        }
    });
    Ok((tx, task))
}

struct Publisher {
    s: MqttSettings,
    client: AsyncClient,
    out: Outbox,
    status: String,
    ha_status: Option<String>,
    /// The last discovery configs per meter, sent again when Home Assistant restarts.
    discovery: HashMap<String, Vec<Msg>>,
    avg: HashMap<String, Averager>,
    last_raw: HashMap<String, Arc<[u8]>>,
}

/// Publishes one queued message.
fn publish(client: &AsyncClient, m: Msg) -> Result<()> {
    client
        .try_publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
        .context("the MQTT client refused a message")
}

impl Publisher {
    async fn run(
        &mut self,
        mut frames: mpsc::Receiver<SinkFrame>,
        mut events: mpsc::UnboundedReceiver<Ev<HaEv>>,
    ) -> Result<()> {
        loop {
            let client = &self.client;
            self.out.fill(|m| publish(client, m))?;
            tokio::select! {
                f = frames.recv() => match f {
                    Some(f) => self.frame(f)?,
                    None => break,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev)?,
                    None => return Ok(()),
                },
            }
        }
        // Shutting down: the last interval, then a moment for acknowledgements.
        let pending: Vec<Snapshot> = self.avg.values_mut().filter_map(Averager::take).collect();
        for snap in pending {
            self.enqueue(&snap)?;
        }
        let client = &self.client;
        self.out
            .drain(&mut events, 2, |m| publish(client, m))
            .await?;
        if self.out.connected {
            let _ = self
                .client
                .try_publish(&self.status, QoS::AtLeastOnce, true, "offline");
            let _ = self.client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(ev) = events.recv().await {
                    if matches!(ev, Ev::Closed) {
                        break;
                    }
                }
            })
            .await;
        }
        self.out.q.flush()
    }

    fn event(&mut self, ev: Ev<HaEv>) -> Result<()> {
        match self.out.event(ev)? {
            Some(Ev::Connected) => {
                self.direct(&Msg::new(self.status.clone(), "online", true));
                // Before per-instance topics every instance shared `{base}/status`; a
                // retained `offline` left there would outlive its meaning.
                let shared = discovery::shared_status_topic(&self.s.base);
                if shared != self.status {
                    self.direct(&Msg::new(shared, Vec::<u8>::new(), true));
                }
                if let Some(t) = &self.ha_status {
                    let _ = self.client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                }
                self.send_all_discovery();
            }
            Some(Ev::Other(HaEv::Online)) => {
                tracing::info!("MQTT: Home Assistant is online; sending discovery again");
                self.send_all_discovery();
            }
            _ => {}
        }
        Ok(())
    }

    /// Publishes outside the queue (status, discovery): QoS 0, so no acknowledgement
    /// is mistaken for a queued message's; both are sent again on every connect.
    fn direct(&self, m: &Msg) {
        if self.out.connected {
            let _ = self.client.try_publish(
                m.topic.clone(),
                QoS::AtMostOnce,
                m.retain,
                m.payload.clone(),
            );
        }
    }

    fn send_all_discovery(&self) {
        for m in self.discovery.values().flatten() {
            self.direct(m);
        }
    }

    fn frame(&mut self, f: SinkFrame) -> Result<()> {
        let Some(snap) = Snapshot::from_frame(f.ts, &f.frame) else {
            return Ok(());
        };
        if let Some(prefix) = &self.s.discovery_prefix {
            let cfg = discovery::configs(prefix, &self.s.base, &self.status, &snap);
            let known = self.discovery.get(&snap.meter);
            let changed = known.is_none_or(|k| {
                k.len() != cfg.len() || k.iter().zip(&cfg).any(|(a, b)| a.topic != b.topic)
            });
            if changed {
                for m in &cfg {
                    self.direct(m);
                }
                self.discovery.insert(snap.meter.clone(), cfg);
            }
        }
        self.last_raw.insert(snap.meter.clone(), f.raw);
        match self.s.interval {
            None => self.enqueue(&snap),
            Some(d) => {
                let secs = d.as_secs() as i64;
                let done = self
                    .avg
                    .entry(snap.meter.clone())
                    .or_default()
                    .add(secs, snap);
                match done {
                    Some(s) => self.enqueue(&s),
                    None => Ok(()),
                }
            }
        }
    }

    /// Writes one reading's messages to the disk queue.
    fn enqueue(&mut self, snap: &Snapshot) -> Result<()> {
        let base = &self.s.base;
        let mut msgs = Vec::new();
        for f in &self.s.formats {
            match f {
                Format::Meterkast => msgs.push(payload::state(base, snap)),
                Format::Fields => msgs.extend(payload::fields(base, snap)),
                Format::Evn => msgs.push(payload::evn(
                    payload::evn_topic(base, self.s.evn_topic.as_deref(), &snap.meter),
                    snap,
                )),
                Format::DsmrReader => msgs.extend(payload::dsmr_reader(snap)),
                Format::Raw => {
                    if let Some(r) = self.last_raw.get(&snap.meter) {
                        msgs.push(payload::raw(base, &snap.meter, r));
                    }
                }
            }
        }
        for m in &msgs {
            self.out.q.push(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> MqttArgs {
        MqttArgs {
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn urls_give_host_credentials_and_base_topic() {
        let s = MqttSettings::from_args(
            &args("mqtt://me:p%40ss@broker.lan:1884/home/p1"),
            Path::new("/var/lib/mk.db"),
        )
        .unwrap();
        assert_eq!(
            (s.broker.host.as_str(), s.broker.port),
            ("broker.lan", 1884)
        );
        assert_eq!(s.broker.user.as_deref(), Some("me"));
        assert_eq!(s.broker.password.as_deref(), Some("p@ss"));
        assert_eq!(s.base, "home/p1");
        assert_eq!(s.formats, vec![Format::Meterkast, Format::Fields]);
        assert_eq!(s.discovery_prefix.as_deref(), Some("homeassistant"));
        assert_eq!(s.queue_path, PathBuf::from("/var/lib/mk.db.mqtt-queue"));
        // The instance id defaults to the host name, so it survives restarts.
        assert!(!s.instance.is_empty());
        assert_eq!(s.instance, discovery::instance_id(&s.instance));
        let again = MqttSettings::from_args(&args("mqtt://h"), Path::new("y")).unwrap();
        assert_eq!(again.instance, s.instance);
        let mut named = args("mqtt://h");
        named.instance = Some("Hall-1".into());
        let s = MqttSettings::from_args(&named, Path::new("x")).unwrap();
        assert_eq!(s.instance, "Hall-1");
        named.instance = Some("a/b".into());
        assert!(MqttSettings::from_args(&named, Path::new("x")).is_err());

        let mut a = args("mqtt://h");
        a.formats = vec!["evn".into()];
        a.discovery_prefix = Some(String::new());
        a.interval = Some("10s".into());
        let s = MqttSettings::from_args(&a, Path::new("x.db")).unwrap();
        assert_eq!((s.broker.port, s.base.as_str()), (1883, "meterkast"));
        assert_eq!(s.formats, vec![Format::Evn]);
        assert_eq!(s.discovery_prefix, None);
        assert_eq!(s.interval, Some(Duration::from_secs(10)));

        // Discovery needs the JSON state topic.
        a.discovery_prefix = None;
        let s = MqttSettings::from_args(&a, Path::new("x.db")).unwrap();
        assert_eq!(s.formats, vec![Format::Meterkast, Format::Evn]);
        assert_eq!(s.evn_topic, None);

        // The EVN decoder's topic brings its format along.
        let mut e = args("mqtt://h");
        e.evn_topic = Some("sensors/smartmeter/values".into());
        let s = MqttSettings::from_args(&e, Path::new("x.db")).unwrap();
        assert_eq!(
            s.formats,
            vec![Format::Meterkast, Format::Fields, Format::Evn]
        );
        assert_eq!(s.evn_topic.as_deref(), Some("sensors/smartmeter/values"));
        e.evn_topic = Some("sensors/#".into());
        assert!(MqttSettings::from_args(&e, Path::new("x.db")).is_err());

        let s = MqttSettings::from_args(&args("mqtts://h?ca=/etc/ca.pem"), Path::new("x")).unwrap();
        assert_eq!((s.broker.tls, s.broker.port), (true, 8883));
        assert_eq!(s.broker.ca, Some(PathBuf::from("/etc/ca.pem")));
        assert!(tls_config(Some(Path::new("/nonexistent/ca.pem"))).is_err());

        assert!(MqttSettings::from_args(&args("mqtt://h?ca=/x"), Path::new("x")).is_err());
        assert!(MqttSettings::from_args(&args("http://h"), Path::new("x")).is_err());
        assert!(MqttSettings::from_args(&args("mqtt://h?cq=1"), Path::new("x")).is_err());
    }
}
