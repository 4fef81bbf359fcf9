//! The field audit: walk every event (top-level id columns, properties, person properties and
//! groups at any depth), every person and person/group snapshot, run the detectors on each
//! value and aggregate one finding per (source, JSON path, detector).
//!
//! Invariant: raw values live only inside this module's stack frames. What leaves it (the
//! findings, progress events, errors) carries masked samples and counts, nothing else.
//! Custom regex rules run in DuckDB (`regexp_matches` with the pattern bound) over batches of
//! leaf values held in a connection-local temporary table that is emptied after each batch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use ts_rs::TS;

use super::detect::{detect_value, key_hints, Detector, KeyHints, Match, Severity};
use super::mask::mask;
use super::rules::CustomRule;
use crate::jobs::{JobCtx, JobEvent};
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::Result;

/// How many masked samples a finding keeps, and how many event names.
const SAMPLES: usize = 3;
const EVENT_NAMES: usize = 20;
/// Events per scan query.
const SCAN_BATCH: i64 = 50_000;
/// Leaf values per custom-rule batch.
const BATCH: usize = 8192;

/// Where a finding was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Source {
    Events,
    Persons,
    PersonSnapshots,
    GroupSnapshots,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Events => "events",
            Source::Persons => "persons",
            Source::PersonSnapshots => "person_snapshots",
            Source::GroupSnapshots => "group_snapshots",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Source::Events,
            Source::Persons,
            Source::PersonSnapshots,
            Source::GroupSnapshots,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct NameCount {
    pub name: String,
    #[ts(type = "number")]
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SourceFile {
    pub file: String,
    pub vendor: String,
}

/// One row of the field report: a detector's hits at one JSON path.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Finding {
    /// Stable across scans: derived from source, path and detector.
    pub id: String,
    pub source: Source,
    /// e.g. `properties.$set.email`, `distinct_id`, `persons.properties.email`; `[]` marks
    /// array elements.
    pub path: String,
    /// A built-in detector's name (`email`, `credit_card`, …) or `custom:<rule>`.
    pub detector: String,
    pub severity: Severity,
    /// Matches (a value may hold several).
    #[ts(type = "number")]
    pub hits: i64,
    /// Rows (events, persons or snapshots) with at least one match.
    #[ts(type = "number")]
    pub rows: i64,
    /// Share of all events affected (events only; 0 for the other sources).
    pub event_share: f64,
    #[ts(type = "number")]
    pub persons: i64,
    /// Share of all persons affected.
    pub person_share: f64,
    /// The most frequent event names where it appears.
    pub event_names: Vec<NameCount>,
    pub files: Vec<SourceFile>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Masked samples only.
    pub samples: Vec<String>,
}

/// Totals a scan measured against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ScanTotals {
    #[ts(type = "number")]
    pub events: i64,
    #[ts(type = "number")]
    pub persons: i64,
    #[ts(type = "number")]
    pub person_rows: i64,
    #[ts(type = "number")]
    pub snapshot_rows: i64,
    #[ts(type = "number")]
    pub values_checked: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ScanResult {
    pub scanned_at: String,
    pub totals: ScanTotals,
    pub findings: Vec<Finding>,
    pub millis: f64,
    pub events_per_sec: f64,
}

/// The stable id of a finding.
pub fn finding_id(source: Source, path: &str, detector: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_str().as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(detector.as_bytes());
    let d = h.finalize();
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DetKey {
    Builtin(Detector),
    Custom(usize),
}

#[derive(Default)]
struct Acc {
    hits: u64,
    rows: u64,
    last_row: Option<u64>,
    persons: HashSet<u64>,
    event_names: HashMap<String, u64>,
    files: BTreeSet<(u32, u32)>,
    first: Option<i64>,
    last: Option<i64>,
    samples: BTreeSet<String>,
}

/// The row a value came from.
#[derive(Clone, Copy)]
struct RowCtx {
    row: u64,
    person: Option<u64>,
    event_name: Option<u32>,
    file: Option<(u32, u32)>,
    ts: Option<i64>,
}

/// A leaf value waiting for the custom rules.
struct Pending {
    source: Source,
    path: String,
    ctx: RowCtx,
    value: String,
}

/// Where the events come from: the workspace, or a file written by the redacted export.
#[derive(Debug, Clone)]
pub(crate) enum EventSource {
    Workspace,
    File {
        path: String,
        format: super::export::ExportFormat,
    },
}

pub(crate) struct Scanner<'a> {
    accs: HashMap<(Source, DetKey), HashMap<String, Acc>>,
    hints: HashMap<String, KeyHints>,
    strings: Vec<String>,
    string_ids: HashMap<String, u32>,
    matches: Vec<Match>,
    rules: &'a [CustomRule],
    rule_conn: Option<duckdb::Connection>,
    pending: Vec<Pending>,
    values_checked: u64,
    /// Events per workspace query.
    batch: i64,
}

fn hash_str(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(
        rules: &'a [CustomRule],
        rule_conn: Option<duckdb::Connection>,
    ) -> Result<Self> {
        if let Some(c) = &rule_conn {
            c.execute_batch("CREATE OR REPLACE TEMP TABLE pii_leaf_batch (id BIGINT, v VARCHAR)")?;
        }
        Ok(Scanner {
            accs: HashMap::new(),
            hints: HashMap::new(),
            strings: Vec::new(),
            string_ids: HashMap::new(),
            matches: Vec::new(),
            rules,
            rule_conn,
            pending: Vec::new(),
            values_checked: 0,
            batch: SCAN_BATCH,
        })
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), i);
        i
    }

    fn record(
        &mut self,
        source: Source,
        det: DetKey,
        path: &str,
        count: u64,
        ctx: &RowCtx,
        sample: String,
    ) {
        let inner = self.accs.entry((source, det)).or_default();
        let acc = match inner.get_mut(path) {
            Some(a) => a,
            None => inner.entry(path.to_string()).or_default(),
        };
        acc.hits += count;
        if acc.last_row != Some(ctx.row) {
            acc.last_row = Some(ctx.row);
            acc.rows += 1;
            if let Some(p) = ctx.person {
                acc.persons.insert(p);
            }
            if let Some(n) = ctx.event_name {
                let name = &self.strings[n as usize];
                if let Some(c) = acc.event_names.get_mut(name) {
                    *c += 1;
                } else {
                    acc.event_names.insert(name.clone(), 1);
                }
            }
            if let Some(f) = ctx.file {
                acc.files.insert(f);
            }
            if let Some(t) = ctx.ts {
                acc.first = Some(acc.first.map_or(t, |f| f.min(t)));
                acc.last = Some(acc.last.map_or(t, |l| l.max(t)));
            }
        }
        // The smallest few distinct masks: deterministic whatever the row order.
        if acc.samples.len() < SAMPLES || acc.samples.last().is_some_and(|l| sample < *l) {
            acc.samples.insert(sample);
            while acc.samples.len() > SAMPLES {
                acc.samples.pop_last();
            }
        }
    }

    fn hints_for(&mut self, key: &str) -> KeyHints {
        if let Some(h) = self.hints.get(key) {
            return *h;
        }
        let h = key_hints(key);
        self.hints.insert(key.to_string(), h);
        h
    }

    /// Check one scalar value at `path` (under `key`).
    fn leaf(
        &mut self,
        source: Source,
        path: &str,
        key: &str,
        value: &str,
        ctx: &RowCtx,
    ) -> Result<()> {
        if value.trim().is_empty() {
            return Ok(());
        }
        self.values_checked += 1;
        let hints = self.hints_for(key);
        let mut matches = std::mem::take(&mut self.matches);
        let decoded = detect_value(value, hints, &mut matches);
        if !matches.is_empty() {
            // Group by detector: one record per detector with its count.
            matches.sort_by_key(|m| (m.detector, m.start));
            let mut i = 0;
            while i < matches.len() {
                let d = matches[i].detector;
                let mut j = i;
                while j < matches.len() && matches[j].detector == d {
                    j += 1;
                }
                let m = &matches[i];
                let sample = mask(Some(d), &decoded[m.start..m.end]);
                self.record(
                    source,
                    DetKey::Builtin(d),
                    path,
                    (j - i) as u64,
                    ctx,
                    sample,
                );
                i = j;
            }
        }
        self.matches = matches;
        if let Some(k) = hints.key_detector {
            self.record(source, DetKey::Builtin(k), path, 1, ctx, mask(None, value));
        }
        if !self.rules.is_empty() {
            self.pending.push(Pending {
                source,
                path: path.to_string(),
                ctx: *ctx,
                value: value.to_string(),
            });
            if self.pending.len() >= BATCH {
                self.flush_rules()?;
            }
        }
        Ok(())
    }

    /// Walk a JSON value, reporting leaves with their paths.
    fn walk(
        &mut self,
        source: Source,
        v: &Value,
        path: &mut String,
        key: &str,
        ctx: &RowCtx,
    ) -> Result<()> {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    self.walk(source, child, path, k, ctx)?;
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                let len = path.len();
                path.push_str("[]");
                for child in a {
                    self.walk(source, child, path, key, ctx)?;
                }
                path.truncate(len);
            }
            Value::String(s) => self.leaf(source, path, key, s, ctx)?,
            Value::Number(n) => {
                let t = n.to_string();
                self.leaf(source, path, key, &t, ctx)?;
            }
            Value::Bool(_) | Value::Null => {}
        }
        Ok(())
    }

    /// A JSON column: parse and walk. Unparseable text is checked as one string.
    fn json_column(
        &mut self,
        source: Source,
        root: &str,
        text: Option<&str>,
        ctx: &RowCtx,
    ) -> Result<()> {
        let Some(text) = text else { return Ok(()) };
        let mut path = root.to_string();
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.walk(source, &v, &mut path, root, ctx),
            Err(_) => self.leaf(source, root, root, text, ctx),
        }
    }

    /// Run the custom rules over the pending leaves (in DuckDB) and record their hits.
    fn flush_rules(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let Some(conn) = &self.rule_conn else {
            return Ok(());
        };
        {
            let mut app = conn.appender("pii_leaf_batch")?;
            for (i, p) in pending.iter().enumerate() {
                app.append_row(duckdb::params![i as i64, p.value])?;
            }
            app.flush()?;
        }
        let mut found: Vec<(usize, usize, i64)> = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            let mut st = conn.prepare(
                "SELECT id, len(regexp_extract_all(v, ?)) FROM pii_leaf_batch
                 WHERE regexp_matches(v, ?) ORDER BY id",
            )?;
            let rows = st.query_map(duckdb::params![rule.pattern, rule.pattern], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, n) = row?;
                found.push((ri, id as usize, n.max(1)));
            }
        }
        conn.execute_batch("DELETE FROM pii_leaf_batch")?;
        for (ri, id, n) in found {
            if let Some(p) = pending.get(id) {
                let sample = mask(None, &p.value);
                self.record(
                    p.source,
                    DetKey::Custom(ri),
                    &p.path,
                    n as u64,
                    &p.ctx,
                    sample,
                );
            }
        }
        Ok(())
    }

    /// Scan the events from `source` on `conn`.
    pub(crate) fn scan_events(
        &mut self,
        conn: &duckdb::Connection,
        source: &EventSource,
        ctx: &JobCtx,
    ) -> Result<u64> {
        let (from, person_join) = match source {
            EventSource::Workspace => (Sql::new("events e"), true),
            EventSource::File { path, format } => (format.reader_sql(path), false),
        };
        let total = count_rows(conn, &from)?;
        let mut q = Sql::new(if person_join {
            "SELECT coalesce(pm.person_id, e.distinct_id, e.user_id, e.anon_id),"
        } else {
            "SELECT coalesce(e.distinct_id, e.user_id, e.anon_id),"
        });
        q.push(
            " e.event_name, e.source_file, e.source_vendor,
              epoch_us(TRY_CAST(e.ts_utc AS TIMESTAMPTZ)),
              CAST(e.distinct_id AS VARCHAR), CAST(e.user_id AS VARCHAR), CAST(e.anon_id AS VARCHAR),
              CAST(e.session_id AS VARCHAR), CAST(e.vendor_person_id AS VARCHAR),
              CAST(e.properties AS VARCHAR), CAST(e.person_properties AS VARCHAR),
              CAST(e.groups AS VARCHAR), ",
        );
        // The original record, when the import kept it (`--keep-raw`): it holds every value
        // again. Exported files never carry it.
        q.push(if person_join {
            "CAST(e.raw AS VARCHAR)"
        } else {
            "NULL"
        });
        q.push(", TRY_CAST(e.event_seq AS BIGINT) FROM ");
        q.embed(&from);
        if person_join {
            q.push(
                " LEFT JOIN (SELECT distinct_id, min(person_id) AS person_id FROM person_map GROUP BY 1) pm
                   ON pm.distinct_id = e.distinct_id",
            );
        }
        // The workspace is read in event_seq order, a bounded batch at a time: a single
        // query's result would be held in memory whole. An exported file is read in one go.
        if person_join {
            q.push(" WHERE e.event_seq > ? ORDER BY e.event_seq LIMIT ?");
        }
        let mut st = conn.prepare(&q.text)?;
        let mut n: u64 = 0;
        let mut after = i64::MIN;
        loop {
            let mut params = q.params.clone();
            if person_join {
                params.push(duckdb::types::Value::BigInt(after));
                params.push(duckdb::types::Value::BigInt(self.batch));
            }
            let mut rows = st.query(duckdb::params_from_iter(params.iter()))?;
            let mut in_batch: i64 = 0;
            while let Some(r) = rows.next()? {
                in_batch += 1;
                if let Some(seq) = r.get::<_, Option<i64>>(14)? {
                    after = seq;
                }
                self.event_row(r, n)?;
                n += 1;
                if n.is_multiple_of(4096) {
                    ctx.cancel.check()?;
                    progress(ctx, "scan events", n, total as u64, false);
                }
            }
            if !person_join || in_batch < self.batch {
                break;
            }
        }
        progress(ctx, "scan events", n, total as u64, true);
        Ok(n)
    }

    /// One event row of the scan query.
    fn event_row(&mut self, r: &duckdb::Row<'_>, n: u64) -> Result<()> {
        let person: Option<String> = r.get(0)?;
        let name: Option<String> = r.get(1)?;
        let file: Option<String> = r.get(2)?;
        let vendor: Option<String> = r.get(3)?;
        let ts: Option<i64> = r.get(4)?;
        let event_name = name.as_deref().map(|s| self.intern(s));
        let file = match (file.as_deref(), vendor.as_deref()) {
            (Some(f), Some(v)) => Some((self.intern(f), self.intern(v))),
            _ => None,
        };
        let rc = RowCtx {
            row: n,
            person: person.as_deref().map(hash_str),
            event_name,
            file,
            ts,
        };
        for (k, col) in super::export::TOP.iter().enumerate() {
            let v: Option<String> = r.get(5 + k)?;
            if let Some(v) = v {
                self.leaf(Source::Events, col, col, &v, &rc)?;
            }
        }
        for (k, col) in ["properties", "person_properties", "groups", "raw"]
            .iter()
            .enumerate()
        {
            let v: Option<String> = r.get(10 + k)?;
            self.json_column(Source::Events, col, v.as_deref(), &rc)?;
        }
        Ok(())
    }

    /// Scan persons and the person / group snapshots.
    pub(crate) fn scan_profiles(
        &mut self,
        conn: &duckdb::Connection,
        ctx: &JobCtx,
    ) -> Result<(u64, u64)> {
        let mut person_rows = 0u64;
        let mut st = conn.prepare(
            "SELECT person_id, CAST(properties AS VARCHAR), epoch_us(last_seen) FROM persons",
        )?;
        let mut rows = st.query([])?;
        let mut row = 1u64 << 40;
        while let Some(r) = rows.next()? {
            let pid: String = r.get(0)?;
            let props: Option<String> = r.get(1)?;
            let rc = RowCtx {
                row,
                person: Some(hash_str(&pid)),
                event_name: None,
                file: None,
                ts: r.get(2)?,
            };
            self.leaf(Source::Persons, "persons.person_id", "person_id", &pid, &rc)?;
            self.json_column(Source::Persons, "persons.properties", props.as_deref(), &rc)?;
            row += 1;
            person_rows += 1;
            if person_rows.is_multiple_of(4096) {
                ctx.cancel.check()?;
            }
        }
        let mut snapshot_rows = 0u64;
        let mut st = conn.prepare(
            "SELECT coalesce(person_key, distinct_id), distinct_id, CAST(properties AS VARCHAR),
                    source_file, source_vendor, epoch_us(as_of)
             FROM person_snapshots",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let key: Option<String> = r.get(0)?;
            let did: Option<String> = r.get(1)?;
            let props: Option<String> = r.get(2)?;
            let f: String = r.get(3)?;
            let v: String = r.get(4)?;
            let file = Some((self.intern(&f), self.intern(&v)));
            let rc = RowCtx {
                row,
                person: key.as_deref().map(hash_str),
                event_name: None,
                file,
                ts: r.get(5)?,
            };
            if let Some(d) = did {
                self.leaf(
                    Source::PersonSnapshots,
                    "person_snapshots.distinct_id",
                    "distinct_id",
                    &d,
                    &rc,
                )?;
            }
            self.json_column(
                Source::PersonSnapshots,
                "person_snapshots.properties",
                props.as_deref(),
                &rc,
            )?;
            row += 1;
            snapshot_rows += 1;
        }
        let mut st = conn.prepare(
            "SELECT group_type, group_key, CAST(properties AS VARCHAR), source_file, source_vendor,
                    epoch_us(as_of)
             FROM group_snapshots",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let gk: String = r.get(1)?;
            let props: Option<String> = r.get(2)?;
            let f: String = r.get(3)?;
            let v: String = r.get(4)?;
            let file = Some((self.intern(&f), self.intern(&v)));
            let rc = RowCtx {
                row,
                person: None,
                event_name: None,
                file,
                ts: r.get(5)?,
            };
            self.leaf(
                Source::GroupSnapshots,
                "group_snapshots.group_key",
                "group_key",
                &gk,
                &rc,
            )?;
            self.json_column(
                Source::GroupSnapshots,
                "group_snapshots.properties",
                props.as_deref(),
                &rc,
            )?;
            row += 1;
            snapshot_rows += 1;
        }
        ctx.cancel.check()?;
        Ok((person_rows, snapshot_rows))
    }

    /// The findings, most severe and most widespread first.
    pub(crate) fn finish(mut self, totals: &ScanTotals) -> Result<Vec<Finding>> {
        self.flush_rules()?;
        let mut out = Vec::new();
        for ((source, det), inner) in self.accs {
            let (detector, severity) = match det {
                DetKey::Builtin(d) => (d.as_str().to_string(), d.severity()),
                DetKey::Custom(i) => match self.rules.get(i) {
                    Some(r) => (format!("custom:{}", r.name), r.severity),
                    None => continue,
                },
            };
            for (path, acc) in inner {
                let mut names: Vec<NameCount> = acc
                    .event_names
                    .into_iter()
                    .map(|(name, c)| NameCount {
                        name,
                        count: c as i64,
                    })
                    .collect();
                names.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
                names.truncate(EVENT_NAMES);
                let files = acc
                    .files
                    .iter()
                    .map(|(f, v)| SourceFile {
                        file: self.strings[*f as usize].clone(),
                        vendor: self.strings[*v as usize].clone(),
                    })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let persons = acc.persons.len() as i64;
                let share = |n: i64, of: i64| if of > 0 { n as f64 / of as f64 } else { 0.0 };
                let ts = |us: Option<i64>| us.map(crate::generate::rfc3339_micros);
                out.push(Finding {
                    id: finding_id(source, &path, &detector),
                    source,
                    path,
                    detector: detector.clone(),
                    severity,
                    hits: acc.hits as i64,
                    rows: acc.rows as i64,
                    event_share: if source == Source::Events {
                        share(acc.rows as i64, totals.events)
                    } else {
                        0.0
                    },
                    persons,
                    person_share: share(persons, totals.persons).min(1.0),
                    event_names: names,
                    files,
                    first_seen: ts(acc.first),
                    last_seen: ts(acc.last),
                    samples: acc.samples.into_iter().collect(),
                });
            }
        }
        sort_findings(&mut out);
        Ok(out)
    }

    pub(crate) fn values_checked(&self) -> u64 {
        self.values_checked
    }
}

/// `SELECT count(*) FROM <from>`.
pub(crate) fn count_rows(conn: &duckdb::Connection, from: &Sql) -> Result<i64> {
    let mut q = Sql::new("SELECT count(*) FROM ");
    q.embed(from);
    Ok(
        conn.query_row(&q.text, duckdb::params_from_iter(q.params.iter()), |r| {
            r.get(0)
        })?,
    )
}

/// Most severe first, then most rows, then by source, path and detector.
pub(crate) fn finding_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then(b.rows.cmp(&a.rows))
        .then(a.source.cmp(&b.source))
        .then(a.path.cmp(&b.path))
        .then(a.detector.cmp(&b.detector))
}

pub(crate) fn sort_findings(f: &mut [Finding]) {
    f.sort_by(finding_order);
}

fn progress(ctx: &JobCtx, phase: &str, done: u64, total: u64, force: bool) {
    ctx.emit(
        JobEvent::Progress {
            file: "pii".into(),
            file_index: 0,
            phase: phase.into(),
            bytes_done: done,
            bytes_total: total,
            rows: done,
        },
        force,
    );
}

/// Scan the whole workspace and store the findings (replacing the previous scan's; review
/// decisions are kept, keyed by finding id). `now_us` stamps the scan.
pub fn scan(ws: &Workspace, now_us: i64, ctx: &JobCtx) -> Result<ScanResult> {
    let started = Instant::now();
    let conn = ws.conn();
    ctx.cancel.attach(conn.interrupt_handle());
    let rules = super::rules::list(ws)?;
    let rule_conn = if rules.is_empty() {
        None
    } else {
        Some(ws.clone_conn()?)
    };
    let run = || -> Result<(Vec<Finding>, ScanTotals)> {
        let mut totals = ScanTotals::default();
        let (events, persons_model): (i64, i64) = conn.query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM persons)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        totals.events = events;
        totals.persons = if persons_model > 0 {
            persons_model
        } else {
            conn.query_row(
                "SELECT count(DISTINCT coalesce(distinct_id, user_id, anon_id)) FROM events",
                [],
                |r| r.get(0),
            )?
        };
        let mut scanner = Scanner::new(&rules, rule_conn)?;
        scanner.scan_events(conn, &EventSource::Workspace, ctx)?;
        let (p, s) = scanner.scan_profiles(conn, ctx)?;
        totals.person_rows = p as i64;
        totals.snapshot_rows = s as i64;
        totals.values_checked = scanner.values_checked() as i64;
        Ok((scanner.finish(&totals)?, totals))
    };
    let (findings, totals) = run().map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))?;
    super::store::save_scan(
        ws,
        now_us,
        &totals,
        &findings,
        started.elapsed().as_secs_f64(),
    )?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    Ok(ScanResult {
        scanned_at: crate::generate::rfc3339_micros(now_us),
        events_per_sec: if millis > 0.0 {
            totals.events as f64 / (millis / 1000.0)
        } else {
            0.0
        },
        totals,
        findings,
        millis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_events_are_read_in_batches_without_loss() {
        let ws = Workspace::in_memory().unwrap_or_else(|e| panic!("{e}"));
        ws.conn()
            .execute_batch(
                "INSERT INTO events (source_vendor, source_file, source_line, import_id, event_uuid,
                    event_name, event_kind, ts_utc, distinct_id, properties, event_seq)
                 SELECT 'posthog', 'f.jsonl', i, 1, 'u' || i, 'e', 'track', TIMESTAMPTZ '2024-01-01' + to_seconds(i),
                        'd' || (i % 5), json_object('email', 'user' || i || '@example.com'), 4294967296 + i
                 FROM range(1, 26) t(i)",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        for batch in [1, 7, 25, 1000] {
            let mut sc = Scanner::new(&[], None).unwrap_or_else(|e| panic!("{e}"));
            sc.batch = batch;
            let n = sc
                .scan_events(ws.conn(), &EventSource::Workspace, &JobCtx::silent())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(n, 25, "batch {batch}");
            let totals = ScanTotals {
                events: 25,
                persons: 5,
                ..ScanTotals::default()
            };
            let f = sc.finish(&totals).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.len(), 1);
            assert_eq!(
                (f[0].hits, f[0].rows, f[0].persons),
                (25, 25, 5),
                "batch {batch}"
            );
            // user1..user9 and user10..user25 mask alike: two distinct masked samples.
            assert_eq!(f[0].samples, ["u*****@e******.com", "u****@e******.com"]);
        }
    }
}
