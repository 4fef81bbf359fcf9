//! The redacted export: a copy of the workspace's events as canonical Parquet, CSV or JSON
//! lines, with chosen fields dropped, masked or replaced by salted SHA-256 pseudonyms, then
//! verified. The export is `complete` only when the re-scan finds no hit of a redacted
//! detector or field, no original value of a redacted field or detector is left anywhere in
//! the files written, and the row count equals the source's; otherwise it is marked `failed`
//! and says what remains where (masked).
//!
//! A rule redacts its values everywhere: before writing, every original value at a redacted
//! path and every span a redacted detector flags is gathered ([`super::collect`]), and each
//! occurrence of one in any string of the output (other fields' text, nested values, object
//! keys, event names, ids, the raw records) gets the same treatment as at its field.
//! Detectors also run on event names and object keys. Every finding marked "needs redaction"
//! must be covered by a rule (its finding, its path or an ancestor, or its detector), or the
//! export refuses to start and names them.
//!
//! Quarantined records are left out unless asked for (the report says so); when included,
//! their raw text is redacted like a raw record and written to `quarantine.jsonl`.
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

use std::sync::Arc;

use super::detect::{detect_value, key_hints, Detector, KeyHints, Match};
use super::mask::mask;
use super::scan::{EventSource, Finding, ScanTotals, Scanner, Source, KEY};
use super::values::Values;
use super::verify::{Layout, Verifier};
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
pub(crate) enum Target {
    Path(String),
    Detector(Detector),
}

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) target: Target,
    pub(crate) action: RedactAction,
}

/// The path inside a raw record rooted at `raw_root` (`raw.properties.x` → `properties.x`).
fn rel<'p>(path: &'p str, raw_root: Option<&str>) -> Option<&'p str> {
    path.strip_prefix(raw_root?)?.strip_prefix('.')
}

/// Whether rule path `p` names `path`. In a raw record (rooted at `raw_root`: `raw`,
/// `quarantine.raw`) a rule also names a path by the record's own spelling
/// (`properties.$set.email` in a PostHog record), as the vendor-shape export always has.
pub(crate) fn names(p: &str, path: &str, raw_root: Option<&str>) -> bool {
    p == path || rel(path, raw_root) == Some(p)
}

/// Whether `p` names `path` or one of its ancestors.
pub(crate) fn covers(p: &str, path: &str, raw_root: Option<&str>) -> bool {
    let under = |x: &str| {
        x == p
            || x.strip_prefix(p)
                .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
    };
    under(path) || rel(path, raw_root).is_some_and(under)
}

/// Where a dropped span goes when its string cannot be removed (an event name, a key's text
/// inside an id).
const DROPPED: &str = "[redacted]";

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
            if !rule_path_ok(p) {
                return Err(bad(format!(
                    "field rule {}: \"{p}\" is not a field (a top column such as distinct_id, a path under properties, person_properties, groups or raw, or a path from the field report under persons, person_snapshots, group_snapshots or quarantine.raw); redact event names and keys with a detector rule",
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
            let f = super::store::finding(ws, id)?.finding;
            if is_name_or_key(&f.path) {
                // A hit in an event name or a key: its detector, wherever it matches.
                Target::Detector(Detector::parse(&f.detector).ok_or_else(|| {
                    bad(format!(
                        "field rule {}: finding {id} is a custom rule's hit in an event name or a key, which only a built-in detector can redact",
                        i + 1
                    ))
                })?)
            } else {
                // Findings in persons, snapshots or quarantined records redact their values
                // wherever they appear in what is written.
                Target::Path(f.path)
            }
        };
        out.push(Resolved {
            target,
            action: r.action,
        });
    }
    Ok(out)
}

/// Whether a path is an event name's or an object key's (findings there name no field).
fn is_name_or_key(path: &str) -> bool {
    path == "event_name" || path == KEY || path.ends_with(&format!(".{KEY}"))
}

/// A path a rule may name.
fn rule_path_ok(p: &str) -> bool {
    if is_name_or_key(p) {
        return false;
    }
    let root = p.split(['.', '[']).next().unwrap_or_default();
    let under = |prefix: &str| p.len() > prefix.len() && p.starts_with(prefix);
    TOP.contains(&p)
        || ((JSON_COLS.contains(&root) || root == "raw") && p.len() > root.len())
        || under("persons.")
        || under("person_snapshots.")
        || under("group_snapshots.")
        || p == "quarantine.raw"
        || under("quarantine.raw.")
}

/// Refuse an export that would leave a finding marked "needs redaction" untouched: each must
/// be covered by a rule on its detector, or on its path or an ancestor (a finding rule names
/// its path). Quarantined records left out need no rule.
fn check_coverage(ws: &Workspace, rules: &[Resolved], include_quarantine: bool) -> Result<()> {
    let marked: Vec<_> = super::store::findings(ws)?
        .into_iter()
        .filter(|f| {
            f.review
                .as_ref()
                .is_some_and(|r| r.status == super::store::ReviewStatus::NeedsRedaction)
        })
        .map(|f| f.finding)
        .collect();
    let uncovered: Vec<&Finding> = marked
        .iter()
        .filter(|f| include_quarantine || f.source != Source::Quarantine)
        .filter(|f| {
            !rules.iter().any(|r| match &r.target {
                Target::Detector(d) => d.as_str() == f.detector,
                Target::Path(p) => covers(p, &f.path, None),
            })
        })
        .collect();
    if uncovered.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = uncovered
        .iter()
        .map(|f| {
            format!(
                "{} ({} at {} in {})",
                f.id,
                f.detector,
                f.path,
                f.source.as_str()
            )
        })
        .collect();
    Err(EngineError::InvalidQuery {
        code: "pii_uncovered_findings",
        message: format!(
            "{} finding{} marked \"needs redaction\" {} not covered by the rules: {}. Add a rule for each (its finding id, its path or its detector), or change its review",
            uncovered.len(),
            if uncovered.len() == 1 { "" } else { "s" },
            if uncovered.len() == 1 { "is" } else { "are" },
            list.join("; ")
        ),
    })
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
    /// Also write the quarantined records (redacted) to `quarantine.jsonl`; otherwise they
    /// are left out and the report says so.
    pub include_quarantine: bool,
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
    /// Distinct original values the rule redacts (at its path, or flagged by its detector).
    #[ts(type = "number")]
    pub values: i64,
    /// Occurrences of those values found in the files written (must be 0).
    #[ts(type = "number")]
    pub values_after: i64,
    pub ok: bool,
}

/// An original value found in the files written: where, and masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RemainingValue {
    /// The rule whose value it is (a path or `detector:<name>`).
    pub target: String,
    /// The file's name in the export folder.
    pub file: String,
    /// 1-based line (JSON lines, CSV) or row (Parquet).
    #[ts(type = "number")]
    pub line: i64,
    /// Where in the record (`properties.note`, `event_name`, `properties.{key}` for a key).
    pub path: String,
    /// Masked, never the value.
    pub sample: String,
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
    /// Original values found in the files written (the first few per rule), masked.
    pub remaining: Vec<RemainingValue>,
    /// Quarantined records in the workspace, and the file they were written to (redacted)
    /// when they were included.
    #[ts(type = "number")]
    pub quarantine_rows: i64,
    pub quarantine_file: Option<String>,
    pub millis: f64,
    /// Why the export failed, when it did.
    pub problems: Vec<String>,
    /// What was left out on purpose, and other things to know.
    pub notes: Vec<String>,
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

/// The redaction of one export: rules, salt, the original values, counters.
#[derive(Clone)]
struct Redactor {
    rules: Vec<Resolved>,
    salt: Vec<u8>,
    counts: Vec<i64>,
    matches: Vec<Match>,
    /// Key hints by key.
    hints: super::detect::KeyHintCache,
    /// Whether a detector rule touches a (key, value): by hash, with the pair to confirm.
    touched: std::collections::HashMap<u64, (Box<str>, Box<str>, bool)>,
    /// The original values every rule redacts, replaced wherever they appear.
    values: Arc<Values>,
    occ: Vec<(usize, usize, u32)>,
    /// The root of the raw record being walked (`raw`, `quarantine.raw`), if it is one.
    raw_root: Option<&'static str>,
    /// Set while walking a document whose text holds no original value (nothing to search
    /// for in its strings).
    no_values_here: bool,
    /// File and event names already redacted: the text written, and the values changed per
    /// rule.
    repeated: std::collections::HashMap<(bool, String), (String, Vec<i64>)>,
}

/// File and event names remembered per redactor before it starts over.
const REPEATED: usize = 4096;

/// Touch verdicts kept per redactor before the cache starts over.
const TOUCH_CACHE: usize = 1 << 18;

/// What becomes of one string.
enum Fate {
    Keep,
    Drop,
    Into(String),
}

impl Redactor {
    fn new(rules: Vec<Resolved>, salt: Vec<u8>, values: Arc<Values>) -> Self {
        Redactor {
            counts: vec![0; rules.len()],
            rules,
            salt,
            matches: Vec::new(),
            hints: Default::default(),
            touched: Default::default(),
            values,
            occ: Vec::new(),
            raw_root: None,
            no_values_here: false,
            repeated: Default::default(),
        }
    }

    fn hints(&mut self, key: &str) -> KeyHints {
        self.hints.get(key)
    }

    fn pseudonym(&self, v: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(v.as_bytes());
        let d = h.finalize();
        let mut out = String::with_capacity(19);
        out.push_str("pn_");
        for b in d.iter().take(8) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
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

    /// The path rule naming `path`, if any.
    fn path_rule(&self, path: &str) -> Option<usize> {
        let root = self.raw_root;
        self.rules
            .iter()
            .position(|r| matches!(&r.target, Target::Path(p) if names(p, path, root)))
    }

    /// Original value `i` as its rule redacts it (None: dropped), and the rule.
    fn replacement(&mut self, i: u32) -> (usize, Option<String>) {
        let ri = self.values.rule(i);
        let v = self.values.value(i).to_string();
        let (action, detector) = match self.rules.get(ri) {
            Some(r) => (
                r.action,
                match r.target {
                    Target::Detector(d) => Some(d),
                    Target::Path(_) => None,
                },
            ),
            None => (RedactAction::Mask, None),
        };
        let out = match (action, detector) {
            (RedactAction::Drop, _) => None,
            (RedactAction::Pseudonymize, _) => Some(self.pseudonym(&v)),
            (RedactAction::Mask, Some(d)) => Some(mask(Some(d), &v)),
            (RedactAction::Mask, None) => self.whole(&v, RedactAction::Mask, ""),
        };
        (ri, out)
    }

    /// Replace every original value in `s`. When a value's rule drops it, a `droppable`
    /// string goes; any other keeps its text with the span replaced by `[redacted]`.
    fn spread(&mut self, s: &str, droppable: bool) -> Fate {
        if self.no_values_here || !self.values.may_hold(s) {
            return Fate::Keep;
        }
        let mut occ = std::mem::take(&mut self.occ);
        self.values.occurrences(s, &mut occ);
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        let mut dropped = false;
        for &(a, b, i) in &occ {
            let (ri, rep) = self.replacement(i);
            if let Some(c) = self.counts.get_mut(ri) {
                *c += 1;
            }
            out.push_str(&s[at..a]);
            match rep {
                None if droppable => {
                    dropped = true;
                    break;
                }
                None => out.push_str(DROPPED),
                Some(r) => out.push_str(&r),
            }
            at = b;
        }
        let any = !occ.is_empty();
        self.occ = occ;
        if dropped {
            return Fate::Drop;
        }
        if !any {
            return Fate::Keep;
        }
        out.push_str(&s[at..]);
        Fate::Into(out)
    }

    /// One string not under a path rule: the detector rules (`detectors`), then the original
    /// values.
    fn text(&mut self, s: &str, key: &str, droppable: bool, detectors: bool) -> Fate {
        // Without a key (names, keys) no key-name detector applies: the value detectors need
        // a digit, `@`, `%` or 20 characters.
        let det = if detectors && (!key.is_empty() || super::scan::maybe_detected(s)) {
            self.scalar(s, key, droppable)
        } else {
            None
        };
        match det {
            Some(None) => Fate::Drop,
            Some(Some(t)) => match self.spread(&t, droppable) {
                Fate::Keep => Fate::Into(t),
                other => other,
            },
            None => self.spread(s, droppable),
        }
    }

    /// Apply an action to every scalar under `v`; false when `v` itself must go.
    fn subtree(&mut self, v: &mut Value, action: RedactAction, key: &str, rule: usize) -> bool {
        match v {
            Value::Object(m) => {
                if action == RedactAction::Drop {
                    return false;
                }
                self.keys(m);
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

    /// Detector rules on one scalar: replace the matched spans (or drop the value; when it
    /// cannot be dropped, the span becomes `[redacted]`).
    fn scalar(&mut self, s: &str, key: &str, droppable: bool) -> Option<Option<String>> {
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
                RedactAction::Drop if droppable => {
                    result = Some(None);
                    break;
                }
                RedactAction::Drop => DROPPED.to_string(),
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
                    return Some(
                        self.whole(s, action, key)
                            .or_else(|| (!droppable).then(|| DROPPED.to_string())),
                    );
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

    /// An object's keys: detected values and original values in them are redacted (the key
    /// renamed, or the entry removed when the rule drops).
    fn keys(&mut self, m: &mut serde_json::Map<String, Value>) {
        let mut changes: Vec<(String, Option<String>)> = Vec::new();
        for k in m.keys() {
            match self.text(k, "", true, true) {
                Fate::Keep => {}
                Fate::Drop => changes.push((k.clone(), None)),
                Fate::Into(n) => changes.push((k.clone(), Some(n))),
            }
        }
        if changes.is_empty() {
            return;
        }
        let old = std::mem::take(m);
        for (k, v) in old {
            let Some((_, to)) = changes.iter().find(|(c, _)| *c == k) else {
                m.insert(k, v);
                continue;
            };
            let Some(to) = to else { continue };
            // Two keys that redact alike stay apart.
            let mut name = to.clone();
            let mut n = 2;
            while m.contains_key(&name) {
                name = format!("{to} ({n})");
                n += 1;
            }
            m.insert(name, v);
        }
    }

    /// Walk a JSON value; false when `v` must be removed from its parent. Path rules match
    /// the original keys.
    fn walk(&mut self, v: &mut Value, path: &mut String, key: &str) -> bool {
        if let Some(ri) = self.path_rule(path) {
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
                self.keys(m);
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
            Value::String(s) => match self.text(&s.clone(), key, true, true) {
                Fate::Keep => true,
                Fate::Drop => false,
                Fate::Into(n) => {
                    *s = n;
                    true
                }
            },
            Value::Number(n) => match self.text(&n.to_string(), key, true, true) {
                Fate::Keep => true,
                Fate::Drop => false,
                Fate::Into(t) => {
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
        if let Some(ri) = self.path_rule(col) {
            self.counts[ri] += 1;
            let action = self.rules[ri].action;
            return self.whole(&v, action, col);
        }
        match self.text(&v, col, true, true) {
            Fate::Keep => Some(v),
            Fate::Drop => None,
            Fate::Into(t) => Some(t),
        }
    }

    /// Text that cannot be removed (an event name; with `detectors` false, an id or a file
    /// name only the original values are looked for in).
    fn fixed(&mut self, v: String, detectors: bool) -> String {
        match self.text(&v, "", false, detectors) {
            Fate::Into(t) => t,
            Fate::Keep | Fate::Drop => v,
        }
    }

    /// [`Self::fixed`] for text that repeats from event to event (file and event names):
    /// remembered, with the values it changed.
    fn fixed_repeated(&mut self, v: String, detectors: bool) -> String {
        if let Some((out, changed)) = self.repeated.get(&(detectors, v.clone())) {
            for (c, n) in self.counts.iter_mut().zip(changed) {
                *c += n;
            }
            return out.clone();
        }
        let before = self.counts.clone();
        let out = self.fixed(v.clone(), detectors);
        let changed: Vec<i64> = self
            .counts
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        if self.repeated.len() >= REPEATED {
            self.repeated.clear();
        }
        self.repeated.insert((detectors, v), (out.clone(), changed));
        out
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

    /// A JSON column's text (a raw record's when `raw_root` is given), unchanged (no parse
    /// into a tree, no re-serialisation) when no rule can touch it: the common case, checked
    /// on a flat walk of its leaves and keys and a search for the original values.
    fn json_fast(
        &mut self,
        col: &str,
        text: &str,
        raw_root: Option<&'static str>,
        flat: &mut super::flat::Flat,
    ) -> Option<String> {
        let multi_line = memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some();
        let path_rule_may_apply = self.rules.iter().any(|r| match &r.target {
            Target::Path(p) => {
                let under = raw_root.is_some()
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
        let values_may_apply = !self.values.is_empty()
            && (memchr::memchr(b'\\', text.as_bytes()).is_some() || self.values.may_hold(text));
        let slow = multi_line
            || path_rule_may_apply
            || values_may_apply
            || (self
                .rules
                .iter()
                .any(|r| matches!(r.target, Target::Detector(_)))
                && (!flat.parse(col, text)
                    || (0..flat.len()).any(|i| {
                        let (_, k, v) = flat.leaf(i);
                        self.touches(k, v)
                    })
                    || (0..flat.key_count()).any(|i| {
                        let (_, k) = flat.key(i);
                        self.touches("", k)
                    })));
        if slow {
            self.json_in(col, text.to_string(), raw_root, values_may_apply)
        } else {
            Some(text.to_string())
        }
    }

    /// A JSON column's text (a raw record's when `raw_root` is given); `values_here`: the text
    /// may hold an original value (or has escapes that could hide one).
    fn json_in(
        &mut self,
        col: &str,
        text: String,
        raw_root: Option<&'static str>,
        values_here: bool,
    ) -> Option<String> {
        self.raw_root = raw_root;
        self.no_values_here = !values_here;
        let out = match serde_json::from_str::<Value>(&text) {
            // Not JSON (a quarantined record's text, cut short): one string.
            Err(_) => self.top(col, Some(text)),
            Ok(mut v) => {
                let mut path = col.to_string();
                self.walk(&mut v, &mut path, col).then(|| v.to_string())
            }
        };
        self.raw_root = None;
        self.no_values_here = false;
        out
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
                // The output file is named after the source's: redacted too.
                let file = red.fixed_repeated(r.get(1)?, false);
                let Some(raw) = text_col(r, 19)? else {
                    no_raw += 1;
                    continue;
                };
                let Some(text) = red.json_fast("raw", &raw, Some("raw"), &mut flat) else {
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
            // The file name, ids and the event name can hold values too (a Mixpanel dedupe
            // key carries the distinct id and the event name).
            fields.push(Field::Text(red.fixed_repeated(r.get(1)?, false)));
            fields.push(Field::Int(r.get(2)?));
            fields.push(Field::Int(r.get(3)?));
            fields.push(Field::Text(red.fixed(r.get(4)?, false)));
            fields.push(text_col(r, 5)?.map_or(Field::Null, |d| Field::Text(red.fixed(d, false))));
            fields.push(Field::Text(red.fixed_repeated(r.get(6)?, true)));
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
                    Some(t) => red.json_fast(col, &t, None, &mut flat),
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

/// What writing and verifying produced.
struct Written {
    /// Values changed, per rule.
    counts: Vec<i64>,
    files: Vec<PathBuf>,
    /// Rows found in the event files.
    rows_written: i64,
    /// Events left out for want of a raw record (vendor shape).
    no_raw: u64,
    rescan: Vec<Finding>,
    /// Original values found in the files, per rule, and the first few located.
    values_after: Vec<i64>,
    remains: Vec<super::verify::Remain>,
    quarantine_rows: i64,
    quarantine_file: Option<PathBuf>,
}

/// Write the quarantined records, redacted like raw records, as JSON lines (import, file,
/// line, reason, raw text, its full length). Returns the values changed per rule.
fn write_quarantine(ws: &Workspace, redactor: &Redactor, path: &Path) -> Result<Vec<i64>> {
    use std::io::Write;
    let mut red = redactor.clone();
    red.counts = vec![0; red.rules.len()];
    let f = std::fs::File::create(path).map_err(|e| EngineError::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    let mut st = ws.conn().prepare(
        "SELECT import_id, source_file, source_line, reason, raw, raw_length FROM quarantine
         ORDER BY import_id, source_line",
    )?;
    let mut rows = st.query([])?;
    let mut flat = super::flat::Flat::default();
    while let Some(r) = rows.next()? {
        let file: String = r.get(1)?;
        let reason: String = r.get(3)?;
        let raw: Option<String> = r.get(4)?;
        let raw = raw
            .and_then(|t| red.json_fast("quarantine.raw", &t, Some("quarantine.raw"), &mut flat));
        let rec = serde_json::json!({
            "import_id": r.get::<_, i64>(0)?,
            "source_file": red.fixed(file, false),
            "source_line": r.get::<_, i64>(2)?,
            "reason": red.fixed(reason, true),
            "raw": raw,
            "raw_length": r.get::<_, i64>(5)?,
        });
        writeln!(w, "{rec}").map_err(|e| EngineError::io(path, e))?;
    }
    w.flush().map_err(|e| EngineError::io(path, e))?;
    Ok(red.counts)
}

/// Write the redacted events (and the quarantined records when asked), then verify what was
/// written: a re-scan with every detector and custom rule, and a search for every original
/// value the rules redact (`originals`: what was gathered, whatever the redactor was given).
fn write_and_verify(
    ws: &Workspace,
    redactor: &Redactor,
    originals: &Values,
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
    let (mut counts, _, no_raw) = written?;
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
    let quarantine_rows: i64 =
        verify_conn.query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))?;
    let quarantine_file = if opts.include_quarantine {
        let q = opts.out_dir.join("quarantine.jsonl");
        let c = write_quarantine(ws, redactor, &q)?;
        for (a, b) in counts.iter_mut().zip(c) {
            *a += b;
        }
        Some(q)
    } else {
        None
    };
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
    if let Some(q) = &quarantine_file {
        // Each record's raw text is one string to the detectors.
        let source = EventSource::File {
            path: q.to_string_lossy().to_string(),
            format: ExportFormat::Jsonl,
            vendor_shape: true,
        };
        scanner.scan_events(&verify_conn, &source, ctx)?;
    }
    let totals = ScanTotals {
        events: rows_written,
        persons: scanner.people.len() as i64,
        ..ScanTotals::default()
    };
    let rescan = scanner.finish(&totals)?;
    // Verify: every original value, searched for in the files as written.
    ctx.emit(
        JobEvent::Progress {
            file: data_file.to_string_lossy().to_string(),
            file_index: 0,
            phase: "verify values".into(),
            bytes_done: 0,
            bytes_total: 0,
            rows: 0,
        },
        true,
    );
    let mut verifier = Verifier::new(originals, redactor.rules.len())?;
    let layout = if opts.vendor_shape {
        Layout::Vendor
    } else {
        Layout::Canonical
    };
    for f in &files {
        ctx.cancel.check()?;
        verifier.file(f, opts.format, layout, &verify_conn)?;
    }
    if let Some(q) = &quarantine_file {
        verifier.file(q, ExportFormat::Jsonl, Layout::Quarantine, &verify_conn)?;
    }
    Ok(Written {
        counts,
        files,
        rows_written,
        no_raw,
        rescan,
        values_after: verifier.after,
        remains: verifier.remains,
        quarantine_rows,
        quarantine_file,
    })
}

/// Write a redacted copy of the events to `opts.out_dir`, verify it, record it. Refused
/// before anything is written when a finding marked "needs redaction" is not covered.
pub fn export(
    ws: &Workspace,
    rules: &RedactionRules,
    opts: &ExportOptions,
    ctx: &JobCtx,
) -> Result<ExportReport> {
    export_with(ws, rules, opts, ctx, true)
}

/// [`export`]; with `spread` false the redactor is not given the original values (only
/// tests do that, to show the verification catches what a faulty redaction leaves).
fn export_with(
    ws: &Workspace,
    rules: &RedactionRules,
    opts: &ExportOptions,
    ctx: &JobCtx,
    spread: bool,
) -> Result<ExportReport> {
    let started = Instant::now();
    let resolved = resolve(ws, rules)?;
    if opts.vendor_shape && opts.format != ExportFormat::Jsonl {
        return Err(EngineError::InvalidArgument(
            "the vendor's shape is written as JSON lines only (--format jsonl)".into(),
        ));
    }
    check_coverage(ws, &resolved, opts.include_quarantine)?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| EngineError::io(&opts.out_dir, e))?;
    let data_file = opts
        .out_dir
        .join(format!("events.{}", opts.format.as_str()));
    let data_str = data_file.to_string_lossy().to_string();
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
    let outcome = (|| -> Result<(Written, Redactor, Arc<Values>)> {
        // Every original value the rules redact, gathered before anything is written.
        let found = super::collect::gather(ws, &resolved, ctx)?;
        let values = Arc::new(Values::build(found)?);
        let given = if spread {
            values.clone()
        } else {
            Arc::new(Values::build(super::values::Found::default())?)
        };
        let redactor = Redactor::new(
            resolved.clone(),
            opts.salt.clone().unwrap_or_else(fresh_salt),
            given,
        );
        let w = write_and_verify(ws, &redactor, &values, opts, &data_file, rows_source, ctx)?;
        Ok((w, redactor, values))
    })();
    cap.restore(conn)?;
    let (w, mut redactor, originals) =
        outcome.map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))?;
    redactor.counts = w.counts;
    let (files, rows_written, no_raw, rescan) = (w.files, w.rows_written, w.no_raw, w.rescan);
    let data_str = if opts.vendor_shape {
        files
            .iter()
            .map(|f| f.to_string_lossy().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        data_str
    };
    let values = originals.per_rule(redactor.rules.len());
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
        let values_after = w.values_after.get(i).copied().unwrap_or(0);
        let ok = hits_after == 0 && values_after == 0;
        if hits_after > 0 {
            problems.push(format!(
                "{}: {hits_after} detector hits remain after {}",
                r.label(),
                action_name(r.action)
            ));
        }
        if values_after > 0 {
            let at: Vec<String> = w
                .remains
                .iter()
                .filter(|x| x.rule == i)
                .map(|x| format!("{} line {} at {} ({})", x.file, x.line, x.path, x.sample))
                .collect();
            problems.push(format!(
                "{}: {values_after} occurrence{} of its original values remain{} in the output: {}",
                r.label(),
                if values_after == 1 { "" } else { "s" },
                if values_after == 1 { "s" } else { "" },
                at.join("; ")
            ));
        }
        checks.push(RedactionCheck {
            target: r.label(),
            action: r.action,
            redacted: redactor.counts[i],
            hits_after,
            values: values.get(i).copied().unwrap_or(0),
            values_after,
            ok,
        });
    }
    let remaining = w
        .remains
        .iter()
        .map(|x| RemainingValue {
            target: redactor
                .rules
                .get(x.rule)
                .map(Resolved::label)
                .unwrap_or_default(),
            file: x.file.clone(),
            line: x.line as i64,
            path: x.path.clone(),
            sample: x.sample.clone(),
        })
        .collect();
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
    let mut notes = Vec::new();
    match &w.quarantine_file {
        Some(q) => notes.push(format!(
            "{} quarantined record{} written redacted to {}",
            w.quarantine_rows,
            if w.quarantine_rows == 1 { "" } else { "s" },
            q.display()
        )),
        None if w.quarantine_rows > 0 => notes.push(format!(
            "{} quarantined record{} left out: {} raw text is not in the export (include the quarantine to export it redacted)",
            w.quarantine_rows,
            if w.quarantine_rows == 1 { " was" } else { "s were" },
            if w.quarantine_rows == 1 { "its" } else { "their" }
        )),
        None => {}
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
        remaining,
        quarantine_rows: w.quarantine_rows,
        quarantine_file: w
            .quarantine_file
            .as_ref()
            .map(|q| q.to_string_lossy().to_string()),
        millis: started.elapsed().as_secs_f64() * 1000.0,
        problems,
        notes,
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
    #[serde(default)]
    remaining: Vec<RemainingValue>,
    #[serde(default)]
    quarantine_rows: i64,
    #[serde(default)]
    quarantine_file: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckRow {
    target: String,
    action: RedactAction,
    redacted: i64,
    hits_after: i64,
    #[serde(default)]
    values: i64,
    #[serde(default)]
    values_after: i64,
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
                    values: c.values,
                    values_after: c.values_after,
                    ok: c.ok,
                })
                .collect(),
            row_count_ok: self.row_count_ok,
            rescan: Vec::new(),
            remaining: self.remaining,
            quarantine_rows: self.quarantine_rows,
            quarantine_file: self.quarantine_file,
            millis: self.millis,
            problems: self.problems,
            notes: self.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARL: &str = "carl@example.com";

    fn workspace() -> Workspace {
        let ws = Workspace::in_memory().unwrap_or_else(|e| panic!("{e}"));
        ws.conn()
            .execute_batch(
                r#"INSERT INTO events (source_vendor, source_file, source_line, import_id, event_uuid,
                    event_name, event_kind, ts_utc, distinct_id, properties, event_seq)
                 VALUES
                 ('posthog', 'f.jsonl', 1, 1, 'u1', 'signup', 'track', TIMESTAMPTZ '2024-01-01', 'd1',
                  '{"$set":{"email":"carl@example.com"}}', 1),
                 ('posthog', 'f.jsonl', 2, 1, 'u2', 'invite', 'track', TIMESTAMPTZ '2024-01-02', 'd2',
                  '{"note":"invited by carl@example.com"}', 2)"#,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        ws
    }

    fn run(ws: &Workspace, dir: &Path, spread: bool) -> ExportReport {
        let rules = RedactionRules {
            format: None,
            fields: vec![RedactionRule {
                path: Some("properties.$set.email".into()),
                detector: None,
                finding: None,
                action: RedactAction::Pseudonymize,
            }],
        };
        let opts = ExportOptions {
            out_dir: dir.to_path_buf(),
            format: ExportFormat::Jsonl,
            keep_from_us: None,
            salt: None,
            now_us: 0,
            vendor_shape: false,
            include_quarantine: false,
        };
        export_with(ws, &rules, &opts, &JobCtx::silent(), spread).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_value_the_redaction_leaves_fails_the_export_and_is_located_masked() {
        let ws = workspace();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A faulty redaction: the address is replaced at its field only. The re-scan finds no
        // email at the field (its detector hits elsewhere are not this rule's), so only the
        // search for the original values can tell.
        let rep = run(&ws, &dir.path().join("faulty"), false);
        assert_eq!(rep.status, ExportStatus::Failed);
        assert_eq!(rep.checks[0].hits_after, 0);
        assert_eq!((rep.checks[0].values, rep.checks[0].values_after), (1, 1));
        assert!(!rep.checks[0].ok);
        assert_eq!(
            rep.remaining,
            [RemainingValue {
                target: "properties.$set.email".into(),
                file: "events.jsonl".into(),
                line: 2,
                path: "properties.note".into(),
                sample: "c***@e******.com".into(),
            }]
        );
        assert!(
            rep.problems[0].contains("1 occurrence")
                && rep.problems[0].contains("events.jsonl line 2 at properties.note"),
            "{:?}",
            rep.problems
        );
        let report = serde_json::to_string(&rep).unwrap_or_default();
        assert!(!report.contains(CARL));
        assert_eq!(
            exports(&ws).unwrap_or_default()[0].status,
            ExportStatus::Failed
        );
        // The same export, redacted properly: clean.
        let rep = run(&ws, &dir.path().join("ok"), true);
        assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
        assert_eq!(rep.checks[0].values_after, 0);
    }
}
