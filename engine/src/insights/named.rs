//! JSON values saved in the workspace by name: saved cohorts (`cohorts.definition`) and saved
//! insights (`saved_insights.query`). One place for save / load / list / delete.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sql::ident;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// A table of `(name PRIMARY KEY, <column> JSON, created_at, updated_at)`.
pub struct NamedStore {
    pub table: &'static str,
    pub column: &'static str,
    /// For messages: "cohort", "insight".
    pub noun: &'static str,
    /// The error code when a name is not there.
    pub unknown_code: &'static str,
    /// The error code when a stored value cannot be read or written.
    pub invalid_code: &'static str,
    /// How to list them, for the "not found" message.
    pub list_hint: &'static str,
}

impl NamedStore {
    fn invalid(&self, message: String) -> EngineError {
        EngineError::InvalidQuery {
            code: self.invalid_code,
            message,
        }
    }

    fn unreadable(&self, name: &str, e: serde_json::Error) -> EngineError {
        self.invalid(format!(
            "the saved {} \"{name}\" cannot be read ({e}); save it again",
            self.noun
        ))
    }

    /// Save (or replace) `value` under `name`; `now_us` stamps it.
    pub fn save<T: Serialize>(
        &self,
        ws: &Workspace,
        name: &str,
        value: &T,
        now_us: i64,
    ) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            return Err(self.invalid(format!("a saved {} needs a name", self.noun)));
        }
        let text = serde_json::to_string(value).map_err(|e| self.unreadable(name, e))?;
        let col = ident(self.column);
        ws.conn().execute(
            &format!(
                "INSERT INTO {} VALUES (?, ?, make_timestamptz(?), make_timestamptz(?))
                 ON CONFLICT (name) DO UPDATE SET {col} = excluded.{col}, updated_at = excluded.updated_at",
                ident(self.table)
            ),
            duckdb::params![name, text, now_us, now_us],
        )?;
        Ok(())
    }

    pub fn load<T: DeserializeOwned>(&self, ws: &Workspace, name: &str) -> Result<T> {
        let mut st = ws.conn().prepare(&format!(
            "SELECT CAST({} AS VARCHAR) FROM {} WHERE name = ?",
            ident(self.column),
            ident(self.table)
        ))?;
        let mut rows = st.query([name])?;
        match rows.next()? {
            Some(r) => {
                let text: String = r.get(0)?;
                serde_json::from_str(&text).map_err(|e| self.unreadable(name, e))
            }
            None => Err(EngineError::InvalidQuery {
                code: self.unknown_code,
                message: format!(
                    "no saved {} is named \"{name}\" (list them with `{}`)",
                    self.noun, self.list_hint
                ),
            }),
        }
    }

    /// Every saved value, by name.
    pub fn list<T: DeserializeOwned>(&self, ws: &Workspace) -> Result<Vec<(String, T)>> {
        let mut st = ws.conn().prepare(&format!(
            "SELECT name, CAST({} AS VARCHAR) FROM {} ORDER BY name",
            ident(self.column),
            ident(self.table)
        ))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, text) = row?;
            let value = serde_json::from_str(&text).map_err(|e| self.unreadable(&name, e))?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// Delete by name; false when there was none.
    pub fn delete(&self, ws: &Workspace, name: &str) -> Result<bool> {
        Ok(ws.conn().execute(
            &format!("DELETE FROM {} WHERE name = ?", ident(self.table)),
            [name],
        )? > 0)
    }
}
