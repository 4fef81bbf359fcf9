//! DuckDB's resources: the memory limit and the number of threads, saved in the workspace
//! (`workspace_settings`, keys `duckdb.memory_limit_mb` and `duckdb.threads`) and applied to
//! its connection whenever it is opened; and the SQL console's time limit
//! (`sql.timeout_seconds`). They are not model settings: changing them never
//! makes the model stale.
//!
//! Jobs that bound their own memory (a rebuild, a PII scan or export) do so with
//! [`MemoryCap`] only while the user has not chosen a limit: a chosen limit wins.

use duckdb::Connection;
use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

pub const MEMORY_KEY: &str = "duckdb.memory_limit_mb";
pub const THREADS_KEY: &str = "duckdb.threads";
/// How long one SQL console query may run, in seconds.
pub const SQL_TIMEOUT_KEY: &str = "sql.timeout_seconds";
/// The resource setting keys, as `stitchbook settings --set` names them.
pub const RESOURCE_KEYS: &[&str] = &[MEMORY_KEY, THREADS_KEY, SQL_TIMEOUT_KEY];

const MEMORY_MB: std::ops::RangeInclusive<u64> = 256..=1_048_576;
const THREADS: std::ops::RangeInclusive<u64> = 1..=256;
const SQL_TIMEOUT: std::ops::RangeInclusive<u64> = 1..=86_400;
/// The console's time limit when none is chosen.
pub const DEFAULT_SQL_TIMEOUT_SECONDS: u64 = 30;

/// The chosen limits (None: DuckDB's default, 80% of RAM and one thread per core) and what
/// DuckDB reports in effect.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ResourceSettings {
    #[ts(type = "number | null")]
    pub memory_limit_mb: Option<u64>,
    #[ts(type = "number | null")]
    pub threads: Option<u64>,
    /// `current_setting('memory_limit')`, e.g. `19.2 GiB`.
    pub effective_memory_limit: String,
    #[ts(type = "number")]
    pub effective_threads: i64,
    /// The SQL console's time limit (None: [`DEFAULT_SQL_TIMEOUT_SECONDS`]).
    #[ts(type = "number | null")]
    pub sql_timeout_seconds: Option<u64>,
}

fn parse(key: &str, v: &str, range: &std::ops::RangeInclusive<u64>) -> Result<Option<u64>> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(EngineError::InvalidArgument(format!(
            "{key} must be a whole number from {} to {}, or \"default\", not \"{v}\"",
            range.start(),
            range.end()
        ))),
    }
}

impl ResourceSettings {
    /// The saved choices and the values in effect on the workspace's connection.
    pub fn load(ws: &Workspace) -> Result<Self> {
        let (memory_limit_mb, threads) = chosen(ws)?;
        let (effective_memory_limit, effective_threads) = ws.conn().query_row(
            "SELECT current_setting('memory_limit'), current_setting('threads')::BIGINT",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(ResourceSettings {
            memory_limit_mb,
            threads,
            effective_memory_limit,
            effective_threads,
            sql_timeout_seconds: chosen_sql_timeout(ws)?,
        })
    }

    /// Validate, save and apply one setting (`default` or an empty value goes back to
    /// DuckDB's default).
    pub fn set(ws: &Workspace, key: &str, value: &str) -> Result<Self> {
        let range = match key {
            MEMORY_KEY => &MEMORY_MB,
            THREADS_KEY => &THREADS,
            SQL_TIMEOUT_KEY => &SQL_TIMEOUT,
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown setting \"{key}\": one of {}",
                    RESOURCE_KEYS.join(", ")
                )))
            }
        };
        let v = parse(key, value, range)?;
        match v {
            Some(n) => ws.set_setting(key, &n.to_string())?,
            None => {
                ws.conn()
                    .execute("DELETE FROM workspace_settings WHERE key = ?", [key])?;
            }
        }
        apply(ws)?;
        Self::load(ws)
    }
}

/// The saved choices; a stored value that no longer parses counts as the default.
fn chosen(ws: &Workspace) -> Result<(Option<u64>, Option<u64>)> {
    let get = |key: &str, range| -> Result<Option<u64>> {
        Ok(match ws.setting(key)? {
            Some(v) => parse(key, &v, range).unwrap_or(None),
            None => None,
        })
    };
    Ok((get(MEMORY_KEY, &MEMORY_MB)?, get(THREADS_KEY, &THREADS)?))
}

fn chosen_sql_timeout(ws: &Workspace) -> Result<Option<u64>> {
    Ok(match ws.setting(SQL_TIMEOUT_KEY)? {
        Some(v) => parse(SQL_TIMEOUT_KEY, &v, &SQL_TIMEOUT).unwrap_or(None),
        None => None,
    })
}

/// The SQL console's time limit for this workspace.
pub fn sql_timeout(ws: &Workspace) -> Result<std::time::Duration> {
    Ok(std::time::Duration::from_secs(
        chosen_sql_timeout(ws)?.unwrap_or(DEFAULT_SQL_TIMEOUT_SECONDS),
    ))
}

/// Apply the saved choices to the workspace's connection (on open, and after a change).
pub fn apply(ws: &Workspace) -> Result<()> {
    let (memory, threads) = chosen(ws)?;
    let c = ws.conn();
    // Settings take no parameters; both values are integers checked against their ranges.
    match memory {
        Some(mb) => c.execute_batch(&format!("SET memory_limit = '{mb}MB'"))?,
        None => c.execute_batch("RESET memory_limit")?,
    }
    match threads {
        Some(n) => c.execute_batch(&format!("SET threads = {n}"))?,
        None => c.execute_batch("RESET threads")?,
    }
    Ok(())
}

/// DuckDB's memory limit lowered for a while, and what it was.
#[must_use]
pub(crate) struct MemoryCap(Option<String>);

impl MemoryCap {
    /// Lower the limit to `to` unless it is already lower.
    pub(crate) fn apply(conn: &Connection, to: &str) -> Result<Self> {
        let now: String =
            conn.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))?;
        match (size_bytes(&now), size_bytes(to)) {
            (Some(n), Some(t)) if n > t => {
                set_memory_limit(conn, to)?;
                Ok(MemoryCap(Some(now)))
            }
            _ => Ok(MemoryCap(None)),
        }
    }

    /// Lower the limit to `to` for a job, unless the user chose a limit for this workspace.
    pub(crate) fn unless_chosen(ws: &Workspace, to: &str) -> Result<Self> {
        if chosen(ws)?.0.is_some() {
            return Ok(MemoryCap(None));
        }
        Self::apply(ws.conn(), to)
    }

    pub(crate) fn restore(self, conn: &Connection) -> Result<()> {
        let Some(was) = self.0 else {
            return Ok(());
        };
        // The setting reads back rounded (`2.7 GiB`): the default is restored exactly by a
        // reset, anything else by setting what was read.
        conn.execute_batch("RESET memory_limit")?;
        let now: String =
            conn.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))?;
        if now != was {
            set_memory_limit(conn, &was)?;
        }
        Ok(())
    }
}

/// `1GB`, `19.2 GiB`, `512 MiB` in bytes.
fn size_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let n: f64 = s[..split].trim().parse().ok()?;
    let unit = match &s[split..] {
        "" | "B" | "bytes" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * unit)
}

/// `SET memory_limit`: a setting takes no parameters, so the value is checked to be a plain
/// size (digits, a dot, spaces and a unit) before it is quoted into the statement.
fn set_memory_limit(conn: &Connection, to: &str) -> Result<()> {
    if !to
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == ' ')
    {
        return Err(EngineError::InvalidArgument(format!(
            "\"{to}\" is not a memory size"
        )));
    }
    conn.execute_batch(&format!("SET memory_limit = '{to}'"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(c: &Connection) -> String {
        c.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(size_bytes("1GB"), Some(1e9));
        assert_eq!(size_bytes("19.2 GiB"), Some(19.2 * 1073741824.0));
        assert_eq!(size_bytes("512 MiB"), Some(512.0 * 1048576.0));
        assert_eq!(size_bytes("lots"), None);
        let ws = Workspace::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let c = ws.conn();
        // The default comes back, and so does a limit someone set.
        for set in [None, Some("4 GiB")] {
            if let Some(v) = set {
                set_memory_limit(c, v).unwrap_or_else(|e| panic!("{e}"));
            }
            let before = get(c);
            let cap = MemoryCap::apply(c, "1GB").unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(get(c), before);
            cap.restore(c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(get(c), before);
        }
        // Already lower: left alone.
        set_memory_limit(c, "500MB").unwrap_or_else(|e| panic!("{e}"));
        let before = get(c);
        let cap = MemoryCap::apply(c, "1GB").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(c), before);
        cap.restore(c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(c), before);
        assert!(set_memory_limit(c, "1GB'; DROP TABLE events; --").is_err());
    }

    #[test]
    fn chosen_limits_are_saved_applied_and_win_over_job_caps() {
        let dir = std::env::temp_dir().join(format!("sb-resources-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("w.duckdb");
        {
            let ws = Workspace::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let r =
                ResourceSettings::set(&ws, MEMORY_KEY, "3000").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.memory_limit_mb, Some(3000));
            let r =
                ResourceSettings::set(&ws, THREADS_KEY, " 1 ").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((r.threads, r.effective_threads), (Some(1), 1));
            // 3000 MB reads back as 2.7 GiB.
            assert_eq!(r.effective_memory_limit, "2.7 GiB");
            // The console's time limit: 30 s until chosen.
            assert_eq!(
                sql_timeout(&ws).unwrap().as_secs(),
                DEFAULT_SQL_TIMEOUT_SECONDS
            );
            let r = ResourceSettings::set(&ws, SQL_TIMEOUT_KEY, "5").unwrap();
            assert_eq!(r.sql_timeout_seconds, Some(5));
            assert_eq!(sql_timeout(&ws).unwrap().as_secs(), 5);
            for (k, bad) in [
                (MEMORY_KEY, "12"),
                (MEMORY_KEY, "2GB'"),
                (THREADS_KEY, "0"),
                (THREADS_KEY, "-3"),
                (SQL_TIMEOUT_KEY, "0"),
                (SQL_TIMEOUT_KEY, "soon"),
                ("duckdb.other", "1"),
            ] {
                let e = ResourceSettings::set(&ws, k, bad)
                    .err()
                    .unwrap_or_else(|| panic!("{k}={bad} accepted"));
                assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
            }
            // A job's cap does not override the user's choice.
            let cap = MemoryCap::unless_chosen(&ws, "1GB").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(get(ws.conn()), "2.7 GiB");
            cap.restore(ws.conn()).unwrap_or_else(|e| panic!("{e}"));
        }
        {
            // Reopened: applied again.
            let ws = Workspace::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let r = ResourceSettings::load(&ws).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((r.memory_limit_mb, r.threads), (Some(3000), Some(1)));
            assert_eq!(
                (r.effective_memory_limit.as_str(), r.effective_threads),
                ("2.7 GiB", 1)
            );
            // Back to the default: jobs cap again.
            let r =
                ResourceSettings::set(&ws, MEMORY_KEY, "default").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.memory_limit_mb, None);
            assert_ne!(r.effective_memory_limit, "2.7 GiB");
            let cap = MemoryCap::unless_chosen(&ws, "1GB").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(get(ws.conn()), "953.6 MiB");
            cap.restore(ws.conn()).unwrap_or_else(|e| panic!("{e}"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
