//! Serving the router on a TCP listener with limits a hostile or broken client cannot
//! get around: a connection cap, a time limit for a request's headers (which is also
//! how long an idle keep-alive connection stays open), and a time limit for a client
//! that stops reading a response.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::listen::{Accepted, Guarded, Listeners};

/// The limits of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, counted from the connection's start or
    /// the previous response's end (so also the keep-alive idle time).
    pub header_timeout: Duration,
    /// Time a response may wait for the client to take more bytes.
    pub write_timeout: Duration,
}

impl Limits {
    /// The limits the guard settings give.
    pub fn from_settings(g: &super::guard::GuardSettings) -> Limits {
        Limits {
            max_connections: g.max_connections,
            header_timeout: g.header_timeout,
            write_timeout: g.write_timeout,
        }
    }
}

/// The body of the answer to a connection beyond the cap.
const BUSY_BODY: &str =
    r#"{"error":"too many connections to meterkast at once; try again in a few seconds"}"#;

/// The whole answer to a connection beyond the cap.
fn busy() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    )
}

/// Serves `app` until `shutdown`, then lets open requests finish (up to 5 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Listeners>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut guarded = Guarded::new(
        listener,
        "HTTP",
        limits.max_connections,
        metrics.clone(),
        |l| &l.http,
    );
    loop {
        let accepted = tokio::select! {
            a = guarded.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Accepted::Refused(mut sock, _) => {
                tokio::spawn(async move {
                    // Answer, then take what the client sent (a little, briefly): closing
                    // with its request unread would reset the connection before it
                    // reads the answer.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        sock.write_all(busy().as_bytes()).await?;
                        sock.shutdown().await?;
                        let mut sink = [0u8; 4096];
                        for _ in 0..16 {
                            if sock.read(&mut sink).await? == 0 {
                                break;
                            }
                        }
                        Ok::<_, std::io::Error>(())
                    })
                    .await;
                });
            }
            Accepted::Conn(sock, _peer, slot) => {
                let _ = sock.set_nodelay(true);
                let app = app.clone();
                let metrics = metrics.clone();
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut io = tokio_io_timeout::TimeoutStream::new(sock);
                    io.set_write_timeout(Some(limits.write_timeout));
                    let io = TokioIo::new(Box::pin(io));
                    let service =
                        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                            app.clone().oneshot(req.map(Body::new))
                        });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .max_buf_size(64 * 1024);
                    let conn = builder.serve_connection(io, service);
                    tokio::pin!(conn);
                    let result = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        if is_timeout(&e) {
                            metrics.http.timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!("HTTP connection closed: {e}");
                    }
                });
            }
        }
    }
    guarded.drain(Duration::from_secs(4)).await;
}

/// Whether a connection ended for one of our time limits.
fn is_timeout(e: &hyper::Error) -> bool {
    if e.is_timeout() {
        return true;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = s.source();
    }
    false
}
