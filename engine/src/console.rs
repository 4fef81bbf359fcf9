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

/// Table functions the app's console may call: none of them reads files.
const SAFE_TABLE_FUNCTIONS: [&str; 12] = [
    "unnest",
    "range",
    "generate_series",
    "json_each",
    "json_tree",
    "duckdb_tables",
    "duckdb_views",
    "duckdb_columns",
    "duckdb_functions",
    "duckdb_settings",
    "duckdb_types",
    "information_schema_columns",
];

/// For the desktop app, whose connection may read files (imports need it): the statement
/// must parse as exactly one SELECT, name only this workspace's tables and views (or its own
/// CTEs), and call no file-reading function; then it runs as [`run`] does.
pub fn run_guarded(ws: &Workspace, statement: &str, limit: usize) -> Result<SqlTable> {
    let text = statement.trim().trim_end_matches(';').trim();
    let ast: String =
        ws.conn()
            .query_row("SELECT json_serialize_sql(?::VARCHAR)", [text], |r| {
                r.get(0)
            })?;
    let ast: serde_json::Value = serde_json::from_str(&ast)
        .map_err(|e| EngineError::InvalidArgument(format!("reading the parsed query: {e}")))?;
    let refuse = |why: String| EngineError::InvalidQuery {
        code: "sql_read_only",
        message: why,
    };
    if ast.get("error").and_then(|e| e.as_bool()) == Some(true) {
        let msg = ast
            .get("error_message")
            .and_then(|m| m.as_str())
            .unwrap_or("not a query");
        return Err(refuse(format!(
            "the console runs one read-only SELECT query: {msg}"
        )));
    }
    let n = ast
        .get("statements")
        .and_then(|s| s.as_array())
        .map(Vec::len)
        .unwrap_or(0);
    if n != 1 {
        return Err(refuse(format!(
            "the console runs exactly one SELECT query (got {n} statements)"
        )));
    }
    let known: std::collections::HashSet<String> = {
        let mut st = ws.conn().prepare(
            "SELECT lower(table_name) FROM information_schema.tables
             UNION SELECT lower(view_name) FROM duckdb_views()",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let mut ctes = std::collections::HashSet::new();
    collect_ctes(&ast, &mut ctes);
    let mut problem = None;
    check_node(&ast, &known, &ctes, &mut problem);
    if let Some(p) = problem {
        return Err(refuse(p));
    }
    run(ws, text, limit)
}

fn collect_ctes(v: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Object(map)) = m.get("cte_map") {
                if let Some(serde_json::Value::Array(items)) = map.get("map") {
                    for i in items {
                        if let Some(k) = i.get("key").and_then(|k| k.as_str()) {
                            out.insert(k.to_lowercase());
                        }
                    }
                }
            }
            for x in m.values() {
                collect_ctes(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_ctes(x, out)),
        _ => {}
    }
}

fn check_node(
    v: &serde_json::Value,
    known: &std::collections::HashSet<String>,
    ctes: &std::collections::HashSet<String>,
    problem: &mut Option<String>,
) {
    if problem.is_some() {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let name = |key: &str| {
                m.get(key)
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_lowercase()
            };
            match kind {
                "BASE_TABLE" => {
                    let t = name("table_name");
                    if !known.contains(&t) && !ctes.contains(&t) {
                        *problem = Some(format!(
                            "\"{t}\" is not a table of this workspace (the console reads only the workspace's tables and views)"
                        ));
                        return;
                    }
                }
                "TABLE_FUNCTION" => {
                    let f = m
                        .get("function")
                        .and_then(|f| f.get("function_name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_lowercase();
                    if !SAFE_TABLE_FUNCTIONS.contains(&f.as_str()) {
                        *problem = Some(format!(
                            "the console does not call the table function {f}() (no file access)"
                        ));
                        return;
                    }
                }
                "FUNCTION" => {
                    let f = name("function_name");
                    if f.starts_with("read_")
                        || f.starts_with("parquet_")
                        || matches!(
                            f.as_str(),
                            "glob" | "sniff_csv" | "query" | "query_table" | "getenv"
                        )
                    {
                        *problem =
                            Some(format!("the console does not call {f}() (no file access)"));
                        return;
                    }
                }
                _ => {}
            }
            for x in m.values() {
                check_node(x, known, ctes, problem);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                check_node(x, known, ctes, problem);
            }
        }
        _ => {}
    }
}

/// The workspace's tables and views with their columns and types, for a schema list.
pub fn schema(ws: &Workspace) -> Result<SqlTable> {
    run(
        ws,
        "SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = 'main' AND table_catalog = current_database()
         ORDER BY table_name, ordinal_position",
        100_000,
    )
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

    #[test]
    fn the_app_console_reads_only_workspace_tables() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path().join("w.duckdb")).unwrap();
        let secret = dir.path().join("secret.csv");
        std::fs::write(&secret, "a\n1\n").unwrap();
        let ok = run_guarded(
            &ws,
            "WITH c AS (SELECT count(*) AS n FROM events) SELECT n, x FROM c, unnest([1, 2]) AS u(x)",
            10,
        )
        .unwrap();
        assert_eq!(ok.rows.len(), 2);
        let f = secret.display().to_string();
        for bad in [
            format!("SELECT * FROM read_csv('{f}')"),
            format!("SELECT * FROM '{f}'"),
            format!("SELECT * FROM events, read_text('{f}')"),
            format!("SELECT (SELECT count(*) FROM read_csv_auto('{f}'))"),
            "SELECT * FROM glob('/*')".to_string(),
            "SELECT 1; SELECT 2".to_string(),
            "DELETE FROM events".to_string(),
            "ATTACH 'x.db'".to_string(),
            "SELECT * FROM query('DROP TABLE events')".to_string(),
        ] {
            let e = run_guarded(&ws, &bad, 10).unwrap_err();
            assert!(e.to_string().contains("sql_read_only"), "{bad}: {e}");
        }
        let s = schema(&ws).unwrap();
        assert!(s
            .rows
            .iter()
            .any(|r| r[0].as_deref() == Some("events") && r[1].as_deref() == Some("event_name")));
    }
}
