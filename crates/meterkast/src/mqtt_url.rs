//! Broker URLs as the MQTT options take them: `mqtt://[user:pass@]host[:port]/path`
//! and `mqtts://…[?ca=/path/ca.pem]`, for the MQTT output, the forwarder and the
//! ingest workers alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            format!(
                "{flag} {}: use a URL like mqtt://user:pass@broker:1883/topic",
                crate::redact::text(url)
            )
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

    /// The user name and password, if a user is given.
    pub fn credentials(&self) -> Option<(String, String)> {
        let u = self.user.clone()?;
        Some((u, self.password.clone().unwrap_or_default()))
    }

    /// The TLS transport for `mqtts://`.
    pub fn transport(&self) -> Result<Option<rumqttc::Transport>> {
        if !self.tls {
            return Ok(None);
        }
        let tls = Arc::new(tls_config(self.ca.as_deref())?);
        Ok(Some(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        )))
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The TLS client configuration: the given CA certificate(s) (PEM), else the
/// system's trusted roots.
pub fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<std::result::Result<_, _>>())
                .map_err(|e| anyhow::anyhow!("--mqtt ?ca={}: {e}", p.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--mqtt ?ca={}: no PEM certificate in the file",
                p.display()
            );
            for c in certs {
                roots
                    .add(c)
                    .with_context(|| format!("--mqtt ?ca={}", p.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "mqtts://: no trusted CA certificates on this system; give one with ?ca=/path/ca.pem"
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
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
