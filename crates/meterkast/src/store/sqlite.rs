//! The embedded SQLite store: one file, WAL mode, migrations on open.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use super::calendar::Step;
use super::ingest::{Around, Backend, MeterRow, NewMeter, Rollup, WriteBatch, EXTREMES, SUMS};
use super::sample::{decode_chunk, Sample};
use super::{MeterInfo, RollupRow, StoreRead};

/// Schema versions, applied in order; each runs once (tracked by `user_version`).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meters (
    id INTEGER PRIMARY KEY,
    equipment_id TEXT NOT NULL UNIQUE,
    dialect TEXT NOT NULL,
    source TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    replaces INTEGER REFERENCES meters(id),
    submeters TEXT NOT NULL DEFAULT '[]',
    last_frame TEXT,
    last_raw BLOB,
    state BLOB
);
CREATE TABLE chunks (
    meter_id INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (meter_id, start)
) WITHOUT ROWID;
CREATE INDEX chunks_end ON chunks(end);
CREATE TABLE rollups (
    meter_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL,
    import_t1_wh INTEGER NOT NULL, import_t2_wh INTEGER NOT NULL,
    import_t3_wh INTEGER NOT NULL, import_t4_wh INTEGER NOT NULL,
    export_t1_wh INTEGER NOT NULL, export_t2_wh INTEGER NOT NULL,
    export_t3_wh INTEGER NOT NULL, export_t4_wh INTEGER NOT NULL,
    gas_dm3 INTEGER NOT NULL, water_dm3 INTEGER NOT NULL, heat_mj INTEGER NOT NULL,
    power_sum_w INTEGER NOT NULL, samples INTEGER NOT NULL,
    min_power_w INTEGER, max_power_w INTEGER,
    min_voltage_l1_dv INTEGER, max_voltage_l1_dv INTEGER,
    min_voltage_l2_dv INTEGER, max_voltage_l2_dv INTEGER,
    min_voltage_l3_dv INTEGER, max_voltage_l3_dv INTEGER,
    PRIMARY KEY (meter_id, step, start)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE suspect_readings (
    meter_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (meter_id, ts)
) WITHOUT ROWID;
"#,
];

/// Opens (creating if needed) a database file and brings its schema up to date. Its
/// folder must exist; errors name the file and the `--db` setting, and say what to do.
pub fn open(path: &Path) -> Result<Connection> {
    let shown = path.display();
    if path.is_dir() {
        anyhow::bail!(
            "--db {shown} is a folder: give a database file, such as {}",
            path.join("meterkast.db").display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            anyhow::bail!(
                "--db {shown}: the directory {} does not exist; create it first (mkdir -p {}) or give a file in an existing folder",
                dir.display(),
                dir.display()
            );
        }
    }
    open_file(path).map_err(|e| {
        let not_a_db = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<rusqlite::Error>().and_then(rusqlite::Error::sqlite_error_code),
                Some(rusqlite::ErrorCode::NotADatabase)
            )
        });
        if not_a_db {
            anyhow::anyhow!(
                "--db {shown}: the file is not a meterkast database (SQLite). Give a new file name or an existing meterkast database; to load a capture, use meterkast import --db meterkast.db {shown}"
            )
        } else {
            e.context(format!("--db {shown}: cannot open the database"))
        }
    })
}

fn open_file(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "{} was written by a newer meterkast (schema {version}, this build knows {}); upgrade meterkast",
            path.display(),
            MIGRATIONS.len()
        );
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        // Several processes may open an older file at once (a daemon and a report):
        // each migration runs under the write lock, once, whoever gets there first.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if usize::try_from(now).unwrap_or(0) > i {
            continue;
        }
        tx.execute_batch(m)
            .with_context(|| format!("schema migration {} failed", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// The writing side of the SQLite store.
pub struct SqliteBackend {
    conn: Connection,
}

impl SqliteBackend {
    /// Opens the store for writing.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteBackend { conn: open(path)? })
    }

    /// Limits the database to `pages` pages (`PRAGMA max_page_count`; 0: SQLite's
    /// default): writes beyond fail as on a full disk. For tests of what a full disk does.
    pub fn limit_pages(&self, pages: i64) -> Result<()> {
        let pages = if pages <= 0 { 4_294_967_294 } else { pages };
        self.conn.pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }
}

fn upsert_sql() -> String {
    let mut cols = vec!["meter_id", "step", "start", "end"];
    cols.extend_from_slice(SUMS);
    let ext: Vec<String> = EXTREMES
        .iter()
        .flat_map(|e| [format!("min_{e}"), format!("max_{e}")])
        .collect();
    let all: Vec<String> = cols
        .iter()
        .map(|s| s.to_string())
        .chain(ext.iter().cloned())
        .collect();
    let marks = vec!["?"; all.len()].join(",");
    let mut set: Vec<String> = SUMS
        .iter()
        .map(|s| format!("{s} = {s} + excluded.{s}"))
        .collect();
    for e in EXTREMES {
        set.push(format!(
            "min_{e} = coalesce(min(min_{e}, excluded.min_{e}), min_{e}, excluded.min_{e})"
        ));
        set.push(format!(
            "max_{e} = coalesce(max(max_{e}, excluded.max_{e}), max_{e}, excluded.max_{e})"
        ));
    }
    format!(
        "INSERT INTO rollups ({}) VALUES ({marks}) ON CONFLICT(meter_id, step, start) DO UPDATE SET {}",
        all.join(","),
        set.join(", ")
    )
}

impl Backend for SqliteBackend {
    fn load_meters(&mut self) -> Result<Vec<MeterRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, equipment_id, state FROM meters")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (id, equipment_id, state) = row?;
            let last = state
                .and_then(|b| decode_chunk(&b))
                .and_then(|mut v| v.pop());
            out.push(MeterRow {
                id,
                equipment_id,
                last,
            });
        }
        Ok(out)
    }

    fn create_meter(&mut self, m: &NewMeter) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO meters (equipment_id, dialect, source, first_seen, last_seen, replaces) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            params![m.equipment_id, m.dialect, m.source, m.first_seen, m.replaces],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn apply(&mut self, batch: &WriteBatch) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut chunk = tx.prepare_cached("INSERT OR REPLACE INTO chunks (meter_id, start, end, n, data) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            // Late readings may come before the first one.
            let mut first = tx.prepare_cached(
                "UPDATE meters SET first_seen = ?2 WHERE id = ?1 AND first_seen > ?2",
            )?;
            for c in &batch.chunks {
                chunk.execute(params![c.meter, c.start, c.end, c.count, c.data])?;
                first.execute(params![c.meter, c.start])?;
            }
            let mut suspect = tx.prepare_cached(
                "INSERT OR IGNORE INTO suspect_readings (meter_id, ts, reason, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for x in &batch.suspects {
                suspect.execute(params![x.meter, x.ts, x.reason, x.data])?;
            }
            let mut up = tx.prepare_cached(&upsert_sql())?;
            for ((meter, step, start), end, r) in &batch.rollups {
                let mut vals: Vec<Option<i64>> =
                    vec![Some(*meter), Some(step.code()), Some(*start), Some(*end)];
                vals.extend(r.sums.iter().map(|x| Some(*x)));
                for i in 0..EXTREMES.len() {
                    vals.push(r.min[i]);
                    vals.push(r.max[i]);
                }
                up.execute(rusqlite::params_from_iter(vals))?;
            }
            let mut m = tx.prepare_cached(
                "UPDATE meters SET last_seen = max(last_seen, ?2), dialect = ?3, submeters = ?4, last_frame = coalesce(?5, last_frame), last_raw = ?6, state = ?7 WHERE id = ?1",
            )?;
            for u in &batch.meters {
                m.execute(params![
                    u.meter,
                    u.last_seen,
                    u.dialect,
                    u.submeters,
                    u.frame,
                    u.raw,
                    u.state
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn around(&mut self, meter: i64, from: i64, to: i64) -> Result<Around> {
        // A chunk spans at most 15 minutes unless a gap is inside it: the chunks that
        // start in the range or a little before, the two before, the one after.
        let mut st = self.conn.prepare_cached(
            "SELECT data FROM chunks WHERE meter_id = ?1 AND start BETWEEN ?2 - 86400 AND ?3 \
             UNION ALL SELECT data FROM (SELECT data FROM chunks WHERE meter_id = ?1 AND start < ?2 - 86400 ORDER BY start DESC LIMIT 2) \
             UNION ALL SELECT data FROM (SELECT data FROM chunks WHERE meter_id = ?1 AND start > ?3 ORDER BY start LIMIT 1)",
        )?;
        let mut all = vec![];
        let mut rows = st.query(params![meter, from, to])?;
        while let Some(r) = rows.next()? {
            let data: Vec<u8> = r.get(0)?;
            all.extend(decode_chunk(&data).context("a stored chunk is damaged")?);
        }
        all.sort_by_key(|s| s.ts);
        all.dedup_by_key(|s| s.ts);
        let lo = all.partition_point(|s| s.ts < from).saturating_sub(1);
        let hi = (all.partition_point(|s| s.ts <= to) + 1).min(all.len());
        let first: Option<i64> = self
            .conn
            .query_row(
                "SELECT min(first_seen, coalesce((SELECT min(start) FROM chunks WHERE meter_id = ?1), first_seen)) FROM meters WHERE id = ?1",
                [meter],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(Around {
            stored: all.drain(lo..hi).collect(),
            first,
        })
    }

    fn delete_samples_before(&mut self, t: i64) -> Result<u64> {
        Ok(self
            .conn
            .execute("DELETE FROM chunks WHERE end < ?1", params![t])? as u64)
    }
}

/// The reading side of the SQLite store (a separate connection; WAL lets it read
/// while the writer writes).
pub struct SqliteReader {
    conn: Connection,
}

impl SqliteReader {
    /// Opens the store for reading.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteReader { conn: open(path)? })
    }
}

fn rollup_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RollupRow> {
    let mut roll = Rollup::default();
    for (i, s) in roll.sums.iter_mut().enumerate() {
        *s = r.get(2 + i)?;
    }
    let base = 2 + SUMS.len();
    for i in 0..EXTREMES.len() {
        roll.min[i] = r.get(base + 2 * i)?;
        roll.max[i] = r.get(base + 2 * i + 1)?;
    }
    Ok(RollupRow {
        start: r.get(0)?,
        end: r.get(1)?,
        rollup: roll,
    })
}

impl StoreRead for SqliteReader {
    fn meters(&self) -> Result<Vec<MeterInfo>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, equipment_id, dialect, source, first_seen, last_seen, replaces, submeters, last_frame, last_raw FROM meters ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(MeterInfo {
                id: r.get(0)?,
                equipment_id: r.get(1)?,
                dialect: r.get(2)?,
                source: r.get(3)?,
                first_seen: r.get(4)?,
                last_seen: r.get(5)?,
                replaces: r.get(6)?,
                submeters: r.get(7)?,
                last_frame: r.get(8)?,
                last_raw: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn rollups(&self, meter: i64, step: Step, from: i64, to: i64) -> Result<Vec<RollupRow>> {
        let ext: Vec<String> = EXTREMES
            .iter()
            .flat_map(|e| [format!("min_{e}"), format!("max_{e}")])
            .collect();
        let sql = format!(
            "SELECT start, end, {}, {} FROM rollups WHERE meter_id = ?1 AND step = ?2 AND start >= ?3 AND start < ?4 ORDER BY start",
            SUMS.join(","),
            ext.join(",")
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![meter, step.code(), from, to], rollup_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn samples(&self, meter: i64, from: i64, to: i64) -> Result<Vec<Sample>> {
        let mut st = self.conn.prepare_cached("SELECT data FROM chunks WHERE meter_id = ?1 AND end >= ?2 AND start < ?3 ORDER BY start")?;
        let mut out = vec![];
        let mut rows = st.query(params![meter, from, to])?;
        while let Some(r) = rows.next()? {
            let data: Vec<u8> = r.get(0)?;
            let samples = decode_chunk(&data).context("a stored chunk is damaged")?;
            out.extend(samples.into_iter().filter(|s| s.ts >= from && s.ts < to));
        }
        // Chunks of late readings may overlap others.
        out.sort_by_key(|s| s.ts);
        out.dedup_by_key(|s| s.ts);
        Ok(out)
    }

    fn max_quarter_import(&self, meter: i64, from: i64, to: i64) -> Result<Option<(i64, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT start, import_wh FROM rollups WHERE meter_id = ?1 AND step = 900 AND start >= ?2 AND start < ?3 \
             ORDER BY import_wh DESC, start ASC LIMIT 1",
        )?;
        Ok(st
            .query_row(params![meter, from, to], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn stored_size(&self) -> Result<(i64, i64)> {
        let n: i64 = self
            .conn
            .query_row("SELECT coalesce(sum(n), 0) FROM chunks", [], |r| r.get(0))?;
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((n, pages * size))
    }
}

/// Looks up a single value, for tests and tools.
pub fn scalar(conn: &Connection, sql: &str) -> Result<Option<i64>> {
    Ok(conn.query_row(sql, [], |r| r.get(0)).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes opening a file of an older schema at once each get it upgraded, once.
    #[test]
    fn concurrent_opens_upgrade_an_older_file_once() {
        let dir = std::env::temp_dir().join(format!("meterkast-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let opened: Vec<_> = (0..6)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || open(&p).map(|_| ()))
            })
            .collect();
        for t in opened {
            t.join().unwrap().unwrap();
        }
        let c = open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
