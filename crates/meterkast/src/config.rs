//! The daemon's configuration: a TOML file, `MK_…` environment variables and flags,
//! in rising order of precedence.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// One source in the configuration file: a URL, with keys given apart if preferred.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum FileSource {
    /// Just the URL.
    Url(String),
    /// The URL with keys beside it.
    Table {
        /// The source URL.
        url: String,
        /// Encryption key, 32 hex digits.
        key: Option<String>,
        /// Authentication key, 32 hex digits.
        auth_key: Option<String>,
    },
}

impl FileSource {
    /// The URL with any keys added as query parameters.
    pub fn url(&self) -> String {
        match self {
            FileSource::Url(u) => u.clone(),
            FileSource::Table { url, key, auth_key } => {
                let mut u = url.clone();
                for (name, v) in [("key", key), ("auth_key", auth_key)] {
                    if let Some(v) = v {
                        u.push(if u.contains('?') { '&' } else { '?' });
                        u.push_str(&format!("{name}={v}"));
                    }
                }
                u
            }
        }
    }
}

/// The configuration file (see `meterkast.example.toml`).
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The store: a SQLite file or a `postgres://` URL.
    pub db: Option<PathBuf>,
    /// Where files kept beside a PostgreSQL store go (`--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// The HTTP listen address.
    pub http: Option<String>,
    /// Days of full-resolution readings to keep (roll-ups are kept forever).
    pub retention_days: Option<u32>,
    /// Sources to read.
    #[serde(default)]
    pub sources: Vec<FileSource>,
    /// The raw telegram bridge's listen address.
    pub tcp_bridge: Option<String>,
    /// A bearer token the API requires.
    pub auth_token: Option<String>,
    /// `user:password` for HTTP basic authentication.
    pub auth_basic: Option<String>,
    /// Host names the API may be reached by besides IP addresses, localhost and this
    /// machine's names (`["meterkast.example.org", "*.home.arpa"]`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Connections open at most per listener (HTTP, telegram bridge; default 512).
    pub max_connections: Option<usize>,
    /// Exports streaming at once (default 4); more get 429.
    pub max_exports: Option<usize>,
    /// The meter the HomeWizard-compatible API serves (default: the most recent).
    pub homewizard_meter: Option<String>,
    /// Whether the HomeWizard-compatible endpoints require authentication (default: no).
    pub homewizard_auth: Option<bool>,
    /// Whether to advertise the service with mDNS (default: yes).
    pub mdns: Option<bool>,
    /// MQTT broker URL to publish to (`mqtt://user:pass@host:1883`).
    pub mqtt: Option<String>,
    /// MQTT payload formats (`["meterkast", "fields", "evn", "dsmr-reader", "raw"]`).
    #[serde(default)]
    pub mqtt_format: Vec<String>,
    /// Home Assistant discovery prefix (empty disables).
    pub mqtt_discovery_prefix: Option<String>,
    /// MQTT publish interval (`10s`), averaging instantaneous values.
    pub mqtt_interval: Option<String>,
    /// MQTT client id.
    pub mqtt_client_id: Option<String>,
    /// MQTT base topic.
    pub mqtt_base_topic: Option<String>,
    /// The EVN JSON's exact topic (`sensors/smartmeter/values`, `{meter}` allowed).
    pub mqtt_evn_topic: Option<String>,
    /// MQTT instance id for the availability topic `BASE/ID/status` (default: host name).
    pub mqtt_instance: Option<String>,
    /// Forward every frame as received to this MQTT topic (`mqtt://broker/meters/{meter}`).
    pub forward: Option<String>,
    /// The forwarder's on-disk queue.
    pub forward_queue: Option<PathBuf>,
    /// Take forwarded frames from this MQTT topic filter (`mqtt://broker/meters/+`).
    pub ingest: Option<String>,
    /// The shared subscription's group (default `meterkast`).
    pub ingest_group: Option<String>,
    /// The ingest worker's MQTT client id (default: host name and group).
    pub ingest_client_id: Option<String>,
    /// A keys file with per-meter keys for ingest.
    pub keys: Option<PathBuf>,
    /// SQL history databases to write every reading to (`mysql://…`, `postgres://…`):
    /// one URL or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub sql_sink: Vec<String>,
    /// The SQL history table (default `meter_readings`).
    pub sql_table: Option<String>,
    /// The SQL history interval table's bucket (default `5m`).
    pub sql_interval: Option<String>,
    /// The SQL history interval table's name (default: the readings table's with a
    /// suffix such as `_5min`).
    pub sql_interval_table: Option<String>,
    /// Prices for costs (the dashboard can change them; its changes win).
    pub prices: Option<crate::prices::Prices>,
    /// Daily and monthly reports (`[report]`).
    pub report: Option<ReportConfig>,
}

/// The `[report]` table: where reports go, when, and whom they are mailed to.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The folder reports are written to (default: `reports` beside the database).
    pub folder: Option<PathBuf>,
    /// The local hour after midnight at which yesterday's report is made (default 1).
    pub hour: Option<u32>,
    /// Whether to make last month's report on the 1st too (default: yes).
    pub monthly: Option<bool>,
    /// The meter to report on (default: every current meter).
    pub meter: Option<String>,
    /// The picture's width in pixels (default 1080).
    pub width: Option<u32>,
    /// SMTP URL to mail reports through (`smtps://user:pass@host:465`).
    pub smtp: Option<String>,
    /// The sender address.
    pub from: Option<String>,
    /// The recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// The first wait before a failed mail is tried again (`1m`; it doubles up to an hour).
    pub retry: Option<String>,
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid meterkast config", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../meterkast.example.toml");
        let c = FileConfig::load(&p).unwrap();
        assert!(c.db.is_some());
        assert!(!c.sources.is_empty());
        for s in &c.sources {
            crate::source::SourceSpec::parse(&s.url()).unwrap();
        }
    }

    #[test]
    fn the_example_report_table_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../meterkast.example.toml");
        let text = std::fs::read_to_string(p).unwrap();
        let (_, table) = text.split_once("#[report]").expect("a [report] example");
        let table: String = table
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c: FileConfig = toml::from_str(&format!("[report]\n{table}")).unwrap();
        let r = c.report.unwrap();
        assert_eq!(r.hour, Some(1));
        assert_eq!(r.to.len(), 2);
        assert!(toml::from_str::<FileConfig>("[report]\nhours = 1").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("dbb = 'x'").is_err());
        let c: FileConfig = toml::from_str("sources = ['tcp://h:1', { url = 'tcp://h:2', key = '00112233445566778899AABBCCDDEEFF' }]").unwrap();
        assert_eq!(
            c.sources[1].url(),
            "tcp://h:2?key=00112233445566778899AABBCCDDEEFF"
        );
    }

    #[test]
    fn sql_sinks_are_one_url_or_a_list() {
        let c: FileConfig = toml::from_str("sql_sink = 'mysql://h/db'").unwrap();
        assert_eq!(c.sql_sink, ["mysql://h/db"]);
        let c: FileConfig =
            toml::from_str("sql_sink = ['mysql://h/db', 'postgres://h/db']\nsql_table = 't'")
                .unwrap();
        assert_eq!(c.sql_sink.len(), 2);
        assert_eq!(c.sql_table.as_deref(), Some("t"));
        assert!(toml::from_str::<FileConfig>("sql_sink = 5").is_err());
    }
}
