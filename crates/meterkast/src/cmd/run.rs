//! `meterkast run`: the always-on daemon. Sources feed the pipeline; the pipeline feeds
//! the store (one writer thread, at least one commit per second) and the live outputs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::config::FileConfig;
use crate::http::{self, AppState, Auth, Latest, Metrics};
use crate::pipeline;
use crate::source::{self, Ctx, SourceSpec, SourceStatus};
use crate::store::ingest::{Backend, Incoming, Ingestor};
use crate::store::sqlite::{SqliteBackend, SqliteReader};
use crate::store::StoreRead;

/// Run the daemon: read meters, store everything, serve the API.
///
/// Examples:
///   meterkast run --demo                      a simulated meter, nothing to set up
///   meterkast run --source serial:///dev/ttyUSB0
///   meterkast run --source tcp://192.168.1.20:23 --http 0.0.0.0:8080
///   meterkast run --config /etc/meterkast/meterkast.toml
///
/// Sources are URLs (serial, tcp, mqtt, file, http, sim); see meterkast.example.toml.
/// Several sources mean several meters.
#[derive(Args, Debug, Default)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// A TOML configuration file (see meterkast.example.toml).
    #[arg(long, env = "MK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The database file [default: meterkast.db; with --demo a fresh temporary file].
    #[arg(long, env = "MK_DB")]
    pub db: Option<PathBuf>,
    /// Where the API and dashboard listen [default: 127.0.0.1:8080].
    #[arg(long, env = "MK_HTTP")]
    pub http: Option<String>,
    /// A source URL; repeat for several meters.
    #[arg(long = "source", env = "MK_SOURCE", value_delimiter = ',')]
    pub sources: Vec<String>,
    /// A simulated meter feeding a fresh database: try meterkast without hardware.
    #[arg(long)]
    pub demo: bool,
    /// Days of full-resolution readings to keep [default: 31]; roll-ups are kept forever.
    #[arg(long, env = "MK_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Serve every raw telegram to TCP clients (for Home Assistant's DSMR integration,
    /// Domoticz, dsmr_parser...), e.g. 0.0.0.0:2000.
    #[arg(long, env = "MK_TCP_BRIDGE")]
    pub tcp_bridge: Option<String>,
    /// Require this bearer token on the API (Authorization: Bearer TOKEN).
    #[arg(long, env = "MK_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Require HTTP basic authentication, given as user:password.
    #[arg(long, env = "MK_AUTH_BASIC", hide_env_values = true)]
    pub auth_basic: Option<String>,
    /// HomeWizard-compatible API and mDNS.
    #[command(flatten)]
    pub homewizard: http::homewizard::HwArgs,
    /// Publish readings to this MQTT broker: mqtt://user:pass@host:1883[/basetopic].
    #[arg(long, env = "MK_MQTT", hide_env_values = true)]
    pub mqtt: Option<String>,
    /// What to publish, a comma list of meterkast, fields, evn, dsmr-reader, raw
    /// [default: meterkast,fields].
    #[arg(long, env = "MK_MQTT_FORMAT", value_delimiter = ',')]
    pub mqtt_format: Vec<String>,
    /// Home Assistant's discovery prefix; empty disables discovery [default: homeassistant].
    #[arg(long, env = "MK_MQTT_DISCOVERY_PREFIX")]
    pub mqtt_discovery_prefix: Option<String>,
    /// Publish at most once per interval (e.g. 10s), averaging power, voltage and current.
    #[arg(long, env = "MK_MQTT_INTERVAL")]
    pub mqtt_interval: Option<String>,
    /// The MQTT client id [default: meterkast-PID].
    #[arg(long, env = "MK_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,
    /// The base topic [default: the URL's path, else meterkast].
    #[arg(long, env = "MK_MQTT_BASE_TOPIC")]
    pub mqtt_base_topic: Option<String>,
}

/// The settings after merging file, environment and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Database file.
    pub db: PathBuf,
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Sources.
    pub sources: Vec<SourceSpec>,
    /// Retention of full-resolution readings, in days.
    pub retention_days: u32,
    /// The raw telegram bridge's address.
    pub tcp_bridge: Option<SocketAddr>,
    /// API access control.
    pub auth: Auth,
    /// HomeWizard-compatible API and mDNS.
    pub homewizard: http::homewizard::HwSettings,
    /// The MQTT output, if any.
    pub mqtt: Option<crate::sink::mqtt::MqttSettings>,
    /// Prices from the config file (the dashboard's edits win).
    pub prices: Option<crate::prices::Prices>,
}

impl RunArgs {
    /// Merges the configuration file (if any) under the flags and environment.
    pub fn settings(&self) -> Result<Settings> {
        let file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let db = match (&self.db, &file.db, self.demo) {
            (Some(d), _, _) => d.clone(),
            (None, _, true) => {
                std::env::temp_dir().join(format!("meterkast-demo-{}.db", std::process::id()))
            }
            (None, Some(d), false) => d.clone(),
            (None, None, false) => PathBuf::from("meterkast.db"),
        };
        let http_s = self
            .http
            .clone()
            .or(file.http.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let http = http_s.parse().with_context(|| {
            format!("--http {http_s}: use an address like 127.0.0.1:8080 or 0.0.0.0:8080")
        })?;
        let mut urls: Vec<String> = if self.sources.is_empty() {
            file.sources.iter().map(|s| s.url()).collect()
        } else {
            self.sources.clone()
        };
        if self.demo && urls.is_empty() {
            urls.push("sim://dsmr5?seed=1&backfill=7d".into());
        }
        if urls.is_empty() {
            bail!("no source given: add --source serial:///dev/ttyUSB0 (or tcp://bridge:23, ...), a config file with sources, or try --demo");
        }
        let sources = urls
            .iter()
            .map(|u| SourceSpec::parse(u))
            .collect::<Result<Vec<_>>>()?;
        let bridge = self.tcp_bridge.clone().or(file.tcp_bridge.clone());
        let tcp_bridge =
            match bridge {
                Some(b) => Some(b.parse().with_context(|| {
                    format!("--tcp-bridge {b}: use an address like 0.0.0.0:2000")
                })?),
                None => None,
            };
        let auth = Auth::from_settings(
            self.auth_token.clone().or(file.auth_token.clone()),
            self.auth_basic.clone().or(file.auth_basic.clone()),
        )?;
        let mqtt = match self.mqtt.clone().or(file.mqtt.clone()) {
            Some(url) => Some(crate::sink::mqtt::MqttSettings::from_args(
                &crate::sink::mqtt::MqttArgs {
                    url,
                    formats: if self.mqtt_format.is_empty() {
                        file.mqtt_format.clone()
                    } else {
                        self.mqtt_format.clone()
                    },
                    discovery_prefix: self
                        .mqtt_discovery_prefix
                        .clone()
                        .or(file.mqtt_discovery_prefix.clone()),
                    interval: self.mqtt_interval.clone().or(file.mqtt_interval.clone()),
                    client_id: self.mqtt_client_id.clone().or(file.mqtt_client_id.clone()),
                    base: self
                        .mqtt_base_topic
                        .clone()
                        .or(file.mqtt_base_topic.clone()),
                },
                &db,
            )?),
            None => None,
        };
        Ok(Settings {
            db,
            http,
            sources,
            retention_days: self.retention_days.or(file.retention_days).unwrap_or(31),
            tcp_bridge,
            auth,
            homewizard: self.homewizard.settings(&file),
            mqtt,
            prices: file.prices.clone(),
        })
    }
}

/// The writer thread: takes readings, commits at least once a second, applies retention.
fn writer(
    db: PathBuf,
    rx: std_mpsc::Receiver<Incoming>,
    retention_days: u32,
    metrics: Arc<Metrics>,
    ready: std_mpsc::Sender<Result<()>>,
) {
    let mut ing = match SqliteBackend::open(&db).and_then(Ingestor::new) {
        Ok(i) => {
            let _ = ready.send(Ok(()));
            i
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let commit_every = Duration::from_millis(500);
    let mut oldest_pending: Option<Instant> = None;
    let mut next_retention = Instant::now();
    loop {
        let wait = oldest_pending.map_or(Duration::from_secs(1), |t| {
            commit_every.saturating_sub(t.elapsed())
        });
        let got = rx.recv_timeout(wait);
        let closed = matches!(got, Err(std_mpsc::RecvTimeoutError::Disconnected));
        if let Ok(inc) = got {
            let meter = inc.meter.clone();
            match ing.add(inc) {
                Ok(outcome) => {
                    if outcome == crate::store::Outcome::Duplicate {
                        metrics
                            .duplicates
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    oldest_pending.get_or_insert_with(Instant::now);
                }
                Err(e) => tracing::error!("meter {meter}: storing failed: {e:#}"),
            }
        }
        if oldest_pending.is_some_and(|t| t.elapsed() >= commit_every) || closed {
            let started = Instant::now();
            match ing.commit() {
                Ok(()) => metrics.commit(started.elapsed().as_micros() as u64),
                Err(e) => {
                    tracing::error!("{}: commit failed: {e:#} (is the disk full?)", db.display())
                }
            }
            oldest_pending = None;
        }
        if Instant::now() >= next_retention {
            let cutoff = source::now() - i64::from(retention_days) * 86400;
            match ing.backend_mut().delete_samples_before(cutoff) {
                Ok(n) if n > 0 => tracing::info!(
                    "retention: dropped {n} chunks of readings older than {retention_days} days"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("retention failed: {e:#}"),
            }
            next_retention = Instant::now() + Duration::from_secs(3600);
        }
        if closed {
            break;
        }
    }
}

/// Starts logging to stderr (`MK_LOG` or `RUST_LOG` filter, default info).
pub fn init_logging() {
    let filter = std::env::var("MK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub fn run(args: RunArgs) -> Result<i32> {
    let settings = args.settings()?;
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(settings))?;
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(settings: Settings) -> Result<()> {
    // The store first: a database we cannot open is fatal, and says why.
    // The queue to the writer. A bounded std channel allocates (and touches) every slot
    // up front, and an `Incoming` is ~600 bytes: 65,536 slots were 40 MB of resident
    // memory for a daemon that holds one reading a second. 1,024 is still minutes of
    // headroom for a few meters and seconds of it during a backfill, which the channel
    // paces anyway.
    let (store_tx, store_rx) = std_mpsc::sync_channel::<Incoming>(1024);
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let db = settings.db.clone();
    let retention = settings.retention_days;
    let metrics = Arc::new(Metrics::default());
    let writer_metrics = metrics.clone();
    let writer_thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer(db, store_rx, retention, writer_metrics, ready_tx))?;
    ready_rx
        .recv()
        .context("the store writer did not start")??;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (frame_tx, mut frame_rx) = mpsc::channel::<source::Frame>(1024);
    let mut statuses = Vec::new();
    let mut specs = Vec::new();
    for spec in settings.sources.clone() {
        let status = Arc::new(Mutex::new(SourceStatus {
            name: spec.name.clone(),
            ..Default::default()
        }));
        statuses.push(status.clone());
        specs.push((spec, status));
    }
    let mut state = AppState::new(
        settings.db.clone(),
        statuses,
        settings.auth.clone(),
        stop_rx.clone(),
    );
    state.metrics = metrics.clone();
    state.homewizard = settings.homewizard.clone();
    state.prices = settings.prices.clone();
    {
        let reader = SqliteReader::open(&settings.db)?;
        let mut latest = state.latest.write().expect("latest lock");
        for m in reader.meters()? {
            if let Some(f) = m.last_frame {
                let raw = m.last_raw.unwrap_or_default();
                latest.insert(
                    m.equipment_id,
                    Latest {
                        frame: f.into(),
                        raw: raw.into(),
                        ts: m.last_seen,
                    },
                );
            }
        }
    }

    let listener = tokio::net::TcpListener::bind(settings.http)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (in use by another program? try --http 127.0.0.1:8081)",
                settings.http
            )
        })?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && !settings.auth.is_enabled() {
        tracing::warn!(
            "listening on {addr} without authentication: anyone on the network can read your meter (see --auth-token)"
        );
    }
    let (bridge_tx, _) = tokio::sync::broadcast::channel::<Arc<[u8]>>(1024);
    let bridge = match settings.tcp_bridge {
        Some(a) => Some(crate::bridge::bind(a).await?),
        None => None,
    };
    eprintln!(
        "meterkast {}: dashboard and API on http://{addr}/ (database {})",
        env!("CARGO_PKG_VERSION"),
        settings.db.display()
    );
    if let Some(b) = bridge.as_ref().and_then(crate::bridge::local_addr) {
        eprintln!("  raw telegram bridge on tcp://{b}");
        tokio::spawn(crate::bridge::serve(
            bridge.expect("bound"),
            bridge_tx.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
    }
    let mqtt = match settings.mqtt.clone() {
        Some(m) => {
            eprintln!("  MQTT to {}:{} under {}/", m.host, m.port, m.base);
            Some(crate::sink::mqtt::start(m)?)
        }
        None => None,
    };
    let (mqtt_tx, mqtt_task) = mqtt.unzip();
    let mut tasks = Vec::new();
    for (spec, status) in specs {
        eprintln!("  source {}", spec.name);
        let ctx = Ctx {
            tx: frame_tx.clone(),
            status,
            shutdown: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(source::run(spec, ctx)));
    }
    drop(frame_tx);
    if settings.homewizard.mdns {
        tokio::spawn(crate::mdns::advertise(state.clone(), addr, stop_rx.clone()));
    }
    let app = http::router(state.clone());
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            })
            .await
    });

    // The pipeline: frames in; store, latest, live stream and bridge out.
    let pipeline = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut mqtt_dropped = 0u64;
            while let Some(f) = frame_rx.recv().await {
                let inc = pipeline::incoming(&f.source, &f.telegram, &f.raw, f.received, true);
                let raw: Arc<[u8]> = f.raw.into();
                if let Some(frame) = &inc.frame {
                    let frame: Arc<str> = frame.as_str().into();
                    let latest = Latest {
                        frame: frame.clone(),
                        raw: raw.clone(),
                        ts: inc.ts,
                    };
                    state
                        .latest
                        .write()
                        .expect("latest lock")
                        .insert(inc.meter.clone(), latest);
                    if let Some(tx) = &mqtt_tx {
                        let sf = crate::sink::mqtt::SinkFrame {
                            ts: inc.ts,
                            frame: frame.clone(),
                            raw: raw.clone(),
                        };
                        // Never waits: a full queue means the disk cannot keep up.
                        if tx.try_send(sf).is_err() {
                            mqtt_dropped += 1;
                            if mqtt_dropped == 1 || mqtt_dropped.is_multiple_of(1000) {
                                tracing::warn!(
                                    "MQTT output behind: {mqtt_dropped} readings not published"
                                );
                            }
                        }
                    }
                    let _ = state.live.send(frame);
                }
                let _ = bridge_tx.send(raw);
                let tx = store_tx.clone();
                // The bounded channel pushes back on sources when the disk is slow.
                if !tokio::task::spawn_blocking(move || tx.send(inc).is_ok())
                    .await
                    .unwrap_or(false)
                {
                    break;
                }
            }
        })
    };

    shutdown_signal().await;
    tracing::info!("shutting down: finishing writes");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = pipeline.await;
    if let Some(t) = mqtt_task {
        // The pipeline dropped its sender: the sink flushes, says offline and ends.
        let _ = tokio::time::timeout(Duration::from_secs(6), t).await;
    }
    // Open requests get a few seconds; the store must not wait on a stuck client.
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::warn!("HTTP clients still connected after 5 s; closing them");
    }
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    tracing::info!("stopped cleanly");
    Ok(())
}
