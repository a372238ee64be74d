//! A fresh PostgreSQL database per test on the local server (started if it is down),
//! dropped again at the end.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meterkast::store::Location;

/// The local server, as the test machine has it (trust authentication).
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn up() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 5432).into(), Duration::from_secs(1))
        .is_ok()
}

/// Starts the local PostgreSQL cluster if nothing listens on 5432.
pub fn ensure_running() {
    if up() {
        return;
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | tail -1) main start")
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up() {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not start on 127.0.0.1:5432"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin() -> postgres::Client {
    postgres::Client::connect(&format!("{SERVER}/postgres"), postgres::NoTls)
        .expect("connect to the local PostgreSQL as postgres")
}

/// A database of its own for one test; dropped with everything in it.
pub struct PgDb {
    /// Its name (`mk_test_PID_N`).
    pub name: String,
}

impl PgDb {
    /// Creates a fresh database.
    pub fn new() -> PgDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        ensure_running();
        let name = format!(
            "mk_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = admin();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        PgDb { name }
    }

    /// Its URL, optionally with `?schema=`.
    pub fn url(&self, schema: Option<&str>) -> String {
        match schema {
            Some(s) => format!("{SERVER}/{}?schema={s}", self.name),
            None => format!("{SERVER}/{}", self.name),
        }
    }

    /// Its store location.
    pub fn location(&self, schema: Option<&str>) -> Location {
        Location::parse(&self.url(schema)).unwrap()
    }

    /// A plain connection, to look at the tables.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(None), postgres::NoTls).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
