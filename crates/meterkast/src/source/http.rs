//! Polls a HomeWizard-style P1 dongle's `/api/v1/telegram` for the raw telegram.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, Feeder, Kind, SourceSpec};

/// Fetches one telegram with a blocking client on the blocking pool.
async fn fetch(url: String) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        let mut resp = agent.get(&url).call().map_err(|e| e.to_string())?;
        resp.body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Polls until shutdown. Each response is one complete telegram.
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::Http { url, interval } = &spec.kind else {
        unreachable!("http::run on an http source")
    };
    let mut feeder = Feeder::new(spec, ctx.clone());
    let mut last: Vec<u8> = Vec::new();
    while !ctx.stopping() {
        match fetch(url.clone()).await {
            Ok(body) => {
                ctx.set_connected(true, "");
                // The dongle answers with the latest telegram: skip a repeat.
                if body != last {
                    feeder.feed(&body, true).await?;
                    last = body;
                }
            }
            Err(e) => ctx.set_connected(
                false,
                &format!("polling failed ({e}); retrying (is the dongle's local API enabled?)"),
            ),
        }
        if ctx.sleep(*interval).await {
            break;
        }
    }
    Ok(())
}
