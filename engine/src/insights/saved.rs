//! Saved insights: a query value stored by name in the workspace, to run again later (the
//! same JSON the CLI reads and the UI sends).

use serde::Serialize;
use ts_rs::TS;

use super::named::NamedStore;
use super::Query;
use crate::workspace::Workspace;
use crate::Result;

const STORE: NamedStore = NamedStore {
    table: "saved_insights",
    column: "query",
    noun: "insight",
    unknown_code: "unknown_saved_insight",
    invalid_code: "saved_insight",
    list_hint: "stitchbook insight list",
};

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SavedInsight {
    pub name: String,
    pub query: Query,
}

/// Save (or replace) an insight; `now_us` stamps it.
pub fn save(ws: &Workspace, name: &str, q: &Query, now_us: i64) -> Result<()> {
    STORE.save(ws, name, q, now_us)
}

pub fn load(ws: &Workspace, name: &str) -> Result<Query> {
    STORE.load(ws, name)
}

/// A saved insight ready to run: refused, with its name and the closest event names, when it
/// names an event the workspace no longer has.
pub fn load_to_run(ws: &Workspace, name: &str) -> Result<Query> {
    let q = load(ws, name)?;
    super::query::check_events(ws, q.event_names())
        .map_err(|e| super::query::in_saved("insight", name, e))?;
    Ok(q)
}

pub fn list(ws: &Workspace) -> Result<Vec<SavedInsight>> {
    Ok(STORE
        .list(ws)?
        .into_iter()
        .map(|(name, query)| SavedInsight { name, query })
        .collect())
}

/// Delete a saved insight; false when there was none.
pub fn delete(ws: &Workspace, name: &str) -> Result<bool> {
    STORE.delete(ws, name)
}
