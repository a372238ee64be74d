//! TCP client source (ser2net, P1-to-WiFi bridges): reconnects with backoff, and drops
//! and redials a link that stays silent too long.

use std::time::Duration;

use anyhow::Result;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Ctx, Feeder, Kind, SourceSpec};

/// Reads until shutdown, reconnecting as needed.
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::Tcp { addr, timeout } = &spec.kind else {
        unreachable!("tcp::run on a tcp source")
    };
    let mut feeder = Feeder::new(spec, ctx.clone());
    let mut backoff = Duration::from_millis(500);
    let mut buf = vec![0u8; 16 * 1024];
    while !ctx.stopping() {
        let conn =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr.as_str())).await;
        let mut stream = match conn {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ctx.set_connected(false, &format!("cannot connect ({e}); retrying in {} s (is the bridge powered and on the network?)", backoff.as_secs_f32()));
                if ctx.sleep(backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(_) => {
                ctx.set_connected(
                    false,
                    "connecting timed out; retrying (is the address right?)",
                );
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        ctx.set_connected(true, "");
        feeder.reset().await?;
        let mut got_frame = false;
        loop {
            let read = tokio::select! {
                r = tokio::time::timeout(*timeout, stream.read(&mut buf)) => r,
                _ = ctx.shutdown.changed() => return Ok(()),
            };
            match read {
                Ok(Ok(0)) => {
                    ctx.set_connected(false, "the bridge closed the connection; reconnecting");
                    break;
                }
                Ok(Ok(n)) => {
                    if feeder.feed(&buf[..n], false).await? > 0 {
                        got_frame = true;
                        backoff = Duration::from_millis(500);
                    }
                }
                Ok(Err(e)) => {
                    ctx.set_connected(false, &format!("read failed ({e}); reconnecting"));
                    break;
                }
                Err(_) => {
                    ctx.set_connected(
                        false,
                        &format!("no data for {} s, reconnecting (is the bridge powered and the meter connected?)", timeout.as_secs()),
                    );
                    break;
                }
            }
        }
        if !got_frame && ctx.sleep(backoff).await {
            break;
        }
        if !got_frame {
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
    Ok(())
}
