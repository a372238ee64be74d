//! What every listener (the HTTP API, the raw telegram bridge) shares: a cap on open
//! connections, and accept loops that back off instead of spinning when the process
//! runs out of file descriptors, saying so once a minute in the log and in `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections one listener holds open at most, unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The longest pause between accept attempts while descriptors are exhausted.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How often a repeated listener problem is logged again (with a count).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One listener's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused because the cap was reached.
    pub refused: AtomicU64,
    /// Accept failures (descriptors exhausted and others).
    pub accept_errors: AtomicU64,
    /// Connections closed for a timeout (headers too slow, a client that stops reading).
    pub timeouts: AtomicU64,
}

/// A metric family: name, type, help, and where its value is.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerMetrics) -> &AtomicU64,
);

/// The counters of both listeners.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The HTTP API and dashboard.
    pub http: ListenerMetrics,
    /// The raw telegram bridge.
    pub bridge: ListenerMetrics,
    /// Exports refused because every export place was taken.
    pub exports_refused: AtomicU64,
}

impl Listeners {
    /// Appends the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let each = [("http", &self.http), ("bridge", &self.bridge)];
        let families: [Family; 4] = [
            (
                "meterkast_listener_connections",
                "gauge",
                "Connections open now, per listener.",
                |m| &m.open,
            ),
            (
                "meterkast_listener_refused_total",
                "counter",
                "Connections refused at the listener's connection cap.",
                |m| &m.refused,
            ),
            (
                "meterkast_listener_accept_errors_total",
                "counter",
                "Failed accepts (file descriptors exhausted and others), per listener.",
                |m| &m.accept_errors,
            ),
            (
                "meterkast_listener_timeouts_total",
                "counter",
                "Connections closed for a timeout (slow headers, a client that stops reading).",
                |m| &m.timeouts,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (listener, m) in each {
                let v = get(m).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{listener=\"{listener}\"}} {v}");
            }
        }
    }
}

/// An open connection's place under the cap; dropping it frees the place.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Listeners>,
    which: fn(&Listeners) -> &ListenerMetrics,
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.which)(&self.metrics)
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What an accept loop got.
pub enum Accepted {
    /// A connection within the cap.
    Conn(TcpStream, std::net::SocketAddr, Slot),
    /// A connection beyond the cap: answer briefly (or not at all) and close it.
    Refused(TcpStream, std::net::SocketAddr),
}

/// A listener with a connection cap and a descriptor-aware accept.
pub struct Guarded {
    listener: TcpListener,
    name: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
    metrics: Arc<Listeners>,
    which: fn(&Listeners) -> &ListenerMetrics,
    backoff: Duration,
    log: RateLog,
    refused_log: RateLog,
}

impl Guarded {
    /// Guards `listener` (named `name` in the log) with at most `max` open connections.
    pub fn new(
        listener: TcpListener,
        name: &'static str,
        max: usize,
        metrics: Arc<Listeners>,
        which: fn(&Listeners) -> &ListenerMetrics,
    ) -> Guarded {
        let max = max.max(1);
        Guarded {
            listener,
            name,
            slots: Arc::new(Semaphore::new(max)),
            max,
            metrics,
            which,
            backoff: Duration::ZERO,
            log: RateLog::default(),
            refused_log: RateLog::default(),
        }
    }

    /// This listener's counters.
    pub fn counters(&self) -> &ListenerMetrics {
        (self.which)(&self.metrics)
    }

    /// The next connection. Accept failures never end the loop and never spin: when
    /// descriptors run out (`EMFILE`, `ENFILE`) it waits, doubling the pause up to a
    /// second, until a client leaves.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            if !self.backoff.is_zero() {
                tokio::time::sleep(self.backoff).await;
            }
            match self.listener.accept().await {
                Ok((sock, peer)) => {
                    if !self.backoff.is_zero() {
                        tracing::info!("{}: accepting connections again", self.name);
                        self.backoff = Duration::ZERO;
                        self.log = RateLog::default();
                    }
                    return match self.slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            self.counters().open.fetch_add(1, Ordering::Relaxed);
                            Accepted::Conn(
                                sock,
                                peer,
                                Slot {
                                    _permit: permit,
                                    metrics: self.metrics.clone(),
                                    which: self.which,
                                },
                            )
                        }
                        Err(_) => {
                            self.counters().refused.fetch_add(1, Ordering::Relaxed);
                            if let Some(n) = self.refused_log.hit() {
                                tracing::warn!(
                                    "{}: {} connections open, the most allowed; refusing new ones ({n} refused since the last note; raise --max-connections if these clients are wanted)",
                                    self.name,
                                    self.max
                                );
                            }
                            Accepted::Refused(sock, peer)
                        }
                    };
                }
                Err(e) => {
                    self.counters()
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let exhausted = matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    );
                    if exhausted {
                        if let Some(n) = self.log.hit() {
                            tracing::warn!(
                                "{}: cannot accept connections: {e} ({n} times since the last note); waiting for clients to leave (raise LimitNOFILE / ulimit -n, or lower --max-connections)",
                                self.name
                            );
                        }
                        self.backoff = (self.backoff * 2)
                            .max(Duration::from_millis(10))
                            .min(MAX_BACKOFF);
                    } else {
                        // A connection that died in the backlog: take the next one.
                        if let Some(n) = self.log.hit() {
                            tracing::debug!("{}: accept failed: {e} ({n} times)", self.name);
                        }
                    }
                }
            }
        }
    }

    /// Waits until every connection has closed, or `limit` has passed.
    pub async fn drain(&self, limit: Duration) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(limit, self.slots.acquire_many(all)).await;
    }
}

/// Logs the first event and then at most one line per [`LOG_EVERY`], with the count.
#[derive(Default)]
struct RateLog {
    last: Option<Instant>,
    count: u64,
}

impl RateLog {
    /// Counts an event; `Some(events since the last line)` when it is time to log.
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let due = match self.last {
            Some(t) => t.elapsed() >= LOG_EVERY,
            None => true,
        };
        if due {
            self.last = Some(Instant::now());
            Some(std::mem::take(&mut self.count))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_log_speaks_first_then_waits() {
        let mut l = RateLog::default();
        assert_eq!(l.hit(), Some(1));
        assert_eq!(l.hit(), None);
        assert_eq!(l.hit(), None);
        l.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(l.hit(), Some(3), "the summary counts what was not logged");
    }
}
