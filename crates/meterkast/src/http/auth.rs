//! Optional access control: a bearer token or HTTP basic credentials, checked on
//! everything but `/healthz`.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The configured credentials.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Anyone may read.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic(String),
}

impl Auth {
    /// From the settings: a token wins over basic credentials (`user:password`).
    pub fn from_settings(token: Option<String>, basic: Option<String>) -> anyhow::Result<Auth> {
        match (token, basic) {
            (Some(t), _) if !t.is_empty() => Ok(Auth::Token(t)),
            (_, Some(b)) if !b.is_empty() => {
                if !b.contains(':') {
                    anyhow::bail!("--auth-basic takes user:password");
                }
                Ok(Auth::Basic(base64(b.as_bytes())))
            }
            _ => Ok(Auth::None),
        }
    }

    /// Whether any authentication is configured.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Auth::None)
    }

    fn accepts(&self, header: Option<&str>) -> bool {
        let expected = match self {
            Auth::None => return true,
            Auth::Token(t) => ("Bearer ", t.as_str()),
            Auth::Basic(b) => ("Basic ", b.as_str()),
        };
        header
            .and_then(|h| h.strip_prefix(expected.0))
            .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), expected.1.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding (for comparing basic credentials).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The middleware: 401 with a hint unless the credentials match.
pub async fn require(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if s.auth.accepts(given) {
        return next.run(req).await;
    }
    let challenge = match s.auth {
        Auth::Basic(_) => "Basic realm=\"meterkast\"",
        _ => "Bearer",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge), (header::CONTENT_TYPE, "application/json")],
        r#"{"error":"authentication required: send the token (Authorization: Bearer ...) or the user and password set with --auth-token / --auth-basic"}"#,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_checks() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        let a = Auth::from_settings(None, Some("user:pass".into())).unwrap();
        assert!(a.accepts(Some("Basic dXNlcjpwYXNz")));
        assert!(!a.accepts(Some("Basic dXNlcjpwYXNy")));
        assert!(!a.accepts(None));
        let t = Auth::from_settings(Some("s3cret".into()), None).unwrap();
        assert!(t.accepts(Some("Bearer s3cret")));
        assert!(!t.accepts(Some("Bearer s3cre")));
        assert!(Auth::from_settings(None, Some("nocolon".into())).is_err());
    }
}
