//! The redacted export: a copy of the workspace's events as canonical Parquet, CSV or JSON
//! lines, with chosen fields dropped, masked or replaced by salted SHA-256 pseudonyms, then
//! re-scanned. The export is `complete` only when every redacted field re-scans with zero
//! hits and the row count equals the source's; otherwise it is marked `failed`.
//!
//! Invariants: workspace tables and source files are only read. The salt (random per export
//! unless the caller supplies one) is used in memory and never written anywhere; the same
//! value gets the same pseudonym everywhere within one export, so joins survive. The `raw`
//! column (the original record) is never exported: it would carry every field unredacted.
//!
//! Rules file (TOML; `.json` files are read as JSON with the same shape):
//!
//! ```toml
//! format = "parquet"          # parquet | csv | jsonl (the CLI's --format wins)
//! [[field]]
//! path = "properties.$set.email"   # a path from the field report (events), or a top column
//! action = "pseudonymize"          # drop | mask | pseudonymize
//! [[field]]
//! detector = "email"               # every value this built-in detector flags, anywhere
//! action = "mask"
//! [[field]]
//! finding = "3fa2c1d09e77"         # a finding id from `stitchbook pii scan`
//! action = "drop"
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use ts_rs::TS;

use super::detect::{detect_value, key_hints, Detector, Match};
use super::mask::mask;
use super::scan::{count_rows, EventSource, Finding, ScanTotals, Scanner, Source};
use crate::jobs::{JobCtx, JobEvent};
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ExportFormat {
    Parquet,
    Csv,
    Jsonl,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "jsonl" | "json" | "ndjson" => Ok(Self::Jsonl),
            _ => Err(EngineError::InvalidArgument(format!(
                "export format is parquet, csv or jsonl, not \"{s}\""
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
    fn copy_options(self) -> &'static str {
        match self {
            Self::Parquet => "(FORMAT parquet)",
            Self::Csv => "(FORMAT csv, HEADER true)",
            Self::Jsonl => "(FORMAT json)",
        }
    }
    /// A FROM-clause item reading an exported file as the canonical columns (alias `e`).
    pub(crate) fn reader_sql(self, path: &str) -> Sql {
        let mut s = Sql::new("");
        match self {
            Self::Parquet => {
                s.push("read_parquet(").bind(path).push(") e");
            }
            Self::Csv => {
                s.push("read_csv(")
                    .bind(path)
                    .push(", header = true, all_varchar = true) e");
            }
            Self::Jsonl => {
                s.push("read_json(").bind(path).push(
                    ", format = 'newline_delimited', columns = {source_vendor: 'VARCHAR',
                     source_file: 'VARCHAR', source_line: 'BIGINT', import_id: 'BIGINT',
                     event_uuid: 'VARCHAR', dedupe_key: 'VARCHAR', event_name: 'VARCHAR',
                     event_kind: 'VARCHAR', ts_utc: 'VARCHAR', received_at_utc: 'VARCHAR',
                     distinct_id: 'VARCHAR', user_id: 'VARCHAR', anon_id: 'VARCHAR',
                     session_id: 'VARCHAR', vendor_person_id: 'VARCHAR', properties: 'JSON',
                     person_properties: 'JSON', groups: 'JSON', event_seq: 'BIGINT'}) e",
                );
            }
        }
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum RedactAction {
    /// Remove the key (top columns become NULL).
    Drop,
    /// Replace with a masked rendering (`j***@e******.com`).
    Mask,
    /// Replace with `pn_` + 16 hex digits of SHA-256(salt ‖ value).
    Pseudonymize,
}

/// One rule: a target (exactly one of path, detector, finding) and an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RedactionRule {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub detector: Option<String>,
    #[serde(default)]
    pub finding: Option<String>,
    pub action: RedactAction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RedactionRules {
    #[serde(default)]
    pub format: Option<ExportFormat>,
    #[serde(default, rename = "field")]
    pub fields: Vec<RedactionRule>,
}

impl RedactionRules {
    /// Read a rules file: TOML, or JSON when the name ends in `.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let bad = |reason: String| EngineError::InvalidQuery {
            code: "pii_invalid_rules",
            message: format!("{}: {reason}", path.display()),
        };
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
        } else {
            toml::from_str(&text).map_err(|e| bad(e.to_string()))
        }
    }
}

/// Event columns a path rule may name directly.
pub(crate) const TOP: [&str; 5] = [
    "distinct_id",
    "user_id",
    "anon_id",
    "session_id",
    "vendor_person_id",
];
const JSON_COLS: [&str; 3] = ["properties", "person_properties", "groups"];

#[derive(Debug, Clone)]
enum Target {
    Path(String),
    Detector(Detector),
}

#[derive(Debug, Clone)]
struct Resolved {
    target: Target,
    action: RedactAction,
}

impl Resolved {
    fn label(&self) -> String {
        match &self.target {
            Target::Path(p) => p.clone(),
            Target::Detector(d) => format!("detector:{}", d.as_str()),
        }
    }
}

/// Resolve rule targets against the latest findings.
fn resolve(ws: &Workspace, rules: &RedactionRules) -> Result<Vec<Resolved>> {
    let bad = |message: String| EngineError::InvalidQuery {
        code: "pii_invalid_rules",
        message,
    };
    let mut out = Vec::new();
    for (i, r) in rules.fields.iter().enumerate() {
        let n = usize::from(r.path.is_some())
            + usize::from(r.detector.is_some())
            + usize::from(r.finding.is_some());
        if n != 1 {
            return Err(bad(format!(
                "field rule {}: give exactly one of path, detector or finding",
                i + 1
            )));
        }
        let target = if let Some(p) = &r.path {
            let root = p.split(['.', '[']).next().unwrap_or_default();
            if !(TOP.contains(&p.as_str()) || (JSON_COLS.contains(&root) && p.len() > root.len())) {
                return Err(bad(format!(
                    "field rule {}: \"{p}\" is not an event field (a top column such as distinct_id, or a path under properties, person_properties or groups)",
                    i + 1
                )));
            }
            Target::Path(p.clone())
        } else if let Some(d) = &r.detector {
            Target::Detector(Detector::parse(d).ok_or_else(|| {
                bad(format!(
                    "field rule {}: \"{d}\" is not a built-in detector (for a custom rule, redact its findings' paths)",
                    i + 1
                ))
            })?)
        } else {
            let id = r.finding.as_deref().unwrap_or_default();
            let f = super::store::finding(ws, id)?;
            if f.finding.source != Source::Events {
                return Err(bad(format!(
                    "field rule {}: finding {id} is in {}, and only events are exported",
                    i + 1,
                    f.finding.source.as_str()
                )));
            }
            Target::Path(f.finding.path)
        };
        out.push(Resolved {
            target,
            action: r.action,
        });
    }
    Ok(out)
}

/// What an export should write.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub out_dir: PathBuf,
    pub format: ExportFormat,
    /// Leave out events before this instant (µs; the retention helper).
    pub keep_from_us: Option<i64>,
    /// The pseudonym salt; None draws a random one (tests pass their own).
    pub salt: Option<Vec<u8>>,
    /// When the export was made (µs), for the record.
    pub now_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ExportStatus {
    Complete,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RedactionCheck {
    /// The rule's target: a path or `detector:<name>`.
    pub target: String,
    pub action: RedactAction,
    /// Values changed by this rule.
    #[ts(type = "number")]
    pub redacted: i64,
    /// Detector hits at the target in the re-scan of the export (must be 0).
    #[ts(type = "number")]
    pub hits_after: i64,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ExportReport {
    pub status: ExportStatus,
    pub data_file: String,
    pub format: ExportFormat,
    pub created_at: String,
    #[ts(type = "number")]
    pub rows_source: i64,
    #[ts(type = "number")]
    pub rows_written: i64,
    /// Events left out by the retention cut-off.
    #[ts(type = "number")]
    pub rows_left_out: i64,
    pub keep_from: Option<String>,
    pub checks: Vec<RedactionCheck>,
    pub row_count_ok: bool,
    /// The re-scan of the written file (all detectors, all fields), masked samples only.
    pub rescan: Vec<Finding>,
    pub millis: f64,
    /// Why the export failed, when it did.
    pub problems: Vec<String>,
}

/// A random salt from the OS, falling back to the std hasher's per-process random keys.
fn fresh_salt() -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return buf;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// The redaction of one export: rules, salt, counters.
struct Redactor {
    rules: Vec<Resolved>,
    salt: Vec<u8>,
    counts: Vec<i64>,
    matches: Vec<Match>,
}

impl Redactor {
    fn pseudonym(&self, v: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(v.as_bytes());
        let d = h.finalize();
        let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("pn_{hex}")
    }

    /// A whole value under a path rule.
    fn whole(&mut self, v: &str, action: RedactAction, key: &str) -> Option<String> {
        match action {
            RedactAction::Drop => None,
            RedactAction::Pseudonymize => Some(self.pseudonym(v)),
            RedactAction::Mask => {
                // Mask as the value's own kind when a detector recognises it.
                let mut m = std::mem::take(&mut self.matches);
                let decoded = detect_value(v, key_hints(key), &mut m);
                let out = if m.len() == 1 && m[0].start == 0 && m[0].end == decoded.len() {
                    mask(Some(m[0].detector), &decoded)
                } else {
                    mask(None, v)
                };
                self.matches = m;
                Some(out)
            }
        }
    }

    /// Apply an action to every scalar under `v`; false when `v` itself must go.
    fn subtree(&mut self, v: &mut Value, action: RedactAction, key: &str, rule: usize) -> bool {
        match v {
            Value::Object(m) => {
                if action == RedactAction::Drop {
                    return false;
                }
                for (k, c) in m.iter_mut() {
                    self.subtree(c, action, k, rule);
                }
                true
            }
            Value::Array(a) => {
                if action == RedactAction::Drop {
                    return false;
                }
                for c in a.iter_mut() {
                    self.subtree(c, action, key, rule);
                }
                true
            }
            Value::String(_) | Value::Number(_) => {
                let s = match &*v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.counts[rule] += 1;
                match self.whole(&s, action, key) {
                    Some(n) => {
                        *v = Value::String(n);
                        true
                    }
                    None => false,
                }
            }
            Value::Bool(_) | Value::Null => action != RedactAction::Drop,
        }
    }

    /// Detector rules on one scalar: replace the matched spans (or drop the value).
    fn scalar(&mut self, s: &str, key: &str) -> Option<Option<String>> {
        if !self
            .rules
            .iter()
            .any(|r| matches!(r.target, Target::Detector(_)))
        {
            return None;
        }
        let hints = key_hints(key);
        let mut m = std::mem::take(&mut self.matches);
        let decoded = detect_value(s, hints, &mut m).into_owned();
        let mut changed = false;
        let mut out = String::with_capacity(decoded.len());
        let mut at = 0;
        let mut result = None;
        for mt in &m {
            let Some(ri) = self
                .rules
                .iter()
                .position(|r| matches!(r.target, Target::Detector(d) if d == mt.detector))
            else {
                continue;
            };
            self.counts[ri] += 1;
            let span = &decoded[mt.start..mt.end];
            let rep = match self.rules[ri].action {
                RedactAction::Drop => {
                    result = Some(None);
                    break;
                }
                RedactAction::Mask => mask(Some(mt.detector), span),
                RedactAction::Pseudonymize => self.pseudonym(span),
            };
            out.push_str(&decoded[at..mt.start]);
            out.push_str(&rep);
            at = mt.end;
            changed = true;
        }
        // Key-name detectors: the whole value.
        if result.is_none() {
            if let Some(kd) = hints.key_detector {
                if let Some(ri) = self
                    .rules
                    .iter()
                    .position(|r| matches!(r.target, Target::Detector(d) if d == kd))
                {
                    self.counts[ri] += 1;
                    let action = self.rules[ri].action;
                    self.matches = m;
                    return Some(self.whole(s, action, key));
                }
            }
        }
        self.matches = m;
        if let Some(r) = result {
            return Some(r);
        }
        if changed {
            out.push_str(&decoded[at..]);
            Some(Some(out))
        } else {
            None
        }
    }

    /// Walk a JSON value; false when `v` must be removed from its parent.
    fn walk(&mut self, v: &mut Value, path: &mut String, key: &str) -> bool {
        if let Some(ri) = self
            .rules
            .iter()
            .position(|r| matches!(&r.target, Target::Path(p) if p == path))
        {
            let action = self.rules[ri].action;
            if action == RedactAction::Drop {
                self.counts[ri] += 1;
                return false;
            }
            return self.subtree(v, action, key, ri);
        }
        match v {
            Value::Object(m) => {
                let mut gone = Vec::new();
                for (k, c) in m.iter_mut() {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    if !self.walk(c, path, k) {
                        gone.push(k.clone());
                    }
                    path.truncate(len);
                }
                for k in gone {
                    m.remove(&k);
                }
                true
            }
            Value::Array(a) => {
                let len = path.len();
                path.push_str("[]");
                let mut keep = Vec::with_capacity(a.len());
                for c in a.iter_mut() {
                    keep.push(self.walk(c, path, key));
                }
                path.truncate(len);
                let mut i = 0;
                a.retain(|_| {
                    let k = keep[i];
                    i += 1;
                    k
                });
                true
            }
            Value::String(s) => match self.scalar(&s.clone(), key) {
                None => true,
                Some(None) => false,
                Some(Some(n)) => {
                    *s = n;
                    true
                }
            },
            Value::Number(n) => match self.scalar(&n.to_string(), key) {
                None => true,
                Some(None) => false,
                Some(Some(t)) => {
                    *v = Value::String(t);
                    true
                }
            },
            Value::Bool(_) | Value::Null => true,
        }
    }

    /// A top column's value.
    fn top(&mut self, col: &str, v: Option<String>) -> Option<String> {
        let v = v?;
        if let Some(ri) = self
            .rules
            .iter()
            .position(|r| matches!(&r.target, Target::Path(p) if p == col))
        {
            self.counts[ri] += 1;
            let action = self.rules[ri].action;
            return self.whole(&v, action, col);
        }
        match self.scalar(&v, col) {
            None => Some(v),
            Some(r) => r,
        }
    }

    /// A JSON column's text.
    fn json(&mut self, col: &str, text: Option<String>) -> Option<String> {
        let text = text?;
        let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
            // Not JSON (cannot happen for workspace columns): treat as one string.
            return self.top(col, Some(text));
        };
        let mut path = col.to_string();
        if !self.walk(&mut v, &mut path, col) {
            return None;
        }
        Some(v.to_string())
    }
}

const STAGE: &str = "CREATE OR REPLACE TEMP TABLE pii_export_stage (
    source_vendor VARCHAR, source_file VARCHAR, source_line BIGINT, import_id BIGINT,
    event_uuid VARCHAR, dedupe_key VARCHAR, event_name VARCHAR, event_kind VARCHAR,
    ts_us BIGINT, received_us BIGINT, distinct_id VARCHAR, user_id VARCHAR, anon_id VARCHAR,
    session_id VARCHAR, vendor_person_id VARCHAR, properties VARCHAR, person_properties VARCHAR,
    groups VARCHAR, event_seq BIGINT)";

const OUT_COLUMNS: &str = "source_vendor, source_file, source_line, import_id, event_uuid,
    dedupe_key, event_name, event_kind, make_timestamptz(ts_us) AS ts_utc,
    make_timestamptz(received_us) AS received_at_utc, distinct_id, user_id, anon_id, session_id,
    vendor_person_id, CAST(properties AS JSON) AS properties,
    CAST(person_properties AS JSON) AS person_properties, CAST(groups AS JSON) AS groups, event_seq";

/// Write a redacted copy of the events to `opts.out_dir`, verify it, record it.
pub fn export(
    ws: &Workspace,
    rules: &RedactionRules,
    opts: &ExportOptions,
    ctx: &JobCtx,
) -> Result<ExportReport> {
    let started = Instant::now();
    let resolved = resolve(ws, rules)?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| EngineError::io(&opts.out_dir, e))?;
    let data_file = opts
        .out_dir
        .join(format!("events.{}", opts.format.as_str()));
    let data_str = data_file.to_string_lossy().to_string();
    let mut redactor = Redactor {
        counts: vec![0; resolved.len()],
        rules: resolved,
        salt: opts.salt.clone().unwrap_or_else(fresh_salt),
        matches: Vec::new(),
    };
    let conn = ws.conn();
    ctx.cancel.attach(conn.interrupt_handle());
    let stage = ws.clone_conn()?;
    stage.execute_batch(STAGE)?;
    let (rows_source, rows_left_out): (i64, i64) = conn.query_row(
        "SELECT count(*) FILTER (WHERE ? IS NULL OR ts_utc >= make_timestamptz(?)),
                count(*) FILTER (WHERE ts_utc < make_timestamptz(?))
         FROM events",
        duckdb::params![opts.keep_from_us, opts.keep_from_us, opts.keep_from_us],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut write = || -> Result<()> {
        let mut st = conn.prepare(
            "SELECT source_vendor, source_file, source_line, import_id, event_uuid, dedupe_key,
                    event_name, event_kind, epoch_us(ts_utc), epoch_us(received_at_utc),
                    distinct_id, user_id, anon_id, session_id, vendor_person_id,
                    CAST(properties AS VARCHAR), CAST(person_properties AS VARCHAR),
                    CAST(groups AS VARCHAR), event_seq
             FROM events WHERE ? IS NULL OR ts_utc >= make_timestamptz(?)
             ORDER BY event_seq",
        )?;
        let mut rows = st.query(duckdb::params![opts.keep_from_us, opts.keep_from_us])?;
        let mut app = stage.appender("pii_export_stage")?;
        let mut n: u64 = 0;
        while let Some(r) = rows.next()? {
            let mut top: Vec<Option<String>> = Vec::with_capacity(5);
            for (k, col) in TOP.iter().enumerate() {
                let v: Option<String> = r.get(10 + k)?;
                top.push(redactor.top(col, v));
            }
            let mut js: Vec<Option<String>> = Vec::with_capacity(3);
            for (k, col) in JSON_COLS.iter().enumerate() {
                let v: Option<String> = r.get(15 + k)?;
                js.push(redactor.json(col, v));
            }
            app.append_row(duckdb::params![
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Option<i64>>(9)?,
                top[0],
                top[1],
                top[2],
                top[3],
                top[4],
                js[0],
                js[1],
                js[2],
                r.get::<_, Option<i64>>(18)?,
            ])?;
            n += 1;
            if n.is_multiple_of(4096) {
                ctx.cancel.check()?;
                ctx.emit(
                    JobEvent::Progress {
                        file: data_str.clone(),
                        file_index: 0,
                        phase: "redact".into(),
                        bytes_done: n,
                        bytes_total: rows_source as u64,
                        rows: n,
                    },
                    false,
                );
            }
        }
        app.flush()?;
        drop(app);
        let mut copy = Sql::new("COPY (SELECT ");
        copy.push(OUT_COLUMNS)
            .push(" FROM pii_export_stage ORDER BY event_seq) TO ")
            .bind(data_str.as_str())
            .push(" ")
            .push(opts.format.copy_options());
        copy.execute(&stage)?;
        Ok(())
    };
    let written = write();
    let _ = stage.execute_batch("DROP TABLE IF EXISTS pii_export_stage");
    written.map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))?;

    // Verify: re-scan the file with every detector and the custom rules.
    ctx.emit(
        JobEvent::Progress {
            file: data_str.clone(),
            file_index: 0,
            phase: "verify".into(),
            bytes_done: 0,
            bytes_total: rows_source as u64,
            rows: 0,
        },
        true,
    );
    let custom = super::rules::list(ws)?;
    let rule_conn = if custom.is_empty() {
        None
    } else {
        Some(ws.clone_conn()?)
    };
    let verify_conn = ws.clone_conn()?;
    let source = EventSource::File {
        path: data_str.clone(),
        format: opts.format,
        vendor_shape: false,
    };
    let reader = opts.format.reader_sql(&data_str);
    let rows_written = count_rows(&verify_conn, &reader)?;
    let mut scanner = Scanner::new(&custom, rule_conn)?;
    scanner.scan_events(&verify_conn, &source, ctx)?;
    let totals = ScanTotals {
        events: rows_written,
        persons: {
            let mut q =
                Sql::new("(SELECT DISTINCT coalesce(e.distinct_id, e.user_id, e.anon_id) FROM ");
            q.embed(&reader).push(")");
            count_rows(&verify_conn, &q)?
        },
        ..ScanTotals::default()
    };
    let rescan = scanner.finish(&totals)?;
    let mut checks = Vec::new();
    let mut problems = Vec::new();
    for (i, r) in redactor.rules.iter().enumerate() {
        let hits_after: i64 = rescan
            .iter()
            .filter(|f| match &r.target {
                Target::Path(p) => {
                    let under = f.path == *p
                        || f.path.starts_with(&format!("{p}."))
                        || f.path.starts_with(&format!("{p}[]"));
                    let counts = r.action == RedactAction::Drop
                        || Detector::parse(&f.detector).is_none_or(Detector::reads_value);
                    under && counts
                }
                Target::Detector(d) => f.detector == d.as_str(),
            })
            .map(|f| f.hits)
            .sum();
        let ok = hits_after == 0;
        if !ok {
            problems.push(format!(
                "{}: {hits_after} detector hits remain after {}",
                r.label(),
                action_name(r.action)
            ));
        }
        checks.push(RedactionCheck {
            target: r.label(),
            action: r.action,
            redacted: redactor.counts[i],
            hits_after,
            ok,
        });
    }
    let row_count_ok = rows_written == rows_source;
    if !row_count_ok {
        problems.push(format!(
            "the export holds {rows_written} rows, the source {rows_source}"
        ));
    }
    let status = if problems.is_empty() {
        ExportStatus::Complete
    } else {
        ExportStatus::Failed
    };
    let report = ExportReport {
        status,
        data_file: data_str.clone(),
        format: opts.format,
        created_at: crate::generate::rfc3339_micros(opts.now_us),
        rows_source,
        rows_written,
        rows_left_out: if opts.keep_from_us.is_some() {
            rows_left_out
        } else {
            0
        },
        keep_from: opts.keep_from_us.map(crate::generate::rfc3339_micros),
        checks,
        row_count_ok,
        rescan,
        millis: started.elapsed().as_secs_f64() * 1000.0,
        problems,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    let manifest = opts.out_dir.join("pii-export.json");
    std::fs::write(&manifest, &json).map_err(|e| EngineError::io(&manifest, e))?;
    conn.execute(
        "INSERT INTO pii_exports (created_at, out_path, format, status, rows_source, rows_written, report)
         VALUES (make_timestamptz(?), ?, ?, ?, ?, ?, ?)",
        duckdb::params![
            opts.now_us,
            data_str,
            opts.format.as_str(),
            match status {
                ExportStatus::Complete => "complete",
                ExportStatus::Failed => "failed",
            },
            rows_source,
            rows_written,
            json
        ],
    )?;
    Ok(report)
}

fn action_name(a: RedactAction) -> &'static str {
    match a {
        RedactAction::Drop => "drop",
        RedactAction::Mask => "mask",
        RedactAction::Pseudonymize => "pseudonymize",
    }
}

/// Exports recorded in the workspace, oldest first.
pub fn exports(ws: &Workspace) -> Result<Vec<ExportReport>> {
    let mut st = ws
        .conn()
        .prepare("SELECT CAST(report AS VARCHAR) FROM pii_exports ORDER BY export_id")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for text in rows {
        let text = text?;
        if let Ok(r) = serde_json::from_str::<ExportReportRow>(&text) {
            out.push(r.into_report());
        }
    }
    Ok(out)
}

/// The stored report, read back (findings in the re-scan are summarised, not restored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportReportRow {
    status: String,
    data_file: String,
    format: String,
    created_at: String,
    rows_source: i64,
    rows_written: i64,
    rows_left_out: i64,
    keep_from: Option<String>,
    checks: Vec<CheckRow>,
    row_count_ok: bool,
    millis: f64,
    problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckRow {
    target: String,
    action: RedactAction,
    redacted: i64,
    hits_after: i64,
    ok: bool,
}

impl ExportReportRow {
    fn into_report(self) -> ExportReport {
        ExportReport {
            status: if self.status == "complete" {
                ExportStatus::Complete
            } else {
                ExportStatus::Failed
            },
            data_file: self.data_file,
            format: ExportFormat::parse(&self.format).unwrap_or(ExportFormat::Parquet),
            created_at: self.created_at,
            rows_source: self.rows_source,
            rows_written: self.rows_written,
            rows_left_out: self.rows_left_out,
            keep_from: self.keep_from,
            checks: self
                .checks
                .into_iter()
                .map(|c| RedactionCheck {
                    target: c.target,
                    action: c.action,
                    redacted: c.redacted,
                    hits_after: c.hits_after,
                    ok: c.ok,
                })
                .collect(),
            row_count_ok: self.row_count_ok,
            rescan: Vec::new(),
            millis: self.millis,
            problems: self.problems,
        }
    }
}
