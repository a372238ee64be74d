//! Browser-side defences and the HTTP listener's limits: only local or configured
//! `Host` names are served (a web page elsewhere cannot read the meter through DNS
//! rebinding), every answer carries headers that keep the dashboard out of frames and
//! content sniffing, and the settings for connection and export caps.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::Args;

use super::ApiError;
use crate::config::FileConfig;

/// The settings of the HTTP listener's guards, as flags.
#[derive(Args, Debug, Default, Clone)]
pub struct GuardArgs {
    /// A host name the API may be reached by, besides IP addresses, localhost and this
    /// machine's names (e.g. meterkast.example.org, or *.example.org for every name
    /// under it); repeat for several. Requests naming another host get 421.
    #[arg(long = "allowed-host", env = "MK_ALLOWED_HOST", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Connections open at most per listener (HTTP, telegram bridge) [default: 512].
    #[arg(long, env = "MK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Exports streaming at once; more get 429 with Retry-After [default: 4].
    #[arg(long, env = "MK_MAX_EXPORTS")]
    pub max_exports: Option<usize>,
    /// Time a client has to send a request's headers, also how long an idle
    /// keep-alive connection stays open [default: 10s].
    #[arg(long, env = "MK_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,
    /// Time an answer waits for a client that takes nothing before it is cut off
    /// [default: 30s].
    #[arg(long, env = "MK_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,
}

/// The merged settings.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Host names allowed besides the local ones (lower case; `*.` prefix for a suffix).
    pub allowed_hosts: Arc<Vec<String>>,
    /// Connections per listener.
    pub max_connections: usize,
    /// Concurrent exports.
    pub max_exports: usize,
    /// Header (and keep-alive idle) timeout.
    pub header_timeout: Duration,
    /// Stalled-client timeout.
    pub write_timeout: Duration,
}

/// Time for a request's headers unless configured otherwise.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a stalled client unless configured otherwise.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Exports streaming at once unless configured otherwise.
pub const DEFAULT_MAX_EXPORTS: usize = 4;

impl Default for GuardSettings {
    fn default() -> GuardSettings {
        GuardSettings {
            allowed_hosts: Arc::default(),
            max_connections: crate::listen::DEFAULT_MAX_CONNECTIONS,
            max_exports: DEFAULT_MAX_EXPORTS,
            header_timeout: HEADER_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

impl GuardArgs {
    /// Flags and environment over the configuration file.
    pub fn settings(&self, file: &FileConfig) -> GuardSettings {
        let hosts = if self.allowed_hosts.is_empty() {
            &file.allowed_hosts
        } else {
            &self.allowed_hosts
        };
        GuardSettings {
            allowed_hosts: Arc::new(
                hosts
                    .iter()
                    .map(|h| normalize(h))
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(crate::listen::DEFAULT_MAX_CONNECTIONS)
                .max(1),
            max_exports: self
                .max_exports
                .or(file.max_exports)
                .unwrap_or(DEFAULT_MAX_EXPORTS)
                .max(1),
            header_timeout: self
                .header_timeout
                .unwrap_or(HEADER_TIMEOUT)
                .max(Duration::from_millis(100)),
            write_timeout: self
                .write_timeout
                .unwrap_or(WRITE_TIMEOUT)
                .max(Duration::from_millis(100)),
        }
    }
}

/// Lower case, without a trailing dot.
fn normalize(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a `Host` header (no port, no brackets around IPv6).
fn host_part(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => value,
    }
}

/// Whether a request for `host` may be served: IP literals, `localhost`, this
/// machine's names (also under `.local`, and the names meterkast announces by mDNS),
/// and the configured names.
pub fn host_allowed(host: &str, allowed: &[String], machine: &str) -> bool {
    let h = normalize(host_part(host));
    if h.parse::<IpAddr>().is_ok() || h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    let machine = normalize(machine);
    let short = machine.split('.').next().unwrap_or(&machine);
    if !short.is_empty() && (h == machine || h == short || h == format!("{short}.local")) {
        return true;
    }
    if h.starts_with("meterkast-") && h.ends_with(".local") {
        return true;
    }
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => h.len() > suffix.len() + 1 && h.ends_with(&format!(".{suffix}")),
        None => *a == h,
    })
}

/// The middleware refusing unknown `Host` names with 421 Misdirected Request.
pub async fn check_host(State(s): State<super::AppState>, req: Request, next: Next) -> Response {
    if let Some(v) = req.headers().get(header::HOST) {
        let host = String::from_utf8_lossy(v.as_bytes()).into_owned();
        static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let machine = MACHINE.get_or_init(super::homewizard::hostname);
        if !host_allowed(&host, &s.guard.allowed_hosts, machine) {
            let shown: String = host.chars().filter(|c| !c.is_control()).take(100).collect();
            return ApiError {
                status: StatusCode::MISDIRECTED_REQUEST,
                message: format!(
                    "this meterkast does not serve the host name {shown}: use its IP address or host name, or start it with --allowed-host {}",
                    host_part(&shown)
                ),
            }
            .into_response();
        }
    }
    next.run(req).await
}

/// The dashboard loads only its own scripts, styles, images and API (styles set from
/// scripts, as the charts do, are allowed); no page may frame it.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The middleware adding the browser headers to every answer.
pub async fn browser_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        h.entry::<HeaderName>(name)
            .or_insert(HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_configured_hosts_pass_others_do_not() {
        let allowed = vec!["meter.example.org".to_string(), "*.home.arpa".to_string()];
        let ok = |h| host_allowed(h, &allowed, "raspberrypi.lan");
        for h in [
            "127.0.0.1:8080",
            "192.168.1.20",
            "[::1]:8080",
            "[fe80::1]",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost",
            "raspberrypi",
            "raspberrypi.lan:80",
            "raspberrypi.local",
            "meterkast-a1b2c3.local",
            "meter.example.org",
            "Meter.Example.Org:8080",
            "x.home.arpa",
        ] {
            assert!(ok(h), "{h} should be served");
        }
        for h in [
            "evil.example",
            "rebind.attacker.net:8080",
            "home.arpa",
            "xhome.arpa",
            "meter.example.org.evil.example",
            "localhost.evil.example",
            "",
        ] {
            assert!(!ok(h), "{h} should be refused");
        }
    }
}
