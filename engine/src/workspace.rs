//! A workspace is one DuckDB file. Opening it applies the embedded, numbered migrations in
//! one transaction and refuses a file written by a newer Stitchbook.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::Connection;

use crate::{EngineError, Result};

/// Embedded migrations, in order. The number is the schema version each one produces.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "model", include_str!("../migrations/0002_model.sql")),
    (
        3,
        "profiles",
        include_str!("../migrations/0003_profiles.sql"),
    ),
    (4, "cohorts", include_str!("../migrations/0004_cohorts.sql")),
    (5, "pii", include_str!("../migrations/0005_pii.sql")),
    (
        6,
        "pii_reveal",
        include_str!("../migrations/0006_pii_reveal.sql"),
    ),
    (
        7,
        "remembered",
        include_str!("../migrations/0007_remembered.sql"),
    ),
    (
        8,
        "import_trust",
        include_str!("../migrations/0008_import_trust.sql"),
    ),
    (
        9,
        "hot_columns",
        include_str!("../migrations/0009_hot_columns.sql"),
    ),
    (
        10,
        "incremental_model",
        include_str!("../migrations/0010_incremental_model.sql"),
    ),
];

/// The newest schema version this build understands.
pub const SCHEMA_VERSION: i64 = 10;

/// SQL helpers every connection gets. Timestamps are parsed with explicit formats only.
const MACROS: &str = include_str!("../sql/macros.sql");

pub struct Workspace {
    conn: Connection,
    path: PathBuf,
    /// One remembered value (see [`Workspace::memo_get`]).
    memo: Mutex<Option<Memo>>,
}

/// A value remembered under a key that names everything it was derived from.
type Memo = (String, Arc<dyn Any + Send + Sync>);

impl Workspace {
    /// Open the workspace at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
            }
        }
        let conn = Connection::open(&path)?;
        let ws = Workspace {
            conn,
            path,
            memo: Mutex::new(None),
        };
        ws.conn.execute_batch("SET TimeZone = 'UTC';")?;
        ws.migrate()?;
        ws.configure_connection(&ws.conn)?;
        crate::resources::apply(&ws)?;
        crate::ingest::mark_interrupted_imports(&ws.conn)?;
        Ok(ws)
    }

    /// Open an existing workspace read-only, with no access to other files: for power users'
    /// SQL. The schema is brought up to date first.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(EngineError::InvalidArgument(format!(
                "{}: no such workspace",
                path.display()
            )));
        }
        drop(Workspace::open(&path)?);
        let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?;
        let conn = Connection::open_with_flags(&path, config)?;
        let ws = Workspace {
            conn,
            path,
            memo: Mutex::new(None),
        };
        ws.configure_connection(&ws.conn)?;
        // UTC for every connection to it too (the SQL console runs on one of its own), then
        // the configuration is locked.
        ws.conn.execute_batch(
            "SET GLOBAL TimeZone = 'UTC'; SET enable_external_access = false; SET lock_configuration = true;",
        )?;
        Ok(ws)
    }

    /// An in-memory workspace, for tests and the bench.
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()?;
        let ws = Workspace {
            conn,
            path: PathBuf::from(":memory:"),
            memo: Mutex::new(None),
        };
        ws.conn.execute_batch("SET TimeZone = 'UTC';")?;
        ws.migrate()?;
        ws.configure_connection(&ws.conn)?;
        Ok(ws)
    }

    /// Where a workspace goes when the user has not chosen: the platform data directory.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("dev", "Stitchbook", "Stitchbook")
            .map(|d| d.data_dir().join("workspaces"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The value last remembered under `key`, if it is that one and of type `T`. One slot:
    /// e.g. the last funnel's per-person outcomes, which its drill-downs reuse. The key must
    /// name everything the value depends on (query, `now`, model build).
    pub fn memo_get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let slot = self.memo.lock().ok()?;
        match slot.as_ref() {
            Some((k, v)) if k == key => v.clone().downcast::<T>().ok(),
            _ => None,
        }
    }

    /// Remember `value` under `key`, replacing whatever was remembered.
    pub fn memo_put<T: Any + Send + Sync>(&self, key: String, value: Arc<T>) {
        if let Ok(mut slot) = self.memo.lock() {
            *slot = Some((key, value));
        }
    }

    /// A second handle on the same open database, with its own connection and memo: a host
    /// answers queries on one while a job writes on the other. DuckDB isolates them: a
    /// reader sees the state before the writer's open transaction until it commits.
    pub fn try_clone(&self) -> Result<Workspace> {
        Ok(Workspace {
            conn: self.clone_conn()?,
            path: self.path.clone(),
            memo: Mutex::new(None),
        })
    }

    /// A second connection to the same database, for a worker thread.
    pub fn clone_conn(&self) -> Result<Connection> {
        let c = self.conn.try_clone()?;
        self.configure_connection(&c)?;
        Ok(c)
    }

    /// Session settings and the SQL helpers (after migrations: some read workspace tables).
    fn configure_connection(&self, conn: &Connection) -> Result<()> {
        // Set unless it already is (a read-only workspace's configuration is locked).
        let tz: String = conn.query_row("SELECT current_setting('TimeZone')", [], |r| r.get(0))?;
        if tz != "UTC" {
            conn.execute_batch("SET TimeZone = 'UTC';")?;
        }
        conn.execute_batch(MACROS)?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        schema_version(&self.conn)
    }

    fn migrate(&self) -> Result<()> {
        let c = &self.conn;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        )?;
        let current = schema_version(c)?;
        if current > SCHEMA_VERSION {
            return Err(EngineError::WorkspaceTooNew {
                path: self.path.clone(),
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        let pending: Vec<_> = MIGRATIONS.iter().filter(|m| m.0 > current).collect();
        if pending.is_empty() {
            return Ok(());
        }
        // One transaction per migration, each recording its version: DuckDB refuses to commit
        // a transaction that alters a table after updating it, as an old workspace's
        // migrations may (version 2 numbers the events, version 9 adds columns to them).
        for (version, name, sql) in &pending {
            c.execute_batch("BEGIN TRANSACTION")?;
            let run = || -> Result<()> {
                c.execute_batch(sql)?;
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, now())",
                    duckdb::params![version, name],
                )?;
                Ok(())
            };
            match run() {
                Ok(()) => c.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = c.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A workspace setting, e.g. the identity mode.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT value FROM workspace_settings WHERE key = ?")?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(r) => Ok(Some(r.get(0)?)),
            None => Ok(None),
        }
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO workspace_settings VALUES (?, ?)",
            [key, value],
        )?;
        Ok(())
    }
}

fn schema_version(c: &Connection) -> Result<i64> {
    let v: Option<i64> = c.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ws.duckdb");
        {
            let ws = Workspace::open(&p).unwrap();
            assert_eq!(ws.schema_version().unwrap(), SCHEMA_VERSION);
            ws.set_setting("k", "v").unwrap();
        }
        let ws = Workspace::open(&p).unwrap();
        assert_eq!(ws.setting("k").unwrap().as_deref(), Some("v"));
        let n: i64 = ws
            .conn()
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_version_1_workspace_upgrades_and_keys_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.duckdb");
        {
            let c = duckdb::Connection::open(&p).unwrap();
            c.execute_batch(MIGRATIONS[0].2).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 'init', now());
                 INSERT INTO events (source_vendor, source_file, source_line, import_id, event_uuid, event_name, event_kind, ts_utc, properties)
                 SELECT 'posthog', 'f', i, 3, 'u' || i, 'e', 'track', now(), '{}' FROM range(1, 4) t(i);",
            )
            .unwrap();
        }
        let ws = Workspace::open(&p).unwrap();
        assert_eq!(ws.schema_version().unwrap(), SCHEMA_VERSION);
        let (n, distinct, min): (i64, i64, i64) = ws
            .conn()
            .query_row(
                "SELECT count(*), count(DISTINCT event_seq), min(event_seq) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, distinct, min), (3, 3, 3 * 4_294_967_296 + 1));
    }

    #[test]
    fn refuses_newer_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ws.duckdb");
        {
            let ws = Workspace::open(&p).unwrap();
            ws.conn()
                .execute(
                    "INSERT INTO schema_migrations VALUES (?, 'future', now())",
                    [SCHEMA_VERSION + 1],
                )
                .unwrap();
        }
        match Workspace::open(&p) {
            Err(EngineError::WorkspaceTooNew { found, .. }) => {
                assert_eq!(found, SCHEMA_VERSION + 1)
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a newer workspace"),
        }
    }

    #[test]
    fn timestamp_macro_is_explicit() {
        let ws = Workspace::in_memory().unwrap();
        let q = |s: &str| -> Option<String> {
            ws.conn()
                .query_row(
                    "SELECT strftime(sb_ts(?), '%Y-%m-%d %H:%M:%S.%f')",
                    [s],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(
            q("2023-09-15T09:15:02.325000+00:00").as_deref(),
            Some("2023-09-15 09:15:02.325000")
        );
        assert_eq!(
            q("2023-09-15T09:15:02Z").as_deref(),
            Some("2023-09-15 09:15:02.000000")
        );
        assert_eq!(
            q("2023-09-15T11:15:02+02:00").as_deref(),
            Some("2023-09-15 09:15:02.000000")
        );
        assert_eq!(
            q("2023-09-15 09:15:02.5").as_deref(),
            Some("2023-09-15 09:15:02.500000")
        );
        assert_eq!(q("yesterday"), None);
        assert_eq!(q("1694769302"), None);
    }
}
