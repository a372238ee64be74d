//! Sources: where meter bytes come from. One module per kind, each a task that reads
//! bytes, feeds them to a decoder, and sends accepted frames on. A source never stops
//! for bad input; it logs what to do, counts, and reads on.

pub mod file;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod mqtt;
pub mod serial;
pub mod sim;

pub mod tcp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use meterkast_codec::{Decoder, Keys, Telegram};
use tokio::sync::{mpsc, watch};
use url::Url;

/// One accepted frame from a source.
#[derive(Debug)]
pub struct Frame {
    /// The source's display name.
    pub source: Arc<str>,
    /// When it was received (unix seconds, wall clock).
    pub received: i64,
    /// When it was received, unix milliseconds: by this program, or, for frames
    /// forwarded by a house box, by the box (for the commit latency metric).
    pub received_ms: i64,
    /// The decoded telegram.
    pub telegram: Telegram<'static>,
    /// The raw telegram (decrypted DSMR text for Smarty).
    pub raw: Vec<u8>,
    /// Run once the frame is committed to the store (MQTT ingest acknowledges then).
    pub ack: Option<crate::pipeline::Ack>,
}

/// Parses a 16-byte key written as 32 hex digits; the error names the setting, never
/// the key.
pub fn parse_key(what: &str, hex: &str) -> Result<[u8; 16]> {
    meterkast_codec::dlms::cipher::parse_key(hex).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Serial line settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialSettings {
    /// Baud rate.
    pub baud: u32,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Parity: 'N', 'E' or 'O'.
    pub parity: char,
}

impl std::fmt::Display for SerialSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}1", self.baud, self.data_bits, self.parity)
    }
}

/// What kind of source, with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A serial port; `None` settings means detect them.
    Serial {
        /// Device path.
        path: String,
        /// Line settings, or detect.
        settings: Option<SerialSettings>,
    },
    /// A TCP client (ser2net, P1-to-WiFi bridges).
    Tcp {
        /// `host:port`.
        addr: String,
        /// Silence after which the link is dropped and redialled.
        timeout: Duration,
    },
    /// An MQTT topic carrying raw frames (raw bytes or hex text).
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// Topic filter.
        topic: String,
        /// User name, if any.
        user: Option<String>,
        /// Password, if any.
        password: Option<String>,
    },
    /// A capture file replayed.
    File {
        /// Path.
        path: String,
        /// Replay speed factor; `None` for as fast as possible.
        speed: Option<f64>,
    },
    /// A HomeWizard-style dongle polled over HTTP for its raw telegram.
    Http {
        /// The URL polled.
        url: String,
        /// Poll interval.
        interval: Duration,
    },
    /// The built-in simulator.
    Sim {
        /// Dialect name (`dsmr5`, `be`, ...).
        dialect: String,
        /// Random seed.
        seed: u64,
        /// Telegram interval.
        interval: Duration,
        /// History to simulate before going live (`backfill=7d`).
        backfill: Duration,
    },
}

/// A parsed `--source` URL.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    /// The display name: the URL without credentials or keys.
    pub name: String,
    /// What to read.
    pub kind: Kind,
    /// Decryption keys.
    pub keys: Keys,
}

fn duration(v: &str) -> Result<Duration> {
    humantime::parse_duration(v)
        .with_context(|| format!("'{v}' is not a duration (try 1s, 500ms, 2m)"))
}

impl SourceSpec {
    /// Parses a source URL: `serial:///dev/ttyUSB0?baud=115200`, `tcp://host:port`,
    /// `mqtt://broker:1883/topic`, `file:///path?speed=max`, `http://dongle/api/v1/telegram`,
    /// `sim://dsmr5?seed=1&interval=1s`; each takes `key=` and `auth_key=`.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        let url = Url::parse(s).with_context(|| {
            format!(
                "'{}' is not a source URL (examples: serial:///dev/ttyUSB0, tcp://192.168.1.20:23, sim://dsmr5)",
                crate::redact::text(s)
            )
        })?;
        let mut q: HashMap<String, String> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut keys = Keys::default();
        if let Some(k) = q.remove("key") {
            keys.encryption = Some(parse_key("key", &k)?);
        }
        if let Some(k) = q.remove("auth_key") {
            keys.authentication = Some(parse_key("auth_key", &k)?);
        }
        let host = || url.host_str().map(str::to_string).filter(|h| !h.is_empty());
        let kind = match url.scheme() {
            "serial" => {
                let path = url.path().to_string();
                if path.is_empty() || path == "/" {
                    bail!("serial source needs a device path: serial:///dev/ttyUSB0");
                }
                let settings = match q.remove("baud") {
                    None => {
                        if q.contains_key("parity") || q.contains_key("data_bits") {
                            bail!("serial source: give baud= together with parity= and data_bits=, or none of them to detect");
                        }
                        None
                    }
                    Some(b) => {
                        let baud = b
                            .parse()
                            .with_context(|| format!("baud={b} is not a number"))?;
                        let data_bits = q
                            .remove("data_bits")
                            .map_or(Ok(8), |d| d.parse())
                            .context("data_bits must be 7 or 8")?;
                        if !(7..=8).contains(&data_bits) {
                            bail!("data_bits must be 7 or 8");
                        }
                        let parity = match q.remove("parity").as_deref().unwrap_or("none") {
                            "none" | "N" | "n" => 'N',
                            "even" | "E" | "e" => 'E',
                            "odd" | "O" | "o" => 'O',
                            p => bail!("parity={p}: use none, even or odd"),
                        };
                        Some(SerialSettings {
                            baud,
                            data_bits,
                            parity,
                        })
                    }
                };
                Kind::Serial { path, settings }
            }
            "tcp" => {
                let h = host().context("tcp source needs a host: tcp://192.168.1.20:23")?;
                let port = url
                    .port()
                    .context("tcp source needs a port: tcp://192.168.1.20:23")?;
                let timeout = q
                    .remove("timeout")
                    .map_or(Ok(Duration::from_secs(30)), |t| duration(&t))?;
                Kind::Tcp {
                    addr: format!("{h}:{port}"),
                    timeout,
                }
            }
            "mqtt" => {
                let h = host().context("mqtt source needs a broker: mqtt://broker:1883/topic")?;
                let topic = url.path().trim_start_matches('/').to_string();
                if topic.is_empty() {
                    bail!("mqtt source needs a topic: mqtt://broker:1883/smartmeter/raw");
                }
                Kind::Mqtt {
                    host: h,
                    port: url.port().unwrap_or(1883),
                    topic,
                    user: (!url.username().is_empty()).then(|| url.username().to_string()),
                    password: url.password().map(str::to_string),
                }
            }
            "file" => {
                let speed = match q.remove("speed").as_deref() {
                    None => Some(1.0),
                    Some("max") => None,
                    Some(f) => {
                        let x: f64 = f.parse().with_context(|| {
                            format!("speed={f}: use max or a factor such as 10")
                        })?;
                        if !(x > 0.0 && x.is_finite()) {
                            bail!("speed={f}: the factor must be positive");
                        }
                        Some(x)
                    }
                };
                Kind::File {
                    path: url.path().to_string(),
                    speed,
                }
            }
            "http" | "https" => {
                host().context("http source needs a host: http://192.168.1.30/api/v1/telegram")?;
                let interval = q
                    .remove("interval")
                    .map_or(Ok(Duration::from_secs(1)), |t| duration(&t))?;
                let mut clean = url.clone();
                clean.set_query(None);
                Kind::Http {
                    url: clean.to_string(),
                    interval,
                }
            }
            "sim" => {
                let dialect = host().context("sim source needs a dialect: sim://dsmr5")?;
                let seed = q
                    .remove("seed")
                    .map_or(Ok(1), |s| s.parse())
                    .context("seed must be a whole number")?;
                let interval = q
                    .remove("interval")
                    .map_or(Ok(Duration::from_secs(1)), |t| duration(&t))?;
                let backfill = q
                    .remove("backfill")
                    .map_or(Ok(Duration::ZERO), |t| duration(&t))?;
                Kind::Sim {
                    dialect,
                    seed,
                    interval,
                    backfill,
                }
            }
            other => {
                bail!("unknown source kind '{other}': use serial, tcp, mqtt, file, http or sim")
            }
        };
        if let Some(k) = q.keys().next() {
            bail!("{}: unknown setting '{k}'", crate::redact::text(s));
        }
        let mut name = url.clone();
        let _ = name.set_password(None);
        let _ = name.set_username("");
        name.set_query(None);
        Ok(SourceSpec {
            name: name.to_string(),
            kind,
            keys,
        })
    }
}

/// A source's health, shared with the HTTP side.
#[derive(Debug, Default)]
pub struct SourceStatus {
    /// Display name.
    pub name: String,
    /// Whether the link is up.
    pub connected: bool,
    /// Frames accepted.
    pub accepted: u64,
    /// Frames rejected by cause.
    pub rejected: HashMap<&'static str, u64>,
    /// Last accepted frame (unix seconds).
    pub last_frame: Option<i64>,
    /// Last rejected frame (unix seconds) and its cause.
    pub last_rejected: Option<(i64, &'static str)>,
    /// A human-readable note (serial settings found, last error).
    pub note: String,
    /// Whether the link is down by a failure (not a replay that finished): `/healthz`
    /// says `degraded` with the note while it is.
    pub failing: bool,
    /// The failure's log lines: at once, then with backoff while it lasts.
    pub failure_log: crate::lograte::Repeats,
    /// Rejected frames' log lines: the first of each cause, then a summary a minute.
    pub reject_log: crate::lograte::Summaries,
    /// Frames passed on with a warning (a replayed frame counter): the same way.
    pub warning_log: crate::lograte::Summaries,
}

/// The shared handle to a source's status.
pub type Status = Arc<Mutex<SourceStatus>>;

/// What every source task gets.
#[derive(Clone)]
pub struct Ctx {
    /// Where accepted frames go.
    pub tx: mpsc::Sender<Frame>,
    /// This source's status.
    pub status: Status,
    /// Becomes true when the program shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Where every received frame also goes as it came from the meter (`--forward`).
    pub forward: Option<mpsc::Sender<crate::sink::forward::Wire>>,
}

impl Ctx {
    /// Marks the link up or down. Coming up is logged; a failure is logged at once,
    /// then with backoff while it lasts (sources retry every few seconds).
    pub fn set_connected(&self, up: bool, note: &str) {
        let note = crate::redact::text(note);
        let mut s = self.status.lock().expect("status lock");
        if up {
            if !s.connected {
                tracing::info!(
                    "{}: connected{}",
                    s.name,
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({note})")
                    }
                );
            }
            s.failure_log.clear();
        } else {
            match s.failure_log.hit() {
                Some(1) => tracing::warn!("{}: {note}", s.name),
                Some(n) => tracing::warn!(
                    "{}: {note} (still failing: {n} tries since the last message)",
                    s.name
                ),
                None => {}
            }
        }
        s.connected = up;
        s.failing = !up;
        s.note = note.into_owned();
    }

    /// Marks the source done without a failure (a replayed file at its end).
    pub fn set_finished(&self, note: &str) {
        let mut s = self.status.lock().expect("status lock");
        tracing::info!("{}: {note}", s.name);
        s.connected = false;
        s.failing = false;
        s.failure_log.clear();
        s.note = note.to_string();
    }

    /// Whether shutdown was asked for.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps, returning early (with `true`) when shutdown is asked for.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.shutdown.changed() => true,
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    now_ms().div_euclid(1000)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A decoder bound to one source: decodes, logs and counts rejections (the first of
/// each cause with what to do, then a summary at most once a minute), and sends
/// frames on.
pub struct Feeder {
    decoder: Decoder,
    keys: Keys,
    name: Arc<str>,
    ctx: Ctx,
    last_time: Option<i64>,
    forward_dropped: u64,
}

fn advice(cause: &str) -> &'static str {
    match cause {
        "checksum" => "the line is noisy or the serial settings are wrong; check the cable and baud rate",
        "authentication" | "key" => "check the meter's keys (key= and auth_key= on the source)",
        "no_key" => "this meter encrypts its output: add key=<32 hex digits> to the source URL (ask your grid operator for the key)",
        "too_long" | "truncated" => "bytes were lost on the way; check the cable or the bridge",
        _ => "the meter sent something unexpected; if it repeats, report it with a capture",
    }
}

impl Feeder {
    /// A feeder for a source.
    pub fn new(spec: &SourceSpec, ctx: Ctx) -> Feeder {
        Feeder {
            decoder: Decoder::with_keys(spec.keys),
            keys: spec.keys,
            name: Arc::from(spec.name.as_str()),
            ctx,
            last_time: None,
            forward_dropped: 0,
        }
    }

    /// The own time of the last accepted telegram (unix seconds), if it had one.
    pub fn last_time(&self) -> Option<i64> {
        self.last_time
    }

    /// Replaces the keys; they take effect at the next [`reset`](Self::reset).
    pub fn set_keys(&mut self, keys: Keys) {
        self.keys = keys;
    }

    /// Starts over after a reconnect (or, for the ingest workers, before each message):
    /// a frame still half-received is reported as a rejection saying the input ended,
    /// never dropped in silence, then decoding starts afresh with the current keys.
    /// Returns how many frames the end of the old input completed, or an error when the
    /// pipeline is gone (shutting down).
    pub async fn reset(&mut self) -> Result<usize> {
        let done = self.end_of_input().await?;
        self.decoder = Decoder::with_keys(self.keys);
        Ok(done)
    }

    /// Feeds bytes; sends every accepted frame. Returns how many were accepted, or an
    /// error when the pipeline is gone (shutting down).
    pub async fn feed(&mut self, bytes: &[u8], end_of_message: bool) -> Result<usize> {
        self.feed_acked(bytes, end_of_message, None).await
    }

    /// Marks the true end of the input (the end of a replayed file): frames still open
    /// are reported as rejected because the input ended.
    pub async fn end_of_input(&mut self) -> Result<usize> {
        self.decoder.end_of_input();
        self.feed(&[], false).await
    }

    /// Like [`Feeder::feed`], with an acknowledgement for the bytes: it rides on the
    /// last frame they complete (the writer commits in order, so the earlier ones are
    /// committed by then), or runs at once when they complete none (rejected or partial
    /// input must not be delivered again forever).
    pub async fn feed_acked(
        &mut self,
        bytes: &[u8],
        end_of_message: bool,
        ack: Option<crate::pipeline::Ack>,
    ) -> Result<usize> {
        self.feed_received(bytes, end_of_message, ack, None).await
    }

    /// Like [`Feeder::feed_acked`], with the time the bytes were received (unix
    /// milliseconds) when it is known better than "now": a forwarded frame's.
    pub async fn feed_received(
        &mut self,
        bytes: &[u8],
        end_of_message: bool,
        ack: Option<crate::pipeline::Ack>,
        received_ms: Option<i64>,
    ) -> Result<usize> {
        self.decoder.push(bytes);
        if end_of_message {
            self.decoder.finish();
        }
        let mut frames = Vec::new();
        let received_ms = received_ms.unwrap_or_else(now_ms);
        let received = received_ms.div_euclid(1000);
        while let Some(ev) = self.decoder.next() {
            match ev {
                Ok(d) => {
                    if let Some(w) = &d.warning {
                        let mut s = self.ctx.status.lock().expect("status lock");
                        match s.warning_log.hit(w.cause) {
                            crate::lograte::Say::First => tracing::warn!("{}: {w} (a replayed or reset meter?)", self.name),
                            crate::lograte::Say::Summary { count } => tracing::warn!("{}: {count} more frames with a warning for {} in the last minute or so (a replayed or reset meter?)", self.name, w.cause),
                            crate::lograte::Say::Nothing => {}
                        }
                    }
                    if let Some(t) = d.telegram.timestamp {
                        self.last_time = Some(t.0);
                    }
                    if self.ctx.forward.is_some() {
                        let meter = match d.system_title {
                            Some(st) => crate::sink::forward::title_hex(&st),
                            None => crate::pipeline::meter_key(&d.telegram, &self.name),
                        };
                        let wire = d.wire.to_vec();
                        forward(
                            &self.ctx,
                            &mut self.forward_dropped,
                            &self.name,
                            meter,
                            wire,
                            received_ms,
                        );
                    }
                    frames.push(Frame {
                        source: self.name.clone(),
                        received,
                        received_ms,
                        raw: d.raw.to_vec(),
                        telegram: d.telegram.into_owned(),
                        ack: None,
                    })
                }
                Err(r) => {
                    // A whole ciphered frame this box has no (right) key for goes on
                    // as it came: the centre may have the key.
                    let whole = self
                        .decoder
                        .rejected_frame()
                        .and_then(|w| Some((w.system_title?, w.bytes.to_vec())));
                    let forwarded = match (whole, self.ctx.forward.is_some()) {
                        (Some((st, bytes)), true) => {
                            let meter = crate::sink::forward::title_hex(&st);
                            forward(
                                &self.ctx,
                                &mut self.forward_dropped,
                                &self.name,
                                meter,
                                bytes,
                                received_ms,
                            );
                            true
                        }
                        _ => false,
                    };
                    let mut s = self.ctx.status.lock().expect("status lock");
                    s.last_rejected = Some((received, r.cause));
                    let n = s.rejected.entry(r.cause).or_default();
                    *n += 1;
                    if forwarded && r.cause == "no_key" {
                        if *n == 1 {
                            tracing::info!(
                                "{}: forwarding encrypted frames undecrypted (no key here)",
                                self.name
                            );
                        }
                    } else {
                        let total = *n;
                        match s.reject_log.hit(r.cause) {
                            crate::lograte::Say::First => tracing::warn!(
                                "{}: frame rejected: {} — {} (more of this cause are summed up once a minute)",
                                self.name,
                                r,
                                advice(r.cause)
                            ),
                            crate::lograte::Say::Summary { count } => tracing::warn!(
                                "{}: {count} more frames rejected for {} ({total} in all) — {}",
                                self.name,
                                r.cause,
                                advice(r.cause)
                            ),
                            crate::lograte::Say::Nothing => {}
                        }
                    }
                }
            }
        }
        let n = frames.len();
        match frames.last_mut() {
            Some(f) => f.ack = ack,
            None => {
                if let Some(a) = ack {
                    a.done();
                }
            }
        }
        if n > 0 {
            let mut s = self.ctx.status.lock().expect("status lock");
            s.accepted += n as u64;
            s.last_frame = Some(received);
        }
        for f in frames {
            self.ctx
                .tx
                .send(f)
                .await
                .map_err(|_| anyhow::anyhow!("pipeline closed"))?;
        }
        Ok(n)
    }
}

/// Hands a frame to the forwarder without waiting (it queues on disk at once).
fn forward(
    ctx: &Ctx,
    dropped: &mut u64,
    name: &Arc<str>,
    meter: String,
    bytes: Vec<u8>,
    received_ms: i64,
) {
    let Some(tx) = &ctx.forward else {
        return;
    };
    let w = crate::sink::forward::Wire {
        meter,
        bytes,
        received_ms,
        source: name.clone(),
    };
    if tx.try_send(w).is_err() {
        *dropped += 1;
        if *dropped == 1 || dropped.is_multiple_of(1000) {
            tracing::warn!(
                "{name}: forwarder behind (is the disk full?): {dropped} frames not forwarded"
            );
        }
    }
}

/// Runs a source until shutdown.
pub async fn run(spec: SourceSpec, ctx: Ctx) {
    let name = spec.name.clone();
    let status = ctx.status.clone();
    let res = match &spec.kind {
        Kind::Tcp { .. } => tcp::run(&spec, ctx).await,
        Kind::Serial { .. } => serial::run(&spec, ctx).await,
        Kind::Mqtt { .. } => mqtt::run(&spec, ctx).await,
        Kind::File { .. } => file::run(&spec, ctx).await,
        Kind::Http { .. } => http::run(&spec, ctx).await,
        Kind::Sim { .. } => sim::run(&spec, ctx).await,
    };
    if let Err(e) = res {
        tracing::error!("{name}: stopped: {e:#}");
    }
    say_unsaid(&status);
}

/// The last summary of what a stopping source counted but did not log.
pub fn say_unsaid(status: &Status) {
    let mut s = status.lock().expect("status lock");
    for (cause, count) in s.reject_log.take_unsaid() {
        let total = s.rejected.get(cause).copied().unwrap_or(0);
        tracing::warn!(
            "{}: {count} more frames rejected for {cause} ({total} in all) — {}",
            s.name,
            advice(cause)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls() {
        let s =
            SourceSpec::parse("serial:///dev/ttyUSB0?baud=115200&parity=none&data_bits=8").unwrap();
        assert_eq!(
            s.kind,
            Kind::Serial {
                path: "/dev/ttyUSB0".into(),
                settings: Some(SerialSettings {
                    baud: 115200,
                    data_bits: 8,
                    parity: 'N'
                })
            }
        );
        let s = SourceSpec::parse("tcp://192.168.1.20:23?timeout=10s").unwrap();
        assert_eq!(
            s.kind,
            Kind::Tcp {
                addr: "192.168.1.20:23".into(),
                timeout: Duration::from_secs(10)
            }
        );
        let s = SourceSpec::parse(
            "mqtt://u:secret@broker:1884/meters/raw?key=000102030405060708090A0B0C0D0E0F",
        )
        .unwrap();
        assert!(
            !s.name.contains("secret") && !s.name.contains("0A0B"),
            "{}",
            s.name
        );
        assert_eq!(s.keys.encryption.unwrap()[15], 15);
        assert_eq!(
            SourceSpec::parse("file:///tmp/x.txt?speed=max")
                .unwrap()
                .kind,
            Kind::File {
                path: "/tmp/x.txt".into(),
                speed: None
            }
        );
        assert!(matches!(
            SourceSpec::parse("sim://be?seed=7").unwrap().kind,
            Kind::Sim { seed: 7, .. }
        ));
        for bad in [
            "ttyUSB0",
            "tcp://host",
            "gopher://x",
            "serial://",
            "tcp://h:1?bogus=1",
            "sim://dsmr5?key=12",
            "file:///x?speed=-1",
            "serial:///dev/x?parity=even",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(format!("{:?}", s.keys).contains("set"));
    }
}
