//! Broker URLs as the MQTT options take them: `mqtt://[user:pass@]host[:port]/path`
//! and `mqtts://…[?ca=/path/ca.pem]`, for the MQTT output, the forwarder and the
//! ingest workers alike.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    /// Broker host.
    pub host: String,
    /// Broker port (1883, or 8883 for TLS, unless given).
    pub port: u16,
    /// `mqtts://`: TLS.
    pub tls: bool,
    /// A CA certificate (PEM) for TLS (`?ca=`).
    pub ca: Option<PathBuf>,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// The path without its leading `/`, percent-decoded; a `#` written as such ends
    /// it (so `mqtt://broker/meters/#` keeps its wildcard).
    pub path: String,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl BrokerUrl {
    /// Parses `url`; errors name `flag` (`--mqtt`, `--forward`, `--ingest`).
    pub fn parse(flag: &str, url: &str) -> Result<BrokerUrl> {
        let u = url::Url::parse(url).with_context(|| {
            format!("{flag} {url}: use a URL like mqtt://user:pass@broker:1883/topic")
        })?;
        let tls = match u.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            s => bail!("{flag}: unknown scheme {s}:// (use mqtt:// or mqtts://)"),
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .with_context(|| format!("{flag}: the URL names no broker host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
        let user = (!u.username().is_empty()).then(|| decode(u.username()));
        let password = u.password().map(decode);
        let mut ca = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "ca" => ca = Some(PathBuf::from(v.as_ref())),
                other => bail!("{flag}: unknown URL option {other} (known: ca)"),
            }
        }
        if ca.is_some() && !tls {
            bail!("{flag}: ?ca= is for mqtts:// (TLS)");
        }
        let mut path = decode(u.path().trim_start_matches('/'));
        if u.fragment() == Some("") {
            path.push('#');
        }
        Ok(BrokerUrl {
            host,
            port,
            tls,
            ca,
            user,
            password,
            path,
        })
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_broker_credentials_and_path() {
        let b = BrokerUrl::parse(
            "--forward",
            "mqtt://me:p%40ss@broker.lan:1884/meters/{meter}",
        )
        .unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.lan", 1884, false)
        );
        assert_eq!(b.user.as_deref(), Some("me"));
        assert_eq!(b.password.as_deref(), Some("p@ss"));
        assert_eq!(b.path, "meters/{meter}");
        let b = BrokerUrl::parse("--ingest", "mqtts://h/meters/+?ca=/ca.pem").unwrap();
        assert_eq!((b.port, b.path.as_str()), (8883, "meters/+"));
        assert_eq!(b.ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            BrokerUrl::parse("--ingest", "mqtt://h/m/#").unwrap().path,
            "m/#"
        );
        for bad in [
            "http://h/x",
            "mqtt:///x",
            "mqtt://h/x?ca=/c",
            "mqtt://h/x?q=1",
            "x",
        ] {
            let e = BrokerUrl::parse("--ingest", bad).unwrap_err().to_string();
            assert!(e.starts_with("--ingest"), "{bad}: {e}");
        }
    }
}
