//! This host's own Wi-Fi network name and signal, for the `wifi_ssid` and
//! `wifi_strength` fields a HomeWizard P1 dongle reports (clients of its v1 API need
//! them: without `wifi_ssid` they do not read the reading at all).
//!
//! The signal comes from `/proc/net/wireless` (link quality, of 70, as a percentage),
//! the network name from `iwgetid -r` where that tool is installed. A host without
//! Wi-Fi (a cable, a container) reports the fixed [`WIRED_SSID`] at [`WIRED_STRENGTH`];
//! a wireless host whose network name cannot be read reports [`UNKNOWN_SSID`].
//! Looked up at most once a minute.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The network name reported by a host without a wireless interface.
pub const WIRED_SSID: &str = "wired";
/// The signal strength (percent) reported by a host without a wireless interface.
pub const WIRED_STRENGTH: u8 = 100;
/// The network name reported when a wireless interface is up but its name is unknown.
pub const UNKNOWN_SSID: &str = "unknown";

/// How long a lookup is reused.
const TTL: Duration = Duration::from_secs(60);

/// What the host knows about its Wi-Fi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWifi {
    /// The network name.
    pub ssid: String,
    /// The signal strength, 0–100 %.
    pub strength: u8,
}

/// The first wireless interface and its link quality in percent, from the text of
/// `/proc/net/wireless` (two header lines, then `iface: status link. level. noise. ...`).
pub fn parse_proc_wireless(text: &str) -> Option<(String, u8)> {
    let line = text.lines().skip(2).find(|l| l.contains(':'))?;
    let (iface, rest) = line.split_once(':')?;
    let link: f64 = rest
        .split_whitespace()
        .nth(1)?
        .trim_end_matches('.')
        .parse()
        .ok()?;
    let pct = (link * 100.0 / 70.0).round().clamp(0.0, 100.0) as u8;
    Some((iface.trim().to_string(), pct))
}

fn ssid_of(iface: &str) -> Option<String> {
    let out = Command::new("iwgetid")
        .args([iface, "-r"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// Looks the host's Wi-Fi up now (reads a file, may run `iwgetid`).
pub fn lookup() -> HostWifi {
    let wireless = std::fs::read_to_string("/proc/net/wireless").unwrap_or_default();
    match parse_proc_wireless(&wireless) {
        Some((iface, strength)) => HostWifi {
            ssid: ssid_of(&iface).unwrap_or_else(|| UNKNOWN_SSID.into()),
            strength,
        },
        None => HostWifi {
            ssid: WIRED_SSID.into(),
            strength: WIRED_STRENGTH,
        },
    }
}

static CACHE: Mutex<Option<(Instant, HostWifi)>> = Mutex::new(None);

/// The host's Wi-Fi, looked up at most once per minute (on the blocking pool).
pub async fn current() -> HostWifi {
    if let Some((at, w)) = &*CACHE.lock().expect("wifi cache") {
        if at.elapsed() < TTL {
            return w.clone();
        }
    }
    let w = tokio::task::spawn_blocking(lookup)
        .await
        .unwrap_or_else(|_| HostWifi {
            ssid: UNKNOWN_SSID.into(),
            strength: 0,
        });
    *CACHE.lock().expect("wifi cache") = Some((Instant::now(), w.clone()));
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_wireless_gives_the_interface_and_its_link_quality() {
        let text = "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n wlan0: 0000   52.  -58.  -256        0      0      0      0    211        0\n";
        assert_eq!(parse_proc_wireless(text), Some(("wlan0".into(), 74)));
        let full = text.replace("52.", "70.");
        assert_eq!(parse_proc_wireless(&full).unwrap().1, 100);
        // Headers only (no wireless interface), empty, garbage: nothing.
        let headers: String = text.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(parse_proc_wireless(&headers), None);
        assert_eq!(parse_proc_wireless(""), None);
        assert_eq!(parse_proc_wireless("a\nb\nwlan0: x y z\n"), None);
    }
}
