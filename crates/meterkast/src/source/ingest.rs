//! Ingest workers (`--ingest mqtt://broker/meters/+`): frames forwarded by house boxes
//! (`--forward`), taken from an MQTT 5 shared subscription (`$share/<group>/<filter>`)
//! so that several workers split the stream, decoded with per-meter keys, and stored.
//!
//! Nothing is lost when a worker dies: messages arrive at QoS 1 and are acknowledged
//! only once the reading they carry is committed to the store (or when they carry no
//! frame at all, which would otherwise come back forever); the session is persistent
//! (clean start off, a session expiry, a stable client id), so the broker keeps what a
//! restarting worker has not acknowledged and delivers it again. With an idempotent
//! store, at-least-once delivery is exactly-once storage.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

use super::keys::MeterKeys;
use super::{Ctx, Feeder, Kind, SourceSpec};
use crate::mqtt_url::BrokerUrl;
use crate::pipeline::Ack;

/// How long the broker keeps a worker's session (and its messages) while it is away.
const SESSION_EXPIRY_SECS: u32 = 7 * 86400;
/// Messages the broker may have in flight to one worker.
const RECEIVE_MAXIMUM: u16 = 4096;
/// Topics whose decoders are kept.
const MAX_TOPICS: usize = 100_000;

/// Reads the store's `meter_keys` setting.
pub type SettingReader = Arc<dyn Fn() -> Result<Option<String>> + Send + Sync>;

/// An ingest worker's settings.
#[derive(Clone)]
pub struct IngestSettings {
    /// The broker.
    pub broker: BrokerUrl,
    /// The topic filter (`meters/+`).
    pub filter: String,
    /// The shared subscription's group.
    pub group: String,
    /// The MQTT client id: stable across restarts, so the session survives them.
    pub client_id: String,
    /// Keys from the keys file.
    pub keys: MeterKeys,
    /// The store's `meter_keys` setting, read at start and when a meter has no key.
    pub setting: Option<SettingReader>,
}

impl std::fmt::Debug for IngestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestSettings")
            .field("broker", &self.broker.addr())
            .field("filter", &self.filter)
            .field("group", &self.group)
            .field("client_id", &self.client_id)
            .field("meters_with_keys", &self.keys.len())
            .finish()
    }
}

/// Checks an MQTT topic filter: `+` and `#` only as whole levels, `#` only last.
pub fn check_filter(filter: &str) -> Result<()> {
    if filter.is_empty() {
        bail!("--ingest: the URL needs a topic filter, e.g. mqtt://broker/meters/+");
    }
    if filter.starts_with('$') {
        bail!("--ingest: give the plain filter ({filter:?} starts with $); the shared subscription is made from it and --ingest-group");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        let wild = l.contains(['+', '#']);
        if wild && *l != "+" && *l != "#" {
            bail!("--ingest: bad topic filter {filter:?}: + and # must be whole levels (meters/+, meters/#)");
        }
        if *l == "#" && i + 1 != levels.len() {
            bail!("--ingest: bad topic filter {filter:?}: # must be the last level");
        }
    }
    Ok(())
}

impl IngestSettings {
    /// Checks `--ingest URL`, `--ingest-group`, `--ingest-client-id` and `--keys`.
    pub fn parse(
        url: &str,
        group: Option<&str>,
        client_id: Option<&str>,
        keys_file: Option<&Path>,
    ) -> Result<IngestSettings> {
        let broker = BrokerUrl::parse("--ingest", url)?;
        let filter = broker.path.clone();
        check_filter(&filter)?;
        let group = group.unwrap_or("meterkast").to_string();
        if group.is_empty() || group.contains(['/', '+', '#']) {
            bail!("--ingest-group {group:?}: use a name without / + or #");
        }
        let client_id = match client_id {
            Some(c) if !c.trim().is_empty() => c.trim().to_string(),
            _ => format!("meterkast-{}-{group}", crate::http::homewizard::hostname()),
        };
        let keys = match keys_file {
            Some(p) => MeterKeys::load(p)?,
            None => MeterKeys::default(),
        };
        Ok(IngestSettings {
            broker,
            filter,
            group,
            client_id,
            keys,
            setting: None,
        })
    }

    /// The shared subscription: `$share/<group>/<filter>`.
    pub fn shared_filter(&self) -> String {
        format!("$share/{}/{}", self.group, self.filter)
    }

    /// The display name: the URL without credentials.
    pub fn name(&self) -> String {
        let scheme = if self.broker.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}/{}", self.broker.addr(), self.shared_filter())
    }
}

/// The keys: the file's over the store setting's, the setting re-read at most once a
/// minute when a meter has none.
struct KeyRing {
    file: MeterKeys,
    merged: MeterKeys,
    setting: Option<SettingReader>,
    read_at: Option<Instant>,
}

impl KeyRing {
    fn new(s: &IngestSettings) -> KeyRing {
        let mut k = KeyRing {
            file: s.keys.clone(),
            merged: s.keys.clone(),
            setting: s.setting.clone(),
            read_at: None,
        };
        k.refresh();
        k
    }

    fn refresh(&mut self) {
        let Some(read) = &self.setting else {
            return;
        };
        self.read_at = Some(Instant::now());
        let mut m = match read().and_then(|t| t.map(|t| MeterKeys::from_json(&t)).transpose()) {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("meter keys from the store: {e:#}");
                return;
            }
        };
        m.merge(self.file.clone());
        self.merged = m;
    }

    fn get(&mut self, meter: &str) -> meterkast_codec::Keys {
        if let Some(k) = self.merged.get(meter) {
            return k;
        }
        if self
            .read_at
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.refresh();
        }
        self.merged.get(meter).unwrap_or_default()
    }
}

/// The `received` user property: unix milliseconds.
fn received_ms(p: &Publish) -> Option<i64> {
    let props = p.properties.as_ref()?;
    props
        .user_properties
        .iter()
        .find(|(k, _)| k == "received")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Starts the task that acknowledges stored messages, in the order the store commits
/// them. Acknowledging from the store writer with a non-blocking send would drop acks
/// whenever the client's request queue is full (under load it is), and the broker then
/// stops delivering once its in-flight window fills with unacknowledged messages; the
/// task waits for room instead, and the writer never waits for it.
fn spawn_acker(client: AsyncClient) -> tokio::sync::mpsc::UnboundedSender<Publish> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Publish>();
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if p.qos == QoS::AtMostOnce {
                continue;
            }
            if let Err(e) = client.ack(&p).await {
                tracing::warn!(
                    "acknowledging a stored frame failed ({e}); the broker will deliver it again"
                );
                return;
            }
        }
    });
    tx
}

/// Consumes the shared subscription until shutdown.
pub async fn run(s: IngestSettings, mut ctx: Ctx) -> Result<()> {
    let b = &s.broker;
    let mut opts = MqttOptions::new(s.client_id.clone(), b.host.clone(), b.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_start(false);
    opts.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
    opts.set_receive_maximum(Some(RECEIVE_MAXIMUM));
    opts.set_manual_acks(true);
    opts.set_max_packet_size(Some(1 << 20));
    if let Some((u, p)) = b.credentials() {
        opts.set_credentials(u, p);
    }
    if let Some(t) = b.transport()? {
        opts.set_transport(t);
    }
    // Acknowledgements come from the store writer through this channel: room for all
    // the broker may have in flight.
    let (client, mut events) = AsyncClient::new(opts, 2 * usize::from(RECEIVE_MAXIMUM));
    let acks = spawn_acker(client.clone());
    let name = s.name();
    let shared = s.shared_filter();
    let mut keys = KeyRing::new(&s);
    let kind = Kind::Mqtt {
        host: b.host.clone(),
        port: b.port,
        topic: s.filter.clone(),
        user: b.user.clone(),
        password: None,
    };
    let mut feeders: HashMap<String, Feeder> = HashMap::new();
    let mut last_error: Option<String> = None;
    let mut session = "new session";
    loop {
        let ev = tokio::select! {
            e = events.poll() => e,
            _ = ctx.shutdown.changed() => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(c))) => {
                last_error = None;
                session = if c.session_present {
                    "session resumed"
                } else {
                    "new session"
                };
                client.subscribe(shared.as_str(), QoS::AtLeastOnce).await?;
            }
            Ok(Event::Incoming(Packet::SubAck(a))) => {
                if let Some(bad) = a
                    .return_codes
                    .iter()
                    .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                {
                    bail!(
                        "the broker refused the subscription to {shared} ({bad:?}): it needs MQTT 5 shared subscriptions and read access to the topic for this user"
                    );
                }
                // Up once the subscription holds: from now on nothing published is missed.
                ctx.set_connected(true, &format!("{} ({session})", s.client_id));
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let meter = topic.rsplit('/').next().unwrap_or_default();
                if feeders.len() >= MAX_TOPICS && !feeders.contains_key(&topic) {
                    feeders.clear();
                }
                let feeder = feeders.entry(topic.clone()).or_insert_with(|| {
                    let spec = SourceSpec {
                        name: topic.clone(),
                        kind: kind.clone(),
                        keys: Default::default(),
                    };
                    Feeder::new(&spec, ctx.clone())
                });
                // Each message is one frame, decoded on its own: redeliveries and
                // the split across workers must not look like a meter's replays.
                feeder.set_keys(keys.get(meter));
                feeder.reset().await?;
                let acks = acks.clone();
                let msg = p.clone();
                let ack = Ack::new(move || {
                    // The acker is gone only at shutdown: the broker delivers it again.
                    let _ = acks.send(msg);
                });
                let bytes = super::mqtt::payload_bytes(&p.payload);
                feeder
                    .feed_received(&bytes, true, Some(ack), received_ms(&p))
                    .await?;
            }
            Ok(_) => {}
            Err(e) => {
                let what = match &e {
                    ConnectionError::ConnectionRefused(code) => format!(
                        "the broker refused the connection ({code:?}): check the user and password in --ingest and the broker's access rules"
                    ),
                    e => format!("no connection to the broker ({e}); retrying (is it running and reachable?)"),
                };
                // Said once per kind of trouble, also before the first connection.
                let was_up = ctx.status.lock().expect("status lock").connected;
                if !was_up && last_error.as_deref() != Some(what.as_str()) {
                    tracing::warn!("{name}: {what}");
                    last_error = Some(what.clone());
                }
                ctx.set_connected(false, &what);
                if ctx.sleep(Duration::from_secs(2)).await {
                    break;
                }
            }
        }
    }
    tracing::info!("{name}: leaving unacknowledged messages to the broker");
    let _ = client.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_urls_give_a_shared_subscription() {
        let s = IngestSettings::parse("mqtt://u:pw@b:1884/meters/+", None, None, None).unwrap();
        assert_eq!(s.shared_filter(), "$share/meterkast/meters/+");
        assert_eq!(s.name(), "mqtt://b:1884/$share/meterkast/meters/+");
        assert!(s.client_id.ends_with("-meterkast"), "{}", s.client_id);
        let s = IngestSettings::parse("mqtt://b/site/%23", Some("g2"), Some("w1"), None).unwrap();
        assert_eq!(
            (s.shared_filter().as_str(), s.client_id.as_str()),
            ("$share/g2/site/#", "w1")
        );
        for (url, group) in [
            ("mqtt://b/", None),
            ("mqtt://b/meters/a+", None),
            ("mqtt://b/m/%23/x", None),
            ("mqtt://b/$share/g/m/+", None),
            ("mqtt://b/meters/+", Some("a/b")),
        ] {
            assert!(
                IngestSettings::parse(url, group, None, None).is_err(),
                "{url}"
            );
        }
        let e = IngestSettings::parse(
            "mqtt://b/m/+",
            None,
            None,
            Some(Path::new("/nonexistent/k.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("keys file"), "{e}");
    }
}
