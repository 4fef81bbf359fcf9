//! Retention helper: what a cut-off date would remove. The copy without those events is the
//! redacted export with `keep_from_us` set (no event in the workspace is deleted).

use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionFile {
    pub vendor: String,
    pub file: String,
    #[ts(type = "number")]
    pub events: i64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionSummary {
    pub cutoff: String,
    /// Events strictly before the cut-off.
    #[ts(type = "number")]
    pub older: i64,
    #[ts(type = "number")]
    pub kept: i64,
    /// The older events by source file.
    pub by_file: Vec<RetentionFile>,
}

/// Count and list events older than `cutoff_us` (µs since the epoch, UTC).
pub fn older_than(ws: &Workspace, cutoff_us: i64) -> Result<RetentionSummary> {
    let c = ws.conn();
    let (older, kept): (i64, i64) = c.query_row(
        "SELECT count(*) FILTER (WHERE ts_utc < make_timestamptz(?)),
                count(*) FILTER (WHERE ts_utc >= make_timestamptz(?))
         FROM events",
        [cutoff_us, cutoff_us],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let by_file = c
        .prepare(
            "SELECT source_vendor, source_file, count(*),
                    strftime(min(ts_utc), '%Y-%m-%dT%H:%M:%SZ'), strftime(max(ts_utc), '%Y-%m-%dT%H:%M:%SZ')
             FROM events WHERE ts_utc < make_timestamptz(?)
             GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        )?
        .query_map([cutoff_us], |r| {
            Ok(RetentionFile {
                vendor: r.get(0)?,
                file: r.get(1)?,
                events: r.get(2)?,
                first_event: r.get(3)?,
                last_event: r.get(4)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    Ok(RetentionSummary {
        cutoff: crate::generate::rfc3339_micros(cutoff_us),
        older,
        kept,
        by_file,
    })
}
