//! Saved insights: a query value stored by name in the workspace, to run again later (the
//! same JSON the CLI reads and the UI sends).

use serde::Serialize;
use ts_rs::TS;

use super::Query;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SavedInsight {
    pub name: String,
    pub query: Query,
}

fn unreadable(name: &str, e: serde_json::Error) -> EngineError {
    EngineError::InvalidQuery {
        code: "saved_insight",
        message: format!("the saved insight \"{name}\" cannot be read ({e}); save it again"),
    }
}

/// Save (or replace) an insight; `now_us` stamps it.
pub fn save(ws: &Workspace, name: &str, q: &Query, now_us: i64) -> Result<()> {
    let name = name.trim();
    if name.is_empty() {
        return Err(EngineError::InvalidQuery {
            code: "saved_insight",
            message: "a saved insight needs a name".into(),
        });
    }
    let text = serde_json::to_string(q).map_err(|e| unreadable(name, e))?;
    ws.conn().execute(
        "INSERT INTO saved_insights VALUES (?, ?, make_timestamptz(?), make_timestamptz(?))
         ON CONFLICT (name) DO UPDATE SET query = excluded.query, updated_at = excluded.updated_at",
        duckdb::params![name, text, now_us, now_us],
    )?;
    Ok(())
}

pub fn load(ws: &Workspace, name: &str) -> Result<Query> {
    let mut st = ws
        .conn()
        .prepare("SELECT CAST(query AS VARCHAR) FROM saved_insights WHERE name = ?")?;
    let mut rows = st.query([name])?;
    match rows.next()? {
        Some(r) => {
            let text: String = r.get(0)?;
            serde_json::from_str(&text).map_err(|e| unreadable(name, e))
        }
        None => Err(EngineError::InvalidQuery {
            code: "unknown_saved_insight",
            message: format!(
                "no saved insight is named \"{name}\" (list them with `stitchbook insight list`)"
            ),
        }),
    }
}

pub fn list(ws: &Workspace) -> Result<Vec<SavedInsight>> {
    let mut st = ws
        .conn()
        .prepare("SELECT name, CAST(query AS VARCHAR) FROM saved_insights ORDER BY name")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, text) = row?;
        let query = serde_json::from_str(&text).map_err(|e| unreadable(&name, e))?;
        out.push(SavedInsight { name, query });
    }
    Ok(out)
}

/// Delete a saved insight; false when there was none.
pub fn delete(ws: &Workspace, name: &str) -> Result<bool> {
    Ok(ws
        .conn()
        .execute("DELETE FROM saved_insights WHERE name = ?", [name])?
        > 0)
}
