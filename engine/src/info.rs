//! What is in a workspace: the import log, event counts by vendor, the date range, the top
//! event names and the quarantine.

use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::Result;

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ImportRow {
    #[ts(type = "number")]
    pub import_id: i64,
    pub path: String,
    #[ts(type = "number")]
    pub size_bytes: i64,
    pub vendor: Option<String>,
    pub container: Option<String>,
    pub compression: Option<String>,
    #[ts(type = "number")]
    pub rows_read: i64,
    #[ts(type = "number")]
    pub rows_loaded: i64,
    #[ts(type = "number")]
    pub rows_duplicate: i64,
    #[ts(type = "number")]
    pub rows_quarantined: i64,
    #[ts(type = "number")]
    pub links_added: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct VendorCount {
    pub vendor: String,
    #[ts(type = "number")]
    pub events: i64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct EventNameCount {
    pub event_name: String,
    #[ts(type = "number")]
    pub events: i64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct QuarantineReason {
    pub reason: String,
    #[ts(type = "number")]
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct WorkspaceInfo {
    pub path: String,
    #[ts(type = "number")]
    pub schema_version: i64,
    #[ts(type = "number")]
    pub total_events: i64,
    #[ts(type = "number")]
    pub distinct_ids: i64,
    #[ts(type = "number")]
    pub identity_links: i64,
    #[ts(type = "number")]
    pub quarantined: i64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub by_vendor: Vec<VendorCount>,
    pub top_events: Vec<EventNameCount>,
    pub quarantine_reasons: Vec<QuarantineReason>,
    pub imports: Vec<ImportRow>,
}

/// Summarise the workspace. `top` limits the event-name list.
pub fn workspace_info(ws: &Workspace, top: usize) -> Result<WorkspaceInfo> {
    let c = ws.conn();
    // A pass over every event (the distinct ids): remembered until the events change.
    type Totals = (i64, i64, Option<String>, Option<String>);
    let fingerprint = crate::remembered::events_fingerprint(ws)?;
    let (total_events, distinct_ids, first_event, last_event): Totals =
        crate::remembered::remembered(ws, "events_totals", &fingerprint, || {
            Ok(c.query_row(
                "SELECT count(*), count(DISTINCT distinct_id),
                        strftime(min(ts_utc), '%Y-%m-%dT%H:%M:%SZ'), strftime(max(ts_utc), '%Y-%m-%dT%H:%M:%SZ')
                 FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })?;
    let identity_links: i64 =
        c.query_row("SELECT count(*) FROM identity_links", [], |r| r.get(0))?;
    let quarantined: i64 = c.query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))?;
    let by_vendor = c
        .prepare("SELECT source_vendor, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1")?
        .query_map([], |r| {
            Ok(VendorCount {
                vendor: r.get(0)?,
                events: r.get(1)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    let top_events = c
        .prepare("SELECT event_name, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?")?
        .query_map([top as i64], |r| {
            Ok(EventNameCount {
                event_name: r.get(0)?,
                events: r.get(1)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    // Reasons with their variable part (line/column, quoted values) folded together.
    let quarantine_reasons = c
        .prepare(
            "SELECT regexp_replace(regexp_replace(reason, ' at line \\d+ column \\d+', ''), '\"[^\"]*\"', '\"…\"', 'g') AS r, count(*)
             FROM quarantine GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
        )?
        .query_map([], |r| {
            Ok(QuarantineReason {
                reason: r.get(0)?,
                rows: r.get(1)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    let imports = c
        .prepare(
            "SELECT import_id, path, size_bytes, vendor, container, compression, rows_read, rows_loaded,
                    rows_duplicate, rows_quarantined, links_added,
                    strftime(started_at, '%Y-%m-%dT%H:%M:%SZ'), strftime(finished_at, '%Y-%m-%dT%H:%M:%SZ'), status, message
             FROM imports ORDER BY import_id",
        )?
        .query_map([], |r| {
            Ok(ImportRow {
                import_id: r.get(0)?,
                path: r.get(1)?,
                size_bytes: r.get(2)?,
                vendor: r.get(3)?,
                container: r.get(4)?,
                compression: r.get(5)?,
                rows_read: r.get(6)?,
                rows_loaded: r.get(7)?,
                rows_duplicate: r.get(8)?,
                rows_quarantined: r.get(9)?,
                links_added: r.get(10)?,
                started_at: r.get(11)?,
                finished_at: r.get(12)?,
                status: r.get(13)?,
                message: r.get(14)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    Ok(WorkspaceInfo {
        path: ws.path().to_string_lossy().to_string(),
        schema_version: ws.schema_version()?,
        total_events,
        distinct_ids,
        identity_links,
        quarantined,
        first_event,
        last_event,
        by_vendor,
        top_events,
        quarantine_reasons,
        imports,
    })
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct QuarantineRow {
    #[ts(type = "number")]
    pub import_id: i64,
    pub source_file: String,
    #[ts(type = "number")]
    pub source_line: i64,
    pub reason: String,
    pub raw: String,
    #[ts(type = "number")]
    pub raw_length: i64,
    pub truncated: bool,
}

/// Quarantined records in file order, optionally for one import.
pub fn quarantine_rows(
    ws: &Workspace,
    import_id: Option<i64>,
    limit: i64,
) -> Result<Vec<QuarantineRow>> {
    let mut stmt = ws.conn().prepare(
        "SELECT import_id, source_file, source_line, reason, coalesce(raw, ''), raw_length
         FROM quarantine WHERE ? IS NULL OR import_id = ?
         ORDER BY import_id, source_line LIMIT ?",
    )?;
    let rows = stmt
        .query_map(duckdb::params![import_id, import_id, limit], |r| {
            let raw: String = r.get(4)?;
            let raw_length: i64 = r.get(5)?;
            Ok(QuarantineRow {
                import_id: r.get(0)?,
                source_file: r.get(1)?,
                source_line: r.get(2)?,
                reason: r.get(3)?,
                truncated: (raw.len() as i64) < raw_length,
                raw,
                raw_length,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    Ok(rows)
}
