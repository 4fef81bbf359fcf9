//! The second half of a redacted export's verification: re-read the files written and look
//! for every original value the rules redact (see [`super::values`] for what counts as an
//! occurrence). Independent of the redaction: it reads only the output, with its own
//! automaton, and trusts no count the redaction kept.
//!
//! Every string is read: values at any depth, object keys, event names, the ids, the text of
//! the raw and quarantined records. Only columns that cannot hold a redacted value are skipped
//! ([`STRUCTURAL`]: the vendor and kind enums, timestamps and counters). What remains is
//! reported by file, line and path with a masked sample, never the value.

use std::io::BufRead;
use std::path::Path;

use aho_corasick::AhoCorasick;
use serde_json::Value;

use super::export::ExportFormat;
use super::scan::KEY;
use super::values::{at_boundary, sample, Values};
use crate::{EngineError, Result};

/// Canonical columns that hold no redactable value: not read.
pub(crate) const STRUCTURAL: [&str; 7] = [
    "source_vendor",
    "event_kind",
    "ts_utc",
    "received_at_utc",
    "source_line",
    "import_id",
    "event_seq",
];
/// Canonical columns holding JSON documents.
const JSON_COLUMNS: [&str; 3] = ["properties", "person_properties", "groups"];
/// Located remains kept per rule, and in all.
const PER_RULE: usize = 5;
const MOST: usize = 50;

/// How a file's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The canonical columns (Parquet, CSV or JSON lines).
    Canonical,
    /// A vendor's records, JSON lines (gzipped when the name ends in `.gz`).
    Vendor,
    /// Quarantined records: JSON lines with the raw text as a string.
    Quarantine,
}

/// One original value found in the output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Remain {
    pub rule: usize,
    pub file: String,
    /// 1-based line (JSON lines, CSV) or row (Parquet).
    pub line: u64,
    pub path: String,
    /// Masked.
    pub sample: String,
}

pub(crate) struct Verifier<'v> {
    values: &'v Values,
    ac: Option<AhoCorasick>,
    owner: Vec<u32>,
    /// Occurrences found, per rule.
    pub(crate) after: Vec<i64>,
    pub(crate) remains: Vec<Remain>,
    file: String,
    line: u64,
}

impl<'v> Verifier<'v> {
    pub(crate) fn new(values: &'v Values, rules: usize) -> Result<Self> {
        let (ac, owner) = values.automaton(true)?;
        Ok(Verifier {
            values,
            ac,
            owner,
            after: vec![0; rules],
            remains: Vec::new(),
            file: String::new(),
            line: 0,
        })
    }

    /// Whether there is nothing to look for.
    pub(crate) fn idle(&self) -> bool {
        self.ac.is_none()
    }

    /// Read one written file.
    pub(crate) fn file(
        &mut self,
        path: &Path,
        format: ExportFormat,
        layout: Layout,
        conn: &duckdb::Connection,
    ) -> Result<()> {
        if self.idle() {
            return Ok(());
        }
        self.file = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        match (format, layout) {
            (ExportFormat::Parquet, Layout::Canonical) => self.parquet(path, conn),
            (ExportFormat::Csv, Layout::Canonical) => self.csv(path),
            _ => self.jsonl(path, layout),
        }
    }

    fn hit(&mut self, rule: usize, path: &str, value: &str) {
        if let Some(n) = self.after.get_mut(rule) {
            *n += 1;
        }
        let kept = self.remains.iter().filter(|r| r.rule == rule).count();
        if kept < PER_RULE && self.remains.len() < MOST {
            self.remains.push(Remain {
                rule,
                file: self.file.clone(),
                line: self.line,
                path: path.to_string(),
                sample: sample(value),
            });
        }
    }

    /// One string at `path` (`exact` is the path short values are recorded under).
    fn check(&mut self, path: &str, exact: &str, s: &str) {
        let Some(ac) = &self.ac else { return };
        let mut hits: Vec<u32> = Vec::new();
        for m in ac.find_overlapping_iter(s) {
            let owner = self
                .owner
                .get(m.pattern().as_usize())
                .copied()
                .unwrap_or(u32::MAX);
            if owner != u32::MAX && at_boundary(s, m.start(), m.end()) {
                hits.push(owner);
            }
        }
        for owner in hits {
            let v = self.values.value(owner).to_string();
            for rule in self.values.claim(owner).rules() {
                self.hit(rule, path, &v);
            }
        }
        if let Some(c) = self.values.exact_claim(exact, s) {
            for rule in c.rules() {
                self.hit(rule, path, s);
            }
        }
    }

    /// A JSON value at `path`; `strip` is removed from the front of reported paths.
    fn walk(&mut self, v: &Value, path: &mut String, strip: &str) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    let key_at = path.len();
                    path.push_str(KEY);
                    let shown = shown(path, strip).to_string();
                    let exact = path.clone();
                    self.check(&shown, &exact, k);
                    path.truncate(key_at);
                    path.push_str(k);
                    self.walk(c, path, strip);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                let len = path.len();
                path.push_str("[]");
                for c in a {
                    self.walk(c, path, strip);
                }
                path.truncate(len);
            }
            Value::String(s) => {
                let shown = shown(path, strip).to_string();
                let exact = path.clone();
                self.check(&shown, &exact, s);
            }
            Value::Number(n) => {
                let shown = shown(path, strip).to_string();
                let exact = path.clone();
                self.check(&shown, &exact, &n.to_string());
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// JSON text at `root` (any text that is not JSON is one string).
    fn json_text(&mut self, root: &str, text: &str, strip: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.walk(&v, &mut root.to_string(), strip),
            Err(_) => self.check(shown(root, strip), root, text),
        }
    }

    /// Whether a line (or field) needs a full read: it may hold a value, or escapes could hide
    /// one.
    fn worth(&self, text: &str) -> bool {
        text.contains('\\') || self.ac.as_ref().is_some_and(|ac| ac.is_match(text))
    }

    fn canonical_field(&mut self, name: &str, text: &str) {
        if STRUCTURAL.contains(&name) || text.is_empty() || !self.worth(text) {
            return;
        }
        if JSON_COLUMNS.contains(&name) {
            self.json_text(name, text, "");
        } else {
            self.check(name, name, text);
        }
    }

    fn jsonl(&mut self, path: &Path, layout: Layout) -> Result<()> {
        let mut r = super::stream::open(path)?;
        let mut line = String::new();
        self.line = 0;
        loop {
            line.clear();
            let got = r
                .read_line(&mut line)
                .map_err(|e| EngineError::io(path, e))?;
            if got == 0 {
                break;
            }
            self.line += 1;
            let t = line.trim_end_matches(['\n', '\r']);
            if t.trim().is_empty() || !self.worth(t) {
                continue;
            }
            let v: Value = match serde_json::from_str(t) {
                Ok(v) => v,
                Err(_) => {
                    // Not JSON: the whole line is one string.
                    let t = t.to_string();
                    self.check("", "", &t);
                    continue;
                }
            };
            match layout {
                Layout::Vendor => self.walk(&v, &mut "raw".to_string(), "raw"),
                Layout::Canonical => match &v {
                    Value::Object(m) => {
                        for (k, c) in m {
                            match c {
                                Value::String(s) => {
                                    let s = s.clone();
                                    self.canonical_field(k, &s);
                                }
                                Value::Null => {}
                                other if JSON_COLUMNS.contains(&k.as_str()) => {
                                    self.walk(other, &mut k.clone(), "");
                                }
                                other => {
                                    let s = other.to_string();
                                    self.canonical_field(k, &s);
                                }
                            }
                        }
                    }
                    other => self.walk(other, &mut String::new(), ""),
                },
                Layout::Quarantine => match &v {
                    Value::Object(m) => {
                        for (k, c) in m {
                            match (k.as_str(), c) {
                                ("raw", Value::String(s)) => {
                                    let s = s.clone();
                                    self.json_text("quarantine.raw", &s, "");
                                }
                                (_, Value::String(s)) => {
                                    let s = s.clone();
                                    self.check(k, k, &s);
                                }
                                _ => {}
                            }
                        }
                    }
                    other => self.walk(other, &mut String::new(), ""),
                },
            }
        }
        Ok(())
    }

    fn csv(&mut self, path: &Path) -> Result<()> {
        let bad = |e: csv::Error| {
            EngineError::InvalidArgument(format!("re-reading {}: {e}", path.display()))
        };
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(super::stream::open(path)?);
        let headers = rd.headers().map_err(bad)?.clone();
        let mut rec = csv::StringRecord::new();
        while rd.read_record(&mut rec).map_err(bad)? {
            self.line = rec.position().map_or(0, |p| p.line());
            for (name, field) in headers.iter().zip(rec.iter()) {
                self.canonical_field(name, field);
            }
        }
        Ok(())
    }

    fn parquet(&mut self, path: &Path, conn: &duckdb::Connection) -> Result<()> {
        let p = path.to_string_lossy().to_string();
        let names: Vec<String> = conn
            .prepare("SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet(?))")?
            .query_map([&p], |r| r.get(0))?
            .collect::<duckdb::Result<_>>()?;
        let mut st = conn.prepare("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_parquet(?)")?;
        let mut rows = st.query([&p])?;
        self.line = 0;
        while let Some(r) = rows.next()? {
            self.line += 1;
            for (i, name) in names.iter().enumerate() {
                let v: Option<String> = r.get(i)?;
                if let Some(v) = v {
                    self.canonical_field(name, &v);
                }
            }
        }
        Ok(())
    }
}

/// `path` without the `strip` prefix (and its dot).
fn shown<'p>(path: &'p str, strip: &str) -> &'p str {
    if strip.is_empty() {
        return path;
    }
    match path.strip_prefix(strip) {
        Some(rest) => rest.strip_prefix('.').unwrap_or(rest),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::super::values::Found;
    use super::*;

    const CARL: &str = "carl@example.com";

    fn values() -> Values {
        let mut f = Found::default();
        f.add("properties.$set.email", CARL, 0);
        f.add("properties.age", "42", 1);
        Values::build(f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn conn() -> duckdb::Connection {
        duckdb::Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(
        text: &str,
        format: ExportFormat,
        layout: Layout,
        name: &str,
    ) -> (Vec<i64>, Vec<Remain>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        let v = values();
        let mut ver = Verifier::new(&v, 2).unwrap_or_else(|e| panic!("{e}"));
        ver.file(&p, format, layout, &conn())
            .unwrap_or_else(|e| panic!("{e}"));
        (ver.after, ver.remains)
    }

    #[test]
    fn a_value_left_anywhere_is_found_and_located_masked() {
        // A crafted export: the value in an event name, a key, a nested array and an escaped
        // string; the short value at its own path; a clean line between.
        let lines = [
            r#"{"event_name":"invite sent to carl@example.com","ts_utc":"2024-01-01T00:00:00+00:00","properties":{"age":30}}"#,
            r#"{"event_name":"ok","properties":{"plan":"pro","age":7}}"#,
            r#"{"event_name":"e","properties":{"carl@example.com":true,"cc":[{"to":["x","CARL@example.com"]}],"note":"\u0063arl@example.com"}}"#,
            r#"{"event_name":"e","properties":{"age":42,"n":"42 is not carl@example.community"}}"#,
        ];
        let (after, remains) = check(
            &(lines.join("\n") + "\n"),
            ExportFormat::Jsonl,
            Layout::Canonical,
            "events.jsonl",
        );
        assert_eq!(after, [4, 1]);
        let mut at: Vec<(u64, &str)> = remains.iter().map(|r| (r.line, r.path.as_str())).collect();
        at.sort();
        assert_eq!(
            at,
            [
                (1, "event_name"),
                (3, "properties.cc[].to[]"),
                (3, "properties.note"),
                (3, "properties.{key}"),
                (4, "properties.age"),
            ]
        );
        for r in &remains {
            assert!(
                !r.sample.contains("carl") && !r.sample.contains("42"),
                "{r:?}"
            );
            assert_eq!(r.file, "events.jsonl");
        }
        assert_eq!(remains[0].sample, "c***@e******.com");
    }

    #[test]
    fn a_clean_file_has_nothing_left() {
        let text = "{\"event_name\":\"invite sent to c***@e******.com\",\"properties\":{\"age\":\"4•\",\"x\":\"carl@example.community\"}}\n";
        let (after, remains) = check(text, ExportFormat::Jsonl, Layout::Canonical, "events.jsonl");
        assert_eq!(after, [0, 0]);
        assert!(remains.is_empty());
    }

    #[test]
    fn csv_parquet_vendor_and_quarantine_files_are_read() {
        let csv = "event_name,distinct_id,properties\nx,\"a carl@example.com\",\"{\"\"k\"\":1}\"\n";
        let (after, remains) = check(csv, ExportFormat::Csv, Layout::Canonical, "events.csv");
        assert_eq!(
            (after[0], remains[0].line, remains[0].path.as_str()),
            (1, 2, "distinct_id")
        );
        let vendor =
            "{\"uuid\":\"u\",\"properties\":{\"$set\":{\"email\":\"carl@example.com\"}}}\n";
        let (after, remains) = check(
            vendor,
            ExportFormat::Jsonl,
            Layout::Vendor,
            "a.redacted.jsonl",
        );
        assert_eq!(
            (after[0], remains[0].path.as_str()),
            (1, "properties.$set.email")
        );
        let q = "{\"import_id\":1,\"source_file\":\"f\",\"reason\":\"bad\",\"raw\":\"{\\\"email\\\":\\\"carl@example.com\\\"\"}\n";
        let (after, remains) = check(
            q,
            ExportFormat::Jsonl,
            Layout::Quarantine,
            "quarantine.jsonl",
        );
        assert_eq!((after[0], remains[0].path.as_str()), (1, "quarantine.raw"));
        // Parquet, written by DuckDB.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("events.parquet");
        let c = conn();
        c.execute(
            "COPY (SELECT 'posthog' AS source_vendor, 'x' AS event_name, json_object('nested', json_array('carl@example.com')) AS properties) TO ? (FORMAT parquet)",
            [p.to_string_lossy().to_string()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let v = values();
        let mut ver = Verifier::new(&v, 2).unwrap_or_else(|e| panic!("{e}"));
        ver.file(&p, ExportFormat::Parquet, Layout::Canonical, &c)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ver.after, [1, 0]);
        assert_eq!(ver.remains[0].path, "properties.nested[]");
    }
}
