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
use crate::pipeline::{self, Ack, ToStore};
use crate::source::{self, Ctx, SourceSpec, SourceStatus};
use crate::store::ingest::{Backend, Ingestor};
use crate::store::Location;

/// Run the daemon: read meters, store everything, serve the API.
///
/// Examples:
///   meterkast run --demo                      a simulated meter, nothing to set up
///   meterkast run --source serial:///dev/ttyUSB0
///   meterkast run --source tcp://192.168.1.20:23 --http 0.0.0.0:8080
///   meterkast run --config /etc/meterkast/meterkast.toml
///
/// Many meters, many machines (see the README, "Forwarder and ingest workers"):
///   meterkast run --source serial:///dev/ttyUSB0 --forward mqtt://broker/meters/{meter}
///                                             at each meter: no database, no keys
///   meterkast run --ingest mqtt://broker/meters/+ --keys keys.toml --db DB
///                                             in the centre: as many as needed
///   meterkast run --db postgres://…/meterkast --http 0.0.0.0:8080
///                                             the API and dashboard for all meters
///
/// Sources are URLs (serial, tcp, mqtt, file, http, sim); see meterkast.example.toml.
/// Several sources mean several meters.
#[derive(Args, Debug, Default)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// A TOML configuration file (see meterkast.example.toml).
    #[arg(help_heading = "Configuration files", long, env = "MK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The EVN decoder's environment file (server.env): its key, MQTT and database
    /// settings fill what the config file leaves unset.
    #[arg(help_heading = "Configuration files", long, env = "MK_ENV_FILE")]
    pub env_file: Option<PathBuf>,
    /// A source URL; repeat for several meters.
    #[arg(
        help_heading = "Sources",
        long = "source",
        env = "MK_SOURCE",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub sources: Vec<String>,
    /// A simulated meter feeding a fresh database: try meterkast without hardware.
    #[arg(help_heading = "Sources", long)]
    pub demo: bool,
    /// The store: a SQLite file, or a PostgreSQL database as
    /// postgres://user:password@host:5432/database[?schema=NAME] (several `meterkast run`
    /// may share one) [default: meterkast.db; with --demo a fresh temporary file].
    #[arg(help_heading = "Store", long, env = "MK_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Where files kept beside a PostgreSQL store go, such as the MQTT output's queue
    /// (with SQLite they go next to the database file) [default: $STATE_DIRECTORY as
    /// set by systemd, else the current folder].
    #[arg(help_heading = "Store", long, env = "MK_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where the API and dashboard listen [default: 127.0.0.1:8080].
    #[arg(help_heading = "HTTP API and dashboard", long, env = "MK_HTTP")]
    pub http: Option<String>,
    /// Days of full-resolution readings to keep [default: 31]; roll-ups are kept forever.
    #[arg(help_heading = "Store", long, env = "MK_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Serve every raw telegram to TCP clients (for Home Assistant's DSMR integration,
    /// Domoticz, dsmr_parser...), e.g. 0.0.0.0:2000.
    #[arg(help_heading = "Raw telegram bridge", long, env = "MK_TCP_BRIDGE")]
    pub tcp_bridge: Option<String>,
    /// Require this bearer token on the API (Authorization: Bearer TOKEN).
    #[arg(
        help_heading = "HTTP API and dashboard",
        long,
        env = "MK_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
    /// Require HTTP basic authentication, given as user:password.
    #[arg(
        help_heading = "HTTP API and dashboard",
        long,
        env = "MK_AUTH_BASIC",
        hide_env_values = true
    )]
    pub auth_basic: Option<String>,
    /// HomeWizard-compatible API and mDNS.
    #[command(flatten)]
    pub homewizard: http::homewizard::HwArgs,
    /// Allowed host names, connection and export caps.
    #[command(flatten)]
    pub guard: http::guard::GuardArgs,
    /// Publish readings to this MQTT broker: mqtt://user:pass@host:1883[/basetopic].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT",
        hide_env_values = true
    )]
    pub mqtt: Option<String>,
    /// What to publish, a comma list of meterkast, fields, evn, dsmr-reader, raw
    /// [default: meterkast,fields].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_FORMAT",
        value_delimiter = ','
    )]
    pub mqtt_format: Vec<String>,
    /// Home Assistant's discovery prefix; empty disables discovery [default: homeassistant].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_DISCOVERY_PREFIX"
    )]
    pub mqtt_discovery_prefix: Option<String>,
    /// Publish at most once per interval (e.g. 10s), averaging power, voltage and current.
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_INTERVAL"
    )]
    pub mqtt_interval: Option<String>,
    /// The MQTT client id [default: meterkast-PID].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_CLIENT_ID"
    )]
    pub mqtt_client_id: Option<String>,
    /// The base topic [default: the URL's path, else meterkast].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_BASE_TOPIC"
    )]
    pub mqtt_base_topic: Option<String>,
    /// Publish the EVN decoder's JSON to exactly this topic ({meter} allowed), e.g.
    /// sensors/smartmeter/values; implies --mqtt-format evn [default: BASE/METER/evn].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_EVN_TOPIC"
    )]
    pub mqtt_evn_topic: Option<String>,
    /// This instance's id, for its availability topic BASE/ID/status; keep it stable
    /// across restarts [default: the host name].
    #[arg(
        help_heading = "MQTT and Home Assistant",
        long,
        env = "MK_MQTT_INSTANCE"
    )]
    pub mqtt_instance: Option<String>,
    /// Forward every frame exactly as received (MQTT 5, QoS 1, queued on disk while
    /// the broker is away): mqtt://[user:pass@]broker[:port]/meters/{meter}. Without
    /// --db nothing is stored here.
    #[arg(
        help_heading = "Forwarder and ingest workers",
        long,
        env = "MK_FORWARD",
        hide_env_values = true
    )]
    pub forward: Option<String>,
    /// The forwarder's on-disk queue [default: DB.forward-queue next to a SQLite file,
    /// else STATE_DIR/meterkast.forward-queue].
    #[arg(
        help_heading = "Forwarder and ingest workers",
        long,
        env = "MK_FORWARD_QUEUE"
    )]
    pub forward_queue: Option<PathBuf>,
    /// Take frames forwarded by --forward boxes from a shared MQTT 5 subscription and
    /// store them: mqtt://[user:pass@]broker[:port]/meters/+. Start several workers
    /// with the same group to share the load.
    #[arg(
        help_heading = "Forwarder and ingest workers",
        long,
        env = "MK_INGEST",
        hide_env_values = true
    )]
    pub ingest: Option<String>,
    /// The shared subscription's group ($share/GROUP/...) [default: meterkast].
    #[arg(
        help_heading = "Forwarder and ingest workers",
        long,
        env = "MK_INGEST_GROUP"
    )]
    pub ingest_group: Option<String>,
    /// The ingest worker's MQTT client id; keep it across restarts so the broker keeps
    /// what the worker has not stored [default: meterkast-HOSTNAME-GROUP].
    #[arg(
        help_heading = "Forwarder and ingest workers",
        long,
        env = "MK_INGEST_CLIENT_ID"
    )]
    pub ingest_client_id: Option<String>,
    /// Per-meter keys for --ingest (TOML: [[meter]] id = "..." key = "..." auth_key = "...").
    #[arg(help_heading = "Forwarder and ingest workers", long, env = "MK_KEYS")]
    pub keys: Option<PathBuf>,
    /// Also write every reading to a MariaDB/MySQL or PostgreSQL table, and one row per
    /// meter and interval to a second one (tables created if missing):
    /// mysql://user:password@host:3306/database (or mariadb://),
    /// postgres://user:password@host:5432/database; repeat for several.
    #[arg(
        help_heading = "SQL history sink",
        long = "sql-sink",
        env = "MK_SQL_SINK",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub sql_sinks: Vec<String>,
    /// The SQL history table, optionally schema.table [default: meter_readings]; the
    /// interval table gets a suffix (meter_readings_5min).
    #[arg(help_heading = "SQL history sink", long, env = "MK_SQL_TABLE")]
    pub sql_table: Option<String>,
    /// The interval table's bucket, from 1m to 24h [default: 5m].
    #[arg(help_heading = "SQL history sink", long, env = "MK_SQL_INTERVAL")]
    pub sql_interval: Option<String>,
    /// The interval table's name, optionally schema.table, e.g. historyDebounced
    /// [default: the readings table's with a suffix, meter_readings_5min].
    #[arg(help_heading = "SQL history sink", long, env = "MK_SQL_INTERVAL_TABLE")]
    pub sql_interval_table: Option<String>,
    /// Daily and monthly reports.
    #[command(flatten)]
    pub report: crate::report::schedule::ReportArgs,
}

/// The settings after merging file, environment and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store.
    pub db: Location,
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
    /// Allowed host names, connection and export caps.
    pub guard: http::guard::GuardSettings,
    /// The MQTT output, if any.
    pub mqtt: Option<crate::sink::mqtt::MqttSettings>,
    /// Whether readings are stored (not in a forwarder without a database).
    pub store: bool,
    /// No sources: the daemon serves a store that is there (PostgreSQL that ingest
    /// workers write, or a SQLite file of imported data), and follows the latest frames
    /// others store in it.
    pub follow: bool,
    /// The forwarder, if any.
    pub forward: Option<crate::sink::forward::ForwardSettings>,
    /// The ingest worker, if any.
    pub ingest: Option<source::ingest::IngestSettings>,
    /// The SQL history sinks.
    pub sql: Vec<crate::sink::sql::SqlSettings>,
    /// Scheduled reports, if asked for.
    pub report: Option<crate::report::schedule::ReportSettings>,
    /// Prices from the config file (the dashboard's edits win).
    pub prices: Option<crate::prices::Prices>,
    /// What reading the settings found worth saying, for the log (`true`: a warning).
    pub notes: Vec<crate::evn_env::Note>,
    /// The store is the demo's temporary file: removed when the daemon stops.
    pub temporary_db: bool,
}

impl RunArgs {
    /// Merges the configuration file (if any) under the flags and environment.
    pub fn settings(&self) -> Result<Settings> {
        let mut file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let notes = match &self.env_file {
            Some(p) => crate::evn_env::EnvFile::load(p)?.apply(&mut file)?,
            None => Vec::new(),
        };
        let forward_url = self.forward.clone().or(file.forward.clone());
        let ingest_url = self.ingest.clone().or(file.ingest.clone());
        // A forwarder without a database stores nothing: its API shows live readings
        // from an empty store no writer touches.
        let store = forward_url.is_none()
            || self.db.is_some()
            || file.db.is_some()
            || self.demo
            || ingest_url.is_some();
        let db = match (&self.db, &file.db, self.demo) {
            (None, None, false) if !store => Location::Sqlite(
                std::env::temp_dir().join(format!("meterkast-forwarder-{}.db", std::process::id())),
            ),
            (Some(d), _, _) => Location::parse(d)?,
            (None, _, true) => Location::Sqlite(
                std::env::temp_dir().join(format!("meterkast-demo-{}.db", std::process::id())),
            ),
            (None, Some(d), false) => Location::parse(&d.to_string_lossy())?,
            (None, None, false) => Location::Sqlite(PathBuf::from("meterkast.db")),
        };
        let state_dir = self
            .state_dir
            .clone()
            .or(file.state_dir.clone())
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."));
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
        // Without sources, a daemon serves a store that is there: a PostgreSQL one that
        // ingest workers write, or a SQLite file named on purpose (imported captures).
        let no_source = urls.is_empty() && ingest_url.is_none();
        let follow = no_source
            && match &db {
                Location::Postgres(_) => true,
                Location::Sqlite(p) => {
                    let named = self.db.is_some() || file.db.is_some();
                    if named && !p.exists() {
                        bail!("no source given, and {} does not exist: nothing to serve. Add --source serial:///dev/ttyUSB0 (or tcp://bridge:23, ...), or load captures first with meterkast import --db {} FILE", p.display(), p.display());
                    }
                    named
                }
            };
        if no_source && !follow {
            bail!("no source given: add --source serial:///dev/ttyUSB0 (or tcp://bridge:23, ...), a config file with sources, or try --demo (to serve a stored database alone, name it: --db meterkast.db or --db postgres://…)");
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
                    evn_topic: self.mqtt_evn_topic.clone().or(file.mqtt_evn_topic.clone()),
                    instance: self.mqtt_instance.clone().or(file.mqtt_instance.clone()),
                },
                &db.state_base(&state_dir),
            )?),
            None => None,
        };
        let forward = match &forward_url {
            Some(u) => {
                let queue = self
                    .forward_queue
                    .clone()
                    .or(file.forward_queue.clone())
                    .unwrap_or_else(|| {
                        let base = match store {
                            true => db.state_base(&state_dir),
                            false => state_dir.join("meterkast"),
                        };
                        PathBuf::from(format!("{}.forward-queue", base.display()))
                    });
                Some(crate::sink::forward::ForwardSettings::parse(u, &queue)?)
            }
            None => None,
        };
        let ingest = match &ingest_url {
            Some(u) => Some(source::ingest::IngestSettings::parse(
                u,
                self.ingest_group
                    .as_deref()
                    .or(file.ingest_group.as_deref()),
                self.ingest_client_id
                    .as_deref()
                    .or(file.ingest_client_id.as_deref()),
                self.keys.as_deref().or(file.keys.as_deref()),
            )?),
            None => {
                if self.keys.is_some() || self.ingest_group.is_some() {
                    bail!("--keys and --ingest-group are for ingest workers: add --ingest mqtt://broker/meters/+ (for one meter's keys use key= on its --source)");
                }
                None
            }
        };
        let sql_urls = if self.sql_sinks.is_empty() {
            &file.sql_sink
        } else {
            &self.sql_sinks
        };
        let sql_table = self.sql_table.clone().or(file.sql_table.clone());
        let sql_interval = self.sql_interval.clone().or(file.sql_interval.clone());
        let sql_interval_table = self
            .sql_interval_table
            .clone()
            .or(file.sql_interval_table.clone());
        let sql = sql_urls
            .iter()
            .map(|u| {
                crate::sink::sql::SqlSettings::parse(
                    u,
                    sql_table.as_deref(),
                    sql_interval.as_deref(),
                    &db.state_base(&state_dir),
                )
                .and_then(|s| s.with_interval_table(sql_interval_table.as_deref()))
            })
            .collect::<Result<Vec<_>>>()?;
        let report = self.report.settings(&file, &db.state_base(&state_dir))?;
        Ok(Settings {
            report,
            store,
            follow,
            forward,
            ingest,
            db,
            http,
            sources,
            retention_days: self.retention_days.or(file.retention_days).unwrap_or(31),
            tcp_bridge,
            auth,
            homewizard: self.homewizard.settings(&file),
            guard: self.guard.settings(&file),
            mqtt,
            sql,
            prices: file.prices.clone(),
            notes,
            temporary_db: self.demo && self.db.is_none() && file.db.is_none(),
        })
    }
}

/// The writer thread: takes readings, commits at least once a second, applies retention.
fn writer(
    db: Location,
    rx: std_mpsc::Receiver<ToStore>,
    retention_days: u32,
    metrics: Arc<Metrics>,
    ready: std_mpsc::Sender<Result<()>>,
) {
    let mut ing = match db.open_backend().and_then(Ingestor::new) {
        Ok(i) => {
            let _ = ready.send(Ok(()));
            i
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut oldest_pending: Option<Instant> = None;
    let mut next_retention = Instant::now();
    let mut acks: Vec<Ack> = Vec::new();
    // The new readings in the open transaction, and their receive times (unix ms).
    let mut pending = 0u64;
    let mut received: Vec<i64> = Vec::new();
    let mut failing = CommitTrouble::default();
    let mut clock_changes = 0u64;
    loop {
        // Readings whose messages wait for an acknowledgement are committed sooner:
        // the broker holds back further messages until then.
        let commit_every = Duration::from_millis(if acks.is_empty() { 500 } else { 50 });
        let wait = oldest_pending.map_or(Duration::from_secs(1), |t| {
            commit_every.saturating_sub(t.elapsed())
        });
        let got = rx.recv_timeout(wait);
        let closed = matches!(got, Err(std_mpsc::RecvTimeoutError::Disconnected));
        if let Ok(ToStore {
            incoming: inc,
            ack,
            received_ms,
        }) = got
        {
            let meter = inc.meter.clone();
            let added = match received_ms {
                Some(ms) => ing.add_at(inc, ms.div_euclid(1000)),
                None => ing.add(inc),
            };
            match added {
                Ok(outcome) => {
                    // Acknowledged with the commit; a reading that could not be
                    // taken is not, so its message comes again.
                    acks.extend(ack);
                    match outcome {
                        crate::store::Outcome::Duplicate => {
                            metrics
                                .duplicates
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        // Counted from the store's own statistics at commit.
                        crate::store::Outcome::Suspect => {}
                        crate::store::Outcome::Stored => {
                            pending += 1;
                            received.extend(received_ms);
                        }
                    }
                    oldest_pending.get_or_insert_with(Instant::now);
                }
                Err(e) => tracing::error!("meter {meter}: storing failed: {e:#}"),
            }
        }
        if oldest_pending.is_some_and(|t| t.elapsed() >= commit_every) || closed {
            let started = Instant::now();
            oldest_pending = None;
            match ing.commit() {
                Ok(()) => {
                    failing.recovered(&db, &metrics);
                    metrics
                        .suspect_readings
                        .store(ing.stats.suspect, std::sync::atomic::Ordering::Relaxed);
                    let (clock, changes) = ing.clock_trouble();
                    if changes != clock_changes {
                        clock_changes = changes;
                        *metrics.suspect_meters.lock().expect("suspect lock") = clock.clone();
                    }
                    metrics.commit(started.elapsed().as_micros() as u64);
                    acks.drain(..).for_each(|a| a.done());
                    let now = source::now_ms();
                    for r in received.drain(..) {
                        metrics.commit_latency.observe((now - r) as f64 / 1000.0);
                    }
                    metrics
                        .committed
                        .fetch_add(pending, std::sync::atomic::Ordering::Relaxed);
                    pending = 0;
                }
                Err(e) => {
                    // The store keeps what failed (bounded) and writes it with the next
                    // commit, soon; unacknowledged messages are delivered again and
                    // then count once, as duplicates.
                    acks.clear();
                    oldest_pending = Some(Instant::now());
                    received.clear();
                    failing.failed(&db, &metrics, &e);
                }
            }
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

/// Failing commits, said at once in the log, then at most once a minute, and shown
/// on `/healthz` and in `/metrics` until a commit works again.
#[derive(Default)]
struct CommitTrouble {
    /// Failed commits since the last one that worked.
    failed: u64,
    /// When the log last said so.
    logged: Option<Instant>,
}

impl CommitTrouble {
    fn failed(&mut self, db: &Location, metrics: &Metrics, e: &anyhow::Error) {
        use std::sync::atomic::Ordering::Relaxed;
        self.failed += 1;
        metrics.commit_failures.fetch_add(1, Relaxed);
        *metrics.store_trouble.lock().expect("trouble lock") = Some(format!("{e:#}"));
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.logged = Some(Instant::now());
            tracing::error!(
                "{db}: commit failed ({} in a row): {e:#} (is the disk full, or the database server away?); the readings are kept and written once it works",
                self.failed
            );
        }
    }

    fn recovered(&mut self, db: &Location, metrics: &Metrics) {
        if self.failed > 0 {
            tracing::info!(
                "{db}: commits work again after {} failed; the readings kept meanwhile are written",
                self.failed
            );
            *metrics.store_trouble.lock().expect("trouble lock") = None;
            *self = CommitTrouble::default();
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
        .with_writer(|| crate::redact::Stderr)
        .try_init();
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub fn run(args: RunArgs) -> Result<i32> {
    let settings = args.settings()?;
    init_logging();
    for (warn, n) in &settings.notes {
        match warn {
            true => tracing::warn!("{n}"),
            false => tracing::info!("{n}"),
        }
    }
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

/// How often a daemon without sources reads the latest frames others stored.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// Makes the stored frames of `meters` the latest ones where they are newer.
fn keep_latest(state: &AppState, meters: Vec<crate::store::MeterInfo>) {
    let mut latest = state.latest.write().expect("latest lock");
    for m in meters {
        let Some(f) = m.last_frame else { continue };
        if latest
            .get(&m.equipment_id)
            .is_some_and(|l| l.ts >= m.last_seen)
        {
            continue;
        }
        latest.insert(
            m.equipment_id,
            Latest {
                frame: f.into(),
                raw: m.last_raw.unwrap_or_default().into(),
                ts: m.last_seen,
            },
        );
    }
}

/// Follows the frames that other processes store, for `/api/v1/now` and the dashboard
/// of a daemon without sources: every few seconds, those newer than the last look
/// (with a margin for commits that finished late).
async fn follow_latest(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut since = i64::MIN;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = stop.changed() => return,
        }
        let after = since.saturating_sub(2 * FOLLOW_EVERY.as_secs() as i64);
        match state.read(move |r| r.frames_after(after)).await {
            Ok(meters) => {
                since = meters
                    .iter()
                    .map(|m| m.last_seen)
                    .max()
                    .unwrap_or(since)
                    .max(since);
                keep_latest(&state, meters);
            }
            Err(e) => tracing::warn!("reading the latest frames failed: {}", e.message),
        }
    }
}

async fn serve(settings: Settings) -> Result<()> {
    // The store first: a database we cannot open is fatal, and says why.
    // The queue to the writer. A bounded std channel allocates (and touches) every slot
    // up front, and an `Incoming` is ~600 bytes: 65,536 slots were 40 MB of resident
    // memory for a daemon that holds one reading a second. 1,024 is still minutes of
    // headroom for a few meters and seconds of it during a backfill, which the channel
    // paces anyway.
    let (store_tx, store_rx) = std_mpsc::sync_channel::<ToStore>(1024);
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let db = settings.db.clone();
    let retention = settings.retention_days;
    let metrics = Arc::new(Metrics::default());
    let writer_metrics = metrics.clone();
    let (store_tx, writer_thread) = if settings.store {
        let t = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(db, store_rx, retention, writer_metrics, ready_tx))?;
        ready_rx
            .recv()
            .context("the store writer did not start")??;
        (Some(store_tx), Some(t))
    } else {
        (None, None)
    };

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
    let ingest = settings.ingest.clone().map(|mut i| {
        let status = Arc::new(Mutex::new(SourceStatus {
            name: i.name(),
            ..Default::default()
        }));
        statuses.push(status.clone());
        let db = settings.db.clone();
        i.setting = Some(Arc::new(move || {
            // A PostgreSQL client blocks: not on the runtime's own threads.
            tokio::task::block_in_place(|| db.open_reader()?.setting(source::keys::SETTING))
        }));
        (i, status)
    });
    let mut state = AppState::new(
        settings.db.clone(),
        statuses,
        settings.auth.clone(),
        stop_rx.clone(),
    )
    .with_guard(settings.guard.clone());
    state.metrics = metrics.clone();
    state.homewizard = settings.homewizard.clone();
    state.prices = settings.prices.clone();
    if settings.store {
        // A PostgreSQL client blocks: not on the runtime's own threads.
        let meters = tokio::task::block_in_place(|| settings.db.open_reader()?.meters())?;
        keep_latest(&state, meters);
    }
    if settings.follow {
        match settings.db {
            Location::Postgres(_) => tracing::info!(
                "no sources: serving {} as ingest workers write it (latest frames every {} s)",
                settings.db,
                FOLLOW_EVERY.as_secs()
            ),
            Location::Sqlite(_) => {
                tracing::info!("no source: serving the stored data only ({})", settings.db)
            }
        }
        tokio::spawn(follow_latest(state.clone(), stop_rx.clone()));
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
    if settings.store {
        eprintln!(
            "meterkast {}: dashboard and API on http://{addr}/ (database {})",
            env!("CARGO_PKG_VERSION"),
            settings.db
        );
    } else {
        eprintln!(
            "meterkast {}: dashboard and API on http://{addr}/ (no database: live readings only)",
            env!("CARGO_PKG_VERSION")
        );
    }
    if let Some(b) = bridge.as_ref().and_then(crate::bridge::local_addr) {
        eprintln!("  raw telegram bridge on tcp://{b}");
        tokio::spawn(crate::bridge::serve(
            bridge.expect("bound"),
            bridge_tx.clone(),
            metrics.clone(),
            settings.guard.max_connections,
            stop_rx.clone(),
        ));
    }
    let mqtt = match settings.mqtt.clone() {
        Some(m) => {
            eprintln!("  MQTT to {} under {}/", m.broker.addr(), m.base);
            Some(crate::sink::mqtt::start(m)?)
        }
        None => None,
    };
    let (mqtt_tx, mqtt_task) = mqtt.unzip();
    let forward = match settings.forward.clone() {
        Some(f) => {
            eprintln!(
                "  forwarding every frame to {} as {} (queue {})",
                f.broker.addr(),
                f.topic,
                f.queue_path.display()
            );
            Some(crate::sink::forward::start(f)?)
        }
        None => None,
    };
    let (forward_tx, forward_task) = forward.unzip();
    let mut sql_sinks = Vec::new();
    let mut sql_threads = Vec::new();
    for s in settings.sql.clone() {
        eprintln!(
            "  SQL history to {} (tables {} and {})",
            s.shown,
            s.table,
            s.bucket_table()
        );
        let (sink, thread) = crate::sink::sql::start(s, metrics.sql.clone())?;
        sql_sinks.push(sink);
        sql_threads.push(thread);
    }
    let mut tasks = Vec::new();
    let ctx = |status| Ctx {
        tx: frame_tx.clone(),
        status,
        shutdown: stop_rx.clone(),
        forward: forward_tx.clone(),
    };
    for (spec, status) in specs {
        eprintln!("  source {}", spec.name);
        tasks.push(tokio::spawn(source::run(spec, ctx(status))));
    }
    if let Some((i, status)) = ingest {
        let name = i.name();
        eprintln!(
            "  ingest from {name} as client {} ({} meters with keys in the keys file)",
            i.client_id,
            i.keys.len()
        );
        let ctx = ctx(status);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = source::ingest::run(i, ctx).await {
                tracing::error!("{name}: stopped: {e:#}");
            }
        }));
    }
    drop(forward_tx);
    drop(frame_tx);
    if let Some(r) = settings.report.clone() {
        eprintln!(
            "  reports into {}{}",
            r.folder.display(),
            r.mail
                .as_ref()
                .map_or(String::new(), |m| format!(", mailed through {}", m.server))
        );
        tokio::spawn(crate::report::schedule::run(
            r,
            settings.db.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
    }
    if settings.homewizard.mdns {
        tokio::spawn(crate::mdns::advertise(state.clone(), addr, stop_rx.clone()));
    }
    let app = http::router(state.clone());
    let limits = http::serve::Limits::from_settings(&settings.guard);
    let server = tokio::spawn(http::serve::serve(
        listener,
        app,
        limits,
        metrics.listeners.clone(),
        stop_rx.clone(),
    ));

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
                for sink in &sql_sinks {
                    // Never waits: the sink queues on disk by itself.
                    sink.offer(crate::sink::sql::SqlRow::new(&inc));
                }
                if bridge_tx.receiver_count() > 0 {
                    let _ = bridge_tx.send(crate::bridge::whole_telegram(raw));
                }
                let Some(tx) = store_tx.clone() else {
                    continue;
                };
                let msg = ToStore {
                    incoming: inc,
                    ack: f.ack,
                    received_ms: Some(f.received_ms),
                };
                // The bounded channel pushes back on sources when the disk is slow;
                // only then is a blocking thread worth its cost.
                let msg = match tx.try_send(msg) {
                    Ok(()) => continue,
                    Err(std_mpsc::TrySendError::Disconnected(_)) => break,
                    Err(std_mpsc::TrySendError::Full(m)) => m,
                };
                if !tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
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
    if let Some(t) = forward_task {
        // The sources are done: the forwarder queues the last frames and ends.
        let _ = tokio::time::timeout(Duration::from_secs(6), t).await;
    }
    // The pipeline dropped the SQL sinks: they write out their queues and end.
    for t in sql_threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
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
    if let Some(t) = writer_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    // A forwarder's empty store and the demo's database are temporary files.
    if let (true, Location::Sqlite(p)) = (!settings.store || settings.temporary_db, &settings.db) {
        remove_sqlite_files(p);
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Removes a temporary SQLite file with its write-ahead log and shared memory.
fn remove_sqlite_files(p: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str, state_dir: Option<&str>) -> RunArgs {
        RunArgs {
            db: Some(db.into()),
            state_dir: state_dir.map(PathBuf::from),
            sources: vec!["sim://dsmr5".into()],
            mqtt: Some("mqtt://127.0.0.1:1883".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_mqtt_queue_sits_by_a_sqlite_file_or_in_the_state_folder() {
        let s = args("/data/mk.db", Some("/elsewhere")).settings().unwrap();
        assert_eq!(s.db, Location::Sqlite("/data/mk.db".into()));
        assert_eq!(
            s.mqtt.unwrap().queue_path,
            PathBuf::from("/data/mk.db.mqtt-queue")
        );
        let s = args("postgres://mk:pw@db/meters", Some("/var/lib/mk"))
            .settings()
            .unwrap();
        assert!(matches!(s.db, Location::Postgres(_)));
        assert_eq!(
            s.mqtt.unwrap().queue_path,
            PathBuf::from("/var/lib/mk/meterkast.mqtt-queue")
        );
        assert!(args("redis://h", None).settings().is_err());
    }
}
