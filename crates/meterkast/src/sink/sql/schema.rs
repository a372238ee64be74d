//! The SQL the history sink sends, per dialect: table names, the two tables' columns,
//! `CREATE TABLE`, the multi-row insert and the roll-up into the interval table.
//!
//! Values are exact: energy and volume registers are `DECIMAL(19,3)` built from the
//! store's integer quantities (never from floats), powers are `BIGINT` watts. Numbers
//! and times are written into the SQL text by this module (they come from integers,
//! so nothing a meter sends can change the statement); meter ids and dialects, which
//! come from the meter, always travel as bound parameters.

use std::fmt::Write;

use anyhow::{bail, Result};
use meterkast_codec::time::Civil;

use crate::store::sample::FIELDS;

/// The SQL dialect of a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB and MySQL.
    Mysql,
    /// PostgreSQL (and TimescaleDB, Citus...).
    Postgres,
}

/// A validated table name, optionally schema-qualified (`energy.meter_readings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The schema (PostgreSQL) or database (MySQL), if given.
    pub schema: Option<String>,
    /// The table.
    pub name: String,
}

/// Longest table name accepted: MySQL allows 64 characters and PostgreSQL 63, and the
/// interval table adds a suffix such as `_15min`.
const MAX_NAME: usize = 56;

fn check_ident(part: &str, whole: &str) -> Result<()> {
    let ok_start = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_start || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!(
            "--sql-table `{whole}`: use letters, digits and underscores only, starting with a \
             letter or underscore (like meter_readings or energy.meter_readings)"
        );
    }
    if part.len() > MAX_NAME {
        bail!("--sql-table `{whole}`: at most {MAX_NAME} characters");
    }
    Ok(())
}

impl TableName {
    /// Checks a name given by the user: identifier characters only, at most one dot.
    pub fn parse(s: &str) -> Result<TableName> {
        let mut parts = s.split('.');
        let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), None, _) => (None, n),
            (Some(sc), Some(n), None) => (Some(sc), n),
            _ => bail!("--sql-table `{s}`: give a table, or schema.table"),
        };
        if let Some(sc) = schema {
            check_ident(sc, s)?;
        }
        check_ident(name, s)?;
        Ok(TableName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// The same schema, the name with a suffix (`meter_readings_5min`).
    pub fn with_suffix(&self, suffix: &str) -> TableName {
        TableName {
            schema: self.schema.clone(),
            name: format!("{}{suffix}", self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A sink's two tables: the readings and their interval roll-up.
#[derive(Clone, Copy, Debug)]
pub struct Tables<'a> {
    /// One row per meter and telegram.
    pub readings: &'a TableName,
    /// One row per meter and bucket.
    pub buckets: &'a TableName,
}

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text of at most this many characters.
    Text(u16),
    /// A UTC instant.
    Time,
    /// A whole number.
    Int,
    /// An exact decimal with this many digits after the point.
    Dec(u8),
}

/// A column and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its type.
    pub kind: Kind,
}

fn col(name: &str, kind: Kind) -> Column {
    Column {
        name: name.to_string(),
        kind,
    }
}

/// Longest meter id kept (longer ones are cut, so one odd meter cannot block the rest).
pub const METER_LEN: u16 = 128;
/// Longest dialect name kept.
pub const DIALECT_LEN: u16 = 32;

/// The column of each stored quantity, in the store's field order.
fn field_columns() -> impl Iterator<Item = Column> {
    FIELDS.iter().map(|f| {
        let kind = if f.name == "gas_timestamp" {
            Kind::Time
        } else {
            match f.scale as u64 {
                1000 => Kind::Dec(3),
                100 => Kind::Dec(2),
                10 => Kind::Dec(1),
                _ => Kind::Int,
            }
        };
        col(f.name, kind)
    })
}

/// Whether a field is a register (a total that only its last value describes) rather
/// than an instantaneous value.
fn is_register(name: &str) -> bool {
    !name.starts_with("active_") || name == "active_tariff"
}

/// The readings table: one row per meter and telegram time.
pub fn reading_columns() -> Vec<Column> {
    let mut c = vec![
        col("meter", Kind::Text(METER_LEN)),
        col("time", Kind::Time),
        col("dialect", Kind::Text(DIALECT_LEN)),
    ];
    c.extend(field_columns());
    c.push(col("active_power_import_w", Kind::Int));
    c.push(col("active_power_export_w", Kind::Int));
    c.push(col("active_power_factor", Kind::Dec(3)));
    c
}

/// The interval table: one row per meter and bucket, with the bucket's last register
/// values and its power statistics.
pub fn bucket_columns() -> Vec<Column> {
    let mut c = vec![
        col("meter", Kind::Text(METER_LEN)),
        col("bucket", Kind::Time),
        col("readings", Kind::Int),
        col("last_time", Kind::Time),
    ];
    c.extend(field_columns().filter(|c| is_register(&c.name)));
    c.push(col("active_power_avg_w", Kind::Dec(3)));
    c.push(col("active_power_min_w", Kind::Int));
    c.push(col("active_power_max_w", Kind::Int));
    c
}

/// The interval table's suffix: `_5min`, `_1h`, `_30s`.
pub fn interval_suffix(secs: u32) -> String {
    if secs.is_multiple_of(3600) {
        format!("_{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("_{}min", secs / 60)
    } else {
        format!("_{secs}s")
    }
}

/// One statement and its text parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// The SQL.
    pub sql: String,
    /// Bound parameters, in order.
    pub params: Vec<String>,
}

/// One reading as the sink writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// Meter id.
    pub meter: &'a str,
    /// Telegram time, unix seconds.
    pub ts: i64,
    /// Dialect.
    pub dialect: &'a str,
    /// The stored quantities in [`FIELDS`] order (missing trailing ones are NULL).
    pub v: &'a [Option<i64>],
    /// The power factor in thousandths (`1-0:13.7.0`, Austrian meters).
    pub pf: Option<i64>,
}

impl Dialect {
    /// Quotes one identifier (already validated, so it holds no quote characters).
    pub fn ident(self, s: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{s}`"),
            Dialect::Postgres => format!("\"{s}\""),
        }
    }

    /// Quotes a table name.
    pub fn table(self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.name)),
            None => self.ident(&t.name),
        }
    }

    fn sql_type(self, k: Kind) -> String {
        match (self, k) {
            (_, Kind::Text(n)) => format!("VARCHAR({n})"),
            (Dialect::Mysql, Kind::Time) => "DATETIME".into(),
            (Dialect::Postgres, Kind::Time) => "TIMESTAMPTZ".into(),
            (_, Kind::Int) => "BIGINT".into(),
            (Dialect::Mysql, Kind::Dec(s)) => format!("DECIMAL(19,{s})"),
            (Dialect::Postgres, Kind::Dec(s)) => format!("NUMERIC(19,{s})"),
        }
    }

    /// A UTC instant as a literal of this dialect's time type.
    pub fn time(self, ts: i64) -> String {
        let c = Civil::from_epoch(ts);
        let s = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        match self {
            // The session runs in UTC (set on connect): DATETIME holds UTC.
            Dialect::Mysql => format!("'{s}'"),
            Dialect::Postgres => format!("TIMESTAMPTZ '{s}+00'"),
        }
    }

    fn param(self, n: usize) -> String {
        match self {
            Dialect::Mysql => "?".into(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` with a primary key.
    pub fn create_table(self, t: &TableName, cols: &[Column], key: &[&str]) -> String {
        let mut s = format!("CREATE TABLE IF NOT EXISTS {} (", self.table(t));
        for (i, c) in cols.iter().enumerate() {
            let not_null = if key.contains(&c.name.as_str()) {
                " NOT NULL"
            } else {
                ""
            };
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(
                s,
                "{sep}{} {}{not_null}",
                self.ident(&c.name),
                self.sql_type(c.kind)
            );
        }
        let key: Vec<String> = key.iter().map(|k| self.ident(k)).collect();
        let _ = write!(s, ", PRIMARY KEY ({}))", key.join(", "));
        if self == Dialect::Mysql {
            s.push_str(" DEFAULT CHARSET=utf8mb4");
        }
        s
    }

    /// `ALTER TABLE ... ADD COLUMN` for a column an older table lacks.
    pub fn add_column(self, t: &TableName, c: &Column) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.table(t),
            self.ident(&c.name),
            self.sql_type(c.kind)
        )
    }

    /// The query listing a table's columns; its parameters are the schema (or
    /// database) and the table name.
    pub fn columns_query(self, t: &TableName) -> Stmt {
        let current = match self {
            Dialect::Mysql => "DATABASE()",
            Dialect::Postgres => "current_schema()",
        };
        let (schema_cond, mut params) = match &t.schema {
            Some(s) => (format!("table_schema = {}", self.param(1)), vec![s.clone()]),
            None => (format!("table_schema = {current}"), vec![]),
        };
        params.push(t.name.clone());
        Stmt {
            sql: format!(
                "SELECT column_name FROM information_schema.columns WHERE {schema_cond} AND table_name = {}",
                self.param(params.len())
            ),
            params,
        }
    }

    /// One multi-row insert that skips rows already there (a retry never duplicates).
    pub fn insert_readings(self, t: &TableName, rows: &[Row<'_>]) -> Stmt {
        let cols = reading_columns();
        let names: Vec<String> = cols.iter().map(|c| self.ident(&c.name)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.table(t),
            names.join(", ")
        );
        let mut params = Vec::with_capacity(rows.len() * 2);
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            params.push(cut(r.meter, METER_LEN));
            let meter = self.param(params.len());
            params.push(cut(r.dialect, DIALECT_LEN));
            let dialect = self.param(params.len());
            let _ = write!(sql, "({meter}, {}, {dialect}", self.time(r.ts));
            for (j, c) in cols[3..3 + FIELDS.len()].iter().enumerate() {
                sql.push_str(", ");
                sql.push_str(&self.value(c.kind, r.v.get(j).copied().flatten()));
            }
            let power = r.v.get(crate::store::sample::F::Power as usize).copied();
            let power = power.flatten();
            let _ = write!(
                sql,
                ", {}, {}, {})",
                self.value(Kind::Int, power.map(|p| p.max(0))),
                self.value(Kind::Int, power.map(|p| (-p).max(0))),
                self.value(Kind::Dec(3), r.pf)
            );
        }
        // Not INSERT IGNORE: besides duplicates it would store cut or zeroed values
        // where a column cannot hold one, instead of refusing them.
        sql.push_str(match self {
            Dialect::Mysql => " ON DUPLICATE KEY UPDATE `meter` = `meter`",
            Dialect::Postgres => " ON CONFLICT DO NOTHING",
        });
        Stmt { sql, params }
    }

    /// A stored integer as a literal of the column's type.
    fn value(self, kind: Kind, v: Option<i64>) -> String {
        match (kind, v) {
            (_, None) => "NULL".into(),
            (Kind::Time, Some(t)) => self.time(t),
            (Kind::Dec(s), Some(x)) => decimal(x, s),
            (_, Some(x)) => x.to_string(),
        }
    }

    /// The bucket start of a time column, as an expression of this dialect.
    fn bucket_expr(self, col: &str, secs: u32) -> String {
        match self {
            Dialect::Mysql => {
                format!("FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP({col}) / {secs}) * {secs})")
            }
            Dialect::Postgres => {
                format!("to_timestamp(FLOOR(EXTRACT(EPOCH FROM {col}) / {secs}) * {secs})")
            }
        }
    }

    /// Recomputes the interval table's rows from the readings table for the rows that
    /// `cond` selects (a condition on the readings table aliased `x`), replacing what
    /// was there: running it twice, or after a restart, gives the same rows.
    fn rollup(self, t: &Tables<'_>, secs: u32, cond: &str, params: Vec<String>) -> Stmt {
        let (b, t) = (t.buckets, t.readings);
        let cols = bucket_columns();
        let names: Vec<String> = cols.iter().map(|c| self.ident(&c.name)).collect();
        let id = |s: &str| self.ident(s);
        let regs: Vec<String> = cols[4..cols.len() - 3]
            .iter()
            .map(|c| format!("r.{}", id(&c.name)))
            .collect();
        let (meter, time, power) = (id("meter"), id("time"), id("active_power_w"));
        let sql = format!(
            "INSERT INTO {bt} ({names}) \
             SELECT r.{meter}, a.bucket, a.n, r.{time}, {regs}, a.pavg, a.pmin, a.pmax \
             FROM (SELECT x.{meter} AS meter, {bucket} AS bucket, COUNT(*) AS n, \
             MAX(x.{time}) AS last, ROUND(AVG(x.{power}), 3) AS pavg, \
             MIN(x.{power}) AS pmin, MAX(x.{power}) AS pmax \
             FROM {rt} x WHERE {cond} GROUP BY x.{meter}, {bucket}) a \
             JOIN {rt} r ON r.{meter} = a.meter AND r.{time} = a.last{upsert}",
            bt = self.table(b),
            names = names.join(", "),
            regs = regs.join(", "),
            bucket = self.bucket_expr(&format!("x.{time}"), secs),
            rt = self.table(t),
            upsert = self.upsert(&cols[..2], &cols[2..]),
        );
        Stmt { sql, params }
    }

    fn upsert(self, key: &[Column], rest: &[Column]) -> String {
        let set = |f: &dyn Fn(&str) -> String| -> String {
            rest.iter()
                .map(|c| format!("{} = {}", self.ident(&c.name), f(&self.ident(&c.name))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Dialect::Mysql => format!(
                " ON DUPLICATE KEY UPDATE {}",
                set(&|c| format!("VALUES({c})"))
            ),
            Dialect::Postgres => {
                let key: Vec<String> = key.iter().map(|c| self.ident(&c.name)).collect();
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    set(&|c| format!("EXCLUDED.{c}"))
                )
            }
        }
    }

    /// Rolls up one meter's buckets from `from` (a bucket start) up to `to` (exclusive).
    pub fn rollup_range(self, t: &Tables<'_>, secs: u32, meter: &str, from: i64, to: i64) -> Stmt {
        let cond = format!(
            "x.{} = {} AND x.{time} >= {} AND x.{time} < {}",
            self.ident("meter"),
            self.param(1),
            self.time(from),
            self.time(to),
            time = self.ident("time"),
        );
        self.rollup(t, secs, &cond, vec![cut(meter, METER_LEN)])
    }

    /// Rolls up one meter's latest bucket in the interval table and all later ones
    /// (all of them for a meter without any): after a restart this finishes the
    /// bucket a crash left open. Only the meter's own rows are read (the primary key).
    pub fn rollup_catch_up(self, t: &Tables<'_>, secs: u32, meter: &str) -> Stmt {
        let cond = format!(
            "x.{meter} = {p1} AND x.{time} >= COALESCE((SELECT MAX(z.{bucket}) FROM {bt} z WHERE z.{meter} = {p2}), {epoch})",
            time = self.ident("time"),
            bucket = self.ident("bucket"),
            meter = self.ident("meter"),
            bt = self.table(t.buckets),
            epoch = self.time(0),
            p1 = self.param(1),
            p2 = self.param(2),
        );
        let m = cut(meter, METER_LEN);
        self.rollup(t, secs, &cond, vec![m.clone(), m])
    }
}

/// Cuts text to at most `max` characters.
fn cut(s: &str, max: u16) -> String {
    s.chars().take(usize::from(max)).collect()
}

/// An integer count of 10^-`scale` units as an exact decimal literal (`12345`, 3 →
/// `12.345`).
pub fn decimal(x: i64, scale: u8) -> String {
    if scale == 0 {
        return x.to_string();
    }
    let sign = if x < 0 { "-" } else { "" };
    let a = x.unsigned_abs();
    let p = 10u64.pow(u32::from(scale));
    format!(
        "{sign}{}.{:0width$}",
        a / p,
        a % p,
        width = usize::from(scale)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sample::{F, N};

    #[test]
    fn table_names_are_identifiers_only() {
        assert_eq!(
            TableName::parse("meter_readings").unwrap().to_string(),
            "meter_readings"
        );
        let t = TableName::parse("energy.Readings_2").unwrap();
        assert_eq!(t.schema.as_deref(), Some("energy"));
        assert_eq!(t.name, "Readings_2");
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a;drop table x",
            "a`b",
            "a\"b",
            "a.b.c",
            ".a",
            "a.",
            "zählerstand",
            &"x".repeat(57),
        ] {
            let e = TableName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--sql-table"), "{bad}: {e}");
        }
    }

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        let t = TableName::parse("energy.readings").unwrap();
        assert_eq!(Dialect::Mysql.table(&t), "`energy`.`readings`");
        assert_eq!(Dialect::Postgres.table(&t), "\"energy\".\"readings\"");
        assert_eq!(
            Dialect::Postgres.table(&t.with_suffix("_5min")),
            "\"energy\".\"readings_5min\""
        );
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(12_345_678, 3), "12345.678");
        assert_eq!(decimal(5, 3), "0.005");
        assert_eq!(decimal(-1234, 1), "-123.4");
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(i64::MIN, 3), "-9223372036854775.808");
        assert_eq!(decimal(42, 0), "42");
    }

    #[test]
    fn times_are_utc_literals() {
        assert_eq!(Dialect::Mysql.time(1_700_000_000), "'2023-11-14 22:13:20'");
        assert_eq!(
            Dialect::Postgres.time(0),
            "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
        );
    }

    #[test]
    fn suffixes_name_the_interval() {
        assert_eq!(interval_suffix(300), "_5min");
        assert_eq!(interval_suffix(3600), "_1h");
        assert_eq!(interval_suffix(90), "_90s");
    }

    fn sample_row(v: &mut [Option<i64>; N]) {
        v[F::Import as usize] = Some(12_345_678);
        v[F::Power as usize] = Some(-420);
        v[F::VoltL1 as usize] = Some(2301);
        v[F::CurrL1 as usize] = Some(-150);
        v[F::GasTime as usize] = Some(1_700_000_000);
    }

    #[test]
    fn inserts_bind_text_and_write_exact_numbers() {
        let mut v = [None; N];
        sample_row(&mut v);
        let t = TableName::parse("r").unwrap();
        let rows = [
            Row {
                meter: "E0001'; DROP TABLE r; --",
                ts: 1_700_000_000,
                dialect: "dsmr",
                v: &v,
                pf: Some(943),
            },
            Row {
                meter: "m2",
                ts: 1_700_000_001,
                dialect: "dsmr",
                v: &v[..3],
                pf: None,
            },
        ];
        for d in [Dialect::Mysql, Dialect::Postgres] {
            let s = d.insert_readings(&t, &rows);
            assert_eq!(s.params, ["E0001'; DROP TABLE r; --", "dsmr", "m2", "dsmr"]);
            assert!(!s.sql.contains("DROP"), "{}", s.sql);
            assert!(s.sql.contains(", 12345.678, "), "{}", s.sql);
            assert!(s.sql.contains(", -420, "), "{}", s.sql);
            assert!(s.sql.contains(", 230.1, "), "{}", s.sql);
            assert!(s.sql.contains(", 0.943)"), "{}", s.sql);
            assert!(s.sql.contains(", -1.50, "), "{}", s.sql);
            // Power split: no import, 420 W export.
            assert!(s.sql.contains(", 0, 420, 0.943)"), "{}", s.sql);
            // Each row has one value per column.
            let ncols = reading_columns().len();
            let values = s.sql.split(" VALUES ").nth(1).unwrap();
            let first = values.split("), (").next().unwrap();
            assert_eq!(first.matches(", ").count() + 1, ncols, "{first}");
        }
        let my = Dialect::Mysql.insert_readings(&t, &rows).sql;
        assert!(my.starts_with("INSERT INTO `r` (`meter`, `time`, `dialect`, "));
        assert!(my.ends_with(" ON DUPLICATE KEY UPDATE `meter` = `meter`"));
        assert!(my.contains("(?, '2023-11-14 22:13:20', ?, "));
        let pg = Dialect::Postgres.insert_readings(&t, &rows).sql;
        assert!(pg.starts_with("INSERT INTO \"r\" (\"meter\", \"time\", "));
        assert!(pg.contains("($3, TIMESTAMPTZ '2023-11-14 22:13:21+00', $4, "));
        assert!(pg.ends_with(" ON CONFLICT DO NOTHING"));
    }

    #[test]
    fn create_table_has_exact_types_and_the_key() {
        let t = TableName::parse("r").unwrap();
        let my = Dialect::Mysql.create_table(&t, &reading_columns(), &["meter", "time"]);
        assert!(my.contains(
            "`meter` VARCHAR(128) NOT NULL, `time` DATETIME NOT NULL, `dialect` VARCHAR(32)"
        ));
        assert!(my.contains("`total_power_import_kwh` DECIMAL(19,3)"));
        assert!(my.contains("`active_power_w` BIGINT"));
        assert!(my.contains("`active_voltage_l1_v` DECIMAL(19,1)"));
        assert!(my.contains("`gas_timestamp` DATETIME"));
        assert!(my.ends_with("PRIMARY KEY (`meter`, `time`)) DEFAULT CHARSET=utf8mb4"));
        let pg = Dialect::Postgres.create_table(&t, &bucket_columns(), &["meter", "bucket"]);
        assert!(pg.contains("\"bucket\" TIMESTAMPTZ NOT NULL"));
        assert!(pg.contains("\"total_gas_m3\" NUMERIC(19,3)"));
        assert!(!pg.contains("active_voltage"), "{pg}");
        assert!(pg.contains("\"active_power_avg_w\" NUMERIC(19,3)"));
        assert!(pg.ends_with("PRIMARY KEY (\"meter\", \"bucket\"))"));
    }

    #[test]
    fn rollups_upsert_and_bind_the_meter() {
        let r = TableName::parse("r").unwrap();
        let (b5, b60) = (r.with_suffix("_5min"), r.with_suffix("_1h"));
        let t = Tables {
            readings: &r,
            buckets: &b5,
        };
        let my = Dialect::Mysql.rollup_range(&t, 300, "m1", 600, 1200);
        assert_eq!(my.params, ["m1"]);
        assert!(my
            .sql
            .starts_with("INSERT INTO `r_5min` (`meter`, `bucket`, `readings`, `last_time`, "));
        assert!(my.sql.contains("x.`meter` = ? AND x.`time` >= '1970-01-01 00:10:00' AND x.`time` < '1970-01-01 00:20:00'"));
        assert!(my
            .sql
            .contains("ON DUPLICATE KEY UPDATE `readings` = VALUES(`readings`)"));
        assert!(!my.sql.contains("`bucket` = VALUES"));
        let t = Tables {
            readings: &r,
            buckets: &b60,
        };
        let pg = Dialect::Postgres.rollup_catch_up(&t, 3600, "m2");
        assert_eq!(pg.params, ["m2", "m2"]);
        assert!(pg.sql.contains("x.\"meter\" = $1 AND x.\"time\" >= COALESCE((SELECT MAX(z.\"bucket\") FROM \"r_1h\" z WHERE z.\"meter\" = $2), TIMESTAMPTZ '1970-01-01 00:00:00+00')"), "{}", pg.sql);
        assert!(pg.sql.starts_with("INSERT INTO \"r_1h\" "));
        assert!(pg
            .sql
            .contains("FLOOR(EXTRACT(EPOCH FROM x.\"time\") / 3600) * 3600"));
        assert!(pg.sql.contains("ON CONFLICT (\"meter\", \"bucket\") DO UPDATE SET \"readings\" = EXCLUDED.\"readings\""));
        // The selected columns line up with the inserted ones.
        let select = pg
            .sql
            .split(" SELECT ")
            .nth(1)
            .unwrap()
            .split(" FROM ")
            .next()
            .unwrap();
        assert_eq!(select.matches(", ").count() + 1, bucket_columns().len());
    }

    #[test]
    fn columns_query_binds_names() {
        let t = TableName::parse("s.r").unwrap();
        let q = Dialect::Postgres.columns_query(&t);
        assert_eq!(q.params, ["s", "r"]);
        assert!(q.sql.ends_with("table_schema = $1 AND table_name = $2"));
        let q = Dialect::Mysql.columns_query(&TableName::parse("r").unwrap());
        assert_eq!(q.params, ["r"]);
        assert!(q
            .sql
            .contains("table_schema = DATABASE() AND table_name = ?"));
    }
}
