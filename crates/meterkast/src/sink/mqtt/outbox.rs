//! What the MQTT output and the forwarder share: a connection task that turns the
//! client library's events into [`Ev`]s, and an [`Outbox`] that publishes from the
//! on-disk queue through a window of unacknowledged messages.
//!
//! Ordering across reconnects: clients run with a clean session, so after a
//! disconnect the library drops whatever it still held (once the outbox has stopped
//! handing out messages), and the queue re-sends everything unacknowledged from its
//! head: at least once, never out of order.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

use super::queue::{DiskQueue, Msg};

/// What the connection task reports.
pub enum Ev<T> {
    /// Connected (a fresh session).
    Connected,
    /// The oldest message in flight was acknowledged.
    Acked,
    /// Something only the owner understands.
    Other(T),
    /// The connection broke; answer once nothing more will be handed to the client.
    Down(oneshot::Sender<()>),
    /// The client disconnected on request.
    Closed,
}

/// A client library's event loop, as the connection task drives it.
pub trait Link: Send + 'static {
    /// What [`Ev::Other`] carries.
    type Other: Send + 'static;
    /// The next event worth reporting (`Ok(None)` for one that is not), or the
    /// connection's error.
    fn next(&mut self) -> impl Future<Output = Result<Option<Ev<Self::Other>>, String>> + Send;
    /// Drops whatever the client still holds to send.
    fn clean(&mut self);
}

/// Drives `link` until its receiver is dropped or it closes; `who` names it in logs
/// (`MQTT`, `forwarder`), `what` is what gets queued meanwhile (`readings`).
pub fn spawn<L: Link>(
    mut link: L,
    who: &'static str,
    what: &'static str,
    addr: String,
) -> mpsc::UnboundedReceiver<Ev<L::Other>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut logged = false;
        loop {
            match link.next().await {
                Ok(None) => {}
                Ok(Some(ev)) => {
                    let closed = matches!(ev, Ev::Closed);
                    if matches!(ev, Ev::Connected) {
                        tracing::info!("{who}: connected to {addr}");
                        logged = false;
                    }
                    if tx.send(ev).is_err() || closed {
                        return;
                    }
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!("{who}: no connection to {addr} ({e}); queueing {what} on disk and retrying");
                        logged = true;
                    }
                    let (done, wait) = oneshot::channel();
                    if tx.send(Ev::Down(done)).is_err() {
                        return;
                    }
                    let _ = wait.await;
                    link.clean();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    rx
}

/// The on-disk queue with its send window.
pub struct Outbox {
    /// The queue.
    pub q: DiskQueue,
    /// Whether a connection is up.
    pub connected: bool,
    inflight: usize,
    window: usize,
}

impl Outbox {
    /// An outbox keeping at most `window` messages unacknowledged.
    pub fn new(q: DiskQueue, window: usize) -> Outbox {
        Outbox {
            q,
            connected: false,
            inflight: 0,
            window,
        }
    }

    /// Hands queued messages to `publish` while the window allows.
    pub fn fill(&mut self, mut publish: impl FnMut(Msg) -> Result<()>) -> Result<()> {
        while self.connected && self.inflight < self.window {
            let Some(m) = self.q.next_unsent()? else {
                break;
            };
            publish(m)?;
            self.inflight += 1;
        }
        Ok(())
    }

    /// Takes a connection event; what the owner must handle comes back (a new
    /// connection as `Ev::Connected`, and `Ev::Other`).
    pub fn event<T>(&mut self, ev: Ev<T>) -> Result<Option<Ev<T>>> {
        match ev {
            Ev::Connected => {
                self.connected = true;
                self.inflight = 0;
                self.q.rewind();
                return Ok(Some(Ev::Connected));
            }
            Ev::Acked => {
                if self.inflight > 0 {
                    self.inflight -= 1;
                    self.q.ack()?;
                }
            }
            Ev::Down(done) => {
                self.connected = false;
                self.inflight = 0;
                self.q.rewind();
                let _ = done.send(());
            }
            Ev::Closed => self.connected = false,
            Ev::Other(t) => return Ok(Some(Ev::Other(t))),
        }
        Ok(None)
    }

    /// At shutdown: publishes what it can for up to `secs`, taking events as they come.
    pub async fn drain<T>(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Ev<T>>,
        secs: u64,
        mut publish: impl FnMut(Msg) -> Result<()>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.connected && !self.q.is_empty() {
            self.fill(&mut publish)?;
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => {
                    self.event(ev)?;
                }
                _ => break,
            }
        }
        Ok(())
    }
}
