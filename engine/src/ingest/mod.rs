//! The import pipeline. Every file goes through the same steps, each vendor supplying only
//! the SQL that maps its records onto the canonical columns:
//!
//! 1. sniff (or take the override): vendor, record kind, container, compression;
//! 2. stage: every record into `stg_raw(line, raw)` as JSON text (see [`reader`]);
//! 3. map with the vendor's SQL into `stg_events`: each record parsed once, each row either
//!    mapped or carrying a `reject_reason`;
//! 4. dedupe on the vendor key, within the file and against earlier imports;
//! 5. write events, identity links, snapshots and quarantine, and the `imports` row.
//!
//! Steps 4–5 run in one transaction per file (steps 2–3 touch only temporary tables): a
//! failed or cancelled file leaves the data
//! exactly as it was (only an `imports` row with status failed/cancelled records the attempt).
//! That row is written as 'running' and committed before anything else, and completed by the
//! file's transaction: an import cut off by a crash is found 'running' on the next open and
//! marked 'interrupted'.
//! Invariant, checked before commit: rows read = loaded + duplicates + quarantined, where a
//! record already quarantined by an earlier import counts as a duplicate.

pub mod archive;
pub mod fast;
pub mod generic;
pub mod preview;
pub mod reader;
pub mod sniff;
pub mod vendors;

use std::path::{Path, PathBuf};

use duckdb::Connection;
use serde::Serialize;

use crate::jobs::{JobCtx, JobEvent};
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};
pub use generic::ColumnMapping;
use reader::{ProgressLabel, QUARANTINE_RAW_CHARS};
pub use sniff::{Compression, Container, Detection, RecordKind, Vendor};

/// Where an importer's mapped records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `events`: the staging SELECT yields the canonical event columns.
    Events,
    /// `person_snapshots`: the staging SELECT yields line, person_key, distinct_id,
    /// properties, as_of, is_deleted, dedupe_key, reject_reason.
    PersonSnapshots,
    /// `identity_links` only (a file of identity assertions, e.g. Amplitude merged ids): the
    /// staging SELECT yields line, from_id, to_id, link_kind, ts_utc, dedupe_key,
    /// reject_reason, with dedupe_key = link_kind ':' from_id '>' to_id.
    Links,
}

impl Target {
    fn table(self) -> &'static str {
        match self {
            Target::Events => "events",
            Target::PersonSnapshots => "person_snapshots",
            Target::Links => "identity_links",
        }
    }

    /// The dedupe key of an existing row `e` of the target table.
    fn dedupe_key(self) -> &'static str {
        match self {
            Target::Events | Target::PersonSnapshots => "e.dedupe_key",
            Target::Links => "(e.link_kind || ':' || e.from_id || '>' || e.to_id)",
        }
    }
}

/// `stg_events` of an events import, declared before staging: the fast path ([`fast`])
/// appends the records it maps, then the vendor's SQL inserts the rest by name. The columns
/// are those every vendor's events SQL yields (in the order of `posthog_events.sql`), then
/// the hot columns of schema version 9, which only the fast path fills (`hot` = true); for the
/// other rows the insert into `events` computes them.
const STG_EVENTS_DDL: &str = "CREATE OR REPLACE TEMP TABLE stg_events (
    line BIGINT, event_uuid VARCHAR, dedupe_key VARCHAR, event_name VARCHAR, event_kind VARCHAR,
    ts_utc TIMESTAMPTZ, received_at_utc TIMESTAMPTZ, distinct_id VARCHAR, user_id VARCHAR,
    anon_id VARCHAR, session_id VARCHAR, vendor_person_id VARCHAR, properties JSON,
    person_properties JSON, groups JSON, reject_reason VARCHAR,
    page_url VARCHAR, browser VARCHAR, os VARCHAR, device_type VARCHAR, hot BOOLEAN)";

/// Bind the source file and push the source line: for archive members, `outer.zip!/member`
/// and the line within the member (needs `stg_json j` joined), else the file and `line`.
fn push_origin(s: &mut Sql, zip: bool, shown: &str, line: &str) {
    s.bind(shown.to_string());
    if zip {
        s.push(&format!(
            " || coalesce('!/' || j.member, ''), coalesce(j.member_line, {line})"
        ));
    } else {
        s.push(&format!(", {line}"));
    }
}

/// What a vendor module provides: SQL over the staging tables.
pub trait VendorImporter {
    /// Which table the records land in.
    fn target(&self) -> Target {
        Target::Events
    }
    /// The `source_vendor` value written on rows.
    fn vendor(&self) -> &'static str;
    /// Columns a CSV header or Parquet schema must have.
    fn required_columns(&self) -> Vec<String>;
    /// SELECT over `stg_json(line, raw, raw_len, reason)` (rows with `reason IS NULL`)
    /// producing: line, event_uuid, dedupe_key, event_name, event_kind, ts_utc,
    /// received_at_utc, distinct_id, user_id, anon_id, session_id, vendor_person_id,
    /// properties, person_properties, groups, reject_reason. One row per input row.
    fn events_sql(&self) -> Sql;
    /// SELECT over `stg_loaded` producing: from_id, to_id, link_kind, ts_utc, line, event_uuid.
    fn links_sql(&self) -> Option<Sql> {
        None
    }
    /// A Rust mapper for the records of this shape it is sure of, used for JSON lines.
    fn fast(&self) -> Option<fast::Shape> {
        None
    }

    /// SELECT over `stg_loaded` producing: group_type, group_key, props, as_of, line.
    fn groups_sql(&self) -> Option<Sql> {
        None
    }
}

/// `--format`: a vendor, a container, or `vendor:container`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormatOverride {
    pub vendor: Option<Vendor>,
    pub container: Option<Container>,
}

impl FormatOverride {
    /// `vendor:container`, `vendor` or `container`, as recorded in the import log.
    pub fn label(&self) -> String {
        match (self.vendor, self.container) {
            (Some(v), Some(c)) => format!("{}:{}", v.as_str(), c.as_str()),
            (Some(v), None) => v.as_str().to_string(),
            (None, Some(c)) => c.as_str().to_string(),
            (None, None) => String::new(),
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let mut o = FormatOverride::default();
        for part in s.split([':', '-', '+']) {
            if let Some(v) = Vendor::parse(part) {
                o.vendor = Some(v);
            } else if let Some(c) = Container::parse(part) {
                o.container = Some(c);
            } else {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown format \"{s}\": use a vendor (posthog, amplitude, mixpanel, segment, rudderstack, snowplow, ga4, generic), a container (jsonl, csv, tsv, parquet) or vendor:container"
                )));
            }
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub format: Option<FormatOverride>,
    pub mapping: Option<ColumnMapping>,
    /// Keep each record's original JSON in `events.raw`.
    pub keep_raw: bool,
    /// Map every record with the vendor's SQL, never the Rust fast path (slower; used to check
    /// that both map alike).
    pub sql_mapping_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ImportStatus {
    Complete,
    Failed,
    Cancelled,
    Skipped,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Complete => "complete",
            ImportStatus::Failed => "failed",
            ImportStatus::Cancelled => "cancelled",
            ImportStatus::Skipped => "skipped",
        }
    }
}

/// How long one step of a file's import took.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StepTiming {
    pub step: String,
    pub secs: f64,
}

struct Laps {
    last: std::time::Instant,
    steps: Vec<StepTiming>,
}

impl Laps {
    fn new() -> Self {
        Laps {
            last: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }
    fn lap(&mut self, step: &str) {
        let now = std::time::Instant::now();
        self.steps.push(StepTiming {
            step: step.to_string(),
            secs: now.duration_since(self.last).as_secs_f64(),
        });
        self.last = now;
    }
}

/// The result of importing one file.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FileOutcome {
    pub path: String,
    pub import_id: Option<i64>,
    pub size_bytes: u64,
    pub vendor: Option<String>,
    pub kind: Option<RecordKind>,
    pub container: Option<String>,
    pub compression: Option<String>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_quarantined: u64,
    pub links_added: u64,
    pub status: ImportStatus,
    pub message: Option<String>,
    /// The earlier import with byte-identical content, if any.
    pub identical_to: Option<i64>,
    /// Wall time of each pipeline step (for the bench and the debug panel).
    pub timings: Vec<StepTiming>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ImportReport {
    pub files: Vec<FileOutcome>,
    pub cancelled: bool,
}

impl ImportReport {
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        self.files.iter().fold((0, 0, 0, 0), |a, f| {
            (
                a.0 + f.rows_read,
                a.1 + f.rows_loaded,
                a.2 + f.rows_duplicate,
                a.3 + f.rows_quarantined,
            )
        })
    }
}

/// Files under the given paths: files as given, folders recursively in name order. Hidden
/// files (`.name`) inside folders are skipped. A folder reached twice through symbolic links
/// is read once; a link back into a folder being read (a cycle) and anything that is not a
/// regular file are listed, to be refused by name when imported.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| EngineError::io(p, e))?;
        if meta.is_dir() {
            let canon = std::fs::canonicalize(p).map_err(|e| EngineError::io(p, e))?;
            if seen.insert(canon.clone()) {
                walk(p, &canon, &mut out, &mut seen)?;
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `dir` (whose canonical path is `canon`) into `out`; `seen` holds the canonical folders read.
fn walk(
    dir: &Path,
    canon: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if !p.is_dir() {
            out.push(p);
            continue;
        }
        match std::fs::canonicalize(&p) {
            Ok(c) if seen.insert(c.clone()) => walk(&p, &c, out, seen)?,
            // A link to a folder that holds it: refused by name when imported.
            Ok(c) if canon.starts_with(&c) => out.push(p),
            // A second link to a folder already read.
            Ok(_) => {}
            Err(_) => out.push(p),
        }
    }
    Ok(())
}

/// Import files and folders into the workspace, one transaction per file.
pub fn import_paths(
    ws: &Workspace,
    paths: &[PathBuf],
    opts: &ImportOptions,
    ctx: &JobCtx,
) -> Result<ImportReport> {
    let plan: Vec<(PathBuf, ImportOptions)> = expand_paths(paths)?
        .into_iter()
        .map(|f| (f, opts.clone()))
        .collect();
    import_plan(ws, &plan, ctx)
}

/// Import files, each with its own options (the import wizard's per-file format or column
/// mapping), one transaction per file, in the given order.
pub fn import_plan(
    ws: &Workspace,
    plan: &[(PathBuf, ImportOptions)],
    ctx: &JobCtx,
) -> Result<ImportReport> {
    let total_bytes = plan
        .iter()
        .map(|(f, _)| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    ctx.emit(
        JobEvent::Started {
            files: plan.len(),
            total_bytes,
        },
        true,
    );
    let conn = ws.conn();
    ctx.cancel.attach(conn.interrupt_handle());
    // Bounded memory: a file's staged records live in temporary tables, which DuckDB spills to
    // the workspace's temp folder beyond this cap (as the rebuild does). A memory limit the
    // user chose for the workspace wins.
    let cap = crate::resources::MemoryCap::unless_chosen(ws, IMPORT_MEMORY_CAP)?;
    let mut report = ImportReport {
        files: Vec::new(),
        cancelled: false,
    };
    for (i, (f, opts)) in plan.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        let outcome = import_file(conn, f, opts, ctx, i);
        if outcome.status == ImportStatus::Cancelled {
            report.cancelled = true;
        }
        if let Some(m) = &outcome.message {
            if outcome.status != ImportStatus::Complete {
                ctx.emit(
                    JobEvent::Warning {
                        message: format!("{}: {m}", outcome.path),
                    },
                    true,
                );
            }
        }
        report.files.push(outcome);
        if report.cancelled {
            break;
        }
    }
    cap.restore(conn)?;
    ctx.emit(
        JobEvent::Finished {
            files: report.files.len(),
        },
        true,
    );
    Ok(report)
}

/// DuckDB's memory limit during an import, unless the workspace has its own.
pub const IMPORT_MEMORY_CAP: &str = "4GB";

/// Decide vendor, kind, container and compression.
pub fn detect(conn: &Connection, path: &Path, opts: &ImportOptions) -> Result<Detection> {
    let (phys, head) = sniff::physical(path)?;
    let container = opts
        .format
        .as_ref()
        .and_then(|f| f.container)
        .unwrap_or(phys.container);
    let forced_vendor = if opts.mapping.is_some() {
        Some(Vendor::Generic)
    } else {
        opts.format.as_ref().and_then(|f| f.vendor)
    };
    if let Some(vendor) = forced_vendor {
        return Ok(Detection {
            vendor,
            kind: RecordKind::Events,
            container,
            compression: phys.compression,
            airbyte: false,
        });
    }
    // A zip is judged by its first data member's records, like a JSON-lines file.
    let head = if container == Container::Zip {
        archive::head(path)?
    } else {
        head
    };
    let lines = matches!(container, Container::Jsonl | Container::Zip);
    if lines {
        ambiguity(path, &sniff::classify_jsonl_all(&head))?;
    }
    let classified = match container {
        Container::Jsonl => sniff::classify_jsonl(&head).or_else(|| {
            // The first record may be longer than the sniffed prefix: read it whole.
            if memchr::memchr(b'\n', &head).is_none() {
                sniff::first_record(path, phys.compression, reader::MAX_RECORD_BYTES)
                    .ok()
                    .and_then(|rec| sniff::classify_jsonl(&rec))
            } else {
                None
            }
        }),
        Container::Csv => sniff::classify_columns(&sniff::header_columns(&head, b',')),
        Container::Tsv => {
            let cols = sniff::header_columns(&head, b'\t');
            if sniff::looks_snowplow_enriched(&sniff::tab_fields(&head)) {
                Some((Vendor::Snowplow, RecordKind::Events))
            } else {
                sniff::classify_columns(&cols)
            }
        }
        Container::Parquet => {
            let cols: Vec<String> = reader::parquet_columns(conn, path)?
                .into_iter()
                .map(|c| c.0)
                .collect();
            sniff::classify_columns(&cols)
        }
        Container::Json => match sniff::first_document(&head) {
            Some(serde_json::Value::Object(o)) => sniff::classify_keys(&o),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .find_map(|v| v.as_object().and_then(sniff::classify_keys)),
            // A batch payload longer than the sniffed prefix.
            _ if sniff::looks_batch(sniff::strip_bom(&head)) => {
                Some((Vendor::Segment, RecordKind::Events))
            }
            _ => None,
        },
        Container::Zip => sniff::classify_jsonl(&head),
    };
    // Records wrapped as Airbyte messages are classified by what they wrap.
    let (classified, airbyte) = match classified {
        None if lines => match sniff::classify_airbyte(&head) {
            Some(c) => (Some(c), true),
            None => (None, false),
        },
        c => (c, false),
    };
    match classified {
        Some((vendor, kind)) => Ok(Detection {
            vendor,
            kind,
            container,
            compression: phys.compression,
            airbyte,
        }),
        None => {
            let keys = match container {
                Container::Csv => sniff::header_columns(&head, b','),
                Container::Tsv => sniff::header_columns(&head, b'\t'),
                _ => sniff::first_keys(&head),
            };
            let seen = if keys.is_empty() {
                String::new()
            } else {
                format!(
                    " (fields seen: {})",
                    keys.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
                )
            };
            Err(EngineError::unsupported(
                path,
                format!(
                    "could not recognise this {} file as any vendor's export{seen}; name the vendor with --format, or import it as a generic file with --mapping",
                    container.as_str()
                ),
            ))
        }
    }
}

/// Refuse a file whose first records look like more than one vendor's, naming the override.
fn ambiguity(path: &Path, found: &[((Vendor, RecordKind), usize)]) -> Result<()> {
    let vendors: Vec<Vendor> = found.iter().fold(Vec::new(), |mut v, ((vendor, _), _)| {
        if !v.contains(vendor) {
            v.push(*vendor);
        }
        v
    });
    if vendors.len() < 2 {
        return Ok(());
    }
    let seen: Vec<String> = found
        .iter()
        .map(|((v, k), line)| {
            let kind = match k {
                RecordKind::Events => "events",
                RecordKind::Persons => "persons",
                RecordKind::MergedIds => "merged ids",
                RecordKind::WarehouseRows => "warehouse rows",
                RecordKind::Manifest => "a manifest",
                RecordKind::CaptureDump => "capture requests",
            };
            format!("{} {kind} (first at line {line})", v.display())
        })
        .collect();
    let overrides: Vec<String> = vendors
        .iter()
        .map(|v| format!("--format {}", v.as_str()))
        .collect();
    Err(EngineError::unsupported(
        path,
        format!(
            "ambiguous: its records look like {}; name the format with {} (records of the other shape are then quarantined with their reasons)",
            seen.join(" and "),
            overrides.join(" or ")
        ),
    ))
}

fn importer_for(
    path: &Path,
    d: &Detection,
    opts: &ImportOptions,
) -> Result<Box<dyn VendorImporter>> {
    let readable = matches!(
        d.container,
        Container::Jsonl | Container::Csv | Container::Parquet | Container::Zip
    );
    match (d.vendor, d.kind) {
        (_, RecordKind::CaptureDump) => Err(EngineError::unsupported(
            path,
            "this is a dump of PostHog capture API requests (HTTP bodies as sent by the SDKs), not an export; export the events with a PostHog batch export (JSON lines or Parquet) and import that",
        )),
        (_, RecordKind::Manifest) => Err(EngineError::unsupported(
            path,
            "this is a PostHog batch-export manifest; import the data files it lists instead",
        )),
        (Vendor::Generic, _) => match &opts.mapping {
            Some(m) if readable || d.container == Container::Tsv => Ok(Box::new(generic::GenericImporter { mapping: m.clone() })),
            Some(_) => Err(EngineError::unsupported(
                path,
                format!("generic import reads CSV, TSV, JSON lines or Parquet, not {}", d.container.as_str()),
            )),
            None => Err(EngineError::InvalidArgument(
                "a generic import needs a column mapping file (--mapping)".into(),
            )),
        },
        (Vendor::PostHog, RecordKind::Events) if readable => Ok(Box::new(vendors::POSTHOG)),
        (Vendor::PostHog, RecordKind::Persons) if readable => Ok(Box::new(vendors::POSTHOG_PERSONS)),
        (Vendor::Segment, RecordKind::Events) if d.container != Container::Csv && d.container != Container::Tsv => Ok(Box::new(vendors::SEGMENT)),
        (Vendor::RudderStack, RecordKind::Events) if d.container != Container::Csv && d.container != Container::Tsv => Ok(Box::new(vendors::RUDDERSTACK)),
        (Vendor::Mixpanel, RecordKind::Events) if readable || d.container == Container::Json => Ok(Box::new(vendors::MIXPANEL)),
        (Vendor::Amplitude, RecordKind::Events) if readable || d.container == Container::Json => Ok(Box::new(vendors::AMPLITUDE)),
        (Vendor::Amplitude, RecordKind::MergedIds) if readable => Ok(Box::new(vendors::AMPLITUDE_MERGED_IDS)),
        (Vendor::Ga4, RecordKind::Events) if readable || d.container == Container::Json => Ok(Box::new(vendors::GA4)),
        (Vendor::Snowplow, RecordKind::Events) if readable || d.container == Container::Tsv => Ok(Box::new(vendors::SNOWPLOW)),
        (Vendor::Segment, RecordKind::WarehouseRows) if readable => Ok(Box::new(vendors::SEGMENT_WAREHOUSE)),
        (Vendor::RudderStack, RecordKind::WarehouseRows) if readable => Ok(Box::new(vendors::RUDDERSTACK_WAREHOUSE)),
        (Vendor::PostHog, RecordKind::Events) => Err(EngineError::unsupported(
            path,
            format!("PostHog exports are JSON lines, CSV or Parquet; this file is {}", d.container.as_str()),
        )),
        (v, k) => Err(EngineError::unsupported(
            path,
            format!(
                "detected a {} {} file ({}); this version imports PostHog exports and generic files with a mapping; importing {} files is not available yet",
                v.display(),
                match k {
                    RecordKind::Persons => "persons",
                    RecordKind::MergedIds => "merged-ids",
                    RecordKind::WarehouseRows => "warehouse-table",
                    _ => "events",
                },
                d.container.as_str(),
                v.display()
            ),
        )),
    }
}

fn display_path(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .to_string()
}

struct Counts {
    read: u64,
    loaded: u64,
    duplicate: u64,
    quarantined: u64,
    links: u64,
    sha256: String,
    timings: Vec<StepTiming>,
    note: Option<String>,
}

fn import_file(
    conn: &Connection,
    path: &Path,
    opts: &ImportOptions,
    ctx: &JobCtx,
    index: usize,
) -> FileOutcome {
    let shown = display_path(path);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut outcome = FileOutcome {
        path: shown.clone(),
        import_id: None,
        size_bytes: size,
        vendor: None,
        kind: None,
        container: None,
        compression: None,
        rows_read: 0,
        rows_loaded: 0,
        rows_duplicate: 0,
        rows_quarantined: 0,
        links_added: 0,
        status: ImportStatus::Failed,
        message: None,
        identical_to: None,
        timings: Vec::new(),
    };
    // The attempt is logged first, committed on its own: if the process dies before the
    // file's transaction commits, the next open finds this row and marks it interrupted.
    let import_id = match log_running(conn, &shown, size) {
        Ok(id) => id,
        Err(e) => {
            outcome.message = Some(e.to_string());
            return outcome;
        }
    };
    outcome.import_id = Some(import_id);
    let detection = detect(conn, path, opts);
    if let Ok(d) = &detection {
        outcome.vendor = Some(d.vendor.as_str().to_string());
        outcome.kind = Some(d.kind);
        outcome.container = Some(d.container.as_str().to_string());
        outcome.compression = Some(d.compression.as_str().to_string());
    }
    let result = detection.and_then(|d| {
        let importer = importer_for(path, &d, opts)?;
        run_in_transaction(
            conn,
            path,
            &shown,
            size,
            &d,
            importer.as_ref(),
            opts,
            ctx,
            index,
            import_id,
        )
    });
    match result {
        Ok((id, c)) => {
            outcome.rows_read = c.read;
            outcome.rows_loaded = c.loaded;
            outcome.rows_duplicate = c.duplicate;
            outcome.rows_quarantined = c.quarantined;
            outcome.links_added = c.links;
            outcome.timings = c.timings;
            outcome.status = ImportStatus::Complete;
            outcome.identical_to = earlier_identical(conn, &c.sha256, id);
            outcome.message = c.note;
            if let Some(prev) = outcome.identical_to {
                outcome.message = Some(format!(
                    "identical to import #{prev}: {} new events (re-importing adds nothing)",
                    c.loaded
                ));
            }
        }
        Err(e) => {
            let cancelled = matches!(e, EngineError::Cancelled) || ctx.cancel.is_cancelled();
            outcome.status = if cancelled {
                ImportStatus::Cancelled
            } else if matches!(&e, EngineError::UnsupportedFormat { reason, .. } if reason.contains("manifest"))
            {
                ImportStatus::Skipped
            } else {
                ImportStatus::Failed
            };
            outcome.message = Some(if cancelled {
                "cancelled; nothing from this file was written".to_string()
            } else {
                e.to_string()
            });
            // The attempt is logged; the data tables are untouched.
            let sha = reader::hash_file(path).unwrap_or_default();
            let mut s = Sql::new("UPDATE imports SET content_sha256 = ");
            s.bind(sha).push(", vendor = ");
            s.bind(opt_value(outcome.vendor.clone()))
                .push(", container = ");
            s.bind(opt_value(outcome.container.clone()))
                .push(", compression = ");
            s.bind(opt_value(outcome.compression.clone()))
                .push(", finished_at = now(), status = ");
            s.bind(outcome.status.as_str().to_string())
                .push(", message = ");
            s.bind(opt_value(outcome.message.clone()))
                .push(" WHERE import_id = ");
            s.bind(import_id);
            if s.execute(conn).is_err() {
                outcome.import_id = None;
            }
        }
    }
    outcome
}

/// Log an import as 'running', committed before the file's own transaction starts.
fn log_running(conn: &Connection, shown: &str, size: u64) -> Result<i64> {
    Ok(conn.query_row(
        "INSERT INTO imports (path, size_bytes, content_sha256, started_at, status)
         VALUES (?, ?, '', now(), 'running') RETURNING import_id",
        duckdb::params![shown, size as i64],
        |r| r.get(0),
    )?)
}

/// What an import left 'running' when the workspace was last closed says on the next open.
pub const INTERRUPTED_MESSAGE: &str = "interrupted: Stitchbook stopped (closed, killed or crashed) before this file's import finished; nothing from it was written, so import it again";

/// On opening a workspace: an import still 'running' was cut off before its transaction
/// committed (only one process can open a workspace for writing). Say so in the log.
pub(crate) fn mark_interrupted_imports(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE imports SET status = 'interrupted', message = ? WHERE status = 'running'",
        [INTERRUPTED_MESSAGE],
    )?;
    Ok(())
}

fn opt_value(v: Option<String>) -> duckdb::types::Value {
    match v {
        Some(s) => duckdb::types::Value::Text(s),
        None => duckdb::types::Value::Null,
    }
}

fn earlier_identical(conn: &Connection, sha: &str, id: i64) -> Option<i64> {
    conn.query_row(
        "SELECT min(import_id) FROM imports WHERE content_sha256 = ? AND status = 'complete' AND import_id < ?",
        duckdb::params![sha, id],
        |r| r.get::<_, Option<i64>>(0),
    )
    .ok()
    .flatten()
}

#[allow(clippy::too_many_arguments)]
fn run_in_transaction(
    conn: &Connection,
    path: &Path,
    shown: &str,
    size: u64,
    d: &Detection,
    importer: &dyn VendorImporter,
    opts: &ImportOptions,
    ctx: &JobCtx,
    index: usize,
    import_id: i64,
) -> Result<(i64, Counts)> {
    let r = run_pipeline(
        conn, path, shown, size, d, importer, opts, ctx, index, import_id,
    );
    let r = r.and_then(|v| {
        ctx.cancel.check()?;
        conn.execute_batch("COMMIT")?;
        Ok(v)
    });
    if r.is_err() {
        // Fails harmlessly ("no transaction is active") when the error came before BEGIN;
        // DuckDB's own autocommit flag is not reliable after an interrupted query.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let _ = conn.execute_batch(
        "DROP VIEW IF EXISTS stg_loaded; DROP VIEW IF EXISTS stg_json; DROP TABLE IF EXISTS stg_keep; DROP TABLE IF EXISTS stg_quar; DROP TABLE IF EXISTS stg_raw; DROP TABLE IF EXISTS stg_events;",
    );
    r.map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))
}

fn count(conn: &Connection, sql: &str) -> Result<u64> {
    let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Replace the bare "invalid JSON" reason with the parser's own words, for the first rows.
fn explain_invalid_json(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT e.line, j.raw FROM stg_events e JOIN stg_json j ON j.line = e.line
         WHERE e.reject_reason = 'invalid JSON' ORDER BY e.line LIMIT 1000",
    )?;
    let rows: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<duckdb::Result<_>>()?;
    let mut upd = conn.prepare("UPDATE stg_events SET reject_reason = ? WHERE line = ?")?;
    for (line, raw) in rows {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&raw) {
            upd.execute(duckdb::params![format!("invalid JSON: {e}"), line])?;
        }
    }
    Ok(())
}

/// How a record of shape `rec` is named in a reason: "an Amplitude record", "a PostHog persons
/// record".
fn shape_name(vendor: Vendor, kind: RecordKind) -> String {
    let what = match kind {
        RecordKind::Events => "record",
        RecordKind::Persons => "persons record",
        RecordKind::MergedIds => "merged-ids record",
        RecordKind::WarehouseRows => "warehouse row",
        RecordKind::Manifest => "batch-export manifest",
        RecordKind::CaptureDump => "capture request",
    };
    a_or_an(&format!("{} {what}", vendor.display()))
}

/// `text` after "a" or "an" (by its first letter: vendor names are spelt as they sound).
fn a_or_an(text: &str) -> String {
    if text.starts_with(['A', 'E', 'I', 'O', 'U']) {
        format!("an {text}")
    } else {
        format!("a {text}")
    }
}

/// Why a record of shape `rec` does not belong in a file detected as `file`, if it does not.
/// Segment and RudderStack records share one mapping, so they may mix.
fn foreign_reason(file: (Vendor, RecordKind), rec: (Vendor, RecordKind)) -> Option<String> {
    let family = |v: Vendor| match v {
        Vendor::RudderStack => Vendor::Segment,
        v => v,
    };
    if family(file.0) == family(rec.0) && file.1 == rec.1 {
        return None;
    }
    let file_kind = match file.1 {
        RecordKind::Persons => " persons",
        RecordKind::MergedIds => " merged-ids",
        RecordKind::WarehouseRows => " warehouse",
        _ if family(file.0) == family(rec.0) => " events",
        _ => "",
    };
    Some(format!(
        "looks like {} in {}",
        shape_name(rec.0, rec.1),
        a_or_an(&format!("{}{file_kind} file", file.0.display()))
    ))
}

/// Records of another vendor's (or another record kind's) shape are quarantined as such,
/// wherever they are: the format check reads only the first records. Only the rows the
/// vendor's SQL rejected or mapped without any person id are looked at: a record of another
/// shape lacks the file vendor's required fields or its person id. Delimited and Parquet files
/// have one set of columns, so only JSON records are checked.
fn flag_foreign_records(
    conn: &Connection,
    d: &Detection,
    target: Target,
    ctx: &JobCtx,
) -> Result<()> {
    if d.vendor == Vendor::Generic
        || !matches!(
            d.container,
            Container::Jsonl | Container::Json | Container::Zip
        )
    {
        return Ok(());
    }
    let candidates = match target {
        Target::Events => {
            "SELECT e.line, j.raw FROM stg_events e JOIN stg_json j ON j.line = e.line
             WHERE e.line BETWEEN ? AND ? AND j.line BETWEEN ? AND ?
               AND (e.reject_reason IS NOT NULL OR coalesce(e.distinct_id, e.user_id, e.anon_id) IS NULL)"
        }
        Target::PersonSnapshots | Target::Links => {
            "SELECT e.line, j.raw FROM stg_events e JOIN stg_json j ON j.line = e.line
             WHERE e.line BETWEEN ? AND ? AND j.line BETWEEN ? AND ? AND e.reject_reason IS NOT NULL"
        }
    };
    let last: Option<i64> = conn.query_row("SELECT max(line) FROM stg_events", [], |r| r.get(0))?;
    let Some(last) = last else {
        return Ok(());
    };
    // In ranges of lines, so that memory stays bounded when many records are foreign.
    const STEP: i64 = 1 << 20;
    conn.execute_batch("CREATE OR REPLACE TEMP TABLE stg_foreign (line BIGINT, reason VARCHAR)")?;
    let mut stmt = conn.prepare(candidates)?;
    let mut any = false;
    let mut lo = 1;
    while lo <= last {
        ctx.cancel.check()?;
        let hi = lo + STEP - 1;
        let mut found: Vec<(i64, String)> = Vec::new();
        let mut rows = stmt.query(duckdb::params![lo, hi, lo, hi])?;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(1)?;
            let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&raw) else {
                continue;
            };
            if let Some(reason) =
                sniff::classify_keys(&o).and_then(|c| foreign_reason((d.vendor, d.kind), c))
            {
                found.push((r.get(0)?, reason));
            }
        }
        drop(rows);
        if !found.is_empty() {
            any = true;
            let mut app = conn.appender_to_catalog_and_db("stg_foreign", "temp", "main")?;
            for (line, reason) in &found {
                app.append_row(duckdb::params![line, reason])?;
            }
            app.flush()?;
        }
        lo = hi + 1;
    }
    if any {
        conn.execute_batch(
            "UPDATE stg_events SET reject_reason = f.reason FROM stg_foreign f WHERE stg_events.line = f.line",
        )?;
    }
    conn.execute_batch("DROP TABLE stg_foreign")?;
    Ok(())
}

/// Steps 1–3 of the pipeline on this connection's temporary tables: stage the file's records
/// into `stg_raw` (the first `label.limit` only, for previews) and map them with the vendor's
/// SQL into `stg_events`. Nothing in the workspace's own tables is touched.
#[allow(clippy::too_many_arguments)]
fn stage_and_map(
    conn: &Connection,
    path: &Path,
    d: &Detection,
    importer: &dyn VendorImporter,
    fast_ok: bool,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
    laps: &mut Laps,
) -> Result<reader::ReadStats> {
    let interrupted =
        |e: duckdb::Error| EngineError::from(e).cancelled_if(ctx.cancel.is_cancelled());
    conn.execute_batch(reader::STAGING_DDL)?;
    // Events imports stage into the declared `stg_events` (the fast path appends to it, the
    // vendor's SQL inserts by name); other targets take their SELECT's columns.
    let events = importer.target() == Target::Events;
    if events {
        conn.execute_batch(STG_EVENTS_DDL)?;
    }
    let phys = sniff::Physical {
        container: d.container,
        compression: d.compression,
    };
    // Snowplow enriched events are TSV without a header (formats.md §6.1).
    let names: Option<&[&str]> = (d.vendor == Vendor::Snowplow
        && d.container == Container::Tsv
        && !sniff::has_header_field(path, d.compression, "event_id"))
    .then_some(&vendors::SNOWPLOW_ENRICHED_COLUMNS[..]);
    // The fast path: JSON lines of a shape with a Rust mapper; it stages only the records it
    // leaves to the vendor's SQL (see [`fast`]).
    let fast = importer
        .fast()
        .filter(|_| fast_ok && d.container == Container::Jsonl && !d.airbyte);
    let stats = match fast {
        Some(shape) => fast::stage(conn, path, d.compression, shape, ctx, label)?,
        None => reader::stage_file(conn, path, phys, names, ctx, label)?,
    };
    laps.lap("read");
    if let Some(cols) = &stats.columns {
        let missing: Vec<String> = importer
            .required_columns()
            .into_iter()
            .filter(|r| !cols.iter().any(|c| c == r))
            .collect();
        if !missing.is_empty() {
            return Err(EngineError::unsupported(
                path,
                format!(
                    "the {} columns do not match a {} export: missing {} (found: {})",
                    if d.container == Container::Parquet {
                        "Parquet"
                    } else {
                        "header's"
                    },
                    Vendor::parse(importer.vendor())
                        .map(Vendor::display)
                        .unwrap_or("generic"),
                    missing.join(", "),
                    cols.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if stats.records == 0 {
        return Err(EngineError::unreadable(
            path,
            "the file contains no records",
        ));
    }
    if d.airbyte {
        // Unwrap Airbyte record messages; other streams' records are accounted as quarantined.
        conn.execute_batch(
            "UPDATE stg_raw SET
                pre_reason = CASE
                    WHEN pre_reason IS NOT NULL OR NOT json_valid(raw) THEN pre_reason
                    WHEN json_type(raw, '$.data') IS DISTINCT FROM 'OBJECT' THEN 'an Airbyte record without a \"data\" object'
                    WHEN (json_extract_string(raw, '$.stream') IS DISTINCT FROM 'events') THEN 'Airbyte stream \"' || coalesce(json_extract_string(raw, '$.stream'), '') || '\" holds no events (only the \"events\" stream is imported)'
                END,
                raw = CASE
                    WHEN pre_reason IS NULL AND json_valid(raw) AND json_extract_string(raw, '$.stream') = 'events' AND json_type(raw, '$.data') = 'OBJECT'
                        THEN json_extract(raw, '$.data')::VARCHAR
                    ELSE raw
                END",
        )?;
    }
    ctx.cancel.check()?;
    let phase = |p: &str, rows: u64| {
        ctx.emit(
            JobEvent::Progress {
                file: label.file.to_string(),
                file_index: label.file_index,
                phase: p.to_string(),
                bytes_done: label.size,
                bytes_total: label.size,
                rows,
            },
            true,
        )
    };
    phase("parsing", stats.records);
    // Records are parsed once, by the vendor's SQL; stg_json is only a view of the staging.
    conn.execute_batch(
        "CREATE OR REPLACE TEMP VIEW stg_json AS
         SELECT line, raw, raw_len, pre_reason AS reason, member, member_line FROM stg_raw",
    )?;
    ctx.cancel.check()?;
    // By name: the hot columns stay NULL for the rows the vendor's SQL maps.
    let mut ev = Sql::new(if events {
        "INSERT INTO stg_events BY NAME SELECT * FROM ("
    } else {
        "CREATE OR REPLACE TEMP TABLE stg_events AS "
    });
    ev.embed(&importer.events_sql());
    if events {
        ev.push(")");
    }
    // A failure here is never a row's fault (rows get reasons): name the file at least.
    ev.execute(conn).map_err(|e| match interrupted(e) {
        EngineError::Database(e) => EngineError::unreadable(
            path,
            format!("its records could not be mapped ({e}); nothing from it was loaded"),
        ),
        other => other,
    })?;
    explain_invalid_json(conn)?;
    flag_foreign_records(conn, d, importer.target(), ctx)?;
    laps.lap("map");
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn run_pipeline(
    conn: &Connection,
    path: &Path,
    shown: &str,
    size: u64,
    d: &Detection,
    importer: &dyn VendorImporter,
    opts: &ImportOptions,
    ctx: &JobCtx,
    index: usize,
    import_id: i64,
) -> Result<(i64, Counts)> {
    let interrupted =
        |e: duckdb::Error| EngineError::from(e).cancelled_if(ctx.cancel.is_cancelled());
    let mut laps = Laps::new();
    let label = ProgressLabel {
        file: shown,
        file_index: index,
        size,
        limit: None,
    };
    let fast_ok = !opts.keep_raw && !opts.sql_mapping_only;
    let stats = stage_and_map(conn, path, d, importer, fast_ok, ctx, &label, &mut laps)?;
    let phase = |p: &str, rows: u64| {
        ctx.emit(
            JobEvent::Progress {
                file: shown.to_string(),
                file_index: index,
                phase: p.to_string(),
                bytes_done: size,
                bytes_total: size,
                rows,
            },
            true,
        )
    };
    // Staging and mapping touch only this connection's temporary tables and run in
    // autocommit mode (DuckDB scans committed temp data in parallel, transaction-local data
    // much more slowly). Everything that reads or writes the workspace's own tables is one
    // transaction from here on.
    conn.execute_batch("BEGIN TRANSACTION")?;
    ctx.cancel.check()?;
    phase("deduplicating", stats.records);
    // Dedupe on narrow (line, key) data: the first record of each key in the file, unless an
    // earlier import of this vendor already holds the key. The wide rows are not copied;
    // `stg_loaded` is a view the vendor's link and group SQL read.
    let mut dd = Sql::new(
        "CREATE OR REPLACE TEMP TABLE stg_keep AS
         SELECT k.line FROM (
             SELECT dedupe_key, min(line) AS line FROM stg_events
             WHERE reject_reason IS NULL GROUP BY dedupe_key) k
         WHERE NOT EXISTS (
             SELECT 1 FROM ",
    );
    dd.push(importer.target().table());
    dd.push(" e WHERE e.source_vendor = ");
    dd.bind(importer.vendor())
        .push(" AND ")
        .push(importer.target().dedupe_key())
        .push(" = k.dedupe_key)");
    dd.execute(conn).map_err(interrupted)?;
    conn.execute_batch(
        "CREATE OR REPLACE TEMP VIEW stg_loaded AS
         SELECT e.* EXCLUDE (reject_reason) FROM stg_events e SEMI JOIN stg_keep k ON e.line = k.line",
    )?;
    laps.lap("dedupe");
    ctx.cancel.check()?;

    // Records to quarantine, keyed by their text: one an earlier import already quarantined
    // is a duplicate (re-importing a file adds nothing, quarantine included).
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE stg_quar AS
         SELECT line, reason, md5(raw) AS raw_md5, raw_len, false AS seen FROM stg_json WHERE reason IS NOT NULL
         UNION ALL
         SELECT e.line, e.reject_reason, md5(j.raw), j.raw_len, false
         FROM (SELECT line, reject_reason FROM stg_events WHERE reject_reason IS NOT NULL) e JOIN stg_json j ON j.line = e.line",
    )
    .map_err(interrupted)?;
    let q_all = count(conn, "SELECT count(*) FROM stg_quar")?;
    if q_all > 0 {
        conn.execute_batch(
            "UPDATE stg_quar SET seen = true FROM (SELECT DISTINCT raw_md5, raw_length FROM quarantine) x
             WHERE x.raw_md5 = stg_quar.raw_md5 AND x.raw_length = stg_quar.raw_len",
        )
        .map_err(interrupted)?;
    }
    let q_seen = count(conn, "SELECT count(*) FROM stg_quar WHERE seen")?;
    let ok = count(
        conn,
        "SELECT count(*) FROM stg_events WHERE reject_reason IS NULL",
    )?;
    let loaded = count(conn, "SELECT count(*) FROM stg_keep")?;
    let quarantined = q_all - q_seen;
    let duplicate = ok - loaded.min(ok) + q_seen;
    if stats.records != loaded + duplicate + quarantined {
        return Err(EngineError::InvalidArgument(format!(
            "internal accounting error for {shown}: read {} but loaded {loaded} + duplicates {duplicate} + quarantined {quarantined}; nothing was written",
            stats.records
        )));
    }

    phase("writing", loaded);
    let vendor = importer.vendor();
    // Archive members: source_file is `outer.zip!/member`, source_line the line in the member.
    let zip = d.container == Container::Zip;
    let origin = |s: &mut Sql, line: &str| push_origin(s, zip, shown, line);
    let join_j = |s: &mut Sql, alias: &str| {
        if zip {
            s.push(&format!(" JOIN stg_json j ON j.line = {alias}.line"));
        }
    };
    if quarantined > 0 {
        let mut q = Sql::new("INSERT INTO quarantine SELECT ");
        q.bind(import_id).push(", ");
        origin(&mut q, "q.line");
        q.push(", q.reason, left(j.raw, ");
        q.push(&QUARANTINE_RAW_CHARS.to_string());
        q.push("), q.raw_len, q.raw_md5 FROM stg_quar q JOIN stg_json j ON j.line = q.line WHERE NOT q.seen");
        q.execute(conn).map_err(interrupted)?;
    }
    laps.lap("quarantine");

    match importer.target() {
        Target::Events => {
            let mut ins = Sql::new("INSERT INTO events SELECT ");
            ins.bind(vendor).push(", ");
            origin(&mut ins, "l.line");
            ins.push(", ").bind(import_id);
            ins.push(", event_uuid, dedupe_key, event_name, event_kind, ts_utc, received_at_utc, distinct_id, user_id, anon_id, session_id, vendor_person_id, properties, person_properties, groups, ");
            if opts.keep_raw {
                ins.push("j.raw::JSON, ");
            } else {
                ins.push("NULL, ");
            }
            // event_seq: the import and the record's number in the staging
            ins.bind(import_id).push(" * 4294967296 + l.line, ");
            // The hot columns (schema version 9): from the fast path, else from the JSON.
            ins.push(
                "sb_page(l.hot, l.page_url, l.properties), sb_browser(l.hot, l.browser, l.properties),
                 sb_os(l.hot, l.os, l.properties), sb_device_type(l.hot, l.device_type, l.properties),
                 true FROM stg_loaded l",
            );
            if opts.keep_raw {
                ins.push(" JOIN stg_json j ON j.line = l.line");
            } else {
                join_j(&mut ins, "l");
            }
            ins.execute(conn).map_err(interrupted)?;
        }
        Target::PersonSnapshots => {
            let mut ins = Sql::new("INSERT INTO person_snapshots SELECT ");
            ins.bind(vendor).push(
                ", l.person_key, l.distinct_id, l.properties, l.as_of, l.is_deleted, l.dedupe_key, ",
            );
            origin(&mut ins, "l.line");
            ins.push(", ").bind(import_id).push(" FROM stg_loaded l");
            join_j(&mut ins, "l");
            ins.execute(conn).map_err(interrupted)?;
        }
        Target::Links => {
            let mut ins = Sql::new("INSERT INTO identity_links SELECT ");
            ins.bind(vendor)
                .push(", l.from_id, l.to_id, l.link_kind, l.ts_utc, ");
            origin(&mut ins, "l.line");
            ins.push(", ")
                .bind(import_id)
                .push(", NULL FROM stg_loaded l");
            join_j(&mut ins, "l");
            ins.execute(conn).map_err(interrupted)?;
        }
    }
    laps.lap("insert events");
    ctx.cancel.check()?;

    let mut links = 0u64;
    if let Some(sub) = importer.links_sql() {
        let mut l = Sql::new("INSERT INTO identity_links SELECT ");
        l.bind(vendor)
            .push(", x.from_id, x.to_id, x.link_kind, x.ts_utc, ");
        origin(&mut l, "x.line");
        l.push(", ").bind(import_id).push(", x.event_uuid FROM (");
        l.embed(&sub).push(") x");
        join_j(&mut l, "x");
        links = l.execute(conn).map_err(interrupted)? as u64;
    }
    if let Some(sub) = importer.groups_sql() {
        let mut g = Sql::new("INSERT INTO group_snapshots SELECT ");
        g.bind(vendor)
            .push(", x.group_type, x.group_key, x.props, x.as_of, ");
        origin(&mut g, "x.line");
        g.push(", ").bind(import_id).push(" FROM (");
        g.embed(&sub).push(") x");
        join_j(&mut g, "x");
        g.execute(conn).map_err(interrupted)?;
    }

    laps.lap("links and groups");
    // The 'running' row committed before this transaction becomes the complete one with it.
    let mut imp = Sql::new("UPDATE imports SET content_sha256 = ");
    imp.bind(stats.sha256.clone()).push(", vendor = ");
    imp.bind(d.vendor.as_str()).push(", container = ");
    imp.bind(d.container.as_str()).push(", compression = ");
    imp.bind(d.compression.as_str())
        .push(", format_override = ");
    imp.bind(opt_value(opts.format.as_ref().map(FormatOverride::label)));
    let cols = [
        "rows_read",
        "rows_loaded",
        "rows_duplicate",
        "rows_quarantined",
        "links_added",
    ];
    for (col, n) in cols
        .iter()
        .zip([stats.records, loaded, duplicate, quarantined, links])
    {
        imp.push(", ").push(col).push(" = ").bind(n as i64);
    }
    imp.push(", finished_at = now(), status = 'complete', message = ")
        .bind(opt_value(stats.note.clone()))
        .push(" WHERE import_id = ")
        .bind(import_id);
    imp.execute(conn)?;
    Ok((
        import_id,
        Counts {
            read: stats.records,
            loaded,
            duplicate,
            quarantined,
            links,
            sha256: stats.sha256,
            timings: laps.steps,
            note: stats.note,
        },
    ))
}
