//! The raw telegram bridge: every connected TCP client receives every raw telegram as
//! it arrives (DSMR text; decrypted DSMR for Smarty), for tools that only understand a
//! P1 stream (Home Assistant's DSMR integration, Domoticz, dsmr_parser, evcc).
//! A slow or dead client is dropped without delaying the others or the store.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use crate::http::Metrics;
use crate::listen::{Accepted, Guarded};

/// Telegrams a client may lag behind before it is dropped.
const CLIENT_QUEUE: usize = 1024;

/// How long one telegram may wait for a client to take it before the client is dropped.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Binds the bridge; the returned future serves until shutdown.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the telegram bridge (in use? try another port)")
    })
}

/// Serves clients: each gets its own bounded queue, filled from the broadcast of raw
/// telegrams; a full queue drops that client.
/// At most `max_connections` clients at once: more are closed as they connect.
pub async fn serve(
    listener: TcpListener,
    telegrams: broadcast::Sender<Arc<[u8]>>,
    metrics: Arc<Metrics>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut guarded = Guarded::new(
        listener,
        "telegram bridge",
        max_connections,
        metrics.listeners.clone(),
        |l| &l.bridge,
    );
    loop {
        let accepted = tokio::select! {
            a = guarded.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (mut sock, peer, slot) = match accepted {
            Accepted::Conn(sock, peer, slot) => (sock, peer, slot),
            Accepted::Refused(..) => continue,
        };
        let _ = sock.set_nodelay(true);
        let mut rx = telegrams.subscribe();
        let (qtx, mut qrx) = mpsc::channel::<Arc<[u8]>>(CLIENT_QUEUE);
        let m = metrics.clone();
        m.bridge_clients.fetch_add(1, Ordering::Relaxed);
        tracing::info!("telegram bridge: {peer} connected");
        // The feeder moves telegrams into this client's queue and never waits.
        let feeder = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(t) => {
                        if qtx.try_send(t).is_err() {
                            return true;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        });
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut feeder = feeder;
            // Every wait also watches the feeder: when it gives up on this client (its
            // queue overflowed), a write stuck on a stalled socket is abandoned too.
            // While waiting it also reads (and discards) what the client sends, so a
            // client that hangs up frees its descriptor at once, not at the next
            // telegram.
            let (mut rd, mut wr) = sock.split();
            let mut junk = [0u8; 512];
            let too_slow = loop {
                let t = tokio::select! {
                    t = qrx.recv() => t,
                    r = &mut feeder => break r.unwrap_or(false),
                    _ = stop.changed() => break false,
                    n = rd.read(&mut junk) => match n {
                        Ok(0) | Err(_) => break false,
                        Ok(_) => continue,
                    },
                };
                let Some(t) = t else { break false };
                tokio::select! {
                    r = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&t)) => match r {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break false,
                        // A client that takes nothing for that long is stalled.
                        Err(_) => break true,
                    },
                    r = &mut feeder => break r.unwrap_or(false),
                    _ = stop.changed() => break false,
                }
            };
            if too_slow {
                m.bridge_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("telegram bridge: {peer} dropped, it could not keep up");
            } else {
                tracing::info!("telegram bridge: {peer} disconnected");
            }
            m.bridge_clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The address a bridge listener is bound to.
pub fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

/// A DSMR telegram as the bridge sends it: whole, from `/` through `!XXXX\r\n`. Tools
/// that frame on the line end after the checksum (dsmr_parser, hence Home Assistant)
/// lose a telegram without one, so one is added when the meter's never came (the input
/// ended, or the next telegram followed at once). Anything else goes on as it is.
pub fn whole_telegram(raw: Arc<[u8]>) -> Arc<[u8]> {
    if raw.first() != Some(&b'/') || raw.ends_with(b"\n") {
        return raw;
    }
    let end = raw.len() - usize::from(raw.ends_with(b"\r"));
    let mut t = Vec::with_capacity(end + 2);
    t.extend_from_slice(&raw[..end]);
    t.extend_from_slice(b"\r\n");
    t.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegrams_go_out_with_their_line_end() {
        let out = |b: &[u8]| whole_telegram(Arc::from(b)).to_vec();
        assert_eq!(out(b"/X\r\n!0B9F\r\n"), b"/X\r\n!0B9F\r\n");
        assert_eq!(out(b"/X\r\n!0B9F"), b"/X\r\n!0B9F\r\n");
        assert_eq!(out(b"/X\r\n!0B9F\r"), b"/X\r\n!0B9F\r\n");
        assert_eq!(out(b"/X\r\n!\n"), b"/X\r\n!\n");
        assert_eq!(out(&[0x7E, 0xA0, 0x7E]), [0x7E, 0xA0, 0x7E]);
    }
}
