//! `--env-file`: the EVN decoder's environment file (`server.env`) read as settings, so
//! its users point meterkast at the file they already have.
//!
//! The file is `NAME=value` lines (values optionally in double or single quotes, `#`
//! comments, an optional `export `). Its variables fill what the configuration file
//! left unset; flags and `MK_…` variables still win. Variables meterkast does not use
//! are listed once in the log and otherwise ignored.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::FileConfig;
use crate::sink::mqtt::payload::EVN_DECODER_TOPIC;

/// The decoder's default raw input topic (hex frames from its ESP8266).
pub const RAW_TOPIC: &str = "sensors/smartmeter";
/// The decoder's default database (its `SMARTMETER_DB_SCHEMA`).
pub const DEFAULT_SCHEMA: &str = "smartmeter";

/// The variables meterkast reads from the file.
const KNOWN: &[&str] = &[
    "DB_USER",
    "DB_PASSWORD",
    "DB_HOST",
    "DB_PORT",
    "MQTT_USER",
    "MQTT_PASSWORD",
    "MQTT_HOST",
    "MQTT_PORT",
    "SMARTMETER_RAWDATA_MQTT_TOPIC",
    "SMARTMETER_VALUES_MQTT_TOPIC",
    "SMARTMETER_DB_SCHEMA",
    "SMARTMETER_DB_TABLE",
    "SMARTMETER_KEY",
];

/// What goes percent-encoded into a URL's user or password.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Larger files are refused: the decoder's has a dozen lines.
const MAX_BYTES: u64 = 1 << 20;

/// A message for the log once logging is up: `true` for a warning.
pub type Note = (bool, String);

/// The decoder's environment file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its variables in file order (a later line wins, as with the decoder).
    pub vars: Vec<(String, String)>,
    /// Line numbers that are not `NAME=value`.
    pub bad_lines: Vec<usize>,
}

/// One `NAME=value` line; `None` for a line that is not one.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let value = value.trim();
    let value = match value.chars().next() {
        Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
        // An unquoted value ends at a comment.
        _ => value.split(" #").next().unwrap_or("").trim_end(),
    };
    Some((name.to_string(), value.to_string()))
}

impl EnvFile {
    /// Parses the text of an environment file.
    pub fn parse(path: &Path, text: &str) -> EnvFile {
        let mut vars = Vec::new();
        let mut bad_lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            match parse_line(t) {
                Some(v) => vars.push(v),
                None => bad_lines.push(i + 1),
            }
        }
        EnvFile {
            path: path.to_path_buf(),
            vars,
            bad_lines,
        }
    }

    /// Reads an environment file; a missing or unreadable one is an error.
    pub fn load(path: &Path) -> Result<EnvFile> {
        if let Ok(m) = std::fs::metadata(path) {
            if m.len() > MAX_BYTES {
                bail!(
                    "--env-file {}: {} bytes is not an environment file (the EVN decoder's server.env has a dozen lines)",
                    path.display(),
                    m.len()
                );
            }
        }
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "--env-file {}: cannot read the EVN decoder's environment file",
                path.display()
            )
        })?;
        Ok(EnvFile::parse(path, &text))
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The variables meterkast does not use, in file order, each once.
    pub fn unknown(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (n, _) in &self.vars {
            if !KNOWN.contains(&n.as_str()) && !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }

    /// `scheme://user:password@host:port` from `PREFIX_HOST`, `_PORT`, `_USER` and
    /// `_PASSWORD`; `None` without a host.
    fn server(&self, scheme: &str, prefix: &str, default_port: u16) -> Result<Option<String>> {
        let Some(host) = self.get(&format!("{prefix}_HOST")) else {
            return Ok(None);
        };
        let port = match self.get(&format!("{prefix}_PORT")) {
            Some(p) => p.parse::<u16>().with_context(|| {
                format!(
                    "--env-file {}: {prefix}_PORT={p} is not a port number",
                    self.path.display()
                )
            })?,
            None => default_port,
        };
        let enc = |s: &str| utf8_percent_encode(s, USERINFO).to_string();
        let auth = match (
            self.get(&format!("{prefix}_USER")),
            self.get(&format!("{prefix}_PASSWORD")),
        ) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
            (Some(u), None) => format!("{}@", enc(u)),
            _ => String::new(),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Some(format!("{scheme}://{auth}{host}:{port}")))
    }

    /// Fills the settings `file` left unset from the decoder's variables: the raw frames'
    /// MQTT topic and key become the source, the values topic the EVN output, the
    /// database the SQL sink. Returns what to log (never a password or key).
    pub fn apply(&self, file: &mut FileConfig) -> Result<Vec<Note>> {
        let shown = self.path.display();
        let mut notes = Vec::new();
        let key = match self.get("SMARTMETER_KEY") {
            Some(k) if k.len() == 32 && k.chars().all(|c| c.is_ascii_hexdigit()) => Some(k),
            Some(_) => bail!(
                "--env-file {shown}: SMARTMETER_KEY is not 32 hex digits (the key your grid operator gave you, like 36C66639E48A8CA4D6BC8B282A793BBB)"
            ),
            None => None,
        };
        let broker = self.server("mqtt", "MQTT", 1883)?;
        if let Some(b) = &broker {
            if file.sources.is_empty() {
                let topic = self
                    .get("SMARTMETER_RAWDATA_MQTT_TOPIC")
                    .unwrap_or(RAW_TOPIC);
                let mut url = format!("{b}/{}", topic.trim_start_matches('/'));
                if let Some(k) = key {
                    url.push_str(&format!("?key={k}"));
                } else {
                    notes.push((true, format!("{shown}: no SMARTMETER_KEY; the meter's frames cannot be decrypted without it")));
                }
                notes.push((
                    false,
                    format!("{shown}: reading hex frames from MQTT topic {topic}"),
                ));
                file.sources.push(crate::config::FileSource::Url(url));
            }
            if file.mqtt.is_none() {
                file.mqtt = Some(b.clone());
                let topic = self
                    .get("SMARTMETER_VALUES_MQTT_TOPIC")
                    .unwrap_or(EVN_DECODER_TOPIC);
                if file.mqtt_evn_topic.is_none() {
                    file.mqtt_evn_topic = Some(topic.to_string());
                }
                if file.mqtt_format.is_empty() {
                    file.mqtt_format = vec!["evn".into()];
                }
                notes.push((
                    false,
                    format!("{shown}: publishing the decoder's JSON to MQTT topic {topic}"),
                ));
            }
        } else {
            notes.push((
                true,
                format!(
                    "{shown}: no MQTT_HOST; neither the meter's frames nor the values go over MQTT"
                ),
            ));
        }
        if let Some(db) = self.server("mysql", "DB", 3306)? {
            if file.sql_sink.is_empty() {
                let schema = self.get("SMARTMETER_DB_SCHEMA").unwrap_or(DEFAULT_SCHEMA);
                file.sql_sink = vec![format!("{db}/{schema}")];
                let theirs = self.get("SMARTMETER_DB_TABLE").unwrap_or("history");
                notes.push((
                    false,
                    format!(
                        "{shown}: writing readings to the database {schema}, in meterkast's own tables beside the decoder's {theirs} (the README, \"Coming from the EVN decoder\", has a view that answers queries on {theirs})"
                    ),
                ));
            }
        }
        let unknown = self.unknown();
        if !unknown.is_empty() {
            notes.push((
                true,
                format!(
                    "{shown}: not used by meterkast, ignored: {}",
                    unknown.join(", ")
                ),
            ));
        }
        if !self.bad_lines.is_empty() {
            let lines: Vec<String> = self.bad_lines.iter().map(|l| l.to_string()).collect();
            notes.push((
                true,
                format!(
                    "{shown}: lines {} are not NAME=value, ignored",
                    lines.join(", ")
                ),
            ));
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder's documented template, filled in as a user would.
    const SERVER_ENV: &str = r#"# This file is mapped into the docker container
# Database
DB_USER="fancyDBUser"
DB_PASSWORD="top@secret"
DB_HOST="192.168.1.5"
DB_PORT=3306

# MQTT
MQTT_USER="fancyMQTTUser"
MQTT_PASSWORD="topsecretButBetterDifferentThanDBPW"
MQTT_HOST="192.168.1.6"
MQTT_PORT=1883

# Smartmeter
SMARTMETER_RAWDATA_MQTT_TOPIC="sensors/smartmeter"
SMARTMETER_VALUES_MQTT_TOPIC="sensors/smartmeter/values"
SMARTMETER_DB_SCHEMA="smartmeter"
SMARTMETER_DB_TABLE="history"
SMARTMETER_KEY="36C66639E48A8CA4D6BC8B282A793BBB"
CONTAINER_PATH=/opt/evn
"#;

    #[test]
    fn the_decoders_file_becomes_source_mqtt_and_sql_settings() {
        let e = EnvFile::parse(Path::new("server.env"), SERVER_ENV);
        assert_eq!(e.get("DB_PORT"), Some("3306"));
        assert_eq!(e.unknown(), ["CONTAINER_PATH"]);
        let mut f = FileConfig::default();
        let notes = e.apply(&mut f).unwrap();
        assert_eq!(
            f.sources[0].url(),
            "mqtt://fancyMQTTUser:topsecretButBetterDifferentThanDBPW@192.168.1.6:1883/sensors/smartmeter?key=36C66639E48A8CA4D6BC8B282A793BBB"
        );
        crate::source::SourceSpec::parse(&f.sources[0].url()).unwrap();
        assert_eq!(
            f.mqtt.as_deref(),
            Some("mqtt://fancyMQTTUser:topsecretButBetterDifferentThanDBPW@192.168.1.6:1883")
        );
        assert_eq!(
            f.mqtt_evn_topic.as_deref(),
            Some("sensors/smartmeter/values")
        );
        assert_eq!(f.mqtt_format, ["evn"]);
        assert_eq!(
            f.sql_sink,
            ["mysql://fancyDBUser:top%40secret@192.168.1.5:3306/smartmeter"]
        );
        let warnings: Vec<&String> = notes.iter().filter(|n| n.0).map(|n| &n.1).collect();
        assert_eq!(warnings.len(), 1, "{notes:?}");
        assert!(warnings[0].contains("CONTAINER_PATH"));
        for (_, n) in &notes {
            assert!(!n.contains("topsecret") && !n.contains("36C666"), "{n}");
        }
    }

    #[test]
    fn the_config_file_and_flags_keep_what_they_set() {
        let e = EnvFile::parse(Path::new("server.env"), SERVER_ENV);
        let mut f = FileConfig {
            sources: vec![crate::config::FileSource::Url("tcp://h:1".into())],
            mqtt: Some("mqtt://other".into()),
            sql_sink: vec!["postgres://x/y".into()],
            ..Default::default()
        };
        e.apply(&mut f).unwrap();
        assert_eq!(f.sources.len(), 1);
        assert_eq!(f.mqtt.as_deref(), Some("mqtt://other"));
        assert_eq!(f.mqtt_evn_topic, None);
        assert_eq!(f.sql_sink, ["postgres://x/y"]);
    }

    #[test]
    fn flags_win_over_the_file() {
        let path = std::env::temp_dir().join(format!("mk-server-{}.env", std::process::id()));
        std::fs::write(&path, SERVER_ENV).unwrap();
        let args = crate::cmd::run::RunArgs {
            env_file: Some(path.clone()),
            db: Some("/tmp/mk-evn-flags.db".into()),
            mqtt_evn_topic: Some("home/{meter}/values".into()),
            sql_table: Some("mk_history".into()),
            ..Default::default()
        };
        let s = args.settings().unwrap();
        let _ = std::fs::remove_file(&path);
        let m = s.mqtt.unwrap();
        assert_eq!(m.evn_topic.as_deref(), Some("home/{meter}/values"));
        assert_eq!(
            (m.broker.host.as_str(), m.broker.port),
            ("192.168.1.6", 1883)
        );
        assert_eq!(s.sources.len(), 1);
        assert!(
            !s.sources[0].name.contains("36C666"),
            "{}",
            s.sources[0].name
        );
        assert_eq!(s.sql[0].table.to_string(), "mk_history");
        assert_eq!(s.sql[0].bucket_table().to_string(), "mk_history_5min");
        assert!(s
            .notes
            .iter()
            .any(|n| n.0 && n.1.contains("CONTAINER_PATH")));
    }

    #[test]
    fn bad_input_is_reported_not_guessed() {
        // The template's placeholder key is not a key.
        let e = EnvFile::parse(
            Path::new("s.env"),
            "MQTT_HOST=h\nSMARTMETER_KEY=\"Get it using this documentation: https://x\"\n",
        );
        let err = e.apply(&mut FileConfig::default()).unwrap_err().to_string();
        assert!(err.contains("SMARTMETER_KEY is not 32 hex digits"), "{err}");
        let e = EnvFile::parse(Path::new("s.env"), "MQTT_HOST=h\nMQTT_PORT=eighty\n");
        assert!(e.apply(&mut FileConfig::default()).is_err());
        // Garbage lines are skipped and named; quotes, comments and export work.
        let e = EnvFile::parse(
            Path::new("s.env"),
            "\u{0}\u{1}garbage\nexport MQTT_HOST='b' # the broker\nX=1 # note\n=\n",
        );
        assert_eq!(e.bad_lines, [1, 4]);
        assert_eq!(e.get("MQTT_HOST"), Some("b"));
        assert_eq!(e.get("X"), Some("1"));
        let notes = e.apply(&mut FileConfig::default()).unwrap();
        assert!(notes.iter().any(|n| n.1.contains("lines 1, 4")));
        assert!(notes.iter().any(|n| n.1.contains("no SMARTMETER_KEY")));
        // A huge file is read, never trusted.
        let big = "A=1\n".repeat(200_000);
        assert_eq!(EnvFile::parse(Path::new("b"), &big).unknown(), ["A"]);
        let path = std::env::temp_dir().join(format!("mk-huge-{}.env", std::process::id()));
        std::fs::write(&path, "A=1\n".repeat(300_000)).unwrap();
        let huge = EnvFile::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(huge.contains("is not an environment file"), "{huge}");
        let missing = EnvFile::load(Path::new("/nonexistent/server.env")).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read the EVN decoder's environment file"));
    }
}
