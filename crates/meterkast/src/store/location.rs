//! Where the store lives: a SQLite file (one house) or a PostgreSQL database (many
//! meters, several writing processes), chosen by the `--db` value.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::ingest::{Backend, Locked, MeterRow, NewMeter, WriteBatch};
use super::postgres::{PgUrl, PostgresBackend, PostgresReader};
use super::sqlite::{SqliteBackend, SqliteReader};
use super::{Sample, StoreRead};

/// A store location as given by `--db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host/db[?schema=NAME]`).
    Postgres(PgUrl),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL, or else a file path for SQLite.
    pub fn parse(s: &str) -> Result<Location> {
        let s = s.trim();
        if s.is_empty() {
            bail!(
                "--db is empty: give a file such as meterkast.db, or postgres://user@host/database"
            );
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Location::Postgres(PgUrl::parse(s)?));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            {
                bail!(
                    "--db {scheme}://…: not a store meterkast knows; give a file path for SQLite, or postgres://user@host/database"
                );
            }
        }
        Ok(Location::Sqlite(PathBuf::from(s)))
    }

    /// Opens the store for writing (creating and migrating it as needed).
    pub fn open_backend(&self) -> Result<AnyBackend> {
        Ok(match self {
            Location::Sqlite(p) => AnyBackend::Sqlite(SqliteBackend::open(p)?),
            Location::Postgres(u) => AnyBackend::Postgres(Box::new(PostgresBackend::open(u)?)),
        })
    }

    /// Opens a reader.
    pub fn open_reader(&self) -> Result<Box<dyn StoreRead + Send>> {
        Ok(match self {
            Location::Sqlite(p) => Box::new(SqliteReader::open(p)?),
            Location::Postgres(u) => Box::new(PostgresReader::open(u)?),
        })
    }

    /// Where files that belong with this store go, as a path to add a suffix to: the
    /// database file itself for SQLite (`meterkast.db.mqtt-queue`), and
    /// `STATE_DIR/meterkast` for PostgreSQL (`STATE_DIR/meterkast.mqtt-queue`).
    pub fn state_base(&self, state_dir: &Path) -> PathBuf {
        match self {
            Location::Sqlite(p) => p.clone(),
            Location::Postgres(_) => state_dir.join("meterkast"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(u) => write!(f, "{u}"),
        }
    }
}

/// Either backend, so that one ingestor type serves both.
pub enum AnyBackend {
    /// SQLite.
    Sqlite(SqliteBackend),
    /// PostgreSQL (boxed: its client is large, and there is one backend per process).
    Postgres(Box<PostgresBackend>),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Sqlite($b) => $e,
            AnyBackend::Postgres($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    fn load_meters(&mut self) -> Result<Vec<MeterRow>> {
        each!(self, b => b.load_meters())
    }
    fn create_meter(&mut self, m: &NewMeter) -> Result<i64> {
        each!(self, b => b.create_meter(m))
    }
    fn apply(&mut self, batch: &WriteBatch) -> Result<()> {
        each!(self, b => b.apply(batch))
    }
    fn around(&mut self, meter: i64, from: i64, to: i64) -> Result<super::ingest::Around> {
        each!(self, b => b.around(meter, from, to))
    }
    fn delete_samples_before(&mut self, t: i64) -> Result<u64> {
        each!(self, b => b.delete_samples_before(t))
    }
    fn shared(&self) -> bool {
        each!(self, b => b.shared())
    }
    fn commit_shared(
        &mut self,
        readings: &[(i64, Sample)],
        build: &mut dyn FnMut(&Locked) -> WriteBatch,
    ) -> Result<()> {
        each!(self, b => b.commit_shared(readings, build))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            Location::parse("meterkast.db").unwrap(),
            Location::Sqlite("meterkast.db".into())
        );
        assert!(matches!(
            Location::parse("postgresql://u@h/db").unwrap(),
            Location::Postgres(_)
        ));
        let e = Location::parse("mysql://root@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgres://"), "{e}");
        assert!(Location::parse("  ").is_err());
        let l = Location::parse("postgres://u:pw@h/db").unwrap();
        assert!(!l.to_string().contains("pw@"), "{l}");
        assert_eq!(
            l.state_base(Path::new("/var/lib/meterkast")),
            PathBuf::from("/var/lib/meterkast/meterkast")
        );
    }
}
