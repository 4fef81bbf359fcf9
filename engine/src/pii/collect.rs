//! Gathering the original values an export's rules redact, before anything is written: every
//! value at (or under) a redacted path, and every span a redacted detector flags in any
//! string of an event (its name, ids, properties and their keys, the raw record) or of a
//! quarantined record. Values of rules on persons or snapshots come from those tables. Each
//! distinct value is kept once (see [`super::values`]).

use std::collections::HashMap;

use super::detect::{detect_value, Detector, KeyHints, Match};
use super::export::{covers, Resolved, Target, TOP};
use super::flat::Flat;
use super::scan::{maybe_detected, KEY};
use super::values::Found;
use crate::jobs::{JobCtx, JobEvent};
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Detector verdicts remembered per worker before the memory starts over.
const SEEN: usize = 1 << 18;
/// Events per query.
const BATCH: i64 = 50_000;

pub(crate) struct Collector<'r> {
    paths: Vec<(usize, &'r str)>,
    detectors: Vec<(usize, Detector)>,
    pub(crate) found: Found,
    matches: Vec<Match>,
    flat: Flat,
    hints: super::detect::KeyHintCache,
    /// (key, value) pairs already run through the detectors.
    seen: HashMap<u64, (Box<str>, Box<str>)>,
    buf: String,
}

impl<'r> Collector<'r> {
    pub(crate) fn new(rules: &'r [Resolved]) -> Self {
        let mut paths = Vec::new();
        let mut detectors = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match &r.target {
                Target::Path(p) => paths.push((i, p.as_str())),
                Target::Detector(d) => detectors.push((i, *d)),
            }
        }
        Collector {
            paths,
            detectors,
            found: Found::default(),
            matches: Vec::new(),
            flat: Flat::default(),
            hints: Default::default(),
            seen: HashMap::new(),
            buf: String::new(),
        }
    }

    fn hints(&mut self, key: &str) -> KeyHints {
        self.hints.get(key)
    }

    fn detector_rule(&self, d: Detector) -> Option<usize> {
        self.detectors
            .iter()
            .find(|(_, x)| *x == d)
            .map(|(i, _)| *i)
    }

    /// The redacted detectors on one string at `path` (`key`'s hints when `hinted`).
    fn detect(&mut self, path: &str, key: &str, value: &str, hinted: bool) {
        if self.detectors.is_empty() || value.trim().is_empty() {
            return;
        }
        let hints = if hinted {
            self.hints(key)
        } else {
            KeyHints::default()
        };
        if let Some(ri) = hints.key_detector.and_then(|d| self.detector_rule(d)) {
            self.found.add(path, value, ri);
        }
        if !maybe_detected(value) {
            return;
        }
        let hkey = if hinted { key } else { "" };
        let h = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            hkey.hash(&mut h);
            value.hash(&mut h);
            h.finish()
        };
        if self
            .seen
            .get(&h)
            .is_some_and(|(k, v)| **k == *hkey && **v == *value)
        {
            return;
        }
        let mut m = std::mem::take(&mut self.matches);
        let decoded = detect_value(value, hints, &mut m);
        for x in &m {
            if let Some(ri) = self.detector_rule(x.detector) {
                self.found.add(path, &decoded[x.start..x.end], ri);
            }
        }
        self.matches = m;
        if self.seen.len() >= SEEN {
            self.seen.clear();
        }
        self.seen.insert(h, (hkey.into(), value.into()));
    }

    /// The first path rule naming `path` or an ancestor.
    fn path_rule(&self, path: &str, raw_root: Option<&str>) -> Option<usize> {
        self.paths
            .iter()
            .find(|(_, p)| covers(p, path, raw_root))
            .map(|(i, _)| *i)
    }

    /// One value of a top column.
    pub(crate) fn top(&mut self, col: &str, value: &str) {
        if let Some(ri) = self.path_rule(col, None) {
            self.found.add(col, value, ri);
        }
        self.detect(col, col, value, true);
    }

    /// An event's name.
    pub(crate) fn name(&mut self, name: &str) {
        self.detect("event_name", "", name, false);
    }

    /// JSON text rooted at `root` (a raw record when `raw_root` is given: rules also name its
    /// paths from the record's own root); the detectors too when `detectors`.
    pub(crate) fn json(&mut self, root: &str, text: &str, raw_root: Option<&str>, detectors: bool) {
        let detectors = detectors && !self.detectors.is_empty();
        let paths = self
            .paths
            .iter()
            .any(|(_, p)| raw_root.is_some() || covers(p, root, None) || p.starts_with(root));
        if !detectors && !paths {
            return;
        }
        let mut flat = std::mem::take(&mut self.flat);
        if flat.parse(root, text) {
            if detectors {
                let mut buf = std::mem::take(&mut self.buf);
                for i in 0..flat.key_count() {
                    let (parent, key) = flat.key(i);
                    buf.clear();
                    buf.push_str(parent);
                    buf.push('.');
                    buf.push_str(KEY);
                    self.detect(&buf, "", key, false);
                }
                self.buf = buf;
            }
            for i in 0..flat.len() {
                let (p, k, v) = flat.leaf(i);
                if paths {
                    if let Some(ri) = self.path_rule(p, raw_root) {
                        self.found.add(p, v, ri);
                    }
                }
                if detectors {
                    self.detect(p, k, v, true);
                }
            }
        } else {
            if let Some(ri) = self.path_rule(root, raw_root) {
                self.found.add(root, text, ri);
            }
            if detectors {
                self.detect(root, root, text, true);
            }
        }
        self.flat = flat;
    }
}

/// Everything the rules redact, from events (all of them, whatever the retention cut-off:
/// a superset only redacts more), quarantined records, and persons or snapshots when a rule
/// names them.
pub(crate) fn gather(ws: &Workspace, rules: &[Resolved], ctx: &JobCtx) -> Result<Found> {
    if rules.is_empty() {
        return Ok(Found::default());
    }
    let mut found = gather_events(ws, rules, ctx)?;
    let conn = ws.conn();
    let mut c = Collector::new(rules);
    {
        let mut st = conn.prepare("SELECT raw FROM quarantine WHERE raw IS NOT NULL")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let raw: String = r.get(0)?;
            c.json("quarantine.raw", &raw, Some("quarantine.raw"), true);
        }
    }
    let named = |prefix: &str| {
        rules
            .iter()
            .any(|r| matches!(&r.target, Target::Path(p) if p.starts_with(prefix)))
    };
    if named("persons.") {
        let mut st = conn.prepare("SELECT person_id, CAST(properties AS VARCHAR) FROM persons")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let props: Option<String> = r.get(1)?;
            c.top("persons.person_id", &id);
            if let Some(p) = props {
                c.json("persons.properties", &p, None, false);
            }
        }
    }
    if named("person_snapshots.") {
        let mut st =
            conn.prepare("SELECT distinct_id, CAST(properties AS VARCHAR) FROM person_snapshots")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: Option<String> = r.get(0)?;
            let props: Option<String> = r.get(1)?;
            if let Some(id) = id {
                c.top("person_snapshots.distinct_id", &id);
            }
            if let Some(p) = props {
                c.json("person_snapshots.properties", &p, None, false);
            }
        }
    }
    if named("group_snapshots.") {
        let mut st =
            conn.prepare("SELECT group_key, CAST(properties AS VARCHAR) FROM group_snapshots")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let props: Option<String> = r.get(1)?;
            c.top("group_snapshots.group_key", &key);
            if let Some(p) = props {
                c.json("group_snapshots.properties", &p, None, false);
            }
        }
    }
    found.merge(c.found);
    Ok(found)
}

/// The events, in row-id ranges on worker threads (each with its own set, merged).
fn gather_events(ws: &Workspace, rules: &[Resolved], ctx: &JobCtx) -> Result<Found> {
    let conn = ws.conn();
    let (lo, hi, total): (Option<i64>, Option<i64>, i64) = conn.query_row(
        "SELECT min(rowid), max(rowid), count(*) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Found::default());
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(ws.clone_conn()?);
    }
    let next = std::sync::atomic::AtomicI64::new(lo);
    let done = std::sync::atomic::AtomicU64::new(0);
    let (next, done) = (&next, &done);
    let results: Vec<Result<Found>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|c| {
                s.spawn(move || -> Result<Found> {
                    use std::sync::atomic::Ordering;
                    let mut col = Collector::new(rules);
                    let mut st = c.prepare(
                        "SELECT event_name, distinct_id, user_id, anon_id, session_id,
                                vendor_person_id, CAST(properties AS VARCHAR),
                                CAST(person_properties AS VARCHAR), CAST(groups AS VARCHAR),
                                CAST(raw AS VARCHAR)
                         FROM events WHERE rowid >= ? AND rowid < ?",
                    )?;
                    loop {
                        ctx.cancel.check()?;
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        if start > hi {
                            return Ok(col.found);
                        }
                        let mut rows = st.query([start, start.saturating_add(BATCH)])?;
                        let mut n = 0u64;
                        while let Some(r) = rows.next()? {
                            n += 1;
                            let name: String = r.get(0)?;
                            col.name(&name);
                            for (k, name) in TOP.iter().enumerate() {
                                let v: Option<String> = r.get(1 + k)?;
                                if let Some(v) = v {
                                    col.top(name, &v);
                                }
                            }
                            for (k, name) in ["properties", "person_properties", "groups"]
                                .iter()
                                .enumerate()
                            {
                                let v: Option<String> = r.get(6 + k)?;
                                if let Some(v) = v {
                                    col.json(name, &v, None, true);
                                }
                            }
                            let raw: Option<String> = r.get(9)?;
                            if let Some(raw) = raw {
                                col.json("raw", &raw, Some("raw"), true);
                            }
                        }
                        let all = done.fetch_add(n, Ordering::Relaxed) + n;
                        ctx.emit(
                            JobEvent::Progress {
                                file: "pii".into(),
                                file_index: 0,
                                phase: "collect".into(),
                                bytes_done: all,
                                bytes_total: total as u64,
                                rows: all,
                            },
                            false,
                        );
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EngineError::InvalidArgument(
                        "a collecting thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut found = Found::default();
    for r in results {
        found.merge(r?);
    }
    Ok(found)
}
