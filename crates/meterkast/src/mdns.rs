//! mDNS / DNS-SD advertisement: `_hwenergy._tcp` with the TXT records a HomeWizard P1
//! dongle sends (so Home Assistant and the HomeWizard app discover meterkast), and
//! `_http._tcp` for the dashboard. Failing to advertise only warns.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};
use tokio::sync::watch;

use crate::http::homewizard::{self, PRODUCT_NAME, PRODUCT_TYPE};
use crate::http::AppState;

/// The HomeWizard service type.
pub const HWENERGY: &str = "_hwenergy._tcp.local.";
/// The plain web service type.
pub const HTTP: &str = "_http._tcp.local.";

/// The two service records for a serial and the HTTP address: on that address, or on
/// every interface's addresses when it is unspecified (`0.0.0.0`, `::`).
pub fn services(serial: &str, addr: SocketAddr) -> anyhow::Result<Vec<ServiceInfo>> {
    let port = addr.port();
    let ip = addr.ip();
    let ips: Vec<IpAddr> = if ip.is_unspecified() {
        vec![]
    } else {
        vec![ip]
    };
    let auto = |s: ServiceInfo| {
        if ip.is_unspecified() {
            s.enable_addr_auto()
        } else {
            s
        }
    };
    let short = &serial[serial.len().saturating_sub(6)..];
    let host = format!("meterkast-{short}.local.");
    let hw = ServiceInfo::new(
        HWENERGY,
        &format!("p1meter-{short}"),
        &host,
        &ips[..],
        port,
        &[
            ("api_enabled", "1"),
            ("path", "/api/v1"),
            ("serial", serial),
            ("product_name", PRODUCT_NAME),
            ("product_type", PRODUCT_TYPE),
        ][..],
    )?;
    let http = ServiceInfo::new(
        HTTP,
        &format!("meterkast-{short}"),
        &host,
        &ips[..],
        port,
        &[("path", "/")][..],
    )?;
    Ok(vec![auto(hw), auto(http)])
}

/// Advertises the services until `stop` turns true; re-announces when the serial
/// changes (the first meter arrives, or another becomes the primary one). A server
/// listening on loopback only is not advertised: nobody else could reach it.
pub async fn advertise(state: AppState, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    if addr.ip().is_loopback() {
        tracing::info!("mDNS: not advertising, the API listens on {addr} (loopback) only");
        return;
    }
    let port = addr.port();
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
            match services(&serial, addr) {
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
