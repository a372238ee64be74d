//! Serial port source (USB P1 cables, a Raspberry Pi UART). Without explicit settings
//! it tries the line settings meters use until frames validate.

use std::time::Duration;

use anyhow::Result;
use tokio::io::AsyncReadExt;
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::{Ctx, Feeder, Kind, SerialSettings, SourceSpec};

/// The settings tried, in order: DSMR 4/5, DSMR 2.2/3, older and Austrian M-Bus meters.
pub const CANDIDATES: [SerialSettings; 4] = [
    SerialSettings {
        baud: 115_200,
        data_bits: 8,
        parity: 'N',
    },
    SerialSettings {
        baud: 115_200,
        data_bits: 7,
        parity: 'E',
    },
    SerialSettings {
        baud: 9_600,
        data_bits: 7,
        parity: 'E',
    },
    SerialSettings {
        baud: 2_400,
        data_bits: 8,
        parity: 'E',
    },
];

/// How long each candidate gets to show a valid frame (meters send every 1 to 10 s).
pub const PROBE: Duration = Duration::from_secs(25);

fn open(path: &str, s: SerialSettings) -> std::io::Result<SerialStream> {
    tokio_serial::new(path, s.baud)
        .data_bits(if s.data_bits == 7 {
            DataBits::Seven
        } else {
            DataBits::Eight
        })
        .parity(match s.parity {
            'E' => Parity::Even,
            'O' => Parity::Odd,
            _ => Parity::None,
        })
        .stop_bits(StopBits::One)
        .open_native_async()
        .map_err(std::io::Error::other)
}

/// Reads until shutdown; reopens the port when it vanishes (cable unplugged).
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::Serial { path, settings } = &spec.kind else {
        unreachable!("serial::run on a serial source")
    };
    let probe = std::env::var("MK_SERIAL_PROBE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(PROBE, Duration::from_secs);
    let mut feeder = Feeder::new(spec, ctx.clone());
    let mut found = *settings;
    let mut candidate = 0usize;
    let mut buf = vec![0u8; 4096];
    while !ctx.stopping() {
        let trying = found.unwrap_or(CANDIDATES[candidate % CANDIDATES.len()]);
        let mut port = match open(path, trying) {
            Ok(p) => p,
            Err(e) => {
                ctx.set_connected(false, &format!("cannot open {path} ({e}); retrying in 5 s (is the cable plugged in, and may this user read it? try the dialout group)"));
                if ctx.sleep(Duration::from_secs(5)).await {
                    break;
                }
                continue;
            }
        };
        feeder.reset().await?;
        if found.is_some() {
            ctx.set_connected(true, &trying.to_string());
        } else {
            tracing::debug!("{}: trying {trying}", spec.name);
        }
        let deadline = tokio::time::Instant::now() + probe;
        loop {
            // While detecting, give up on a candidate at its deadline; once found, a
            // silent line is only a note (meters pause; cables don't change baud).
            let wait = if found.is_some() {
                Duration::from_secs(60)
            } else {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            };
            let read = tokio::select! {
                r = tokio::time::timeout(wait, port.read(&mut buf)) => r,
                _ = ctx.shutdown.changed() => return Ok(()),
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    ctx.set_connected(
                        false,
                        &format!("{path} closed or failed; reopening (was the cable unplugged?)"),
                    );
                    if ctx.sleep(Duration::from_secs(1)).await {
                        return Ok(());
                    }
                    break;
                }
                Ok(Ok(n)) => {
                    if feeder.feed(&buf[..n], false).await? > 0 && found.is_none() {
                        found = Some(trying);
                        ctx.set_connected(true, &format!("detected {trying}"));
                    }
                }
                Err(_) if found.is_none() => {
                    // Nothing valid at these settings: a failure until frames come.
                    ctx.set_connected(
                        false,
                        &format!("no valid frames from {path} at {trying}; trying other line settings (is the meter's P1 port enabled, and the cable a P1 cable?)"),
                    );
                    candidate += 1;
                    break;
                }
                Err(_) => ctx.set_connected(
                    true,
                    &format!("{trying}; no data for 60 s (is the meter's P1 port enabled?)"),
                ),
            }
        }
    }
    Ok(())
}
