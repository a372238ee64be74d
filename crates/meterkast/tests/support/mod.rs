//! Helpers for tests that run the real daemon: DSMR telegrams with valid CRCs, free
//! ports, a daemon process with its own database, and plain HTTP GETs.
#![allow(dead_code)]

pub mod broker;
pub mod maria;
pub mod pg;

/// Defines two tests that run `$body(dir, db)`: on a SQLite file in a fresh folder, and
/// (`--ignored`, needing the local server, started if down) on a fresh PostgreSQL
/// database, in a schema of its own to exercise `?schema=`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($body:ident, $sqlite:ident, $pg:ident) => {
        #[test]
        fn $sqlite() {
            let dir = support::tmpdir(stringify!($sqlite));
            $body(&dir, &dir.join("meterkast.db"));
        }
        #[test]
        #[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started if down)"]
        fn $pg() {
            let dir = support::tmpdir(stringify!($pg));
            let pg = support::pg::PgDb::new();
            $body(&dir, std::path::Path::new(&pg.url(Some("tenant_a"))));
        }
    };
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meterkast_codec::crc::crc16_arc;
use meterkast_codec::Timestamp;

/// A DSMR 5 telegram for meter `id` at unix time `t` with import register `wh`.
pub fn telegram(id: &str, t: i64, wh: i64) -> Vec<u8> {
    let (c, off) = Timestamp(t).to_cet();
    let flag = if off == 7200 { 'S' } else { 'W' };
    let hex: String = id.bytes().map(|b| format!("{b:02X}")).collect();
    let body = format!(
        "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0({:02}{:02}{:02}{:02}{:02}{:02}{flag})\r\n0-0:96.1.1({hex})\r\n\
         1-0:1.8.1({:06}.{:03}*kWh)\r\n1-0:1.8.2(000000.000*kWh)\r\n1-0:2.8.1(000000.000*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n\
         0-0:96.14.0(0001)\r\n1-0:1.7.0(00.360*kW)\r\n1-0:2.7.0(00.000*kW)\r\n!",
        c.year % 100,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        wh / 1000,
        wh % 1000
    );
    let mut v = body.into_bytes();
    v.extend_from_slice(format!("{:04X}\r\n", crc16_arc(&v)).as_bytes());
    v
}

/// Decodes telegrams and gives each to the store's ingestor as the daemon does (with
/// the frame JSON when `with_frame`), as received live at `received` when given, else
/// as an import does; returns what became of each.
pub fn ingest_telegrams(
    ing: &mut meterkast::store::Ingestor<meterkast::store::AnyBackend>,
    bytes: &[u8],
    received: Option<i64>,
    with_frame: bool,
) -> Vec<meterkast::store::Outcome> {
    let mut d = meterkast_codec::Decoder::new();
    d.push(bytes);
    d.finish();
    let mut out = vec![];
    while let Some(ev) = d.next() {
        let f = ev.expect("valid telegram");
        let inc = meterkast::pipeline::incoming("test", &f.telegram, f.raw, 0, with_frame);
        out.push(match received {
            Some(r) => ing.add_at(inc, r).unwrap(),
            None => ing.add(inc).unwrap(),
        });
    }
    out
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The store a `--db` value names.
pub fn location(db: &Path) -> meterkast::store::Location {
    meterkast::store::Location::parse(db.to_str().expect("UTF-8")).unwrap()
}

/// A fresh folder for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meterkast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `meterkast run`, killed when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its HTTP port.
    pub port: u16,
    /// Its database.
    pub db: PathBuf,
}

impl Daemon {
    /// Starts `meterkast run` with a database in `dir`, the given sources and extra
    /// environment, and waits until its HTTP side answers.
    pub fn start(dir: &Path, sources: &[String], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_db(dir, &dir.join("meterkast.db"), sources, env)
    }

    /// [`start`](Self::start) with the given `--db` (a file or a `postgres://` URL);
    /// the log still goes to `dir`.
    pub fn start_db(dir: &Path, db: &Path, sources: &[String], env: &[(&str, &str)]) -> Daemon {
        let mut args = vec!["--db".to_string(), db.display().to_string()];
        for s in sources {
            args.push("--source".into());
            args.push(s.clone());
        }
        let mut d = Daemon::run(dir, &args, env);
        d.db = db.to_path_buf();
        d
    }

    /// Starts `meterkast run` with exactly these arguments (and `--http`), logging to
    /// `dir`; `db` is `dir/meterkast.db` whether or not the arguments use it.
    pub fn run(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let db = dir.join("meterkast.db");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meterkast"));
        cmd.arg("run")
            .args(args)
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(dir.join(format!("daemon-{port}.log"))).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let d = Daemon { child, port, db };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(d.port, "/healthz").is_none() {
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer /healthz"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// GET a path, parsed as JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&get(self.port, path).expect("an HTTP answer")).expect("JSON")
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET; the body, or `None` when nothing answers.
pub fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (_, body) = out.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// Waits until `f` holds, or fails the test after `secs`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number of readings of the latest reading's import register, via the API.
pub fn latest_import_kwh(d: &Daemon) -> Option<f64> {
    d.json("/api/v1/now")
        .get(0)?
        .get("reading")?
        .get("total_power_import_kwh")?
        .as_f64()
}

/// Runs `meterkast import --db DB FILE` and checks it succeeded.
pub fn import(db: &Path, file: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .arg("import")
        .arg("--db")
        .arg(db)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GET with headers; the status code and body.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, _, body) = get_head(port, path, headers);
    (status, body)
}

/// A GET with headers (a `Host: localhost` unless given); the status code, the
/// response head with lower-case text, and the body.
pub fn get_head(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Any request with a body; the status, the headers (lowercased) and the body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading a huge body: a failed write is fine.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), out[split + 4..].to_vec())
}

/// A python venv under `target/NAME` with `package==version` from PyPI, made once and
/// reused while `module` imports and the version matches.
pub fn python_venv(name: &str, package: &str, version: &str, module: &str) -> PathBuf {
    python_venv_with(Path::new("python3"), name, package, version, module)
}

/// pyenv's newest Python `minor` (e.g. `"3.13"`): `~/.pyenv/versions/3.13.*/bin/python3`.
pub fn pyenv_python(minor: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".pyenv"));
    let versions = root.join("versions");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&versions)
        .unwrap_or_else(|e| panic!("no pyenv at {}: {e}", versions.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let rest = name.strip_prefix(minor)?.strip_prefix('.')?;
            let patch: u32 = rest.parse().ok()?;
            let py = versions.join(&name).join("bin/python3");
            py.exists().then_some((patch, py))
        })
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no Python {minor} in {}", versions.display()))
        .1
}

/// [`python_venv`] made with the given Python interpreter.
pub fn python_venv_with(
    python: &Path,
    name: &str,
    package: &str,
    version: &str,
    module: &str,
) -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(name);
    let py = target.join("bin/python");
    let check = format!(
        "import {module}, importlib.metadata as m; assert m.version('{package}') == '{version}'"
    );
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", &check])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return py;
    }
    // Tests that need the same venv run at once (threads, or processes under
    // nextest): the first makes it while the others wait on the lock, then find it.
    std::fs::create_dir_all(target.parent().expect("under target")).expect("target dir");
    let lock = std::fs::File::create(target.with_extension("lock")).expect("venv lock file");
    lock.lock().expect("venv lock");
    if !ok(&py) {
        let _ = std::fs::remove_dir_all(&target);
        let s = Command::new(python)
            .arg("-m")
            .arg("venv")
            .arg(&target)
            .status()
            .expect("python3");
        assert!(s.success(), "{} -m venv failed", python.display());
        let pin = format!("{package}=={version}");
        let s = Command::new(target.join("bin/pip"))
            .args(["install", "-q", &pin])
            .status()
            .expect("pip");
        assert!(s.success(), "pip install {pin} failed");
        assert!(ok(&py));
    }
    py
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.pem`, `server.key`), made in `dir` with the openssl tool.
pub fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl tool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=meterkast test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
}
