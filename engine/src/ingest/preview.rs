//! The import wizard's preview: what a file was detected as, and its first records mapped to
//! the canonical columns exactly as the import would map them.
//!
//! The preview runs the import's own steps 1–3 (sniff, stage, map; see the module docs of
//! [`super`]) on the first few records, in a scratch in-memory workspace: the user's workspace
//! is never touched. A file that is not recognised still lists its source columns and raw
//! records, so that the user can map a generic file by hand.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::reader::{ProgressLabel, STAGING_DDL};
use super::{
    detect, importer_for, sniff, ColumnMapping, Container, FormatOverride, ImportOptions, Laps,
    RecordKind, Target, Vendor,
};
use crate::jobs::JobCtx;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Records read for a preview.
pub const PREVIEW_RECORDS: u64 = 20;

/// The canonical event columns shown in a preview, in order.
const EVENT_COLUMNS: &[&str] = &[
    "line",
    "event_name",
    "event_kind",
    "ts_utc",
    "distinct_id",
    "user_id",
    "anon_id",
    "session_id",
    "event_uuid",
    "properties",
    "reject_reason",
];

/// Characters kept of any one previewed value (properties can be large).
const CELL_CHARS: usize = 400;

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FilePreview {
    pub path: String,
    pub size_bytes: u64,
    /// Detected (or chosen) vendor, record kind, container and compression.
    pub vendor: Option<String>,
    pub kind: Option<RecordKind>,
    pub container: Option<String>,
    pub compression: Option<String>,
    /// Where mapped rows go: events, person snapshots or identity links.
    pub target: Option<String>,
    /// Why the file cannot be imported as it stands (with the suggested override).
    pub problem: Option<String>,
    /// The file is readable but no vendor's: import it with a column mapping.
    pub needs_mapping: bool,
    /// Columns of the header, the Parquet schema, or the records' top-level keys.
    pub source_columns: Vec<String>,
    /// The first records as read (JSON text, truncated), for the mapping form.
    pub raw_samples: Vec<String>,
    /// Mapped columns and the first rows (values as text; NULL as null).
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// Of the previewed rows, how many the import would quarantine.
    pub rejected: u64,
}

/// The wizard's choice for one picked file (by its position in the picked list): a
/// vendor/container override such as `posthog` or `generic:csv`, and/or a column mapping.
#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ImportChoice {
    pub index: usize,
    pub format: Option<String>,
    pub mapping: Option<ColumnMapping>,
}

impl ImportChoice {
    /// The import options this choice stands for; a bad override or mapping is refused.
    pub fn options(&self) -> Result<ImportOptions> {
        let format = match self
            .format
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(f) => Some(FormatOverride::parse(f)?),
            None => None,
        };
        if let Some(m) = &self.mapping {
            m.validate().map_err(|reason| {
                EngineError::InvalidArgument(format!("column mapping: {reason}"))
            })?;
        }
        Ok(ImportOptions {
            format,
            mapping: self.mapping.clone(),
            keep_raw: false,
            sql_mapping_only: false,
        })
    }
}

/// Preview `path` as an import with `opts` would read it: its first `records` records.
pub fn preview(path: &Path, opts: &ImportOptions, records: u64) -> Result<FilePreview> {
    // A file that cannot be read at all (a pipe, a device, a broken link) is shown with its
    // problem, like an unrecognised one, so that one such file does not hide the others.
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let shown = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .to_string();
    let mut out = FilePreview {
        path: shown.clone(),
        size_bytes,
        vendor: None,
        kind: None,
        container: None,
        compression: None,
        target: None,
        problem: None,
        needs_mapping: false,
        source_columns: Vec::new(),
        raw_samples: Vec::new(),
        columns: Vec::new(),
        rows: Vec::new(),
        rejected: 0,
    };
    let scratch = Workspace::in_memory()?;
    let conn = scratch.conn();
    let ctx = JobCtx::silent();
    let label = ProgressLabel {
        file: &shown,
        file_index: 0,
        size: size_bytes,
        limit: Some(records.max(1)),
    };
    let detection = detect(conn, path, opts);
    let (phys, _) = match sniff::physical(path) {
        Ok(p) => p,
        Err(e) => {
            out.problem = Some(e.to_string());
            return Ok(out);
        }
    };
    let container = opts
        .format
        .as_ref()
        .and_then(|f| f.container)
        .unwrap_or(phys.container);
    out.container = Some(container.as_str().to_string());
    out.compression = Some(phys.compression.as_str().to_string());
    let d = match detection {
        Ok(d) => d,
        Err(e) => {
            // Not any vendor's: stage the records as they are, for the mapping form.
            out.needs_mapping = mappable(container);
            out.problem = Some(e.to_string());
            if out.needs_mapping {
                conn.execute_batch(STAGING_DDL)?;
                let physical = sniff::Physical {
                    container,
                    compression: phys.compression,
                };
                match super::reader::stage_file(conn, path, physical, None, &ctx, &label) {
                    Ok(stats) => fill_source(conn, &mut out, stats.columns)?,
                    Err(e) => out.problem = Some(e.to_string()),
                }
            }
            return Ok(out);
        }
    };
    out.vendor = Some(d.vendor.as_str().to_string());
    out.kind = Some(d.kind);
    out.container = Some(d.container.as_str().to_string());
    out.compression = Some(d.compression.as_str().to_string());
    let importer = match importer_for(path, &d, opts) {
        Ok(i) => i,
        Err(e) => {
            out.needs_mapping = d.vendor == Vendor::Generic && mappable(d.container);
            out.problem = Some(e.to_string());
            if out.needs_mapping {
                conn.execute_batch(STAGING_DDL)?;
                let physical = sniff::Physical {
                    container: d.container,
                    compression: d.compression,
                };
                if let Ok(stats) =
                    super::reader::stage_file(conn, path, physical, None, &ctx, &label)
                {
                    fill_source(conn, &mut out, stats.columns)?;
                }
            }
            return Ok(out);
        }
    };
    let target = importer.target();
    out.target = Some(
        match target {
            Target::Events => "events",
            Target::PersonSnapshots => "person snapshots",
            Target::Links => "identity links",
        }
        .to_string(),
    );
    let mut laps = Laps::new();
    let stats = match super::stage_and_map(
        conn,
        path,
        &d,
        importer.as_ref(),
        false,
        &ctx,
        &label,
        &mut laps,
    ) {
        Ok(s) => s,
        Err(e) => {
            out.problem = Some(e.to_string());
            // Still show what was read when the mapping (not the reading) failed; when
            // nothing was staged there is nothing more to show than the problem.
            let _ = fill_source(conn, &mut out, None);
            return Ok(out);
        }
    };
    fill_source(conn, &mut out, stats.columns)?;
    let wanted: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'stg_events' ORDER BY column_index",
        )?;
        let have: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<duckdb::Result<_>>()?;
        if target == Target::Events {
            EVENT_COLUMNS
                .iter()
                .filter(|c| have.iter().any(|h| h == *c))
                .map(|c| c.to_string())
                .collect()
        } else {
            have
        }
    };
    let select: Vec<String> = wanted
        .iter()
        .map(|c| {
            let id = crate::sql::ident(c);
            format!("left(CAST({id} AS VARCHAR), {CELL_CHARS})")
        })
        .collect();
    let sql = format!("SELECT {} FROM stg_events ORDER BY line", select.join(", "));
    let mut stmt = conn.prepare(&sql)?;
    let n = wanted.len();
    let rows: Vec<Vec<Option<String>>> = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<duckdb::Result<Vec<_>>>()
        })?
        .collect::<duckdb::Result<_>>()?;
    // Records the reader refused (invalid JSON, over-long) are in the preview too.
    let pre_rejected: u64 = conn.query_row(
        "SELECT count(*) FROM stg_raw WHERE pre_reason IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let reject_col = wanted.iter().position(|c| c == "reject_reason");
    out.rejected = pre_rejected
        + reject_col.map_or(0, |i| rows.iter().filter(|r| r[i].is_some()).count() as u64);
    out.columns = wanted;
    out.rows = rows;
    Ok(out)
}

fn mappable(c: Container) -> bool {
    matches!(
        c,
        Container::Csv | Container::Tsv | Container::Jsonl | Container::Parquet
    )
}

/// Source columns (the header, or the staged records' top-level keys in order of first
/// appearance) and the first raw records.
fn fill_source(
    conn: &duckdb::Connection,
    out: &mut FilePreview,
    header: Option<Vec<String>>,
) -> Result<()> {
    let mut stmt =
        conn.prepare("SELECT raw FROM stg_raw WHERE pre_reason IS NULL ORDER BY line LIMIT 5")?;
    let raws: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<duckdb::Result<_>>()?;
    out.raw_samples = raws
        .iter()
        .map(|s| super::reader::truncate_chars(s, 2 * CELL_CHARS).to_string())
        .collect();
    out.source_columns = match header {
        Some(h) => h,
        None => {
            // Top-level keys in order of first appearance (DuckDB keeps document order).
            let mut stmt = conn.prepare(
                "SELECT k FROM (
                     SELECT line, unnest(json_keys(raw)) AS k, generate_subscripts(json_keys(raw), 1) AS i
                     FROM stg_raw
                     WHERE pre_reason IS NULL AND json_valid(raw) AND json_type(raw) = 'OBJECT')
                 GROUP BY k ORDER BY min(line * 1000000 + i), k",
            )?;
            let keys: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<duckdb::Result<_>>()?;
            keys
        }
    };
    Ok(())
}
