//! A private Mosquitto per test, on its own port and folder.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::wait_for;

/// A private Mosquitto, killed when dropped.
pub struct Broker {
    child: Child,
    /// Its port.
    pub port: u16,
    conf: PathBuf,
}

impl Broker {
    /// Starts one with persistence in `dir`, listening on `port`.
    pub fn start(dir: &Path, port: u16) -> Broker {
        Broker::start_with(dir, port, "")
    }

    /// With extra settings (TLS, limits).
    pub fn start_with(dir: &Path, port: u16, extra: &str) -> Broker {
        let conf = dir.join("mosquitto.conf");
        // As root Mosquitto would drop to its own user, who cannot write here.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "{user}listener {port} 127.0.0.1\n{extra}allow_anonymous true\npersistence true\npersistence_location {}/\n",
                dir.display()
            ),
        )
        .unwrap();
        Broker::spawn(conf, port)
    }

    /// Starts one from a configuration file.
    pub fn spawn(conf: PathBuf, port: u16) -> Broker {
        let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (install it to run these tests)");
        wait_for("mosquitto to listen", 10, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Broker { child, port, conf }
    }

    /// Stops gracefully (Mosquitto saves its sessions) and waits.
    pub fn stop(mut self) -> (PathBuf, u16) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        (self.conf.clone(), self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
