//! Drill-down from a finding to the events that hit it (masked values only), and the logged
//! reveal of one hit's full value.
//!
//! Both re-run the finding's detector on the leaves at the finding's path, with the scan's
//! own rules (the same path spelling, key hints, percent-decoding and masks), so the events
//! listed are the ones the scan counted. A reveal writes its log entry (who, why, when,
//! which event and path; never the value) before the value is returned: no entry, no value.

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::detect::{detect_value, key_hints, Detector};
use super::export::TOP;
use super::mask::mask;
use super::scan::Source;
use super::store::finding;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Events read per query while paging.
const DRILL_BATCH: i64 = 20_000;
/// The largest page.
pub const MAX_PAGE: i64 = 1000;

/// One event that hits a finding.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FindingEvent {
    /// The workspace's event id (what [`reveal`] takes).
    #[ts(type = "number")]
    pub event_seq: i64,
    pub event_uuid: String,
    pub ts: String,
    pub event_name: String,
    /// Ids are shown as they are unless a detector flags them (an email as distinct id): then
    /// with the detected parts masked.
    pub distinct_id: Option<String>,
    /// The resolved person (identity model), when there is one; masked like `distinct_id`.
    pub person_id: Option<String>,
    /// The matches at the path, masked (a value may hold several; arrays hold several values).
    pub masked: Vec<String>,
    pub source_file: String,
    #[ts(type = "number")]
    pub source_line: i64,
}

/// A page of the events behind one finding.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FindingEvents {
    pub finding_id: String,
    pub path: String,
    pub detector: String,
    /// Events with at least one hit (the finding's `rows` in the latest scan).
    #[ts(type = "number")]
    pub total: i64,
    #[ts(type = "number")]
    pub offset: i64,
    #[ts(type = "number")]
    pub limit: i64,
    /// In event order (`event_seq`).
    pub events: Vec<FindingEvent>,
    /// More hits after this page.
    pub has_more: bool,
}

/// The full value(s) of one hit, returned by [`reveal`].
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Revealed {
    pub finding_id: String,
    #[ts(type = "number")]
    pub event_seq: i64,
    pub path: String,
    pub detector: String,
    /// The unmasked values at the path that hit (several when the path crosses an array).
    pub values: Vec<String>,
    /// The log entry written for this reveal.
    #[ts(type = "number")]
    pub log_seq: i64,
}

/// One entry of the reveal (access) log. Never holds the value.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RevealLogEntry {
    #[ts(type = "number")]
    pub seq: i64,
    pub revealed_at: String,
    pub reviewer: String,
    pub reason: String,
    pub finding_id: String,
    pub path: String,
    pub detector: String,
    #[ts(type = "number")]
    pub event_seq: i64,
    pub event_uuid: String,
}

/// What decides whether a leaf hits.
enum Check {
    /// A value detector: its matches, masked.
    Value(Detector),
    /// A key-name detector: the key says so; the value is masked generically.
    Key(Detector),
    /// A custom rule's pattern (DuckDB regexp).
    Custom(String),
}

/// Where a path lives in the events table.
enum Column {
    Top(&'static str),
    Json(&'static str),
}

fn column_of(path: &str) -> Result<Column> {
    if let Some(c) = TOP.iter().find(|c| **c == path) {
        return Ok(Column::Top(c));
    }
    let root = path.split(['.', '[']).next().unwrap_or_default();
    for c in ["properties", "person_properties", "groups", "raw"] {
        if root == c {
            return Ok(Column::Json(c));
        }
    }
    Err(EngineError::InvalidQuery {
        code: "pii_not_events",
        message: format!("{path} is not an event field"),
    })
}

/// The leaves at `target` in a JSON column's text, with the key each sits under: the scan's
/// walk (keys joined by `.`, array elements `[]`, numbers as text, unparseable text as one
/// value at the root).
pub(crate) fn leaves_at(root: &str, text: &str, target: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let mut path = root.to_string();
            walk_to(&v, &mut path, root, target, &mut out);
        }
        Err(_) => {
            if root == target {
                out.push((root.to_string(), text.to_string()));
            }
        }
    }
    out
}

fn walk_to(v: &Value, path: &mut String, key: &str, target: &str, out: &mut Vec<(String, String)>) {
    // Paths only grow: nothing below a path that is not a prefix of the target can match.
    if !target.starts_with(path.as_str()) {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                walk_to(child, path, k, target, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            let len = path.len();
            path.push_str("[]");
            for child in a {
                walk_to(child, path, key, target, out);
            }
            path.truncate(len);
        }
        Value::String(s) if path == target => out.push((key.to_string(), s.clone())),
        Value::Number(n) if path == target => out.push((key.to_string(), n.to_string())),
        _ => {}
    }
}

struct Hunter<'a> {
    check: Check,
    conn: &'a duckdb::Connection,
}

impl Hunter<'_> {
    /// The masked matches in one leaf (empty: no hit). Mirrors the scanner's `leaf`.
    fn masked(&self, key: &str, value: &str) -> Result<Vec<String>> {
        if value.trim().is_empty() {
            return Ok(Vec::new());
        }
        match &self.check {
            Check::Value(d) => {
                let mut m = Vec::new();
                let decoded = detect_value(value, key_hints(key), &mut m);
                Ok(m.iter()
                    .filter(|x| x.detector == *d)
                    .map(|x| mask(Some(*d), &decoded[x.start..x.end]))
                    .collect())
            }
            Check::Key(d) => Ok(if key_hints(key).key_detector == Some(*d) {
                vec![mask(None, value)]
            } else {
                Vec::new()
            }),
            Check::Custom(pattern) => {
                let hit: bool = self.conn.query_row(
                    "SELECT regexp_matches(?, ?)",
                    duckdb::params![value, pattern],
                    |r| r.get(0),
                )?;
                Ok(if hit {
                    vec![mask(None, value)]
                } else {
                    Vec::new()
                })
            }
        }
    }

    /// The (key, value) leaves at the path that hit, with their masks.
    fn hits(
        &self,
        column: &Column,
        path: &str,
        text: Option<&str>,
    ) -> Result<Vec<(String, Vec<String>)>> {
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        let leaves = match column {
            Column::Top(c) => vec![(c.to_string(), text.to_string())],
            Column::Json(c) => leaves_at(c, text, path),
        };
        let mut out = Vec::new();
        for (key, value) in leaves {
            let m = self.masked(&key, &value)?;
            if !m.is_empty() {
                out.push((value, m));
            }
        }
        Ok(out)
    }
}

/// `s` with every span a value detector flags masked (unchanged when none does).
fn mask_detected(s: &str) -> String {
    super::scan::mask_detected_in(s, key_hints("distinct_id")).into_owned()
}

/// The finding (events only) and how to recognise its hits.
fn resolve(ws: &Workspace, finding_id: &str) -> Result<(super::scan::Finding, Check, Column)> {
    let f = finding(ws, finding_id)?.finding;
    if f.source != Source::Events {
        return Err(EngineError::InvalidQuery {
            code: "pii_not_events",
            message: format!(
                "finding {} is in {}; only event findings list events",
                f.id,
                f.source.as_str()
            ),
        });
    }
    let check = if let Some(name) = f.detector.strip_prefix("custom:") {
        let rules = super::rules::list(ws)?;
        let rule = rules.into_iter().find(|r| r.name == name).ok_or_else(|| {
            EngineError::InvalidQuery {
                code: "pii_unknown_rule",
                message: format!("custom rule {name} no longer exists"),
            }
        })?;
        Check::Custom(rule.pattern)
    } else {
        let d = Detector::parse(&f.detector).ok_or_else(|| EngineError::InvalidQuery {
            code: "pii_unknown_detector",
            message: format!("unknown detector {}", f.detector),
        })?;
        if d.reads_value() {
            Check::Value(d)
        } else {
            Check::Key(d)
        }
    };
    let column = column_of(&f.path)?;
    Ok((f, check, column))
}

/// A text every event holding the path must contain, when there is a safe one: the path's last
/// key and its closing quote, if the key is plain enough that JSON text spells it one way.
fn needle(column: &Column, path: &str) -> Option<String> {
    let Column::Json(c) = column else {
        return None;
    };
    let last = path.rsplit('.').next()?.trim_end_matches("[]").to_string();
    let plain = !last.is_empty()
        && last != *c
        && !last.contains("[]")
        && last
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '$' | '-'));
    // `key"`: also found when the key holds dots (`"a.b"` for the path `….a.b`).
    plain.then(|| format!("{last}\""))
}

const EVENT_COLS: &str = "e.event_seq, e.event_uuid,
    strftime(e.ts_utc, '%Y-%m-%dT%H:%M:%S.%f+00:00'), e.event_name, e.distinct_id,
    (SELECT min(pm.person_id) FROM person_map pm WHERE pm.distinct_id = e.distinct_id),
    e.source_file, e.source_line";

/// A page of the events that hit a finding (events findings only), in event order, with the
/// matches masked. `offset` counts hits (events with a hit), not events read.
pub fn finding_events(
    ws: &Workspace,
    finding_id: &str,
    offset: i64,
    limit: i64,
) -> Result<FindingEvents> {
    if offset < 0 || !(1..=MAX_PAGE).contains(&limit) {
        return Err(EngineError::InvalidArgument(format!(
            "offset must be >= 0 and limit 1..={MAX_PAGE}"
        )));
    }
    let (f, check, column) = resolve(ws, finding_id)?;
    let conn = ws.conn();
    let hunter = Hunter { check, conn };
    let col = match &column {
        Column::Top(c) | Column::Json(c) => *c,
    };
    let mut q = Sql::new("SELECT ");
    q.push(EVENT_COLS)
        .push(", CAST(e.")
        .push(&crate::sql::ident(col))
        .push(" AS VARCHAR) FROM events e WHERE e.event_seq > ? AND e.")
        .push(&crate::sql::ident(col))
        .push(" IS NOT NULL");
    if let Some(n) = needle(&column, &f.path) {
        q.push(" AND contains(CAST(e.")
            .push(&crate::sql::ident(col))
            .push(" AS VARCHAR), ")
            .bind(n.as_str())
            .push(")");
    }
    q.push(" ORDER BY e.event_seq LIMIT ?");
    let mut st = conn.prepare(&q.text)?;
    let mut after = i64::MIN;
    let mut skipped = 0i64;
    let mut events = Vec::new();
    let mut has_more = false;
    'outer: loop {
        let mut params = q.params.clone();
        params.insert(0, duckdb::types::Value::BigInt(after));
        params.push(duckdb::types::Value::BigInt(DRILL_BATCH));
        let mut rows = st.query(duckdb::params_from_iter(params.iter()))?;
        let mut in_batch = 0i64;
        while let Some(r) = rows.next()? {
            in_batch += 1;
            let seq: i64 = r.get(0)?;
            after = seq;
            let text: Option<String> = r.get(8)?;
            let hits = hunter.hits(&column, &f.path, text.as_deref())?;
            if hits.is_empty() {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            if events.len() as i64 == limit {
                has_more = true;
                break 'outer;
            }
            events.push(FindingEvent {
                event_seq: seq,
                event_uuid: r.get(1)?,
                ts: r.get(2)?,
                event_name: r.get(3)?,
                distinct_id: r.get::<_, Option<String>>(4)?.map(|s| mask_detected(&s)),
                person_id: r.get::<_, Option<String>>(5)?.map(|s| mask_detected(&s)),
                masked: hits.into_iter().flat_map(|(_, m)| m).collect(),
                source_file: r.get(6)?,
                source_line: r.get(7)?,
            });
        }
        if in_batch < DRILL_BATCH {
            break;
        }
    }
    Ok(FindingEvents {
        finding_id: f.id.clone(),
        path: f.path.clone(),
        detector: f.detector.clone(),
        total: f.rows,
        offset,
        limit,
        events,
        has_more,
    })
}

/// Return the full value(s) of a finding's hit in one event, after logging the access (who,
/// why, when `at_us`, which finding, path and event; never the value). Errors when the event
/// does not hit the finding: only detected values can be revealed.
pub fn reveal(
    ws: &Workspace,
    finding_id: &str,
    event_seq: i64,
    reviewer: &str,
    reason: &str,
    at_us: i64,
) -> Result<Revealed> {
    if reviewer.trim().is_empty() || reason.trim().is_empty() {
        return Err(EngineError::InvalidArgument(
            "a reveal needs the reviewer's name and a reason".into(),
        ));
    }
    let (f, check, column) = resolve(ws, finding_id)?;
    let conn = ws.conn();
    let col = match &column {
        Column::Top(c) | Column::Json(c) => *c,
    };
    let q = format!(
        "SELECT e.event_uuid, CAST(e.{} AS VARCHAR) FROM events e WHERE e.event_seq = ?",
        crate::sql::ident(col)
    );
    let mut st = conn.prepare(&q)?;
    let mut rows = st.query([event_seq])?;
    let Some(r) = rows.next()? else {
        return Err(EngineError::InvalidQuery {
            code: "pii_unknown_event",
            message: format!("no event {event_seq}"),
        });
    };
    let uuid: String = r.get(0)?;
    let text: Option<String> = r.get(1)?;
    drop(rows);
    let hunter = Hunter { check, conn };
    let hits = hunter.hits(&column, &f.path, text.as_deref())?;
    if hits.is_empty() {
        return Err(EngineError::InvalidQuery {
            code: "pii_no_hit",
            message: format!("event {event_seq} has no {} hit at {}", f.detector, f.path),
        });
    }
    let log_seq: i64 = conn.query_row(
        "INSERT INTO pii_reveal_log (revealed_at, reviewer, reason, finding_id, path, detector,
                                     event_seq, event_uuid)
         VALUES (make_timestamptz(?), ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        duckdb::params![at_us, reviewer, reason, f.id, f.path, f.detector, event_seq, uuid],
        |r| r.get(0),
    )?;
    Ok(Revealed {
        finding_id: f.id,
        event_seq,
        path: f.path,
        detector: f.detector,
        values: hits.into_iter().map(|(v, _)| v).collect(),
        log_seq,
    })
}

/// The reveal log, oldest first.
pub fn reveal_log(ws: &Workspace) -> Result<Vec<RevealLogEntry>> {
    let mut st = ws.conn().prepare(
        "SELECT seq, strftime(revealed_at, '%Y-%m-%dT%H:%M:%S.%f+00:00'), reviewer, reason,
                finding_id, path, detector, event_seq, event_uuid
         FROM pii_reveal_log ORDER BY seq",
    )?;
    let rows = st.query_map([], |r| {
        Ok(RevealLogEntry {
            seq: r.get(0)?,
            revealed_at: r.get(1)?,
            reviewer: r.get(2)?,
            reason: r.get(3)?,
            finding_id: r.get(4)?,
            path: r.get(5)?,
            detector: r.get(6)?,
            event_seq: r.get(7)?,
            event_uuid: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<duckdb::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_follow_the_scan_paths() {
        let t = r#"{"$set":{"email":"a@b.io","n":5},"items":[{"e":"x@y.io"},{"e":"z@y.io"}],"a.b":"dot"}"#;
        assert_eq!(
            leaves_at("properties", t, "properties.$set.email"),
            [("email".to_string(), "a@b.io".to_string())]
        );
        assert_eq!(
            leaves_at("properties", t, "properties.$set.n"),
            [("n".to_string(), "5".to_string())]
        );
        assert_eq!(leaves_at("properties", t, "properties.items[].e").len(), 2);
        // A key with a dot spells the same path as nesting would.
        assert_eq!(leaves_at("properties", t, "properties.a.b").len(), 1);
        assert!(leaves_at("properties", t, "properties.$set").is_empty());
        assert_eq!(
            leaves_at("raw", "not json", "raw"),
            [("raw".to_string(), "not json".to_string())]
        );
    }

    #[test]
    fn needles_only_for_plain_keys() {
        let j = Column::Json("properties");
        assert_eq!(
            needle(&j, "properties.$set.email").as_deref(),
            Some("email\"")
        );
        assert_eq!(needle(&j, "properties.items[]").as_deref(), Some("items\""));
        assert_eq!(needle(&j, "properties.a/b"), None);
        assert_eq!(needle(&j, "properties"), None);
        assert_eq!(needle(&Column::Top("distinct_id"), "distinct_id"), None);
    }
}
