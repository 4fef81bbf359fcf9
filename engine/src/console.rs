//! The SQL console (the app's and `stitchbook sql`): exactly one read-only query over the
//! workspace's own tables, stopped after a time limit or on request.
//!
//! The text is parsed by DuckDB (`json_serialize_sql`, the text a bound parameter) before
//! anything runs; it must be one SELECT that names only this workspace's tables and views
//! (or its own CTEs) and calls no table function that reads files. Then the text itself,
//! never spliced into another statement, runs on a connection of its own inside a
//! read-only transaction, and the rows are formatted here.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use duckdb::arrow::array::{make_array, Array, ArrayData, ArrayRef};
use duckdb::arrow::datatypes::{DataType, Field, Fields, UnionFields};
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::Connection;
use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use crate::jobs::CancelToken;
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

/// The error code of every refusal.
pub const REFUSED: &str = "sql_read_only";
/// The error code of a query stopped by the time limit.
pub const TIMED_OUT: &str = "sql_timeout";

/// Run one read-only query and return at most `limit` rows. It is refused unless it is
/// exactly one SELECT over this workspace's tables (see [`check`]); it is interrupted after
/// `timeout` (an [`EngineError::InvalidQuery`] with code [`TIMED_OUT`]) or when `cancel` is
/// cancelled ([`EngineError::Cancelled`]).
pub fn run(
    ws: &Workspace,
    statement: &str,
    limit: usize,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<SqlTable> {
    let started = Instant::now();
    check(ws, statement)?;
    // A connection of its own: an interrupt (timeout, cancel) reaches only this query, and
    // once it is dropped a late cancel reaches nothing.
    let conn = ws.clone_conn()?;
    let handle = conn.interrupt_handle();
    cancel.attach(handle.clone());
    cancel.check()?;
    let timed_out = Arc::new(AtomicBool::new(false));
    let (done, wait) = mpsc::channel::<()>();
    let timer = {
        let timed_out = timed_out.clone();
        let cancel = cancel.clone();
        // No deadline when it is too far away to say.
        let deadline = Instant::now().checked_add(timeout);
        std::thread::Builder::new()
            .name("sql-timeout".into())
            .spawn(move || {
                // Until the query is done: past the deadline or once cancelled, interrupt it,
                // and again a moment later (an interrupt between two steps is not kept).
                let tick = Duration::from_millis(100);
                loop {
                    let left = deadline.map_or(Duration::MAX, |d| {
                        d.saturating_duration_since(Instant::now())
                    });
                    if left.is_zero() {
                        timed_out.store(true, Ordering::SeqCst);
                    }
                    if left.is_zero() || cancel.is_cancelled() {
                        handle.interrupt();
                    }
                    let wait_for = if left.is_zero() { tick } else { left.min(tick) };
                    match wait.recv_timeout(wait_for) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
            })
            .map_err(|e| EngineError::InvalidArgument(format!("starting the SQL timer: {e}")))?
    };
    let result = conn
        .execute_batch("BEGIN TRANSACTION READ ONLY")
        .map_err(EngineError::from)
        .and_then(|()| fetch(&conn, statement, limit));
    drop(done);
    let _ = timer.join();
    match result {
        Ok((columns, rows, truncated)) => Ok(SqlTable {
            columns,
            rows,
            truncated,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        }),
        Err(_) if timed_out.load(Ordering::SeqCst) => Err(EngineError::InvalidQuery {
            code: TIMED_OUT,
            message: format!(
                "the query was stopped after {} (the console's time limit, setting {})",
                show_duration(timeout),
                crate::resources::SQL_TIMEOUT_KEY
            ),
        }),
        Err(e) => Err(e.cancelled_if(cancel.is_cancelled())),
    }
}

fn show_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Column names, rows, and whether more rows were left.
type Fetched = (Vec<String>, Vec<Vec<Option<String>>>, bool);

/// Execute `sql` (one statement) and format at most `limit` rows, streaming: a large result
/// is never held whole.
fn fetch(conn: &Connection, sql: &str, limit: usize) -> Result<Fetched> {
    let mut st = conn.prepare(sql)?;
    // Execute (streaming); the rows are then read chunk by chunk with `step`, which reports
    // an interrupted query as an error.
    drop(st.stream_arrow([])?);
    let columns = st.column_names();
    let naive = FormatOptions::default()
        .with_null("NULL")
        .with_display_error(true)
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    // The connection's time zone is UTC: a TIMESTAMPTZ reads as DuckDB writes it.
    let utc = naive
        .clone()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f+00"));
    let bad = |e: duckdb::arrow::error::ArrowError| {
        EngineError::InvalidArgument(format!("formatting the result: {e}"))
    };
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    while rows.len() <= limit {
        let Some(chunk) = st.step()? else { break };
        // Arrow formats named time zones only with a feature we do not build; the instants
        // are formatted as UTC instead.
        let cols = chunk
            .columns()
            .iter()
            .map(|c| -> Result<(ArrayRef, bool)> {
                let t = c.data_type();
                let plain = without_tz(t);
                if &plain == t {
                    Ok((c.clone(), false))
                } else {
                    Ok((make_array(retyped(c.to_data()).map_err(bad)?), true))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let formatters = cols
            .iter()
            .map(|(c, tz)| ArrayFormatter::try_new(c.as_ref(), if *tz { &utc } else { &naive }))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        for i in 0..chunk.len() {
            if rows.len() > limit {
                break;
            }
            rows.push(
                cols.iter()
                    .zip(&formatters)
                    .map(|((c, _), f)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                    .collect(),
            );
        }
    }
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok((columns, rows, truncated))
}

/// `t` with every timestamp's time zone dropped (the instants stay: Arrow keeps UTC).
fn without_tz(t: &DataType) -> DataType {
    let field = |f: &Field| f.clone().with_data_type(without_tz(f.data_type()));
    let fields = |fs: &Fields| fs.iter().map(|f| field(f)).collect::<Fields>();
    match t {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, None),
        DataType::List(f) => DataType::List(Arc::new(field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(field(f))),
        DataType::ListView(f) => DataType::ListView(Arc::new(field(f))),
        DataType::LargeListView(f) => DataType::LargeListView(Arc::new(field(f))),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(Arc::new(field(f)), *n),
        DataType::Struct(fs) => DataType::Struct(fields(fs)),
        DataType::Map(f, sorted) => DataType::Map(Arc::new(field(f)), *sorted),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(without_tz(v))),
        DataType::Union(fs, mode) => DataType::Union(
            fs.iter()
                .map(|(id, f)| (id, Arc::new(field(f))))
                .collect::<UnionFields>(),
            *mode,
        ),
        other => other.clone(),
    }
}

/// The same data with [`without_tz`] applied to its type and its children's.
fn retyped(data: ArrayData) -> std::result::Result<ArrayData, duckdb::arrow::error::ArrowError> {
    let t = without_tz(data.data_type());
    let children = data
        .child_data()
        .iter()
        .cloned()
        .map(retyped)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    data.into_builder()
        .data_type(t)
        .child_data(children)
        .build()
}

/// Table functions the console may call: none of them reads files or changes anything.
const SAFE_TABLE_FUNCTIONS: [&str; 11] = [
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
];

/// The system views of `information_schema` the console may read.
const SAFE_INFORMATION_SCHEMA: [&str; 4] = ["tables", "columns", "schemata", "views"];

fn refuse(why: impl Into<String>) -> EngineError {
    EngineError::InvalidQuery {
        code: REFUSED,
        message: why.into(),
    }
}

/// Refuse anything but exactly one SELECT (`WITH`, `FROM`, `VALUES`, `DESCRIBE`, `SHOW`,
/// `SUMMARIZE`, `PIVOT` are SELECTs too) that reads only this workspace's tables and views
/// and calls no table function outside [`SAFE_TABLE_FUNCTIONS`]. Only parses: nothing of
/// the text runs.
pub fn check(ws: &Workspace, statement: &str) -> Result<()> {
    if statement.trim().trim_matches(';').trim().is_empty() {
        return Err(EngineError::InvalidArgument("no SQL given".into()));
    }
    let c = ws.conn();
    let ast: String = c.query_row("SELECT json_serialize_sql(?::VARCHAR)", [statement], |r| {
        r.get(0)
    })?;
    let ast: Value = serde_json::from_str(&ast)
        .map_err(|e| EngineError::InvalidArgument(format!("reading the parsed query: {e}")))?;
    if ast.get("error").and_then(Value::as_bool) == Some(true) {
        let msg = ast
            .get("error_message")
            .and_then(Value::as_str)
            .unwrap_or("not a query");
        return Err(refuse(if msg.contains("Only SELECT") {
            "the console runs exactly one read-only query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE); nothing that writes, attaches, copies, sets, checkpoints or loads".to_string()
        } else {
            format!("the query does not parse: {msg}")
        }));
    }
    let statements = ast
        .get("statements")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if statements.len() != 1 {
        return Err(refuse(format!(
            "the console runs exactly one query (got {} statements)",
            statements.len()
        )));
    }
    let (database, tables): (String, HashSet<String>) = {
        let database: String = c.query_row("SELECT lower(current_database())", [], |r| r.get(0))?;
        let mut st = c.prepare(
            "SELECT lower(table_name) FROM duckdb_tables()
             WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
             UNION
             SELECT lower(view_name) FROM duckdb_views()
             WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
               AND NOT internal",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        (database, rows.collect::<duckdb::Result<_>>()?)
    };
    let allowed = Allowed { database, tables };
    allowed.check(&statements[0], &[])
}

struct Allowed {
    database: String,
    tables: HashSet<String>,
}

fn text(m: &serde_json::Map<String, Value>, key: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase()
}

impl Allowed {
    /// Walk the parsed statement. `ctes` are the CTE names in scope here: those of the
    /// enclosing queries, and of this query those defined before (a CTE's body does not see
    /// itself or later CTEs, so a name it uses there is not taken for the CTE).
    fn check(&self, v: &Value, ctes: &[String]) -> Result<()> {
        match v {
            Value::Array(items) => items.iter().try_for_each(|x| self.check(x, ctes)),
            Value::Object(m) => {
                let mut scope = ctes.to_vec();
                if let Some(map) = m
                    .get("cte_map")
                    .and_then(|c| c.get("map"))
                    .and_then(Value::as_array)
                {
                    for entry in map {
                        if let Some(body) = entry.get("value") {
                            self.check(body, &scope)?;
                        }
                        if let Some(k) = entry.get("key").and_then(Value::as_str) {
                            scope.push(k.to_lowercase());
                        }
                    }
                }
                let kind = text(m, "type");
                match kind.as_str() {
                    // A recursive CTE's own name, inside its definition.
                    "recursive_cte_node" => scope.push(text(m, "cte_name")),
                    "base_table" => self.check_table(m, &scope)?,
                    "show_ref" => {
                        let t = text(m, "table_name");
                        // DESCRIBE / SUMMARIZE name a table, or carry their query instead.
                        if !t.is_empty()
                            && !self.tables.contains(&t)
                            && !matches!(t.as_str(), "\"tables\"" | "__show_tables_expanded")
                        {
                            return Err(refuse(format!(
                                "\"{t}\" is not a table of this workspace (the console reads only the workspace's tables and views)"
                            )));
                        }
                    }
                    "table_function" => {
                        let f = m
                            .get("function")
                            .and_then(Value::as_object)
                            .map(|f| text(f, "function_name"))
                            .unwrap_or_default();
                        if !SAFE_TABLE_FUNCTIONS.contains(&f.as_str()) {
                            return Err(refuse(format!(
                                "the console does not call the table function {f}() (it reads only the workspace's tables)"
                            )));
                        }
                    }
                    "function" => {
                        let f = text(m, "function_name");
                        if f.starts_with("read_")
                            || f.starts_with("parquet_")
                            || matches!(
                                f.as_str(),
                                "glob"
                                    | "sniff_csv"
                                    | "query"
                                    | "query_table"
                                    | "getenv"
                                    | "nextval"
                                    | "json_execute_serialized_sql"
                            )
                        {
                            return Err(refuse(format!(
                                "the console does not call {f}() (no file access, no changes)"
                            )));
                        }
                    }
                    _ => {}
                }
                m.iter()
                    .filter(|(k, _)| k.as_str() != "cte_map")
                    .try_for_each(|(_, x)| self.check(x, &scope))
            }
            _ => Ok(()),
        }
    }

    fn check_table(&self, m: &serde_json::Map<String, Value>, ctes: &[String]) -> Result<()> {
        let (catalog, schema, table) = (
            text(m, "catalog_name"),
            text(m, "schema_name"),
            text(m, "table_name"),
        );
        let here = catalog.is_empty() || catalog == self.database;
        let ok = (catalog.is_empty() && schema.is_empty() && ctes.contains(&table))
            || (here && (schema.is_empty() || schema == "main") && self.tables.contains(&table))
            || ((catalog.is_empty() || catalog == "system" || here)
                && schema == "information_schema"
                && SAFE_INFORMATION_SCHEMA.contains(&table.as_str()));
        if ok {
            Ok(())
        } else {
            let name = [catalog, schema, table]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            Err(refuse(format!(
                "\"{name}\" is not a table of this workspace (the console reads only the workspace's tables and views, no files)"
            )))
        }
    }
}

/// The workspace's tables and views with their columns and types, for a schema list.
pub fn schema(ws: &Workspace) -> Result<SqlTable> {
    let started = Instant::now();
    let (columns, rows, truncated) = fetch(
        ws.conn(),
        "SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = 'main' AND table_catalog = current_database()
         ORDER BY table_name, ordinal_position",
        100_000,
    )?;
    Ok(SqlTable {
        columns,
        rows,
        truncated,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn ok(ws: &Workspace, sql: &str) -> SqlTable {
        run(ws, sql, 100, LONG, &CancelToken::new()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn refused(ws: &Workspace, sql: &str) -> String {
        match run(ws, sql, 100, LONG, &CancelToken::new()) {
            Err(e @ EngineError::InvalidQuery { code: REFUSED, .. }) => e.to_string(),
            Err(EngineError::InvalidArgument(m)) if m == "no SQL given" => m,
            Err(e) => panic!("{sql}: refused for another reason: {e}"),
            Ok(t) => panic!("{sql}: ran and gave {t:?}"),
        }
    }

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path().join("w.duckdb")).unwrap();
        ws.conn()
            .execute_batch(
                "INSERT INTO events (source_vendor, source_file, source_line, import_id, event_uuid, event_name, event_kind, ts_utc, properties)
                 SELECT 'posthog', 'f', i, 1, 'u' || i, 'e' || i, 'track', TIMESTAMPTZ '2024-01-02 03:04:05+00', '{}'
                 FROM range(1, 4) t(i)",
            )
            .unwrap();
        (dir, ws)
    }

    #[test]
    fn one_read_only_query_runs_and_its_rows_are_text() {
        let (_dir, ws) = workspace();
        let t = ok(
            &ws,
            "SELECT 1 AS a, 'x' AS b, NULL AS c, [1, 2] AS l, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS t
             UNION ALL SELECT 2, 'y', 3, [], NULL;",
        );
        assert_eq!(t.columns, ["a", "b", "c", "l", "t"]);
        assert_eq!(t.rows.len(), 2);
        let first = &t.rows[0];
        assert_eq!(first[0].as_deref(), Some("1"));
        assert_eq!(first[1].as_deref(), Some("x"));
        assert_eq!(first[2], None);
        assert_eq!(first[3].as_deref(), Some("[1, 2]"));
        assert!(
            first[4]
                .as_deref()
                .unwrap_or("")
                .starts_with("2024-01-02 03:04:05"),
            "{first:?}"
        );
        // At most `limit` rows, and it says there were more.
        let t = run(&ws, "FROM events", 2, LONG, &CancelToken::new()).unwrap();
        assert_eq!((t.rows.len(), t.truncated), (2, true));
        for sql in [
            "WITH c AS (SELECT count(*) AS n FROM events) SELECT n, x FROM c, unnest([1, 2]) AS u(x)",
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM b",
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
            "SELECT e.event_name FROM main.events e JOIN persons p ON p.person_id = e.distinct_id",
            "SELECT (SELECT count(*) FROM events) AS n",
            "FROM events SELECT event_name",
            "VALUES (1, 'a'), (2, 'b')",
            "DESCRIBE events",
            "SUMMARIZE events",
            "SHOW TABLES",
            "SHOW ALL TABLES",
            "SELECT table_name FROM information_schema.tables",
            "SELECT * FROM duckdb_tables()",
            "SELECT key, value FROM events, json_each(events.properties)",
            "SELECT count(*) FROM range(10)",
        ] {
            ok(&ws, sql);
        }
        let t = ok(&ws, "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t");
        assert_eq!(t.rows.len(), 3);
    }

    #[test]
    fn anything_else_is_refused_and_nothing_of_it_runs() {
        let (dir, ws) = workspace();
        let secret = dir.path().join("secret.csv");
        std::fs::write(&secret, "a\n1\n").unwrap();
        let f = secret.display().to_string();
        let attacks = [
            // Shaped to close a wrapper the console once put around the text.
            "SELECT 1) AS t; CHECKPOINT; SELECT * FROM (SELECT 1".to_string(),
            "SELECT 1); SET VARIABLE pwned = 1; SELECT (1".to_string(),
            "SELECT 1) LIMIT 1; CREATE TEMP TABLE pwned AS SELECT 1; SELECT * FROM (SELECT 1"
                .to_string(),
            // More than one statement, or not a query.
            "SELECT 1; SELECT 2".to_string(),
            "SELECT 1; CHECKPOINT".to_string(),
            "CHECKPOINT".to_string(),
            "SET VARIABLE pwned = 1".to_string(),
            "CREATE TEMP TABLE pwned AS SELECT 1".to_string(),
            "DELETE FROM events".to_string(),
            "drop table events".to_string(),
            "INSERT INTO events SELECT * FROM events".to_string(),
            "UPDATE events SET event_name = 'x'".to_string(),
            format!("COPY events TO '{f}.out'"),
            format!("ATTACH '{f}.db' AS other"),
            "DETACH other".to_string(),
            "PRAGMA version".to_string(),
            "SET threads = 1".to_string(),
            "RESET threads".to_string(),
            "CALL checkpoint()".to_string(),
            "INSTALL httpfs".to_string(),
            "LOAD httpfs".to_string(),
            format!("EXPORT DATABASE '{f}.dir'"),
            "EXPLAIN SELECT 1".to_string(),
            "BEGIN TRANSACTION".to_string(),
            String::new(),
            " ; ".to_string(),
            // Files and other databases.
            format!("SELECT * FROM read_csv('{f}')"),
            format!("SELECT * FROM read_csv_auto('{f}')"),
            format!("SELECT * FROM '{f}'"),
            format!("SELECT * FROM \"{f}\""),
            format!("SELECT * FROM events, read_text('{f}')"),
            format!("SELECT (SELECT count(*) FROM read_csv_auto('{f}'))"),
            format!("SELECT * FROM read_parquet('{f}')"),
            format!("SELECT * FROM read_json('{f}')"),
            format!("SELECT * FROM sniff_csv('{f}')"),
            format!("DESCRIBE '{f}'"),
            format!("SUMMARIZE SELECT * FROM read_csv('{f}')"),
            "SELECT * FROM glob('/*')".to_string(),
            "SELECT * FROM query('DROP TABLE events')".to_string(),
            "SELECT * FROM checkpoint()".to_string(),
            "SELECT * FROM other.main.events".to_string(),
            "SELECT * FROM temp.main.events".to_string(),
            "SELECT nextval('import_id_seq')".to_string(),
            "SELECT getenv('HOME')".to_string(),
            // A CTE's name is no cover for a file outside the CTE's scope, or in its body.
            format!("SELECT * FROM (WITH \"{f}\" AS (SELECT 1) SELECT * FROM \"{f}\"), \"{f}\""),
            format!("WITH \"{f}\" AS (SELECT * FROM \"{f}\") SELECT * FROM \"{f}\""),
            "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a".to_string(),
        ];
        for sql in &attacks {
            refused(&ws, sql);
        }
        // A comment is part of the one query, never a way out of it.
        assert_eq!(
            ok(
                &ws,
                "SELECT 1 AS x -- ) ; CREATE TEMP TABLE pwned AS SELECT 1"
            )
            .rows
            .len(),
            1
        );
        // Nothing ran: no variable, no temporary table, no checkpoint-made change, no file.
        let c = ws.clone_conn().unwrap();
        let var: Option<i64> = c
            .query_row("SELECT getvariable('pwned')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(var, None);
        let temp: i64 = ws
            .conn()
            .query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(temp, 0);
        assert!(!dir.path().join("secret.csv.out").exists());
        let e = refused(&ws, &format!("SELECT * FROM read_csv('{f}')"));
        assert!(e.contains("read_csv"), "{e}");
        let e = refused(&ws, "SELECT 1; SELECT 2");
        assert!(e.contains("exactly one"), "{e}");
        // Refused for what they read, not because DuckDB could not parse them.
        for sql in [
            format!("SELECT * FROM (WITH \"{f}\" AS (SELECT 1) SELECT * FROM \"{f}\"), \"{f}\""),
            format!("WITH \"{f}\" AS (SELECT * FROM \"{f}\") SELECT * FROM \"{f}\""),
            format!("DESCRIBE '{f}'"),
            "SELECT * FROM temp.main.events".to_string(),
        ] {
            let e = refused(&ws, &sql);
            assert!(e.contains("is not a table of this workspace"), "{sql}: {e}");
        }
    }

    #[test]
    fn a_runaway_query_stops_at_the_time_limit_or_when_cancelled() {
        let (_dir, ws) = workspace();
        let started = Instant::now();
        let e = run(
            &ws,
            "SELECT count(*) FROM range(1000000000000)",
            10,
            Duration::from_millis(300),
            &CancelToken::new(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                EngineError::InvalidQuery {
                    code: TIMED_OUT,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("300 ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(30));
        // Cancelled from elsewhere (the app's Cancel button).
        let cancel = CancelToken::new();
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                cancel.cancel();
            })
        };
        let e = run(
            &ws,
            "SELECT count(*) FROM range(1000000000000)",
            10,
            LONG,
            &cancel,
        )
        .unwrap_err();
        canceller.join().unwrap();
        assert!(matches!(e, EngineError::Cancelled), "{e}");
        // The workspace answers again at once.
        assert_eq!(ok(&ws, "SELECT 42 AS x").rows, [[Some("42".to_string())]]);
    }

    #[test]
    fn the_schema_lists_tables_and_columns() {
        let (_dir, ws) = workspace();
        let s = schema(&ws).unwrap();
        assert!(s
            .rows
            .iter()
            .any(|r| r[0].as_deref() == Some("events") && r[1].as_deref() == Some("event_name")));
    }
}
