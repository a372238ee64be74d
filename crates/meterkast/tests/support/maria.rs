//! MariaDB helpers for the suites that write to the local server (127.0.0.1:3306, root).

use mysql::prelude::Queryable;

/// The rows of a query, every value as text (`None` for NULL).
pub fn text_rows(conn: &mut mysql::Conn, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql::Row> = conn.query(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}
