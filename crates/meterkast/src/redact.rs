//! Secrets out of messages: every URL that an error, a log line, `/api/v1/status` or
//! `/healthz` shows goes through here, parsed or not (a URL that failed to parse is
//! exactly the one an error message repeats).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// `scheme://user:` followed by a password up to the last `@` of the word.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'"<>]*:)([^\s'"<>]*)@"#)
        .expect("userinfo pattern")
});

/// Query settings that hold secrets: passwords, tokens and meter keys.
static SECRET_QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([?&](?:password|passwd|pass|pwd|token|access_token|api_key|secret|key|auth_key)=)[^&\s#'"<>]*"#,
    )
    .expect("query pattern")
});

/// The text with every URL's password (`scheme://user:PASSWORD@`) and every secret
/// query value (`?password=`, `&key=`, `?token=` …) replaced by `***`. Works on whole
/// messages and on URLs that are not valid URLs.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") && !s.contains('=') {
        return Cow::Borrowed(s);
    }
    let once = USERINFO.replace_all(s, |c: &regex::Captures<'_>| {
        // The placeholders of the advice messages give nothing away.
        match &c[2] {
            p @ ("password" | "pass" | "***") => format!("{}{p}@", &c[1]),
            _ => format!("{}***@", &c[1]),
        }
    });
    match SECRET_QUERY.replace_all(&once, "$1***") {
        Cow::Borrowed(_) => once,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// [`text`] as an owned string, for one URL.
pub fn url(s: &str) -> String {
    text(s).into_owned()
}

/// Standard error with every write passed through [`text`]: the log's writer, so no
/// log line shows a password whatever it repeats (one write is one formatted line).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(text(&line).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_and_messages_are_replaced() {
        for (given, want) in [
            (
                "mqtt://user:hunter2@127.0.0.1:notaport/x",
                "mqtt://user:***@127.0.0.1:notaport/x",
            ),
            (
                "postgres://u:s3cret@db:5432/m",
                "postgres://u:***@db:5432/m",
            ),
            ("postgres://u:p@ss@db/m", "postgres://u:***@db/m"),
            (
                "h:x: bad port; use postgres://user:password@host:5432/database",
                "h:x: bad port; use postgres://user:password@host:5432/database",
            ),
            ("smtp://u:a/b@mail:587", "smtp://u:***@mail:587"),
            (
                "postgres://h/db?sslmode=require&password=hunter2",
                "postgres://h/db?sslmode=require&password=***",
            ),
            (
                "error: 'tcp://h:1?key=00112233' and mysql://root:pw@h/e failed",
                "error: 'tcp://h:1?key=***' and mysql://root:***@h/e failed",
            ),
        ] {
            assert_eq!(text(given), want, "{given}");
        }
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        for s in [
            "serial:///dev/ttyUSB0",
            "mqtt://broker:1883/meters/+",
            "mqtt://user@broker/x",
            "retrying in 5 s",
            "speed=max",
        ] {
            assert!(matches!(text(s), Cow::Borrowed(_)) || text(s) == s, "{s}");
            assert_eq!(text(s), s);
        }
    }
}
