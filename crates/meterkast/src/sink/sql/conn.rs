//! A connection to the sink's database, MariaDB/MySQL or PostgreSQL, behind the few
//! calls the writer needs: connect, list a table's columns, run statements in one
//! transaction.

use std::time::Duration;

use anyhow::{Context, Result};
use mysql::prelude::Queryable;

use super::schema::{Dialect, Stmt};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may take before the connection counts as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// An open connection.
pub enum Conn {
    /// MariaDB or MySQL.
    Mysql(Box<mysql::Conn>),
    /// PostgreSQL.
    Postgres(Box<postgres::Client>),
}

impl Conn {
    /// Connects; `url` may carry a password and is never part of an error.
    pub fn open(dialect: Dialect, url: &str) -> Result<Conn> {
        match dialect {
            Dialect::Mysql => {
                let opts = mysql::Opts::from_url(url).map_err(|e| {
                    anyhow::anyhow!(
                        "the URL is not a valid MySQL URL ({})",
                        strip_url(&e.to_string())
                    )
                })?;
                let opts = mysql::OptsBuilder::from_opts(opts)
                    .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
                    .read_timeout(Some(IO_TIMEOUT))
                    .write_timeout(Some(IO_TIMEOUT))
                    // DATETIME columns hold UTC.
                    .init(vec!["SET time_zone = '+00:00'"]);
                let c = mysql::Conn::new(opts).context("cannot connect")?;
                Ok(Conn::Mysql(Box::new(c)))
            }
            Dialect::Postgres => {
                let mut cfg: postgres::Config = url
                    .parse()
                    .map_err(|_| anyhow::anyhow!("the URL is not a valid PostgreSQL URL"))?;
                cfg.connect_timeout(CONNECT_TIMEOUT)
                    .application_name("meterkast")
                    .keepalives(true);
                let c = cfg.connect(postgres::NoTls).context("cannot connect")?;
                Ok(Conn::Postgres(Box::new(c)))
            }
        }
    }

    /// The column names the query returns (one text column).
    pub fn column_names(&mut self, q: &Stmt) -> Result<Vec<String>> {
        match self {
            Conn::Mysql(c) => {
                let rows: Vec<String> = c.exec(&q.sql, q.params.clone())?;
                Ok(rows)
            }
            Conn::Postgres(c) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    q.params.iter().map(|p| p as _).collect();
                // information_schema names are of the `sql_identifier` domain.
                let sql = q
                    .sql
                    .replacen("SELECT column_name", "SELECT column_name::text", 1);
                Ok(c.query(&sql, &params)?
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect())
            }
        }
    }

    /// Runs statements in one transaction.
    pub fn run(&mut self, stmts: &[Stmt]) -> Result<()> {
        match self {
            Conn::Mysql(c) => {
                let mut tx = c.start_transaction(mysql::TxOpts::default())?;
                for s in stmts {
                    if s.params.is_empty() {
                        tx.query_drop(&s.sql)?;
                    } else {
                        tx.exec_drop(&s.sql, s.params.clone())?;
                    }
                }
                tx.commit()?;
            }
            Conn::Postgres(c) => {
                let mut tx = c.transaction()?;
                for s in stmts {
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        s.params.iter().map(|p| p as _).collect();
                    tx.execute(s.sql.as_str(), &params)?;
                }
                tx.commit()?;
            }
        }
        Ok(())
    }

    /// Runs one statement on its own (schema changes).
    pub fn run_one(&mut self, sql: &str) -> Result<()> {
        match self {
            Conn::Mysql(c) => c.query_drop(sql)?,
            Conn::Postgres(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }
}

/// Whether the server refused a statement for the data in it (SQLSTATE class 22:
/// too long, out of range, a bad date or text), as opposed to a lost connection or
/// a missing table, which retrying fixes.
pub fn is_data_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(mysql::Error::MySqlError(m)) = c.downcast_ref::<mysql::Error>() {
            // 1366: incorrect string value (SQLSTATE HY000).
            return m.state.starts_with("22") || m.code == 1366;
        }
        if let Some(p) = c.downcast_ref::<postgres::Error>() {
            return p.code().is_some_and(|s| s.code().starts_with("22"));
        }
        false
    })
}

/// Drops anything URL-like from a driver message, in case it quotes the URL.
fn strip_url(s: &str) -> String {
    s.split_whitespace()
        .filter(|w| !w.contains("://"))
        .collect::<Vec<_>>()
        .join(" ")
}
