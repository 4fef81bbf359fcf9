//! Results of slow overview reads remembered in the workspace (table `remembered`, one row
//! per kind of result), with the fingerprint of the data they read: reused while the
//! fingerprint is the same, else computed again and remembered.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// `compute()`, or its result remembered under `what` with this `fingerprint`.
pub fn remembered<T: Serialize + DeserializeOwned>(
    ws: &Workspace,
    what: &str,
    fingerprint: &str,
    compute: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let c = ws.conn();
    let hit: Option<String> = c
        .query_row(
            "SELECT value::VARCHAR FROM remembered WHERE what = ? AND fingerprint = ?",
            [what, fingerprint],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    // A value that no longer reads as `T` (an older shape) is computed again.
    if let Some(v) = hit.and_then(|json| serde_json::from_str::<T>(&json).ok()) {
        return Ok(v);
    }
    let value = compute()?;
    let json = serde_json::to_string(&value).map_err(|e| EngineError::Internal(e.to_string()))?;
    // Remembering is an optimisation: a workspace that cannot be written (read-only) still
    // answers.
    let _ = c.execute(
        "INSERT OR REPLACE INTO remembered VALUES (?, ?, ?)",
        [what, fingerprint, json.as_str()],
    );
    Ok(value)
}

/// What says whether the events changed: they are only ever appended, so their number and
/// last sequence number.
pub fn events_fingerprint(ws: &Workspace) -> Result<String> {
    Ok(ws.conn().query_row(
        "SELECT concat_ws('/', count(*), coalesce(max(event_seq), 0)) FROM events",
        [],
        |r| r.get(0),
    )?)
}
