//! Mailing a report: SMTP with STARTTLS or implicit TLS (rustls), user and password,
//! several recipients; an HTML body with the key figures and the chart inline, and a
//! plain-text alternative.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::figures::Figures;
use super::text;

/// The Content-ID the HTML body refers to the chart by.
pub const CHART_CID: &str = "chart@meterkast";

/// How the SMTP connection uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsMode {
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// STARTTLS, refusing a server without it.
    Required,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// No TLS (a relay on the same machine).
    Never,
}

/// Where and to whom reports are mailed.
#[derive(Clone)]
pub struct MailSettings {
    /// The SMTP URL as lettre reads it (credentials included).
    url: String,
    /// Host and port, for messages (never the credentials).
    pub server: String,
    /// The host name the server's certificate must carry.
    host: String,
    /// How TLS is used.
    tls: TlsMode,
    /// Extra CA certificates (PEM) to trust besides the system's (`?ca=`).
    ca: Option<Vec<u8>>,
    /// The sender.
    pub from: Mailbox,
    /// The recipients.
    pub to: Vec<Mailbox>,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish()
    }
}

impl MailSettings {
    /// Checks the SMTP URL and the addresses.
    ///
    /// `smtps://user:pass@host:465` is implicit TLS; `smtp://user:pass@host:587` uses
    /// STARTTLS, required unless `?starttls=opportunistic` or `?starttls=never` (for a
    /// relay on the same machine) says otherwise. `?ca=/path/ca.pem` trusts a private CA
    /// (a self-signed server) besides the system's certificates.
    pub fn new(smtp: &str, from: Option<&str>, to: &[String]) -> Result<MailSettings> {
        let hint =
            "use smtps://user:password@host:465 (TLS) or smtp://user:password@host:587 (STARTTLS)";
        let mut u = url::Url::parse(smtp)
            .map_err(|e| anyhow::anyhow!("the SMTP URL is not a URL ({e}): {hint}"))?;
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .with_context(|| format!("the SMTP URL names no host: {hint}"))?
            .to_string();
        let (mut starttls, mut ca_path) = (None, None);
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "starttls" => starttls = Some(v.to_string()),
                "ca" => ca_path = Some(v.to_string()),
                other => bail!("the SMTP URL has an unknown setting {other}=: only starttls=required|opportunistic|never and ca=/path/ca.pem"),
            }
        }
        let mode = match (u.scheme(), starttls.as_deref()) {
            ("smtps", None) => TlsMode::Implicit,
            ("smtps", Some(_)) => bail!("smtps:// is TLS from the start; starttls= is for smtp://"),
            ("smtp", None | Some("required")) => TlsMode::Required,
            ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
            ("smtp", Some("never")) => TlsMode::Never,
            ("smtp", Some(other)) => {
                bail!("starttls={other}: use required, opportunistic or never")
            }
            (other, _) => bail!("the SMTP URL's scheme is {other}: {hint}"),
        };
        let ca = match ca_path {
            Some(_) if mode == TlsMode::Never => bail!("ca= is for TLS; starttls=never uses none"),
            Some(p) => {
                let pem = std::fs::read(&p)
                    .with_context(|| format!("cannot read the CA certificate ca={p}"))?;
                Certificate::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("ca={p} is not a PEM certificate ({e})"))?;
                Some(pem)
            }
            None => None,
        };
        let port = u.port().unwrap_or(match mode {
            TlsMode::Implicit => 465,
            TlsMode::Required | TlsMode::Opportunistic => 587,
            TlsMode::Never => 25,
        });
        u.set_query(match mode {
            TlsMode::Required => Some("tls=required"),
            TlsMode::Opportunistic => Some("tls=opportunistic"),
            TlsMode::Implicit | TlsMode::Never => None,
        });
        let _ = u.set_port(Some(port));
        let from = match from {
            Some(f) => f
                .parse::<Mailbox>()
                .map_err(|e| anyhow::anyhow!("the sender address {f} is not valid: {e}"))?,
            None => {
                let user = if u.username().is_empty() {
                    "meterkast".to_string()
                } else {
                    percent_decode(u.username())
                };
                let addr = if user.contains('@') {
                    user
                } else {
                    format!("{user}@{host}")
                };
                addr.parse::<Mailbox>().map_err(|e| {
                    anyhow::anyhow!(
                        "no sender given and {addr} is not an address ({e}): set the sender (from)"
                    )
                })?
            }
        };
        if to.is_empty() {
            bail!("no recipients: give at least one address to mail reports to (to)");
        }
        let to = to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| anyhow::anyhow!("the recipient {t} is not a valid address: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        // Fail now, not at the first send, on anything lettre refuses.
        SmtpTransport::from_url(u.as_str())
            .map_err(|e| anyhow::anyhow!("the SMTP URL is not usable ({e}): {hint}"))?;
        Ok(MailSettings {
            url: u.to_string(),
            server: format!("{host}:{port}"),
            host,
            tls: mode,
            ca,
            from,
            to,
        })
    }

    fn transport(&self) -> Result<SmtpTransport> {
        let mut b = SmtpTransport::from_url(&self.url)?.timeout(Some(Duration::from_secs(30)));
        if let Some(pem) = &self.ca {
            let params = TlsParameters::builder(self.host.clone())
                .add_root_certificate(Certificate::from_pem(pem)?)
                .build()?;
            b = b.tls(match self.tls {
                TlsMode::Implicit => Tls::Wrapper(params),
                TlsMode::Required => Tls::Required(params),
                TlsMode::Opportunistic => Tls::Opportunistic(params),
                TlsMode::Never => Tls::None,
            });
        }
        Ok(b.build())
    }

    /// Sends a formatted message (as [`message`] makes it) to the recipients.
    pub fn send(&self, formatted: &[u8]) -> Result<()> {
        let envelope = Envelope::new(
            Some(self.from.email.clone()),
            self.to.iter().map(|m| m.email.clone()).collect(),
        )?;
        self.transport()?
            .send_raw(&envelope, formatted)
            .with_context(|| format!("mailing the report through {} failed", self.server))?;
        Ok(())
    }
}

/// Decodes `%40`-style escapes (a user name in a URL).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The e-mail for a report: plain text, or HTML with the PNG chart inline.
pub fn message(settings: &MailSettings, f: &Figures, png: &[u8]) -> Result<Message> {
    let mut b = Message::builder()
        .from(settings.from.clone())
        .subject(text::subject(f));
    for to in &settings.to {
        b = b.to(to.clone());
    }
    let chart = Attachment::new_inline(CHART_CID.to_string())
        .body(png.to_vec(), ContentType::parse("image/png")?);
    let body = MultiPart::alternative()
        .singlepart(SinglePart::plain(text::plain(f)))
        .multipart(
            MultiPart::related()
                .singlepart(SinglePart::html(text::html(f, CHART_CID)))
                .singlepart(chart),
        );
    Ok(b.multipart(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_checked_and_explained() {
        let to = vec![
            "a@example.com".to_string(),
            "Bea <b@example.com>".to_string(),
        ];
        let m =
            MailSettings::new("smtps://me%40example.com:pw@mail.example.com", None, &to).unwrap();
        assert_eq!(m.server, "mail.example.com:465");
        assert_eq!(m.from.email.to_string(), "me@example.com");
        assert_eq!(m.to.len(), 2);
        assert!(
            !format!("{m:?}").contains("pw"),
            "credentials must not be printed"
        );
        let m =
            MailSettings::new("smtp://relay.lan?starttls=never", Some("mk@home.lan"), &to).unwrap();
        assert_eq!(m.server, "relay.lan:25");
        let m = MailSettings::new("smtp://u:p@mail.example.com", Some("mk@home.lan"), &to).unwrap();
        assert_eq!(m.server, "mail.example.com:587");
        for bad in [
            "imap://host",
            "smtp://host?starttls=maybe",
            "smtp://host?tls=none",
            "smtps://host?starttls=required",
            "smtps://host?ca=/nonexistent/ca.pem",
            "smtp://host?starttls=never&ca=/etc/hostname",
            "not a url",
        ] {
            let e = MailSettings::new(bad, Some("a@b.c"), &to).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert!(MailSettings::new("smtp://h?starttls=never", Some("a@b.c"), &[]).is_err());
        assert!(MailSettings::new("smtp://h?starttls=never", Some("not an address"), &to).is_err());
    }
}
