//! `meterkast simulate`: a realistic meter's output, without a meter.

use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use meterkast_codec::Timestamp;

use crate::sim::{Dialect, Simulator};
use crate::timefmt::parse_rfc3339;

/// The long `--help` text of `meterkast simulate` (what it does, pacing, examples).
pub const LONG_HELP: &str =
    "Write a simulated smart meter's output: a household with a daily load curve.

The household has a night base load, a fridge and freezer cycling, a kettle, dinner
on the hob, a washing machine and dishwasher, sometimes an electric car, solar panels
exporting around noon (more in summer, less under clouds), three phases, gas for
heating and showers, and tariff 1/2 by local time of day and weekends. The registers
integrate the printed power exactly and only ever go up. The same --seed (and
--start and --interval) always gives the same bytes.

Pacing: without --count the telegrams come in real time, one per --interval, as a
meter sends them; with --count they come as fast as possible. --realtime and --fast
override either way. --tcp-listen always paces in real time unless --fast is given.

With --tcp-listen the stream is served to every TCP client that connects, as a
WiFi P1 bridge would (port 0 picks a free port; the address is printed on stderr).
New clients join at the next telegram; a client that cannot keep up is dropped.

Dialects: dsmr5 (Iskra AM550, Dutch DSMR 5.0), dsmr4 (Kaifa, DSMR 4.2), dsmr22
(Iskra MT382, DSMR 2.2, no CRC), be (Fluvius e-MUCS with capacity-tariff peaks,
gas and water), smarty (Luxembourg: DSMR in AES-GCM general-glo-ciphering), evn
(Austria: encrypted COSEM data-notification in M-Bus long frames) and hdlc (COSEM
in HDLC frames, encrypted). The encrypted ones need the meter key: --key HEX.

Examples:
  meterkast simulate --dialect dsmr5                      # live, one telegram a second
  meterkast simulate --dialect dsmr5 | meterkast parse    # decode it as it comes
  meterkast simulate --dialect be --count 86400 --seed 7 --start 2026-06-21T00:00:00Z > day.txt
  meterkast simulate --dialect dsmr4 --interval 10s --count 8640 --fast
  meterkast simulate --dialect dsmr5 --tcp-listen 0.0.0.0:2000   # like a P1 WiFi bridge";

/// The options of `meterkast simulate`; see [`LONG_HELP`].
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Which meter to imitate.
    #[arg(long, value_enum)]
    pub dialect: Dialect,
    /// AES-128 key for the encrypted dialects, as 32 hex digits.
    #[arg(long, value_name = "HEX")]
    pub key: Option<String>,
    /// Time of the first telegram, RFC 3339 (e.g. 2026-03-29T00:00:00Z) [default: now;
    /// with --count (and not --realtime), so that the last telegram is now].
    #[arg(long, value_name = "RFC3339")]
    pub start: Option<String>,
    /// Time between telegrams: 1s, 10s, 500ms, 1m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after N telegrams (default: never).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seed of the simulated household.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Serve the stream to TCP clients on ADDR (e.g. 0.0.0.0:2000) instead of stdout.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,
    /// Send each telegram when the wall clock reaches it (default without --count).
    #[arg(long, conflicts_with = "fast")]
    pub realtime: bool,
    /// Send as fast as possible (default with --count).
    #[arg(long)]
    pub fast: bool,
}

/// Reads `1s`, `10s`, `500ms`, `1m`, `1h`, `0.5s`; a bare number is seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 1s, 500ms, 1m)"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" | "sec" => n * 1e3,
        "m" | "min" => n * 60e3,
        "h" => n * 3600e3,
        u => return Err(format!("unknown unit `{u}` (use ms, s, m or h)")),
    };
    if !(ms >= 1.0 && ms.is_finite()) {
        return Err(format!("`{s}` is too short: at least 1ms"));
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

/// Reads a 128-bit key from 32 hex digits.
pub fn parse_key(s: &str) -> Result<[u8; 16]> {
    crate::source::parse_key("--key", s)
}

/// Runs the command; returns the process exit code.
pub fn run(args: SimulateArgs) -> Result<i32> {
    let key = args.key.as_deref().map(parse_key).transpose()?;
    if key.is_none() && args.dialect.is_encrypted() {
        anyhow::bail!(
            "--dialect {} is encrypted: give the meter key with --key <32 hex digits>",
            args.dialect
        );
    }
    if key.is_some() && !args.dialect.is_encrypted() {
        eprintln!(
            "simulate: note: --key is ignored, {} is not encrypted",
            args.dialect
        );
    }
    let realtime = if args.fast {
        false
    } else {
        args.realtime || args.count.is_none() || args.tcp_listen.is_some()
    };
    let start = match &args.start {
        Some(s) => parse_rfc3339(s)?,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_secs() as i64;
            match (args.count, realtime) {
                // A burst of N telegrams ends now: history, not the future.
                (Some(n), false) => {
                    let span = args.interval.as_secs_f64() * n.saturating_sub(1) as f64;
                    Timestamp(now - span.ceil() as i64)
                }
                _ => Timestamp(now),
            }
        }
    };
    let mut sim = Simulator::new(args.dialect, args.seed, start, args.interval)?;
    if let Some(k) = key {
        sim = sim.with_key(k);
    }
    match &args.tcp_listen {
        Some(addr) => serve(sim, addr, args.count, realtime),
        None => to_stdout(sim, args.count, realtime),
    }
}

/// Sleeps until the wall clock reaches the simulator's next frame, measured from `t0`.
struct Pacer {
    t0: Instant,
    sim_t0_ms: i64,
}

impl Pacer {
    fn new(sim: &Simulator) -> Pacer {
        Pacer {
            t0: Instant::now(),
            sim_t0_ms: sim.next_time_ms(),
        }
    }
    fn wait(&self, sim: &Simulator) {
        let due = self.t0 + Duration::from_millis((sim.next_time_ms() - self.sim_t0_ms) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

fn to_stdout(mut sim: Simulator, count: Option<u64>, realtime: bool) -> Result<i32> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let pacer = Pacer::new(&sim);
    let mut n = 0u64;
    let result = (|| -> io::Result<()> {
        while count.is_none_or(|c| n < c) {
            if realtime {
                pacer.wait(&sim);
            }
            let (_, frame) = sim.next_frame();
            out.write_all(frame)?;
            if realtime {
                out.flush()?;
            }
            n += 1;
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        r => {
            r.context("writing to stdout failed")?;
            Ok(0)
        }
    }
}

/// One connected TCP client: a bounded queue to its writer thread.
struct Client {
    peer: String,
    queue: std::sync::mpsc::SyncSender<Arc<[u8]>>,
    stream: TcpStream,
}

/// Frames a client may fall behind before it is dropped.
const CLIENT_BACKLOG: usize = 32;

fn serve(mut sim: Simulator, addr: &str, count: Option<u64>, realtime: bool) -> Result<i32> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    eprintln!("simulate: serving {} on {local}", sim.dialect());
    let clients: Arc<Mutex<Vec<Client>>> = Arc::default();
    let accepting = Arc::clone(&clients);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string());
            let Ok(mut writer) = stream.try_clone() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let _ = writer.set_write_timeout(Some(Duration::from_secs(10)));
            let (tx, rx) = sync_channel::<Arc<[u8]>>(CLIENT_BACKLOG);
            std::thread::spawn(move || {
                for frame in rx {
                    if writer.write_all(&frame).is_err() {
                        break;
                    }
                }
                let _ = writer.shutdown(Shutdown::Both);
            });
            eprintln!("simulate: client {peer} connected");
            accepting.lock().expect("client list").push(Client {
                peer,
                queue: tx,
                stream,
            });
        }
    });
    let pacer = Pacer::new(&sim);
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        if realtime {
            pacer.wait(&sim);
        }
        let (_, frame) = sim.next_frame();
        let frame: Arc<[u8]> = Arc::from(frame);
        clients.lock().expect("client list").retain(|c| {
            match c.queue.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    eprintln!("simulate: client {} too slow, dropped", c.peer);
                    let _ = c.stream.shutdown(Shutdown::Both);
                    false
                }
                Err(TrySendError::Disconnected(_)) => {
                    eprintln!("simulate: client {} disconnected", c.peer);
                    false
                }
            }
        });
        n += 1;
    }
    // Let the writers drain what they have, then close.
    let done = std::mem::take(&mut *clients.lock().expect("client list"));
    drop(done);
    std::thread::sleep(Duration::from_millis(200));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("1 fortnight").is_err());
        assert!(parse_interval("s").is_err());
    }

    #[test]
    fn rfc3339() {
        let t = |s| parse_rfc3339(s).unwrap().to_string();
        assert_eq!(t("2026-03-29T00:00:00Z"), "2026-03-29T00:00:00Z");
        assert_eq!(t("2026-03-29T02:00:00+02:00"), "2026-03-29T00:00:00Z");
        assert_eq!(t("2026-03-28T23:30:00.250-00:30"), "2026-03-29T00:00:00Z");
        for bad in [
            "2026-03-29",
            "2026-03-29T00:00:00",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(
            parse_key("000102030405060708090a0b0c0d0e0f").unwrap()[15],
            0x0f
        );
        assert!(parse_key("0001").is_err());
        assert!(parse_key("zz0102030405060708090a0b0c0d0e0f").is_err());
    }
}
