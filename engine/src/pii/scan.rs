//! The field audit: walk every event (its name, top-level id columns, properties, person
//! properties and groups at any depth, object keys included), every person and person/group
//! snapshot and every quarantined record's raw text, run the detectors on each value and
//! aggregate one finding per (source, JSON path, detector).
//!
//! Event names are reported at the path `event_name` and object keys at `<parent>.{key}`
//! (built-in detectors only). A path never shows a detected value: a key that holds one is
//! masked in the paths of the values under it.
//!
//! Invariant: raw values live only inside this module's stack frames. What leaves it (the
//! findings, progress events, errors) carries masked samples and counts, nothing else.
//! Custom regex rules run in DuckDB (`regexp_matches` with the pattern bound) over batches of
//! leaf values held in a connection-local temporary table that is emptied after each batch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use ts_rs::TS;

use super::detect::{detect_value, key_hints, Detector, KeyHints, Match, Severity};
use super::export::ExportFormat;
use super::mask::mask;
use super::rules::CustomRule;
use crate::jobs::{JobCtx, JobEvent};
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

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
    /// The raw text of records that could not be loaded.
    Quarantine,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Events => "events",
            Source::Persons => "persons",
            Source::PersonSnapshots => "person_snapshots",
            Source::GroupSnapshots => "group_snapshots",
            Source::Quarantine => "quarantine",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Source::Events,
            Source::Persons,
            Source::PersonSnapshots,
            Source::GroupSnapshots,
            Source::Quarantine,
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
    persons: FxSet<u64>,
    /// Event name id → rows.
    event_names: FxMap<u32, u64>,
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
    path: u32,
    ctx: RowCtx,
    value: String,
}

/// One event's canonical columns, as the scanner reads them.
#[derive(Default)]
pub(crate) struct EventRow {
    /// Unique within the scan.
    pub row: u64,
    pub name: Option<String>,
    pub file: Option<String>,
    pub vendor: Option<String>,
    pub ts: Option<i64>,
    /// distinct_id, user_id, anon_id, session_id, vendor_person_id.
    pub top: [Option<String>; 5],
    /// properties, person_properties, groups, raw.
    pub json: [Option<String>; 4],
}

/// An [`EventRow`] borrowed (from a DuckDB row or an owned row).
pub(crate) struct EventRef<'r> {
    pub row: u64,
    pub name: Option<&'r str>,
    pub file: Option<&'r str>,
    pub vendor: Option<&'r str>,
    pub ts: Option<i64>,
    pub top: [Option<&'r str>; 5],
    pub json: [Option<&'r str>; 4],
}

impl EventRow {
    pub(crate) fn view(&self) -> EventRef<'_> {
        EventRef {
            row: self.row,
            name: self.name.as_deref(),
            file: self.file.as_deref(),
            vendor: self.vendor.as_deref(),
            ts: self.ts,
            top: std::array::from_fn(|k| self.top[k].as_deref()),
            json: std::array::from_fn(|k| self.json[k].as_deref()),
        }
    }
}

/// A text column of the current row, borrowed (valid until the next row).
fn text<'r>(r: &'r duckdb::Row<'_>, i: usize) -> Result<Option<&'r str>> {
    match r.get_ref(i)? {
        duckdb::types::ValueRef::Null => Ok(None),
        v => v.as_str().map(Some).map_err(|_| {
            EngineError::InvalidArgument(format!("column {i} of the scan is not text"))
        }),
    }
}

/// The row-number ranges the workers share.
struct Chunks<'c> {
    next: &'c std::sync::atomic::AtomicI64,
    done: &'c std::sync::atomic::AtomicU64,
    hi: i64,
    batch: i64,
    total: i64,
}

/// Where the events come from: the workspace, or a file written by the redacted export.
#[derive(Debug, Clone)]
pub(crate) enum EventSource {
    Workspace,
    File {
        path: String,
        format: ExportFormat,
        /// Records in their vendor's shape (JSON lines), not the canonical columns.
        vendor_shape: bool,
    },
}

/// What the built-in detectors make of one value under one (path, key): cached, since values
/// repeat (the same address, IP or URL on many events).
struct Verdict {
    pk: u32,
    value: Box<str>,
    /// (detector, matches, the first match masked).
    hits: Vec<(Detector, u64, String)>,
    /// The key-name detector's masked sample, when the key names one.
    key_mask: Option<String>,
}

/// Verdicts kept per scanner before the cache starts over.
const CACHE_MAX: usize = 1 << 20;

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// A fast multiply-rotate hasher (FxHash's) for the scanner's own maps: keys are paths, ids and
/// values from local files, hashed hundreds of millions of times per scan.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);
impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}
impl Hasher for Fx {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = c.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}
type FxBuild = std::hash::BuildHasherDefault<Fx>;
type FxMap<K, V> = HashMap<K, V, FxBuild>;
type FxSet<K> = HashSet<K, FxBuild>;

pub(crate) struct Scanner<'a> {
    accs: FxMap<(Source, DetKey, u32), Acc>,
    /// Interned strings: event names, files, vendors.
    strings: Vec<String>,
    string_ids: FxMap<String, u32>,
    /// Event names as read → their shown (masked) form's id.
    name_ids: FxMap<String, u32>,
    /// Interned paths.
    paths: Vec<String>,
    path_ids: FxMap<String, u32>,
    /// Interned (path, key) pairs: the path's id and the key's hints.
    pks: Vec<(u32, KeyHints)>,
    pk_ids: FxMap<String, u32>,
    pk_keys: Vec<String>,
    pk_by_path: FxMap<String, u32>,
    pk_buf: String,
    key_buf: String,
    cache: IdMap<Verdict>,
    flat: super::flat::Flat,
    matches: Vec<Match>,
    pub(crate) rules: &'a [CustomRule],
    rule_conn: Option<duckdb::Connection>,
    pending: Vec<Pending>,
    values_checked: u64,
    /// Events per workspace query.
    pub(crate) batch: i64,
    /// Threads reading the events.
    pub(crate) workers: usize,
    /// Distinct actors (distinct_id, else user_id, else anon_id) seen, when counted.
    pub(crate) people: FxSet<u64>,
    pub(crate) count_people: bool,
}

/// Tally one hit.
#[allow(clippy::too_many_arguments)]
fn record(
    accs: &mut FxMap<(Source, DetKey, u32), Acc>,
    source: Source,
    det: DetKey,
    path: u32,
    count: u64,
    ctx: &RowCtx,
    sample: &str,
) {
    let acc = accs.entry((source, det, path)).or_default();
    acc.hits += count;
    if acc.last_row != Some(ctx.row) {
        acc.last_row = Some(ctx.row);
        acc.rows += 1;
        if let Some(p) = ctx.person {
            acc.persons.insert(p);
        }
        if let Some(n) = ctx.event_name {
            *acc.event_names.entry(n).or_default() += 1;
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
    if (acc.samples.len() < SAMPLES || acc.samples.last().is_some_and(|l| sample < l.as_str()))
        && !acc.samples.contains(sample)
    {
        acc.samples.insert(sample.to_string());
        while acc.samples.len() > SAMPLES {
            acc.samples.pop_last();
        }
    }
}

pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The last segment of a key's path: findings in object keys are reported at `<parent>.{key}`.
pub(crate) const KEY: &str = "{key}";

/// Whether a built-in value detector could match: none does without a digit, `@` or `%`
/// (escapes), or 20 characters (tokens, keys).
pub(crate) fn maybe_detected(value: &str) -> bool {
    value.len() >= 20
        || value
            .bytes()
            .any(|c| c.is_ascii_digit() || c == b'@' || c == b'%')
}

/// A path or an event name as findings show it: any detected value in it (a key that is an
/// email address, a phone number) masked.
pub(crate) fn safe_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !maybe_detected(path) {
        return std::borrow::Cow::Borrowed(path);
    }
    mask_detected_in(path, KeyHints::default())
}

/// `text` with every value a built-in detector finds in it masked (the rest kept as is).
pub(crate) fn mask_detected_in(text: &str, hints: KeyHints) -> std::borrow::Cow<'_, str> {
    let mut m = Vec::new();
    let decoded = detect_value(text, hints, &mut m);
    if m.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(decoded.len());
    let mut at = 0;
    for x in &m {
        out.push_str(&decoded[at..x.start]);
        out.push_str(&mask(Some(x.detector), &decoded[x.start..x.end]));
        at = x.end;
    }
    out.push_str(&decoded[at..]);
    std::borrow::Cow::Owned(out)
}

fn verdict_hash(pk: u32, value: &str) -> u64 {
    let mut h = Fx::default();
    pk.hash(&mut h);
    value.hash(&mut h);
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
            accs: FxMap::default(),
            strings: Vec::new(),
            string_ids: FxMap::default(),
            name_ids: FxMap::default(),
            paths: Vec::new(),
            path_ids: FxMap::default(),
            pks: Vec::new(),
            pk_ids: FxMap::default(),
            pk_keys: Vec::new(),
            pk_by_path: FxMap::default(),
            pk_buf: String::new(),
            key_buf: String::new(),
            cache: IdMap::default(),
            flat: super::flat::Flat::default(),
            matches: Vec::new(),
            rules,
            rule_conn,
            pending: Vec::new(),
            values_checked: 0,
            batch: SCAN_BATCH,
            people: FxSet::default(),
            count_people: false,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8),
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

    /// An event name's id, interned as findings show it (detected values masked).
    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.name_ids.get(name) {
            return i;
        }
        let i = self.intern(&safe_path(name));
        self.name_ids.insert(name.to_string(), i);
        i
    }

    fn path_id(&mut self, path: &str) -> u32 {
        if let Some(&i) = self.path_ids.get(path) {
            return i;
        }
        let i = self.paths.len() as u32;
        self.paths.push(safe_path(path).into_owned());
        self.path_ids.insert(path.to_string(), i);
        i
    }

    /// The id of a (path, key) pair, with the key's hints.
    fn pk_id(&mut self, path: &str, key: &str) -> u32 {
        // A path nearly always comes with one key: look it up by the path alone first.
        if let Some(&i) = self.pk_by_path.get(path) {
            if self.pk_keys[i as usize] == key {
                return i;
            }
        }
        self.pk_buf.clear();
        self.pk_buf.push_str(path);
        self.pk_buf.push('\0');
        self.pk_buf.push_str(key);
        if let Some(&i) = self.pk_ids.get(self.pk_buf.as_str()) {
            return i;
        }
        let pid = self.path_id(path);
        let i = self.pks.len() as u32;
        self.pks.push((pid, key_hints(key)));
        self.pk_keys.push(key.to_string());
        self.pk_ids.insert(self.pk_buf.clone(), i);
        self.pk_by_path.entry(path.to_string()).or_insert(i);
        i
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        source: Source,
        det: DetKey,
        path: u32,
        count: u64,
        ctx: &RowCtx,
        sample: &str,
    ) {
        record(&mut self.accs, source, det, path, count, ctx, sample);
    }

    /// Run the built-in detectors on one value.
    fn judge(&mut self, pk: u32, value: &str) -> Verdict {
        let hints = self.pks[pk as usize].1;
        let mut matches = std::mem::take(&mut self.matches);
        let decoded = detect_value(value, hints, &mut matches);
        let mut hits = Vec::new();
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
                hits.push((d, (j - i) as u64, mask(Some(d), &decoded[m.start..m.end])));
                i = j;
            }
        }
        self.matches = matches;
        Verdict {
            pk,
            value: value.into(),
            hits,
            key_mask: hints.key_detector.map(|_| mask(None, value)),
        }
    }

    /// Check one scalar value at `path` (under `key`): the built-in detectors, then the
    /// custom rules.
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
        let pid = self.builtin(source, path, key, value, ctx);
        self.pend(source, pid, ctx, value)
    }

    /// An event name or an object key: the built-in detectors only (a key's path ends in
    /// `.{key}`).
    fn name_leaf(&mut self, source: Source, path: &str, value: &str, ctx: &RowCtx) {
        if value.trim().is_empty() || !maybe_detected(value) {
            return;
        }
        self.values_checked += 1;
        self.builtin(source, path, "", value, ctx);
    }

    /// Every object key of the document in `self.flat`.
    fn keys(&mut self, flat: &super::flat::Flat, source: Source, strip: bool, ctx: &RowCtx) {
        let mut buf = std::mem::take(&mut self.key_buf);
        for i in 0..flat.key_count() {
            let (parent, key) = flat.key(i);
            if key.trim().is_empty() || !maybe_detected(key) {
                continue;
            }
            buf.clear();
            buf.push_str(if strip {
                parent.strip_prefix('.').unwrap_or(parent)
            } else {
                parent
            });
            if !buf.is_empty() {
                buf.push('.');
            }
            buf.push_str(KEY);
            self.name_leaf(source, &buf, key, ctx);
        }
        self.key_buf = buf;
    }

    /// The built-in detectors on one value; the path's id.
    fn builtin(&mut self, source: Source, path: &str, key: &str, value: &str, ctx: &RowCtx) -> u32 {
        let pk = self.pk_id(path, key);
        let (pid, hints) = self.pks[pk as usize];
        // No detector can match without a digit, `@` or `%` (escapes), or 20 characters
        // (tokens, keys), unless the key names the value.
        if hints.key_detector.is_none() && !maybe_detected(value) {
            return pid;
        }
        let h = verdict_hash(pk, value);
        let cached = self
            .cache
            .get(&h)
            .is_some_and(|v| v.pk == pk && *v.value == *value);
        let fresh;
        let verdict = if cached {
            self.cache.get(&h)
        } else {
            fresh = self.judge(pk, value);
            if !self.cache.contains_key(&h) {
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(h, fresh);
                self.cache.get(&h)
            } else {
                // A hash collision: use it once, keep the cached one.
                Some(&fresh)
            }
        };
        if let Some(v) = verdict {
            for (d, n, sample) in &v.hits {
                record(
                    &mut self.accs,
                    source,
                    DetKey::Builtin(*d),
                    pid,
                    *n,
                    ctx,
                    sample,
                );
            }
            if let (Some(k), Some(sample)) = (hints.key_detector, &v.key_mask) {
                record(
                    &mut self.accs,
                    source,
                    DetKey::Builtin(k),
                    pid,
                    1,
                    ctx,
                    sample,
                );
            }
        }
        pid
    }

    /// Queue a value for the custom rules, if there are any.
    fn pend(&mut self, source: Source, path: u32, ctx: &RowCtx, value: &str) -> Result<()> {
        if !self.rules.is_empty() {
            self.pending.push(Pending {
                source,
                path,
                ctx: *ctx,
                value: value.to_string(),
            });
            if self.pending.len() >= BATCH {
                self.flush_rules()?;
            }
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
        let mut flat = std::mem::take(&mut self.flat);
        let result = if flat.parse(root, text) {
            self.keys(&flat, source, false, ctx);
            (0..flat.len()).try_for_each(|i| {
                let (p, k, v) = flat.leaf(i);
                self.leaf(source, p, k, v, ctx)
            })
        } else {
            self.leaf(source, root, root, text, ctx)
        };
        self.flat = flat;
        result
    }

    /// Run the custom rules over the pending leaves (in DuckDB) and record their hits.
    pub(crate) fn flush_rules(&mut self) -> Result<()> {
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
                    p.path,
                    n as u64,
                    &p.ctx,
                    &sample,
                );
            }
        }
        Ok(())
    }

    /// Fold another scanner's tallies (over other rows) into this one.
    pub(crate) fn merge(&mut self, other: Scanner<'_>) {
        self.values_checked += other.values_checked;
        self.people.extend(other.people);
        for ((source, det, pid), acc) in other.accs {
            let path = self.path_id(&other.paths[pid as usize]);
            let names: Vec<(u32, u64)> = acc
                .event_names
                .into_iter()
                .map(|(n, c)| (self.intern(&other.strings[n as usize]), c))
                .collect();
            let files: Vec<(u32, u32)> = acc
                .files
                .into_iter()
                .map(|(f, v)| {
                    (
                        self.intern(&other.strings[f as usize]),
                        self.intern(&other.strings[v as usize]),
                    )
                })
                .collect();
            let mine = self.accs.entry((source, det, path)).or_default();
            mine.hits += acc.hits;
            mine.rows += acc.rows;
            mine.last_row = None;
            mine.persons.extend(acc.persons);
            for (n, c) in names {
                *mine.event_names.entry(n).or_default() += c;
            }
            mine.files.extend(files);
            mine.first = match (mine.first, acc.first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            mine.last = match (mine.last, acc.last) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            mine.samples.extend(acc.samples);
            while mine.samples.len() > SAMPLES {
                mine.samples.pop_last();
            }
        }
    }

    /// Scan the events from `source` on `conn`.
    pub(crate) fn scan_events(
        &mut self,
        conn: &duckdb::Connection,
        source: &EventSource,
        ctx: &JobCtx,
    ) -> Result<u64> {
        match source {
            EventSource::Workspace => {
                let (lo, hi, total): (Option<i64>, Option<i64>, i64) = conn.query_row(
                    "SELECT min(rowid), max(rowid), count(*) FROM events",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                // Who each distinct id is: the identity model's person, else the id itself.
                let mut persons: IdMap<u64> = IdMap::default();
                let mut st =
                    conn.prepare("SELECT distinct_id, min(person_id) FROM person_map GROUP BY 1")?;
                let mut rows = st.query([])?;
                while let Some(r) = rows.next()? {
                    let d: Option<String> = r.get(0)?;
                    let p: Option<String> = r.get(1)?;
                    if let (Some(d), Some(p)) = (d, p) {
                        persons.insert(hash_str(&d), hash_str(&p));
                    }
                }
                let q = Sql::new(
                    "SELECT rowid, event_name, source_file, source_vendor, epoch_us(ts_utc),
                            distinct_id, user_id, anon_id, session_id, vendor_person_id,
                            CAST(properties AS VARCHAR), CAST(person_properties AS VARCHAR),
                            CAST(groups AS VARCHAR), CAST(raw AS VARCHAR)
                     FROM events WHERE rowid >= ? AND rowid < ?",
                );
                self.scan_chunked(conn, &q, lo, hi, total, &persons, ctx)
            }
            EventSource::File {
                path,
                format: ExportFormat::Parquet,
                ..
            } => {
                let (lo, hi, total): (Option<i64>, Option<i64>, i64) = conn.query_row(
                    "SELECT min(file_row_number), max(file_row_number), count(*)
                     FROM read_parquet(?, file_row_number = true)",
                    [path],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let mut q = Sql::new(
                    "SELECT file_row_number, event_name, source_file, source_vendor,
                            epoch_us(ts_utc), distinct_id, user_id, anon_id, session_id,
                            vendor_person_id, CAST(properties AS VARCHAR),
                            CAST(person_properties AS VARCHAR), CAST(groups AS VARCHAR), NULL
                     FROM read_parquet(",
                );
                q.bind(path.as_str()).push(
                    ", file_row_number = true) WHERE file_row_number >= ? AND file_row_number < ?",
                );
                self.scan_chunked(conn, &q, lo, hi, total, &IdMap::default(), ctx)
            }
            EventSource::File {
                path,
                format,
                vendor_shape,
            } => super::stream::scan_file(self, conn, Path::new(path), *format, *vendor_shape, ctx),
        }
    }

    /// Events from a query over a row-number range (`q`'s last two parameters), a range at a
    /// time, on `self.workers` threads (each with its own connection and tallies, merged at the
    /// end). Columns: row number, event name, file, vendor, µs, the five id columns, the three
    /// JSON columns and the raw record.
    #[allow(clippy::too_many_arguments)]
    fn scan_chunked(
        &mut self,
        conn: &duckdb::Connection,
        q: &Sql,
        lo: Option<i64>,
        hi: Option<i64>,
        total: i64,
        persons: &IdMap<u64>,
        ctx: &JobCtx,
    ) -> Result<u64> {
        let (Some(lo), Some(hi)) = (lo, hi) else {
            progress(ctx, "scan events", 0, 0, true);
            return Ok(0);
        };
        let next = std::sync::atomic::AtomicI64::new(lo);
        let done = std::sync::atomic::AtomicU64::new(0);
        let workers = self.workers.max(1);
        let batch = self.batch.max(1);
        let rules = self.rules;
        let count_people = self.count_people;
        let mut conns = Vec::with_capacity(workers);
        for _ in 0..workers {
            let c = conn.try_clone()?;
            let rc = if rules.is_empty() {
                None
            } else {
                Some(conn.try_clone()?)
            };
            conns.push((c, rc));
        }
        let chunks = Chunks {
            next: &next,
            done: &done,
            hi,
            batch,
            total,
        };
        let chunks = &chunks;
        let results: Vec<Result<Scanner<'a>>> = std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .into_iter()
                .map(|(c, rc)| {
                    s.spawn(move || -> Result<Scanner<'a>> {
                        let mut sc = Scanner::new(rules, rc)?;
                        sc.count_people = count_people;
                        sc.events_worker(&c, q, persons, chunks, ctx)?;
                        sc.flush_rules()?;
                        Ok(sc)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EngineError::InvalidArgument(
                            "a scan thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        for r in results {
            self.merge(r?);
        }
        let n = done.load(std::sync::atomic::Ordering::Relaxed);
        progress(ctx, "scan events", n, total as u64, true);
        Ok(n)
    }

    fn events_worker(
        &mut self,
        conn: &duckdb::Connection,
        q: &Sql,
        persons: &IdMap<u64>,
        chunks: &Chunks<'_>,
        ctx: &JobCtx,
    ) -> Result<()> {
        use std::sync::atomic::Ordering;
        let mut st = conn.prepare(&q.text)?;
        loop {
            ctx.cancel.check()?;
            let start = chunks.next.fetch_add(chunks.batch, Ordering::Relaxed);
            if start > chunks.hi {
                return Ok(());
            }
            let mut params = q.params.clone();
            params.push(duckdb::types::Value::BigInt(start));
            params.push(duckdb::types::Value::BigInt(
                start.saturating_add(chunks.batch),
            ));
            let mut rows = st.query(duckdb::params_from_iter(params.iter()))?;
            let mut n = 0u64;
            while let Some(r) = rows.next()? {
                let ev = EventRef {
                    row: r.get::<_, i64>(0)? as u64,
                    name: text(r, 1)?,
                    file: text(r, 2)?,
                    vendor: text(r, 3)?,
                    ts: r.get(4)?,
                    top: [
                        text(r, 5)?,
                        text(r, 6)?,
                        text(r, 7)?,
                        text(r, 8)?,
                        text(r, 9)?,
                    ],
                    json: [text(r, 10)?, text(r, 11)?, text(r, 12)?, text(r, 13)?],
                };
                self.event(&ev, persons)?;
                n += 1;
            }
            let all = chunks.done.fetch_add(n, Ordering::Relaxed) + n;
            progress(ctx, "scan events", all, chunks.total as u64, false);
        }
    }

    /// One event in the canonical columns.
    pub(crate) fn event(&mut self, ev: &EventRef<'_>, persons: &IdMap<u64>) -> Result<()> {
        let person = ev.top[0]
            .and_then(|d| persons.get(&hash_str(d)).copied())
            .or_else(|| ev.top[..3].iter().find_map(|x| *x).map(hash_str));
        if self.count_people {
            if let Some(p) = ev.top[..3].iter().find_map(|x| *x) {
                self.people.insert(hash_str(p));
            }
        }
        let event_name = ev.name.map(|s| self.name_id(s));
        let file = match (ev.file, ev.vendor) {
            (Some(f), Some(v)) => Some((self.intern(f), self.intern(v))),
            _ => None,
        };
        let rc = RowCtx {
            row: ev.row,
            person,
            event_name,
            file,
            ts: ev.ts,
        };
        if let Some(n) = ev.name {
            self.name_leaf(Source::Events, "event_name", n, &rc);
        }
        for (k, col) in super::export::TOP.iter().enumerate() {
            if let Some(v) = ev.top[k] {
                self.leaf(Source::Events, col, col, v, &rc)?;
            }
        }
        for (k, col) in ["properties", "person_properties", "groups", "raw"]
            .iter()
            .enumerate()
        {
            self.json_column(Source::Events, col, ev.json[k], &rc)?;
        }
        Ok(())
    }

    /// One record of a vendor-shape export: the JSON object with paths from its root (as the
    /// redaction rules name them), no event context.
    pub(crate) fn vendor_record(&mut self, row: u64, text: &str) -> Result<()> {
        let rc = RowCtx {
            row,
            person: None,
            event_name: None,
            file: None,
            ts: None,
        };
        let mut flat = std::mem::take(&mut self.flat);
        let result = if flat.parse("", text) {
            self.keys(&flat, Source::Events, true, &rc);
            (0..flat.len()).try_for_each(|i| {
                let (p, k, v) = flat.leaf(i);
                self.leaf(Source::Events, p.strip_prefix('.').unwrap_or(p), k, v, &rc)
            })
        } else {
            self.leaf(Source::Events, "", "", text, &rc)
        };
        self.flat = flat;
        result
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

    /// Scan the raw text of the quarantined records (JSON walked like an event's raw record,
    /// anything else checked as one string), at paths under `quarantine.raw`.
    pub(crate) fn scan_quarantine(
        &mut self,
        conn: &duckdb::Connection,
        ctx: &JobCtx,
    ) -> Result<u64> {
        let mut st = conn.prepare(
            "SELECT q.raw, q.source_file, coalesce(i.vendor, '')
             FROM quarantine q LEFT JOIN imports i USING (import_id)
             WHERE q.raw IS NOT NULL",
        )?;
        let mut rows = st.query([])?;
        let mut row = 1u64 << 41;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(0)?;
            let f: String = r.get(1)?;
            let v: String = r.get(2)?;
            let file = Some((self.intern(&f), self.intern(&v)));
            let rc = RowCtx {
                row,
                person: None,
                event_name: None,
                file,
                ts: None,
            };
            self.json_column(Source::Quarantine, "quarantine.raw", Some(&raw), &rc)?;
            row += 1;
            n += 1;
            if n.is_multiple_of(4096) {
                ctx.cancel.check()?;
            }
        }
        Ok(n)
    }

    /// The findings, most severe and most widespread first.
    pub(crate) fn finish(mut self, totals: &ScanTotals) -> Result<Vec<Finding>> {
        self.flush_rules()?;
        let mut out = Vec::new();
        for ((source, det, pid), acc) in self.accs {
            let (detector, severity) = match det {
                DetKey::Builtin(d) => (d.as_str().to_string(), d.severity()),
                DetKey::Custom(i) => match self.rules.get(i) {
                    Some(r) => (format!("custom:{}", r.name), r.severity),
                    None => continue,
                },
            };
            let path = self.paths[pid as usize].clone();
            let mut names: Vec<NameCount> = acc
                .event_names
                .into_iter()
                .map(|(n, c)| NameCount {
                    name: self.strings[n as usize].clone(),
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
        sort_findings(&mut out);
        Ok(out)
    }

    pub(crate) fn values_checked(&self) -> u64 {
        self.values_checked
    }
}

/// DuckDB's memory limit while scanning or exporting.
pub(crate) const SCAN_MEMORY_LIMIT: &str = "1GB";

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
        scanner.scan_quarantine(conn, ctx)?;
        totals.person_rows = p as i64;
        totals.snapshot_rows = s as i64;
        totals.values_checked = scanner.values_checked() as i64;
        Ok((scanner.finish(&totals)?, totals))
    };
    // DuckDB keeps every block it reads cached up to its memory limit (most of the machine's
    // RAM by default): reading every event once would fill it. Cap it for the scan, unless the
    // user chose a limit.
    let limit = crate::resources::MemoryCap::unless_chosen(ws, SCAN_MEMORY_LIMIT)?;
    let outcome = run();
    limit.restore(conn)?;
    let (findings, totals) = outcome.map_err(|e| e.cancelled_if(ctx.cancel.is_cancelled()))?;
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
        for (batch, workers) in [(1, 1), (7, 2), (25, 3), (1000, 2), (4, 8)] {
            let mut sc = Scanner::new(&[], None).unwrap_or_else(|e| panic!("{e}"));
            sc.batch = batch;
            sc.workers = workers;
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
