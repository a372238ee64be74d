//! Replays a capture file, paced by the telegrams' own times (`speed=` a factor) or as
//! fast as the pipeline takes them (`speed=max`).

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;

use super::{Ctx, Feeder, Kind, SourceSpec};

/// Replays the file once, then ends.
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::File { path, speed } = &spec.kind else {
        unreachable!("file::run on a file source")
    };
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {path} (does it exist?)"))?;
    ctx.set_connected(true, "replaying");
    let mut feeder = Feeder::new(spec, ctx.clone());
    let mut buf = vec![0u8; 64 * 1024];
    let started = tokio::time::Instant::now();
    let mut first_ts: Option<i64> = None;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {path} failed"))?;
        if n == 0 {
            feeder.end_of_input().await?;
            break;
        }
        // When pacing, feed in small steps so each telegram waits for its time.
        let step = if speed.is_some() { 256 } else { n };
        for part in buf[..n].chunks(step) {
            feeder.feed(part, false).await?;
            let (Some(factor), Some(t)) = (*speed, feeder.last_time()) else {
                continue;
            };
            let t0 = *first_ts.get_or_insert(t);
            let due =
                started + std::time::Duration::from_secs_f64(((t - t0) as f64 / factor).max(0.0));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = ctx.shutdown.changed() => return Ok(()),
            }
        }
        if ctx.stopping() {
            return Ok(());
        }
    }
    ctx.set_finished("finished replaying");
    Ok(())
}
