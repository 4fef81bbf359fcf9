//! `stitchbook sql`: read-only SQL for power users, over a workspace opened read-only with
//! no access to other files. Results come back as text, formatted by DuckDB.

use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SqlTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows exist than `limit`.
    pub truncated: bool,
    pub millis: f64,
}

/// Run one statement (a query, `DESCRIBE`, `SHOW`, `SUMMARIZE`, …) and return at most
/// `limit` rows. The user's SQL is the point here; it runs on a read-only connection.
pub fn run(ws: &Workspace, statement: &str, limit: usize) -> Result<SqlTable> {
    let started = std::time::Instant::now();
    let text = statement.trim().trim_end_matches(';').trim();
    if text.is_empty() {
        return Err(EngineError::InvalidArgument("no SQL given".into()));
    }
    let first = text
        .split(|c: char| c.is_whitespace() || c == '(')
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .to_ascii_uppercase();
    if ![
        "SELECT",
        "WITH",
        "FROM",
        "VALUES",
        "DESCRIBE",
        "SHOW",
        "SUMMARIZE",
        "TABLE",
    ]
    .contains(&first.as_str())
    {
        return Err(EngineError::InvalidQuery {
            code: "sql_read_only",
            message: format!(
                "stitchbook sql runs one read-only query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, TABLE), not {first}"
            ),
        });
    }
    // Column names first, from the statement as written.
    let columns: Vec<String> = {
        let mut st = ws.conn().prepare(&format!("DESCRIBE ({text})"))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let mut st = ws.conn().prepare(&format!(
        "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({text}) LIMIT ?"
    ))?;
    let mut rows = st.query([limit as i64 + 1])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            row.push(r.get::<_, Option<String>>(i)?);
        }
        out.push(row);
    }
    let truncated = out.len() > limit;
    out.truncate(limit);
    Ok(SqlTable {
        columns,
        rows: out,
        truncated,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_run_and_writes_are_refused() {
        let ws = Workspace::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let t = run(
            &ws,
            "SELECT 1 AS a, 'x' AS b, NULL AS c UNION ALL SELECT 2, 'y', 3;",
            1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.columns, vec!["a", "b", "c"]);
        assert_eq!(t.rows, vec![vec![Some("1".into()), Some("x".into()), None]]);
        assert!(t.truncated);
        for bad in [
            "DELETE FROM events",
            "drop table events",
            "COPY events TO 'x.csv'",
            "",
        ] {
            assert!(run(&ws, bad, 10).is_err(), "{bad}");
        }
    }
}
