//! Subscribes to an MQTT topic carrying raw meter frames, as ESP bridges publish them:
//! raw bytes, or the same bytes as hex text.

use std::time::Duration;

use anyhow::Result;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::{Ctx, Feeder, Kind, SourceSpec};

/// The payload as bytes: hex text (with optional whitespace) is decoded, anything else
/// is taken as raw bytes.
pub fn payload_bytes(p: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> = p
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let is_hex = !digits.is_empty()
        && digits.len().is_multiple_of(2)
        && digits.iter().all(u8::is_ascii_hexdigit);
    // A DSMR telegram is text starting with '/', never pure hex.
    if !is_hex {
        return p.to_vec();
    }
    digits
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Subscribes until shutdown, reconnecting as the client library does.
pub async fn run(spec: &SourceSpec, mut ctx: Ctx) -> Result<()> {
    let Kind::Mqtt {
        host,
        port,
        topic,
        user,
        password,
    } = &spec.kind
    else {
        unreachable!("mqtt::run on an mqtt source")
    };
    let id = format!("meterkast-src-{}-{}", std::process::id(), rand_suffix());
    let mut opts = MqttOptions::new(id, host.as_str(), *port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some(u) = user {
        opts.set_credentials(u.as_str(), password.clone().unwrap_or_default());
    }
    let (client, mut events) = AsyncClient::new(opts, 64);
    // Each topic is its own byte stream (a wildcard may cover several meters).
    let mut feeders: std::collections::HashMap<String, Feeder> = std::collections::HashMap::new();
    loop {
        let ev = tokio::select! {
            e = events.poll() => e,
            _ = ctx.shutdown.changed() => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                ctx.set_connected(true, "");
                client.subscribe(topic.as_str(), QoS::AtLeastOnce).await?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let bytes = payload_bytes(&p.payload);
                let feeder = match feeders.get_mut(&p.topic) {
                    Some(f) => f,
                    None => {
                        if feeders.len() >= 10_000 {
                            tracing::warn!(
                                "{}: more than 10000 topics; forgetting their partial frames",
                                spec.name
                            );
                            feeders.clear();
                        }
                        feeders
                            .entry(p.topic.clone())
                            .or_insert_with(|| Feeder::new(spec, ctx.clone()))
                    }
                };
                feeder.feed(&bytes, false).await?;
            }
            Ok(_) => {}
            Err(e) => {
                ctx.set_connected(
                    false,
                    &format!("broker connection lost ({e}); retrying (is the broker running?)"),
                );
                if ctx.sleep(Duration::from_secs(2)).await {
                    break;
                }
            }
        }
    }
    let _ = client.disconnect().await;
    Ok(())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_payloads_are_decoded_and_text_is_kept() {
        assert_eq!(
            payload_bytes(b"68 FA FA 68\n"),
            vec![0x68, 0xFA, 0xFA, 0x68]
        );
        assert_eq!(
            payload_bytes(b"/ISK5\\2M550T\r\n"),
            b"/ISK5\\2M550T\r\n".to_vec()
        );
        assert_eq!(payload_bytes(b"ABC"), b"ABC".to_vec());
    }
}
