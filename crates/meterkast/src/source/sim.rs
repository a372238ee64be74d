//! The built-in simulator as a source: optionally backfills history, then produces a
//! telegram every interval in real time.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use meterkast_codec::Timestamp;

use super::{now, Ctx, Feeder, Kind, SourceSpec};
use crate::sim::{Dialect, Simulator};

/// Of the backfilled history, one telegram in this many is stored (the simulator still
/// runs every step, so registers stay exact).
const BACKFILL_EVERY: u32 = 10;

/// Runs the simulator until shutdown.
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::Sim {
        dialect,
        seed,
        interval,
        backfill,
    } = &spec.kind
    else {
        unreachable!("sim::run on a sim source")
    };
    let d = Dialect::from_str(dialect, true).map_err(|_| {
        anyhow::anyhow!("sim://{dialect}: unknown dialect; use one of dsmr5, dsmr4, dsmr22, be, smarty, evn, hdlc")
    })?;
    let start = now() - backfill.as_secs() as i64;
    let mut sim = Simulator::new(d, *seed, Timestamp(start), *interval)
        .with_context(|| format!("sim://{dialect}"))?;
    if let Some(k) = spec.keys.encryption {
        sim = sim.with_key(k);
    }
    let mut feeder = Feeder::new(spec, ctx.clone());
    ctx.set_connected(true, "simulated meter");
    // History first, as fast as the pipeline takes it.
    let mut step = 0u32;
    while sim.next_time_ms() < now() * 1000 {
        let (_, bytes) = sim.next_frame();
        step += 1;
        if step.is_multiple_of(BACKFILL_EVERY) {
            let bytes = bytes.to_vec();
            feeder.feed(&bytes, true).await?;
            if ctx.stopping() {
                return Ok(());
            }
        }
    }
    // Then live, each telegram at its own time.
    loop {
        let due_ms = sim.next_time_ms();
        let wait = Duration::from_millis((due_ms - wall_ms()).max(0) as u64);
        if ctx.sleep(wait).await {
            return Ok(());
        }
        let (_, bytes) = sim.next_frame();
        let bytes = bytes.to_vec();
        feeder.feed(&bytes, true).await?;
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
