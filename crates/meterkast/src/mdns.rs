//! mDNS / DNS-SD advertisement: `_hwenergy._tcp` with the TXT records a HomeWizard P1
//! dongle sends (so Home Assistant and the HomeWizard app discover meterkast), and
//! `_http._tcp` for the dashboard. Failing to advertise only warns.

use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};
use tokio::sync::watch;

use crate::http::homewizard::{self, PRODUCT_NAME, PRODUCT_TYPE};
use crate::http::AppState;

/// The HomeWizard service type.
pub const HWENERGY: &str = "_hwenergy._tcp.local.";
/// The plain web service type.
pub const HTTP: &str = "_http._tcp.local.";

/// The two service records for a serial and HTTP port.
pub fn services(serial: &str, port: u16) -> anyhow::Result<Vec<ServiceInfo>> {
    let short = &serial[serial.len().saturating_sub(6)..];
    let host = format!("meterkast-{short}.local.");
    let hw = ServiceInfo::new(
        HWENERGY,
        &format!("p1meter-{short}"),
        &host,
        "",
        port,
        &[
            ("api_enabled", "1"),
            ("path", "/api/v1"),
            ("serial", serial),
            ("product_name", PRODUCT_NAME),
            ("product_type", PRODUCT_TYPE),
        ][..],
    )?
    .enable_addr_auto();
    let http = ServiceInfo::new(
        HTTP,
        &format!("meterkast-{short}"),
        &host,
        "",
        port,
        &[("path", "/")][..],
    )?
    .enable_addr_auto();
    Ok(vec![hw, http])
}

/// Advertises the services on every multicast interface until `stop` turns true;
/// re-announces when the serial changes (the first meter arrives, or another becomes
/// the primary one).
pub async fn advertise(state: AppState, port: u16, mut stop: watch::Receiver<bool>) {
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("mDNS: cannot start ({e}); not advertising (see --no-mdns)");
            return;
        }
    };
    let mut registered: Option<(String, Vec<String>)> = None;
    loop {
        let serial = homewizard::serial(&state);
        if registered.as_ref().map(|r| &r.0) != Some(&serial) {
            if let Some((_, names)) = registered.take() {
                for n in names {
                    let _ = daemon.unregister(&n);
                }
            }
            match services(&serial, port) {
                Ok(list) => {
                    let mut names = vec![];
                    for s in list {
                        let name = s.get_fullname().to_string();
                        match daemon.register(s) {
                            Ok(()) => names.push(name),
                            Err(e) => tracing::warn!("mDNS: cannot advertise {name}: {e}"),
                        }
                    }
                    tracing::info!(
                        "mDNS: advertising {HWENERGY} and {HTTP} on port {port} (serial {serial})"
                    );
                    registered = Some((serial, names));
                }
                Err(e) => {
                    tracing::warn!("mDNS: {e}");
                    registered = Some((serial, vec![]));
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
    // Goodbye packets, so browsers drop us at once.
    if let Some((_, names)) = registered {
        for n in names {
            if let Ok(rx) = daemon.unregister(&n) {
                let _ =
                    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(1)))
                        .await;
            }
        }
    }
    let _ = daemon.shutdown();
}
