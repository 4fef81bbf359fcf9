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

use super::detect::{detect_value, key_hints, Detector, KeyHints, Match};
use super::mask::mask;
use super::scan::{EventSource, Finding, ScanTotals, Scanner, Source};
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
    /// Write each event in its vendor's original shape (the stored `raw` record), redacted at
    /// the same paths, one JSON-lines file per source file, gzipped when the source was.
    /// Needs `format` JSON lines and events imported with their raw records.
    pub vendor_shape: bool,
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
#[derive(Clone)]
struct Redactor {
    rules: Vec<Resolved>,
    salt: Vec<u8>,
    counts: Vec<i64>,
    matches: Vec<Match>,
    /// Key hints by key.
    hints: std::collections::HashMap<String, KeyHints>,
    /// Whether a detector rule touches a (key, value): by hash, with the pair to confirm.
    touched: std::collections::HashMap<u64, (Box<str>, Box<str>, bool)>,
}

/// Touch verdicts kept per redactor before the cache starts over.
const TOUCH_CACHE: usize = 1 << 18;

impl Redactor {
    fn new(rules: Vec<Resolved>, salt: Vec<u8>) -> Self {
        Redactor {
            counts: vec![0; rules.len()],
            rules,
            salt,
            matches: Vec::new(),
            hints: Default::default(),
            touched: Default::default(),
        }
    }

    fn hints(&mut self, key: &str) -> KeyHints {
        if let Some(h) = self.hints.get(key) {
            return *h;
        }
        let h = key_hints(key);
        self.hints.insert(key.to_string(), h);
        h
    }

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
        if !self.touches(key, s) {
            return None;
        }
        if !self
            .rules
            .iter()
            .any(|r| matches!(r.target, Target::Detector(_)))
        {
            return None;
        }
        let hints = self.hints(key);
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
                    if !path.is_empty() {
                        path.push('.');
                    }
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

    /// Whether a detector rule would change this value (no counting); cached, since values
    /// repeat.
    fn touches(&mut self, key: &str, value: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        value.hash(&mut h);
        let h = h.finish();
        if let Some((k, v, t)) = self.touched.get(&h) {
            if **k == *key && **v == *value {
                return *t;
            }
        }
        let t = self.touches_now(key, value);
        if self.touched.len() >= TOUCH_CACHE {
            self.touched.clear();
        }
        self.touched.insert(h, (key.into(), value.into(), t));
        t
    }

    fn touches_now(&mut self, key: &str, value: &str) -> bool {
        let hints = self.hints(key);
        if let Some(kd) = hints.key_detector {
            if self
                .rules
                .iter()
                .any(|r| matches!(r.target, Target::Detector(d) if d == kd))
            {
                return true;
            }
        }
        let mut m = std::mem::take(&mut self.matches);
        detect_value(value, hints, &mut m);
        let hit = m.iter().any(|mt| {
            self.rules
                .iter()
                .any(|r| matches!(r.target, Target::Detector(d) if d == mt.detector))
        });
        self.matches = m;
        hit
    }

    /// A JSON column's text, unchanged (no parse into a tree, no re-serialisation) when no rule
    /// can touch it: the common case, checked on a flat walk of its leaves.
    fn json_fast(&mut self, col: &str, text: &str, flat: &mut super::flat::Flat) -> Option<String> {
        let multi_line = memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some();
        let path_rule_may_apply = self.rules.iter().any(|r| match &r.target {
            Target::Path(p) => {
                let under = col.is_empty()
                    || p == col
                    || p.strip_prefix(col)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['));
                under
                    && (text.contains("\\u")
                        || match path_needle(p) {
                            Some(n) => text.contains(n.as_str()),
                            None => true,
                        })
            }
            Target::Detector(_) => false,
        });
        let slow = multi_line
            || path_rule_may_apply
            || (self
                .rules
                .iter()
                .any(|r| matches!(r.target, Target::Detector(_)))
                && (!flat.parse(col, text)
                    || (0..flat.len()).any(|i| {
                        let (_, k, v) = flat.leaf(i);
                        self.touches(k, v)
                    })));
        if slow {
            self.json(col, Some(text.to_string()))
        } else {
            Some(text.to_string())
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

/// Text every JSON document holding `path` contains: its last key and closing quote, when the
/// key is plain (JSON spells it one way); None when no such text is safe.
fn path_needle(path: &str) -> Option<String> {
    let last = path.rsplit('.').next()?.trim_end_matches("[]");
    let plain = !last.is_empty()
        && !last.contains("[]")
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'));
    plain.then(|| format!("{last}\""))
}

/// Columns the export reads per event (after the row id).
const READ_COLUMNS: &str = "source_vendor, source_file, source_line, import_id, event_uuid,
    dedupe_key, event_name, event_kind, epoch_us(ts_utc), epoch_us(received_at_utc),
    distinct_id, user_id, anon_id, session_id, vendor_person_id, CAST(properties AS VARCHAR),
    CAST(person_properties AS VARCHAR), CAST(groups AS VARCHAR), event_seq, CAST(raw AS VARCHAR)";

/// Canonical output columns, in order.
const OUT_NAMES: [&str; 19] = [
    "source_vendor",
    "source_file",
    "source_line",
    "import_id",
    "event_uuid",
    "dedupe_key",
    "event_name",
    "event_kind",
    "ts_utc",
    "received_at_utc",
    "distinct_id",
    "user_id",
    "anon_id",
    "session_id",
    "vendor_person_id",
    "properties",
    "person_properties",
    "groups",
    "event_seq",
];

/// One output field.
enum Field {
    Null,
    Int(i64),
    Text(String),
    /// JSON text, embedded as it is in JSON lines.
    Json(String),
}

/// A chunk of output: bytes per destination (canonical: one destination, "").
type Chunk = Vec<(String, Vec<u8>)>;

/// A chunk's index and its output, events read and events without a raw record.
type Done = (u64, Result<(Chunk, u64, u64)>);

fn text_col(r: &duckdb::Row<'_>, i: usize) -> Result<Option<String>> {
    Ok(r.get(i)?)
}

/// Render one canonical row.
fn render(fields: &[Field], format: ExportFormat, out: &mut Vec<u8>) -> Result<()> {
    match format {
        ExportFormat::Jsonl | ExportFormat::Parquet => {
            out.push(b'{');
            for (i, (name, f)) in OUT_NAMES.iter().zip(fields).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                match f {
                    Field::Null => out.extend_from_slice(b"null"),
                    Field::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                    Field::Text(t) => serde_json::to_writer(&mut *out, t)
                        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
                    Field::Json(t) => out.extend_from_slice(t.as_bytes()),
                }
            }
            out.extend_from_slice(b"}\n");
        }
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *out);
            let rec: Vec<String> = fields
                .iter()
                .map(|f| match f {
                    Field::Null => String::new(),
                    Field::Int(n) => n.to_string(),
                    Field::Text(t) | Field::Json(t) => t.clone(),
                })
                .collect();
            w.write_record(&rec)
                .map_err(|e| EngineError::InvalidArgument(format!("writing CSV: {e}")))?;
            w.flush()
                .map_err(|e| EngineError::InvalidArgument(format!("writing CSV: {e}")))?;
        }
    }
    Ok(())
}

/// The file name a vendor-shape export gives a source file's records: the source's own name
/// (archive members flattened), `.gz` kept when the source was gzipped.
fn vendor_file_name(source_file: &str) -> String {
    let base: String = source_file
        .rsplit(['/', '\\', '!'])
        .next()
        .unwrap_or("events")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let gz = source_file.to_ascii_lowercase().ends_with(".gz");
    let stem = base.trim_end_matches(".gz").trim_end_matches(".GZ");
    let stem = stem
        .strip_suffix(".jsonl")
        .or_else(|| stem.strip_suffix(".json"))
        .or_else(|| stem.strip_suffix(".ndjson"))
        .unwrap_or(stem);
    format!("{stem}.redacted.jsonl{}", if gz { ".gz" } else { "" })
}

/// One worker's share: redact the events of the row-id ranges it claims.
#[allow(clippy::too_many_arguments)]
fn export_worker(
    conn: &duckdb::Connection,
    red: &mut Redactor,
    keep_from_us: Option<i64>,
    format: ExportFormat,
    vendor_shape: bool,
    next: &std::sync::atomic::AtomicI64,
    lo: i64,
    hi: i64,
    batch: i64,
    tx: &std::sync::mpsc::SyncSender<Done>,
    ctx: &JobCtx,
) {
    use std::sync::atomic::Ordering;
    let mut flat = super::flat::Flat::default();
    let mut run = |start: i64| -> Result<(Chunk, u64, u64)> {
        let mut st = conn.prepare_cached(&format!(
            "SELECT {READ_COLUMNS} FROM events
             WHERE rowid >= ? AND rowid < ? AND (? IS NULL OR ts_utc >= make_timestamptz(?))
             ORDER BY rowid"
        ))?;
        let mut rows = st.query(duckdb::params![
            start,
            start.saturating_add(batch),
            keep_from_us,
            keep_from_us
        ])?;
        let mut chunk: Chunk = Vec::new();
        let mut n = 0u64;
        let mut no_raw = 0u64;
        while let Some(r) = rows.next()? {
            n += 1;
            if vendor_shape {
                let file: String = r.get(1)?;
                let Some(raw) = text_col(r, 19)? else {
                    no_raw += 1;
                    continue;
                };
                let Some(text) = red.json_fast("", &raw, &mut flat) else {
                    no_raw += 1;
                    continue;
                };
                let name = vendor_file_name(&file);
                if chunk.last().is_none_or(|(f, _)| *f != name) {
                    chunk.push((name, Vec::new()));
                }
                if let Some((_, buf)) = chunk.last_mut() {
                    buf.extend_from_slice(text.as_bytes());
                    buf.push(b'\n');
                }
                continue;
            }
            let mut fields = Vec::with_capacity(19);
            fields.push(Field::Text(r.get(0)?));
            fields.push(Field::Text(r.get(1)?));
            fields.push(Field::Int(r.get(2)?));
            fields.push(Field::Int(r.get(3)?));
            fields.push(Field::Text(r.get(4)?));
            fields.push(text_col(r, 5)?.map_or(Field::Null, Field::Text));
            fields.push(Field::Text(r.get(6)?));
            fields.push(Field::Text(r.get(7)?));
            let ts = |v: Option<i64>| {
                v.map_or(Field::Null, |us| {
                    Field::Text(crate::generate::rfc3339_micros(us))
                })
            };
            fields.push(ts(r.get(8)?));
            fields.push(ts(r.get(9)?));
            for (k, col) in TOP.iter().enumerate() {
                let v = text_col(r, 10 + k)?;
                fields.push(red.top(col, v).map_or(Field::Null, Field::Text));
            }
            for (k, col) in JSON_COLS.iter().enumerate() {
                let v = text_col(r, 15 + k)?;
                let out = match v {
                    Some(t) => red.json_fast(col, &t, &mut flat),
                    None => None,
                };
                fields.push(out.map_or(Field::Null, Field::Json));
            }
            fields.push(r.get::<_, Option<i64>>(18)?.map_or(Field::Null, Field::Int));
            if chunk.is_empty() {
                chunk.push((String::new(), Vec::new()));
            }
            if let Some((_, buf)) = chunk.last_mut() {
                render(&fields, format, buf)?;
            }
        }
        Ok((chunk, n, no_raw))
    };
    loop {
        if ctx.cancel.is_cancelled() {
            let _ = tx.send((u64::MAX, Err(EngineError::Cancelled)));
            return;
        }
        let start = next.fetch_add(batch, Ordering::Relaxed);
        if start > hi {
            return;
        }
        let idx = ((start - lo) / batch) as u64;
        let res = run(start);
        let failed = res.is_err();
        if tx.send((idx, res)).is_err() || failed {
            return;
        }
    }
}

/// The CSV header (other formats have none).
fn sinks_header(format: ExportFormat) -> Vec<u8> {
    if format == ExportFormat::Csv {
        format!("{}\n", OUT_NAMES.join(",")).into_bytes()
    } else {
        Vec::new()
    }
}

/// Where the export's bytes go: one file, or one per source file (vendor shape).
struct Sinks {
    dir: PathBuf,
    main: Option<std::io::BufWriter<std::fs::File>>,
    main_path: PathBuf,
    /// Written first to the main file (the CSV header).
    header: Vec<u8>,
    vendor: std::collections::BTreeMap<String, Box<dyn std::io::Write>>,
}

impl Sinks {
    fn write(&mut self, dest: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        if dest.is_empty() {
            if self.main.is_none() {
                let f = std::fs::File::create(&self.main_path)
                    .map_err(|e| EngineError::io(&self.main_path, e))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                w.write_all(&self.header)
                    .map_err(|e| EngineError::io(&self.main_path, e))?;
                self.main = Some(w);
            }
            if let Some(w) = self.main.as_mut() {
                w.write_all(bytes)
                    .map_err(|e| EngineError::io(&self.main_path, e))?;
            }
            return Ok(());
        }
        if !self.vendor.contains_key(dest) {
            let p = self.dir.join(dest);
            let f = std::fs::File::create(&p).map_err(|e| EngineError::io(&p, e))?;
            let w: Box<dyn Write> = if dest.ends_with(".gz") {
                Box::new(flate2::write::GzEncoder::new(
                    std::io::BufWriter::with_capacity(1 << 20, f),
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, f))
            };
            self.vendor.insert(dest.to_string(), w);
        }
        if let Some(w) = self.vendor.get_mut(dest) {
            w.write_all(bytes)
                .map_err(|e| EngineError::io(self.dir.join(dest), e))?;
        }
        Ok(())
    }

    /// Flush and close; the files written.
    fn finish(self) -> Result<Vec<PathBuf>> {
        use std::io::Write;
        let mut out = Vec::new();
        if let Some(mut w) = self.main {
            w.flush().map_err(|e| EngineError::io(&self.main_path, e))?;
            out.push(self.main_path.clone());
        }
        for (name, mut w) in self.vendor {
            let p = self.dir.join(&name);
            w.flush().map_err(|e| EngineError::io(&p, e))?;
            drop(w);
            out.push(p);
        }
        Ok(out)
    }
}

/// Redact every event (in row order) into the sinks, on worker threads. Returns the redaction
/// counts per rule, the events read and those without an original record (vendor shape).
#[allow(clippy::too_many_arguments)]
fn write_events(
    ws: &Workspace,
    redactor: &Redactor,
    keep_from_us: Option<i64>,
    format: ExportFormat,
    vendor_shape: bool,
    sinks: &mut Sinks,
    total: i64,
    ctx: &JobCtx,
) -> Result<(Vec<i64>, u64, u64)> {
    let conn = ws.conn();
    let (lo, hi): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(rowid), max(rowid) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok((redactor.counts.clone(), 0, 0));
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let batch: i64 = 50_000;
    let next = std::sync::atomic::AtomicI64::new(lo);
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(ws.clone_conn()?);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(workers * 2);
    let next = &next;
    std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|c| {
                let tx = tx.clone();
                let mut red = redactor.clone();
                s.spawn(move || {
                    export_worker(
                        &c,
                        &mut red,
                        keep_from_us,
                        format,
                        vendor_shape,
                        next,
                        lo,
                        hi,
                        batch,
                        &tx,
                        ctx,
                    );
                    red.counts
                })
            })
            .collect();
        drop(tx);
        // Chunks arrive in any order; they are written in row order.
        let mut pending: std::collections::BTreeMap<u64, Chunk> = Default::default();
        let mut want = 0u64;
        let mut read = 0u64;
        let mut no_raw = 0u64;
        let mut failure: Option<EngineError> = None;
        for (idx, res) in rx.iter() {
            match res {
                Err(e) => {
                    failure.get_or_insert(e);
                    break;
                }
                Ok((chunk, n, nr)) => {
                    read += n;
                    no_raw += nr;
                    pending.insert(idx, chunk);
                }
            }
            while let Some(chunk) = pending.remove(&want) {
                for (dest, bytes) in &chunk {
                    if let Err(e) = sinks.write(dest, bytes) {
                        failure.get_or_insert(e);
                    }
                }
                want += 1;
            }
            if failure.is_some() {
                break;
            }
            ctx.emit(
                JobEvent::Progress {
                    file: sinks.main_path.to_string_lossy().to_string(),
                    file_index: 0,
                    phase: "redact".into(),
                    bytes_done: read,
                    bytes_total: total as u64,
                    rows: read,
                },
                false,
            );
        }
        if failure.is_some() {
            // Stop the workers: they see the cancel flag or a closed channel.
            drop(rx);
        }
        let mut counts = vec![0i64; redactor.counts.len()];
        for h in handles {
            match h.join() {
                Ok(c) => {
                    for (a, b) in counts.iter_mut().zip(c) {
                        *a += b;
                    }
                }
                Err(_) => {
                    failure.get_or_insert(EngineError::InvalidArgument(
                        "an export thread panicked".into(),
                    ));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((counts, read, no_raw)),
        }
    })
}

type Written = (Vec<i64>, Vec<PathBuf>, i64, u64, Vec<Finding>);

/// Write the redacted events, then re-scan what was written: the redaction counts, the files,
/// the rows found in them, the events left out for want of a raw record, the re-scan.
fn write_and_verify(
    ws: &Workspace,
    redactor: &Redactor,
    opts: &ExportOptions,
    data_file: &Path,
    rows_source: i64,
    ctx: &JobCtx,
) -> Result<Written> {
    // Parquet is written by DuckDB from JSON lines written first.
    let lines_file = match opts.format {
        ExportFormat::Parquet => opts.out_dir.join(".events.parquet.jsonl"),
        _ => data_file.to_path_buf(),
    };
    let mut sinks = Sinks {
        dir: opts.out_dir.clone(),
        main: None,
        main_path: lines_file.clone(),
        header: sinks_header(opts.format),
        vendor: Default::default(),
    };
    let written = write_events(
        ws,
        redactor,
        opts.keep_from_us,
        opts.format,
        opts.vendor_shape,
        &mut sinks,
        rows_source,
        ctx,
    );
    let files = sinks.finish();
    let (counts, _, no_raw) = written?;
    let mut files = files?;
    if !opts.vendor_shape && files.is_empty() {
        // No events: still a file (a CSV with its header).
        let mut empty = Sinks {
            dir: opts.out_dir.clone(),
            main: None,
            main_path: lines_file.clone(),
            header: sinks_header(opts.format),
            vendor: Default::default(),
        };
        empty.write("", b"")?;
        files = empty.finish()?;
    }
    let verify_conn = ws.clone_conn()?;
    if opts.format == ExportFormat::Parquet {
        let lines = lines_file.to_string_lossy().to_string();
        // Numbered parameters: DuckDB binds a COPY's target before its query.
        let reader = ExportFormat::Jsonl
            .reader_sql("")
            .text
            .replacen('?', "$1", 1);
        let copy = format!(
            "COPY (SELECT e.source_vendor, e.source_file, e.source_line, e.import_id, e.event_uuid,
                e.dedupe_key, e.event_name, e.event_kind, CAST(e.ts_utc AS TIMESTAMPTZ) AS ts_utc,
                CAST(e.received_at_utc AS TIMESTAMPTZ) AS received_at_utc, e.distinct_id,
                e.user_id, e.anon_id, e.session_id, e.vendor_person_id, e.properties,
                e.person_properties, e.groups, e.event_seq FROM {reader}) TO $2 (FORMAT parquet)"
        );
        let target = data_file.to_string_lossy().to_string();
        let done = verify_conn
            .prepare(&copy)
            .and_then(|mut st| st.execute(duckdb::params![lines, target]));
        let _ = std::fs::remove_file(&lines_file);
        done?;
        files = vec![data_file.to_path_buf()];
    }
    // Verify: re-scan what was written with every detector and the custom rules.
    ctx.emit(
        JobEvent::Progress {
            file: data_file.to_string_lossy().to_string(),
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
    let mut scanner = Scanner::new(&custom, rule_conn)?;
    scanner.count_people = true;
    let mut rows_written = 0i64;
    for f in &files {
        let source = EventSource::File {
            path: f.to_string_lossy().to_string(),
            format: opts.format,
            vendor_shape: opts.vendor_shape,
        };
        rows_written += scanner.scan_events(&verify_conn, &source, ctx)? as i64;
    }
    let totals = ScanTotals {
        events: rows_written,
        persons: scanner.people.len() as i64,
        ..ScanTotals::default()
    };
    let rescan = scanner.finish(&totals)?;
    Ok((counts, files, rows_written, no_raw, rescan))
}

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
    let mut redactor = Redactor::new(resolved, opts.salt.clone().unwrap_or_else(fresh_salt));
    if opts.vendor_shape && opts.format != ExportFormat::Jsonl {
        return Err(EngineError::InvalidArgument(
            "the vendor's shape is written as JSON lines only (--format jsonl)".into(),
        ));
    }
    let conn = ws.conn();
    ctx.cancel.attach(conn.interrupt_handle());
    let (rows_source, rows_left_out): (i64, i64) = conn.query_row(
        "SELECT count(*) FILTER (WHERE ? IS NULL OR ts_utc >= make_timestamptz(?)),
                count(*) FILTER (WHERE ts_utc < make_timestamptz(?))
         FROM events",
        duckdb::params![opts.keep_from_us, opts.keep_from_us, opts.keep_from_us],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // DuckDB would otherwise cache every block it reads, up to most of the machine's RAM.
    let cap = crate::resources::MemoryCap::unless_chosen(ws, super::scan::SCAN_MEMORY_LIMIT)?;
    let outcome = write_and_verify(ws, &redactor, opts, &data_file, rows_source, ctx);
    cap.restore(conn)?;
    let (counts, files, rows_written, no_raw, rescan) =
        outcome.map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))?;
    redactor.counts = counts;
    let data_str = if opts.vendor_shape {
        files
            .iter()
            .map(|f| f.to_string_lossy().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        data_str
    };
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
    if no_raw > 0 {
        problems.push(format!(
            "{no_raw} events have no original record to write in the vendor's shape (import with --keep-raw)"
        ));
    }
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
