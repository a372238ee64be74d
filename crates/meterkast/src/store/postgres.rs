//! The PostgreSQL store, for many meters and several writing processes: one row per
//! full-resolution reading (a TimescaleDB hypertable with compression when the
//! extension is there, a plain table otherwise), the same additive roll-ups as SQLite,
//! and commits that lock the meters they touch so that concurrent writers count every
//! reading exactly once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row};

use super::calendar::Step;
use super::ingest::{
    Around, Backend, Locked, MeterRow, MeterUpdate, NewMeter, Rollup, WriteBatch, EXTREMES, SUMS,
};
use super::sample::{decode_chunk, Sample, N};
use super::{MeterInfo, RollupRow, StoreRead};

/// The columns of the `readings` table after `meter_id` and `ts`, in the order of
/// [`FIELDS`](super::sample::FIELDS), in stored units (Wh, W, dV, cA, dm³, MJ).
pub const READING_COLUMNS: [&str; N] = [
    "import_t1_wh",
    "import_t2_wh",
    "import_t3_wh",
    "import_t4_wh",
    "export_t1_wh",
    "export_t2_wh",
    "export_t3_wh",
    "export_t4_wh",
    "import_wh",
    "export_wh",
    "power_w",
    "power_l1_w",
    "power_l2_w",
    "power_l3_w",
    "voltage_l1_dv",
    "voltage_l2_dv",
    "voltage_l3_dv",
    "current_l1_ca",
    "current_l2_ca",
    "current_l3_ca",
    "tariff",
    "gas_dm3",
    "gas_ts",
    "water_dm3",
    "heat_mj",
    "avg_power_w",
    "peak_power_w",
];

/// A PostgreSQL server and database as given by `--db postgres://…`, with the optional
/// `?schema=NAME` taken out (the server does not know that parameter).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    url: String,
    schema: Option<String>,
}

use crate::redact::url as redact;

impl PgUrl {
    /// Checks a `postgres://` or `postgresql://` URL.
    pub fn parse(s: &str) -> Result<PgUrl> {
        let shown = redact(s);
        let mut u = url::Url::parse(s).map_err(|e| {
            anyhow!(
                "{shown}: not a valid URL ({e}); use postgres://user:password@host:5432/database"
            )
        })?;
        let mut schema = None;
        let mut kept = vec![];
        for (k, v) in u.query_pairs() {
            if k == "schema" {
                schema = Some(v.into_owned());
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
        if let Some(sc) = &schema {
            let ok = !sc.is_empty()
                && sc.len() <= 63
                && sc.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && sc
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                bail!("{shown}: schema={sc} is not a usable schema name; use lower-case letters, digits and _ (at most 63)");
            }
        }
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
        let url = u.to_string();
        url.parse::<postgres::Config>().map_err(|e| {
            anyhow!("{shown}: {e}; use postgres://user:password@host:5432/database")
        })?;
        Ok(PgUrl { url, schema })
    }

    /// The schema the tables live in, when not the server's default (`public`).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Opens a connection, its search path set to the schema.
    pub fn connect(&self) -> Result<Client> {
        let mut cfg: postgres::Config = self.url.parse().map_err(|e| anyhow!("{self}: {e}"))?;
        if let Some(s) = &self.schema {
            cfg.options(&format!("-c search_path={s}"));
        }
        cfg.application_name("meterkast");
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        cfg.connect(NoTls).map_err(|e| {
            anyhow!(
                "cannot connect to the PostgreSQL database {self}: {} (is the server running and reachable, do the user and password match, and does the database exist? create it with: createdb NAME)",
                pg_error(&e)
            )
        })
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = redact(&self.url);
        if let Some(sc) = &self.schema {
            s.push_str(if s.contains('?') { "&" } else { "?" });
            s.push_str("schema=");
            s.push_str(sc);
        }
        f.write_str(&s)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

/// The server's own words for an error (the crate's `Display` says only "db error").
fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(h) = db.hint() {
                s.push_str(&format!(" ({h})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// `postgres::Error` into `anyhow::Error` with the server's message.
trait PgContext<T> {
    fn pg(self, what: &str) -> Result<T>;
}

impl<T> PgContext<T> for std::result::Result<T, postgres::Error> {
    fn pg(self, what: &str) -> Result<T> {
        self.map_err(|e| anyhow!("{what}: {}", pg_error(&e)))
    }
}

fn rollup_columns() -> Vec<String> {
    let mut cols: Vec<String> = SUMS.iter().map(|s| s.to_string()).collect();
    for e in EXTREMES {
        cols.push(format!("min_{e}"));
        cols.push(format!("max_{e}"));
    }
    cols
}

/// Schema versions, applied in order inside one transaction each; every statement is
/// idempotent so that a half-applied version (or a second process) does no harm.
fn migrations() -> Vec<String> {
    let readings = READING_COLUMNS
        .iter()
        .map(|c| format!("{c} BIGINT"))
        .collect::<Vec<_>>()
        .join(", ");
    let sums = SUMS
        .iter()
        .map(|c| format!("{c} BIGINT NOT NULL"))
        .collect::<Vec<_>>()
        .join(", ");
    let ext = EXTREMES
        .iter()
        .map(|e| format!("min_{e} BIGINT, max_{e} BIGINT"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        format!(
            r#"
CREATE TABLE IF NOT EXISTS meters (
    id BIGSERIAL PRIMARY KEY,
    equipment_id TEXT NOT NULL UNIQUE,
    dialect TEXT NOT NULL,
    source TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    replaces BIGINT REFERENCES meters(id),
    submeters TEXT NOT NULL DEFAULT '[]',
    last_frame TEXT,
    last_raw BYTEA,
    state BYTEA,
    first_ts BIGINT
);
CREATE TABLE IF NOT EXISTS readings (
    meter_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    {readings},
    PRIMARY KEY (meter_id, ts)
);
CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts);
CREATE TABLE IF NOT EXISTS rollups (
    meter_id BIGINT NOT NULL,
    step INTEGER NOT NULL,
    start BIGINT NOT NULL,
    "end" BIGINT NOT NULL,
    {sums},
    {ext},
    PRIMARY KEY (meter_id, step, start)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#
        ),
        // The latest frame of each meter (kilobytes of JSON) moves out of `meters`,
        // whose rows every commit updates: there it made each update copy the frame,
        // and the table bloated by hundreds of megabytes in minutes at thousands of
        // meters. Free room on each page lets the frequent updates stay on the page
        // (HOT) instead of growing the table and its indexes.
        r#"
CREATE TABLE IF NOT EXISTS meter_frames (
    meter_id BIGINT PRIMARY KEY REFERENCES meters(id),
    ts BIGINT NOT NULL,
    frame TEXT NOT NULL,
    raw BYTEA NOT NULL
);
INSERT INTO meter_frames (meter_id, ts, frame, raw)
    SELECT id, last_seen, last_frame, coalesce(last_raw, ''::BYTEA) FROM meters
    WHERE last_frame IS NOT NULL
    ON CONFLICT (meter_id) DO NOTHING;
ALTER TABLE meters DROP COLUMN IF EXISTS last_frame, DROP COLUMN IF EXISTS last_raw;
ALTER TABLE meters SET (fillfactor = 50);
ALTER TABLE meter_frames SET (fillfactor = 50);
ALTER TABLE rollups SET (fillfactor = 60);
"#
        .to_string(),
        // Readings whose time cannot be right, kept as such and never counted.
        r#"
CREATE TABLE IF NOT EXISTS suspect_readings (
    meter_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    reason TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (meter_id, ts)
);
"#
        .to_string(),
    ]
}

/// An arbitrary constant: the advisory lock that serializes migrations of processes
/// starting together.
const MIGRATION_LOCK: i64 = 0x6d6b_7374;

/// Brings the schema up to date; returns whether `readings` is a TimescaleDB hypertable.
fn migrate(c: &mut Client, url: &PgUrl) -> Result<bool> {
    let all = migrations();
    let mut tx = c.transaction().pg("cannot start a transaction")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .pg("cannot take the migration lock")?;
    if let Some(s) = url.schema() {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
            .pg(&format!("cannot create the schema {s}"))?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .pg(&format!(
            "cannot create tables in {url} (does the user have the CREATE privilege?)"
        ))?;
    let version: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .pg("cannot read the schema version")?
        .get(0);
    let version = usize::try_from(version).unwrap_or(0);
    if version > all.len() {
        bail!(
            "{url} was written by a newer meterkast (schema {version}, this build knows {}); upgrade meterkast",
            all.len()
        );
    }
    for (i, m) in all.iter().enumerate().skip(version) {
        tx.batch_execute(m)
            .pg(&format!("schema migration {} failed", i + 1))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&((i + 1) as i32)],
        )
        .pg("cannot record the schema version")?;
    }
    tx.commit().pg("cannot commit the schema")?;
    Ok(timescale(c))
}

/// Turns `readings` into a compressed hypertable when TimescaleDB can be had; plain
/// tables otherwise (the same queries work on both).
fn timescale(c: &mut Client) -> bool {
    let available = c
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
            &[],
        )
        .ok()
        .flatten()
        .is_some();
    if !available {
        return false;
    }
    let mut setup = || -> std::result::Result<(), postgres::Error> {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            r#"
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE OR REPLACE FUNCTION meterkast_unix_now() RETURNS BIGINT LANGUAGE SQL STABLE
    AS $$ SELECT extract(epoch FROM now())::BIGINT $$;
SELECT create_hypertable('readings', 'ts', chunk_time_interval => 604800,
    if_not_exists => TRUE, migrate_data => TRUE);
SELECT set_integer_now_func('readings', 'meterkast_unix_now', replace_if_exists => TRUE);
"#,
        )?;
        let compressed: bool = tx
            .query_one(
                "SELECT coalesce((SELECT compression_enabled FROM timescaledb_information.hypertables \
                 WHERE hypertable_name = 'readings' AND hypertable_schema = current_schema()), false)",
                &[],
            )?
            .get(0);
        if !compressed {
            tx.batch_execute(
                "ALTER TABLE readings SET (timescaledb.compress, \
                 timescaledb.compress_segmentby = 'meter_id', timescaledb.compress_orderby = 'ts')",
            )?;
        }
        tx.batch_execute(
            "SELECT add_compression_policy('readings', compress_after => BIGINT '172800', if_not_exists => TRUE)",
        )?;
        tx.commit()
    };
    match setup() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "TimescaleDB is installed but could not be enabled ({}); using plain tables",
                pg_error(&e)
            );
            false
        }
    }
}

fn is_hypertable(c: &mut impl GenericClient) -> bool {
    c.query_opt(
        "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
        &[],
    )
    .ok()
    .flatten()
    .is_some()
        && c.query_opt(
            "SELECT 1 FROM timescaledb_information.hypertables \
             WHERE hypertable_name = 'readings' AND hypertable_schema = current_schema()",
            &[],
        )
        .ok()
        .flatten()
        .is_some()
}

/// The writing side of the PostgreSQL store. Several processes may write at once.
pub struct PostgresBackend {
    client: Client,
    url: PgUrl,
    hypertable: bool,
}

impl PostgresBackend {
    /// Connects, brings the schema up to date and enables TimescaleDB when available.
    pub fn open(url: &PgUrl) -> Result<Self> {
        let mut client = url.connect()?;
        let hypertable = migrate(&mut client, url)?;
        Ok(PostgresBackend {
            client,
            url: url.clone(),
            hypertable,
        })
    }

    /// The connection, opened again if the server closed it (a restart, a failover,
    /// an administrator ending it): the next commit goes through once it is back.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_closed() {
            tracing::warn!("{}: the connection was closed; connecting again", self.url);
            self.client = self.url.connect()?;
        }
        Ok(&mut self.client)
    }

    /// Whether full-resolution readings are in a TimescaleDB hypertable.
    pub fn hypertable(&self) -> bool {
        self.hypertable
    }
}

fn state_of(b: Option<Vec<u8>>) -> Option<Sample> {
    b.and_then(|b| decode_chunk(&b)).and_then(|mut v| v.pop())
}

/// How readings go in. Small batches (the daemon's twice-a-second commits): one
/// `INSERT … SELECT FROM unnest(arrays)`, a single round trip. Large ones (imports,
/// busy ingest workers): binary `COPY` into a temporary table, then `INSERT … SELECT`
/// from it, twice as fast per reading (`bench/postgres.sh`). `MK_PG_INSERT=copy` or
/// `=unnest` forces one way, for measuring.
fn use_copy(n: usize) -> bool {
    static FORCED: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let forced = *FORCED.get_or_init(|| match std::env::var("MK_PG_INSERT").as_deref() {
        Ok("copy") => Some(true),
        Ok("unnest") => Some(false),
        _ => None,
    });
    forced.unwrap_or(n >= COPY_FROM)
}

/// Readings in a commit from which `COPY` is used.
const COPY_FROM: usize = 500;

/// Stores readings that are not there yet; returns the (meter, time) of those stored.
fn insert_readings(
    tx: &mut postgres::Transaction<'_>,
    readings: &[(i64, Sample)],
) -> Result<HashSet<(i64, i64)>> {
    if use_copy(readings.len()) {
        insert_readings_copy(tx, readings)
    } else {
        insert_readings_unnest(tx, readings)
    }
}

fn insert_readings_copy(
    tx: &mut postgres::Transaction<'_>,
    readings: &[(i64, Sample)],
) -> Result<HashSet<(i64, i64)>> {
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE readings) ON COMMIT DELETE ROWS",
    )
    .pg("cannot create a temporary table")?;
    let types = vec![postgres::types::Type::INT8; N + 2];
    let sink = tx
        .copy_in(&format!(
            "COPY readings_in (meter_id, ts, {}) FROM STDIN BINARY",
            READING_COLUMNS.join(",")
        ))
        .pg("COPY failed")?;
    let mut w = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
    for (m, s) in readings {
        let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(N + 2);
        row.push(m);
        row.push(&s.ts);
        row.extend(s.v.iter().map(|x| x as &(dyn ToSql + Sync)));
        w.write(&row).pg("COPY failed")?;
    }
    w.finish().pg("COPY failed")?;
    let rows = tx
        .query(
            "INSERT INTO readings SELECT * FROM readings_in ON CONFLICT (meter_id, ts) DO NOTHING RETURNING meter_id, ts",
            &[],
        )
        .pg("storing readings failed")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn insert_readings_unnest(
    tx: &mut impl GenericClient,
    readings: &[(i64, Sample)],
) -> Result<HashSet<(i64, i64)>> {
    let meters: Vec<i64> = readings.iter().map(|r| r.0).collect();
    let ts: Vec<i64> = readings.iter().map(|r| r.1.ts).collect();
    let cols: Vec<Vec<Option<i64>>> = (0..N)
        .map(|k| readings.iter().map(|r| r.1.v[k]).collect())
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&meters, &ts];
    params.extend(cols.iter().map(|c| c as &(dyn ToSql + Sync)));
    let arrays = (1..=N + 2)
        .map(|i| format!("${i}::BIGINT[]"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "INSERT INTO readings (meter_id, ts, {}) SELECT * FROM unnest({arrays}) \
         ON CONFLICT (meter_id, ts) DO NOTHING RETURNING meter_id, ts",
        READING_COLUMNS.join(",")
    );
    let rows = tx.query(&sql, &params).pg("storing readings failed")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What is stored around the readings of each meter that are older than its
/// baseline: the readings in their time range and the one just before and after.
fn around_readings(
    tx: &mut impl GenericClient,
    ranges: &[(i64, i64, i64)],
    first_ts: &HashMap<i64, Option<i64>>,
) -> Result<HashMap<i64, Around>> {
    let sql = format!(
        "SELECT ts, {cols} FROM readings WHERE meter_id = $1 AND ts >= coalesce((SELECT max(ts) FROM readings WHERE meter_id = $1 AND ts < $2), $2) \
         AND ts <= coalesce((SELECT min(ts) FROM readings WHERE meter_id = $1 AND ts > $3), $3) ORDER BY ts",
        cols = READING_COLUMNS.join(",")
    );
    let mut out = HashMap::new();
    for &(m, from, to) in ranges {
        let rows = tx
            .query(&sql, &[&m, &from, &to])
            .pg("cannot read the readings around late ones")?;
        out.insert(
            m,
            Around {
                stored: rows.iter().map(|r| sample_of(r, 0)).collect(),
                first: first_ts.get(&m).copied().flatten(),
            },
        );
    }
    Ok(out)
}

/// A sample from a row's `ts` column at `at` and the reading columns after it.
fn sample_of(r: &Row, at: usize) -> Sample {
    let mut v = [None; N];
    for (k, x) in v.iter_mut().enumerate() {
        *x = r.get(at + 1 + k);
    }
    Sample { ts: r.get(at), v }
}

/// Adds roll-up contributions and updates meter state: the part of a commit both
/// paths share.
fn write_batch(tx: &mut impl GenericClient, batch: &WriteBatch) -> Result<()> {
    if !batch.chunks.is_empty() {
        bail!("the PostgreSQL store keeps readings as rows, not chunks");
    }
    if !batch.suspects.is_empty() {
        let xs = &batch.suspects;
        let meter: Vec<i64> = xs.iter().map(|x| x.meter).collect();
        let ts: Vec<i64> = xs.iter().map(|x| x.ts).collect();
        let reason: Vec<&str> = xs.iter().map(|x| x.reason.as_str()).collect();
        let data: Vec<&[u8]> = xs.iter().map(|x| x.data.as_slice()).collect();
        tx.execute(
            "INSERT INTO suspect_readings (meter_id, ts, reason, data) \
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BYTEA[]) ON CONFLICT DO NOTHING",
            &[&meter, &ts, &reason, &data],
        )
        .pg("storing suspect readings failed")?;
        // A late reading found suspect in this commit was inserted with the others.
        tx.execute(
            "DELETE FROM readings r USING unnest($1::BIGINT[], $2::BIGINT[]) AS u(m, t) WHERE r.meter_id = u.m AND r.ts = u.t",
            &[&meter, &ts],
        )
        .pg("removing suspect readings failed")?;
        tx.execute(
            "UPDATE meters m SET first_ts = (SELECT min(ts) FROM readings r WHERE r.meter_id = m.id) WHERE m.id = ANY($1)",
            &[&meter],
        )
        .pg("updating meters failed")?;
    }
    if !batch.rollups.is_empty() {
        let rs = &batch.rollups;
        let meter: Vec<i64> = rs.iter().map(|r| r.0 .0).collect();
        let step: Vec<i32> = rs.iter().map(|r| r.0 .1.code() as i32).collect();
        let start: Vec<i64> = rs.iter().map(|r| r.0 .2).collect();
        let end: Vec<i64> = rs.iter().map(|r| r.1).collect();
        let sums: Vec<Vec<i64>> = (0..SUMS.len())
            .map(|k| rs.iter().map(|r| r.2.sums[k]).collect())
            .collect();
        let ext: Vec<Vec<Option<i64>>> = (0..EXTREMES.len())
            .flat_map(|k| {
                [
                    rs.iter().map(|r| r.2.min[k]).collect(),
                    rs.iter().map(|r| r.2.max[k]).collect(),
                ]
            })
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&meter, &step, &start, &end];
        params.extend(sums.iter().map(|c| c as &(dyn ToSql + Sync)));
        params.extend(ext.iter().map(|c| c as &(dyn ToSql + Sync)));
        tx.execute(&upsert_sql(), &params)
            .pg("storing roll-ups failed")?;
    }
    if !batch.meters.is_empty() {
        let ms = &batch.meters;
        let id: Vec<i64> = ms.iter().map(|m| m.meter).collect();
        let seen: Vec<i64> = ms.iter().map(|m| m.last_seen).collect();
        let dialect: Vec<&str> = ms.iter().map(|m| m.dialect.as_str()).collect();
        let sub: Vec<&str> = ms.iter().map(|m| m.submeters.as_str()).collect();
        let state: Vec<&[u8]> = ms.iter().map(|m| m.state.as_slice()).collect();
        tx.execute(
            "UPDATE meters m SET last_seen = GREATEST(m.last_seen, u.last_seen), dialect = u.dialect, \
             submeters = u.submeters, state = u.state \
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BYTEA[]) \
             AS u(id, last_seen, dialect, submeters, state) WHERE m.id = u.id",
            &[&id, &seen, &dialect, &sub, &state],
        )
        .pg("updating meters failed")?;
        let framed: Vec<&MeterUpdate> = ms.iter().filter(|m| m.frame.is_some()).collect();
        if !framed.is_empty() {
            let id: Vec<i64> = framed.iter().map(|m| m.meter).collect();
            let seen: Vec<i64> = framed.iter().map(|m| m.last_seen).collect();
            let frame: Vec<&str> = framed.iter().filter_map(|m| m.frame.as_deref()).collect();
            let raw: Vec<&[u8]> = framed.iter().map(|m| m.raw.as_slice()).collect();
            // Another writer may have stored a later frame already.
            tx.execute(
                "INSERT INTO meter_frames (meter_id, ts, frame, raw) \
                 SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BYTEA[]) \
                 ON CONFLICT (meter_id) DO UPDATE SET ts = excluded.ts, frame = excluded.frame, raw = excluded.raw \
                 WHERE meter_frames.ts <= excluded.ts",
                &[&id, &seen, &frame, &raw],
            )
            .pg("storing the latest frames failed")?;
        }
    }
    Ok(())
}

/// One statement that adds every roll-up contribution of a batch: sums add up,
/// extremes keep the smaller and larger (NULL means none).
fn upsert_sql() -> String {
    let cols = rollup_columns();
    let n = 4 + cols.len();
    let arrays = (1..=n)
        .map(|i| {
            let t = if i == 2 { "INTEGER" } else { "BIGINT" };
            format!("${i}::{t}[]")
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut set: Vec<String> = SUMS
        .iter()
        .map(|s| format!("{s} = rollups.{s} + excluded.{s}"))
        .collect();
    for e in EXTREMES {
        set.push(format!(
            "min_{e} = LEAST(rollups.min_{e}, excluded.min_{e})"
        ));
        set.push(format!(
            "max_{e} = GREATEST(rollups.max_{e}, excluded.max_{e})"
        ));
    }
    format!(
        "INSERT INTO rollups (meter_id, step, start, \"end\", {}) SELECT * FROM unnest({arrays}) \
         ON CONFLICT (meter_id, step, start) DO UPDATE SET {}",
        cols.join(","),
        set.join(", ")
    )
}

impl Backend for PostgresBackend {
    fn load_meters(&mut self) -> Result<Vec<MeterRow>> {
        let rows = self
            .client()?
            .query("SELECT id, equipment_id, state FROM meters", &[])
            .pg("cannot read the meters")?;
        Ok(rows
            .iter()
            .map(|r| MeterRow {
                id: r.get(0),
                equipment_id: r.get(1),
                last: state_of(r.get(2)),
            })
            .collect())
    }

    fn create_meter(&mut self, m: &NewMeter) -> Result<i64> {
        // Another process may create the same meter at the same moment.
        let row = self
            .client()?
            .query_opt(
                "INSERT INTO meters (equipment_id, dialect, source, first_seen, last_seen, replaces) \
                 VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (equipment_id) DO NOTHING RETURNING id",
                &[&m.equipment_id, &m.dialect, &m.source, &m.first_seen, &m.replaces],
            )
            .pg("cannot add a meter")?;
        match row {
            Some(r) => Ok(r.get(0)),
            None => Ok(self
                .client()?
                .query_one(
                    "SELECT id FROM meters WHERE equipment_id = $1",
                    &[&m.equipment_id],
                )
                .pg("cannot find a meter")?
                .get(0)),
        }
    }

    fn apply(&mut self, batch: &WriteBatch) -> Result<()> {
        let mut tx = self
            .client()?
            .transaction()
            .pg("cannot start a transaction")?;
        write_batch(&mut tx, batch)?;
        tx.commit().pg("commit failed")
    }

    fn delete_samples_before(&mut self, t: i64) -> Result<u64> {
        if self.hypertable {
            let rows = self
                .client()?
                .query(
                    "SELECT drop_chunks('readings', older_than => $1::BIGINT)",
                    &[&t],
                )
                .pg("dropping old readings failed")?;
            return Ok(rows.len() as u64);
        }
        self.client()?
            .execute("DELETE FROM readings WHERE ts < $1", &[&t])
            .pg("deleting old readings failed")
    }

    fn shared(&self) -> bool {
        true
    }

    fn commit_shared(
        &mut self,
        readings: &[(i64, Sample)],
        build: &mut dyn FnMut(&Locked) -> WriteBatch,
    ) -> Result<()> {
        let mut ids: Vec<i64> = readings.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self
            .client()?
            .transaction()
            .pg("cannot start a transaction")?;
        // In id order, so that two writers with overlapping meters never deadlock.
        let rows = tx
            .query(
                "SELECT id, state, first_ts FROM meters WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .pg("cannot lock the meters")?;
        let baselines: HashMap<i64, Option<Sample>> = rows
            .iter()
            .map(|r| (r.get(0), state_of(r.get(1))))
            .collect();
        let first_ts: HashMap<i64, Option<i64>> =
            rows.iter().map(|r| (r.get(0), r.get(2))).collect();
        // The time range of each meter's readings older than its baseline.
        let mut ranges: Vec<(i64, i64, i64)> = vec![];
        for (m, s) in readings {
            let base = baselines.get(m).and_then(|b| b.as_ref().map(|b| b.ts));
            if base.is_none_or(|b| s.ts >= b) {
                continue;
            }
            match ranges.last_mut() {
                Some(r) if r.0 == *m => r.2 = s.ts,
                _ => ranges.push((*m, s.ts, s.ts)),
            }
        }
        let around = around_readings(&mut tx, &ranges, &first_ts)?;
        // The earliest reading of each meter in this commit (`readings` is sorted).
        let mut earliest: Vec<(i64, i64)> = vec![];
        for (m, s) in readings {
            if earliest.last().is_none_or(|e| e.0 != *m) {
                earliest.push((*m, s.ts));
            }
        }
        let inserted = insert_readings(&mut tx, readings)?;
        let moved: Vec<(i64, i64)> = earliest
            .into_iter()
            .filter(|(m, t)| {
                inserted.contains(&(*m, *t))
                    && first_ts.get(m).copied().flatten().is_none_or(|f| *t < f)
            })
            .collect();
        if !moved.is_empty() {
            let (m, t): (Vec<i64>, Vec<i64>) = moved.into_iter().unzip();
            tx.execute(
                "UPDATE meters SET first_ts = u.t FROM unnest($1::BIGINT[], $2::BIGINT[]) AS u(id, t) WHERE meters.id = u.id",
                &[&m, &t],
            )
            .pg("updating meters failed")?;
        }
        let batch = build(&Locked {
            baselines,
            inserted,
            around,
        });
        write_batch(&mut tx, &batch)?;
        tx.commit().pg("commit failed")
    }
}

/// The reading side of the PostgreSQL store: one connection.
pub struct PostgresReader {
    client: RefCell<Option<Client>>,
}

impl Drop for PostgresReader {
    fn drop(&mut self) {
        // Closing a connection blocks on its own runtime, which must not happen on an
        // async runtime's thread (the HTTP side drops its pooled readers there).
        if let Some(c) = self.client.get_mut().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("pg-close".into())
                    .spawn(move || drop(c));
            }
        }
    }
}

impl PostgresReader {
    /// Connects for reading (the schema must exist: the writer creates it).
    pub fn open(url: &PgUrl) -> Result<Self> {
        Ok(PostgresReader {
            client: RefCell::new(Some(url.connect()?)),
        })
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.client().query(sql, params).pg("a query failed")
    }

    fn client(&self) -> std::cell::RefMut<'_, Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut().expect("open until dropped")
        })
    }
}

/// Whether and which latest frames a meter query brings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frames {
    /// None: the meter list.
    None,
    /// Each meter's, where it has one.
    Latest,
    /// Only meters with a frame newer than the query's `$1`.
    Only,
}

impl PostgresReader {
    /// Meters, in id order, with or without their latest frames.
    fn meters_where(&self, frames: Frames, after: i64) -> Result<Vec<MeterInfo>> {
        let cols = "m.id, m.equipment_id, m.dialect, m.source, m.first_seen, m.last_seen, m.replaces, m.submeters";
        let rows = match frames {
            Frames::None => self.query(&format!("SELECT {cols} FROM meters m ORDER BY m.id"), &[])?,
            Frames::Latest => self.query(
                &format!("SELECT {cols}, f.frame, f.raw FROM meters m LEFT JOIN meter_frames f ON f.meter_id = m.id ORDER BY m.id"),
                &[],
            )?,
            // `last_seen` is the frame's own time here.
            Frames::Only => self.query(
                &format!("SELECT {}, f.frame, f.raw FROM meters m JOIN meter_frames f ON f.meter_id = m.id WHERE f.ts > $1 ORDER BY m.id",
                    cols.replace("m.last_seen", "f.ts")),
                &[&after],
            )?,
        };
        let framed = frames != Frames::None;
        Ok(rows
            .iter()
            .map(|r| MeterInfo {
                id: r.get(0),
                equipment_id: r.get(1),
                dialect: r.get(2),
                source: r.get(3),
                first_seen: r.get(4),
                last_seen: r.get(5),
                replaces: r.get(6),
                submeters: r.get(7),
                last_frame: if framed { r.get(8) } else { None },
                last_raw: if framed { r.get(9) } else { None },
            })
            .collect())
    }
}

impl StoreRead for PostgresReader {
    fn meters(&self) -> Result<Vec<MeterInfo>> {
        self.meters_where(Frames::Latest, 0)
    }

    fn meter_list(&self) -> Result<Vec<MeterInfo>> {
        self.meters_where(Frames::None, 0)
    }

    fn frames_after(&self, t: i64) -> Result<Vec<MeterInfo>> {
        self.meters_where(Frames::Only, t)
    }

    fn rollups(&self, meter: i64, step: Step, from: i64, to: i64) -> Result<Vec<RollupRow>> {
        let sql = format!(
            "SELECT start, \"end\", {} FROM rollups WHERE meter_id = $1 AND step = $2 AND start >= $3 AND start < $4 ORDER BY start",
            rollup_columns().join(",")
        );
        let rows = self.query(&sql, &[&meter, &(step.code() as i32), &from, &to])?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut roll = Rollup::default();
                for (i, s) in roll.sums.iter_mut().enumerate() {
                    *s = r.get(2 + i);
                }
                let base = 2 + SUMS.len();
                for i in 0..EXTREMES.len() {
                    roll.min[i] = r.get(base + 2 * i);
                    roll.max[i] = r.get(base + 2 * i + 1);
                }
                RollupRow {
                    start: r.get(0),
                    end: r.get(1),
                    rollup: roll,
                }
            })
            .collect())
    }

    fn samples(&self, meter: i64, from: i64, to: i64) -> Result<Vec<Sample>> {
        let sql = format!(
            "SELECT ts, {} FROM readings WHERE meter_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
            READING_COLUMNS.join(",")
        );
        let rows = self.query(&sql, &[&meter, &from, &to])?;
        Ok(rows.iter().map(|r| sample_of(r, 0)).collect())
    }

    fn stored_size(&self) -> Result<(i64, i64)> {
        let n: i64 = self.query("SELECT count(*) FROM readings", &[])?[0].get(0);
        let hyper = is_hypertable(&mut *self.client());
        let readings = if hyper {
            "hypertable_size('readings')"
        } else {
            "pg_total_relation_size('readings')"
        };
        let size: i64 = self.query(
            &format!(
                "SELECT ({readings} + pg_total_relation_size('rollups') + pg_total_relation_size('meters') \
                 + pg_total_relation_size('meter_frames') + pg_total_relation_size('settings'))::BIGINT"
            ),
            &[],
        )?[0]
            .get(0);
        Ok((n, size))
    }

    fn max_quarter_import(&self, meter: i64, from: i64, to: i64) -> Result<Option<(i64, i64)>> {
        let rows = self.query(
            "SELECT start, import_wh FROM rollups WHERE meter_id = $1 AND step = 900 AND start >= $2 AND start < $3 \
             ORDER BY import_wh DESC, start ASC LIMIT 1",
            &[&meter, &from, &to],
        )?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        let rows = self.query("SELECT value FROM settings WHERE key = $1", &[&key])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn is_broken(&self) -> bool {
        self.client.borrow().as_ref().is_none_or(|c| c.is_closed())
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.client()
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .pg("storing a setting failed")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_never_shown() {
        let u =
            PgUrl::parse("postgres://mk:secret@db.example:5432/meters?schema=tenant_1").unwrap();
        assert_eq!(u.schema(), Some("tenant_1"));
        let shown = u.to_string();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("db.example") && shown.contains("schema=tenant_1"),
            "{shown}"
        );
        let e = PgUrl::parse("postgres://mk:secret@h/db?schema=Robert');DROP").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("schema") && !msg.contains("secret"), "{msg}");
        let e = PgUrl::parse("postgres://mk:secret@h/db?frobnicate=1").unwrap_err();
        let msg = format!("{e:#}");
        assert!(!msg.contains("secret"), "{msg}");
        assert!(redact("postgres://h/db?password=hunter2").contains("***"));
        assert!(!redact("postgres://h/db?password=hunter2").contains("hunter2"));
    }

    #[test]
    fn every_stored_field_has_a_column() {
        assert_eq!(READING_COLUMNS.len(), super::super::sample::FIELDS.len());
        let unique: HashSet<_> = READING_COLUMNS.iter().collect();
        assert_eq!(unique.len(), N);
    }
}
