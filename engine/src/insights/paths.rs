//! Paths / user flows (semantics.md §5.5): each person's events in time order, split into
//! path sessions at gaps of 30 minutes or more (PostHog), at the model's sessions, or not at
//! all; consecutive repeats collapsed; sliced from a start event or back from an end event;
//! counted as `{step}_{item}` nodes and the edges between them, shaped for a Sankey chart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::query::{push_filters, push_in_list, DateRange, PropertyFilter, PropertySource};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Where one path ends and the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum PathSplit {
    /// A gap of `gap_seconds` or more between two events (PostHog, 30 minutes by default).
    Gap,
    /// The model's sessions (client session ids, or inactivity rules when there are none).
    Session,
    /// One path per person over the whole range, across sessions.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PathsQuery {
    pub date_range: DateRange,
    /// Paths start at the first occurrence of this item.
    #[serde(default)]
    pub start: Option<String>,
    /// Paths end at the first occurrence of this item (the last `steps` items before it).
    #[serde(default)]
    pub end: Option<String>,
    /// Items per path (default 5).
    #[serde(default = "five")]
    pub steps: usize,
    #[serde(default = "gap")]
    pub split: PathSplit,
    #[serde(default = "thirty_minutes")]
    pub gap_seconds: i64,
    /// Only these events (default: every event except identity and session markers).
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    /// Page views as their URL path (`/pricing`) rather than the event name.
    #[serde(default)]
    pub page_paths: bool,
    /// `A A B` → `A B` (default true, as PostHog).
    #[serde(default = "yes")]
    pub collapse_repeats: bool,
    /// At most this many nodes (default 50); the rest of each step merge into `{step}_Other`.
    #[serde(default = "fifty")]
    pub node_limit: usize,
    /// Only members of a saved cohort, minus members of another.
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: super::cohort::Scope,
}

fn five() -> usize {
    5
}
fn gap() -> PathSplit {
    PathSplit::Gap
}
fn thirty_minutes() -> i64 {
    1800
}
fn yes() -> bool {
    true
}
fn fifty() -> usize {
    50
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PathNode {
    /// `{step}_{item}`, step 1-based.
    pub key: String,
    pub step: usize,
    pub item: String,
    /// Path sessions through this node.
    pub paths: u64,
    pub persons: u64,
    /// Path sessions that end here.
    pub drop_offs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PathEdge {
    pub source: String,
    pub target: String,
    /// Path sessions along this edge.
    pub paths: u64,
    pub persons: u64,
    /// persons / all persons with a path.
    pub person_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PathsResult {
    pub nodes: Vec<PathNode>,
    pub edges: Vec<PathEdge>,
    pub total_paths: u64,
    pub total_persons: u64,
    /// Said whenever nodes were merged into "Other".
    pub notes: Vec<String>,
    pub sql: String,
    pub millis: f64,
}

/// The persons behind every node and edge (keys as in the result; edges `a>b`).
pub type PathPersons = HashMap<String, BTreeSet<String>>;

/// Items of one path session after collapsing and slicing (semantics.md §5.5).
pub fn shape_path(items: &[String], q: &PathsQuery) -> Option<Vec<String>> {
    let mut p: Vec<String> = Vec::with_capacity(items.len());
    for it in items {
        if q.collapse_repeats && p.last() == Some(it) {
            continue;
        }
        p.push(it.clone());
    }
    if let Some(s) = &q.start {
        let i = p.iter().position(|x| x == s)?;
        p.drain(..i);
    }
    let n = q.steps.max(2);
    if let Some(e) = &q.end {
        let i = p.iter().position(|x| x == e)?;
        p.truncate(i + 1);
        if p.len() > n {
            if q.start.is_some() {
                // Start and end: keep both ends, cut the middle.
                let head = (n - 1) / 2;
                let tail = n - 1 - head;
                let mut cut: Vec<String> = p[..head].to_vec();
                cut.push("...".into());
                cut.extend_from_slice(&p[p.len() - tail..]);
                p = cut;
            } else {
                p.drain(..p.len() - n);
            }
        }
    } else {
        p.truncate(n);
    }
    (!p.is_empty()).then_some(p)
}

fn loader_sql(q: &PathsQuery, from: &str, from_us: i64, to_us: i64, scope: &Sql) -> Result<Sql> {
    let mut s = Sql::new("SELECT ep.person_id, epoch_us(e.ts_utc) AS t, ");
    if q.page_paths {
        s.push("CASE WHEN e.event_kind = 'page' THEN coalesce(nullif(regexp_extract(sb_page(e.hot, e.page_url, e.properties), '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), ''), '/') ELSE e.event_name END");
    } else {
        s.push("e.event_name");
    }
    s.push(if q.split == PathSplit::Session {
        ", es.session_id FROM "
    } else {
        ", NULL::VARCHAR FROM "
    });
    s.push(from);
    if q.split == PathSplit::Session {
        s.push(" LEFT JOIN event_sessions es ON es.event_seq = e.event_seq");
    }
    if q.filters.iter().any(|f| f.source == PropertySource::Person) {
        s.push(" LEFT JOIN persons p ON p.person_id = ep.person_id");
    }
    s.push(" WHERE ep.person_id IS NOT NULL AND e.ts_utc >= make_timestamptz(")
        .bind(from_us)
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(to_us)
        .push(")");
    if q.events.is_empty() {
        s.push(" AND e.event_kind NOT IN ('identify', 'alias', 'merge', 'group_identify', 'person_update', 'session_marker')");
    } else {
        s.push(" AND e.event_name IN ");
        push_in_list(&mut s, q.events.iter().map(String::as_str));
    }
    s.push(" AND ");
    push_filters(&mut s, &q.filters)?;
    s.embed(scope);
    s.push(" ORDER BY ep.person_id, t, e.event_seq");
    Ok(s)
}

/// Run the paths query; also returns the persons behind each node and edge.
pub fn run(ws: &Workspace, q: &PathsQuery, now_us: i64) -> Result<(PathsResult, PathPersons)> {
    let started = Instant::now();
    if q.steps < 2 || q.steps > 20 {
        return Err(EngineError::InvalidQuery {
            code: "paths_steps",
            message: format!("paths show 2 to 20 steps, not {}", q.steps),
        });
    }
    if q.split == PathSplit::Gap && q.gap_seconds <= 0 {
        return Err(EngineError::InvalidQuery {
            code: "paths_gap",
            message: "the gap that splits paths must be positive".into(),
        });
    }
    super::query::check_properties(ws, &q.filters, &[])?;
    let settings = ModelSettings::load(ws)?;
    let range = q.date_range.resolve(ws, now_us, &settings.time_zone)?;
    let scope = super::cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
    let from = super::query::events_with_persons(ws)?;
    let sql = loader_sql(q, &from, range.from_us, range.to_us, &scope)?;
    let mut st = ws.conn().prepare(&sql.text)?;
    let mut rows = st.query(duckdb::params_from_iter(sql.params.iter()))?;

    // (person, path) for every shaped path session.
    let mut paths: Vec<(String, Vec<String>)> = Vec::new();
    let mut person: Option<String> = None;
    let mut items: Vec<String> = Vec::new();
    let mut last: Option<(i64, Option<String>)> = None;
    let gap_us = q.gap_seconds.saturating_mul(1_000_000);
    let mut flush = |person: &str, items: &mut Vec<String>| {
        if let Some(p) = shape_path(items, q) {
            paths.push((person.to_string(), p));
        }
        items.clear();
    };
    while let Some(r) = rows.next()? {
        let pid: String = r.get(0)?;
        let t: i64 = r.get(1)?;
        let item: Option<String> = r.get(2)?;
        let session: Option<String> = r.get(3)?;
        if person.as_deref() != Some(pid.as_str()) {
            if let Some(p) = person.take() {
                flush(&p, &mut items);
            }
            person = Some(pid);
        } else if let Some((lt, ls)) = &last {
            let split = match q.split {
                PathSplit::Gap => t - lt >= gap_us,
                PathSplit::Session => *ls != session,
                PathSplit::None => false,
            };
            if split {
                if let Some(p) = person.as_deref() {
                    flush(p, &mut items);
                }
            }
        }
        items.push(item.unwrap_or_default());
        last = Some((t, session));
    }
    if let Some(p) = person.take() {
        flush(&p, &mut items);
    }
    let (result, persons) = count(&paths, q.node_limit.max(2));
    Ok((
        PathsResult {
            sql: sql.text,
            millis: started.elapsed().as_secs_f64() * 1000.0,
            ..result
        },
        persons,
    ))
}

fn key(step: usize, item: &str) -> String {
    format!("{step}_{item}")
}

/// Nodes and edges of shaped paths, with at most `limit` nodes: per step, the least used
/// items merge into `{step}_Other` (ties by name).
pub fn count(paths: &[(String, Vec<String>)], limit: usize) -> (PathsResult, PathPersons) {
    let mut weight: HashMap<(usize, &str), u64> = HashMap::new();
    for (_, p) in paths {
        for (i, it) in p.iter().enumerate() {
            *weight.entry((i + 1, it.as_str())).or_default() += 1;
        }
    }
    let mut ranked: Vec<((usize, &str), u64)> = weight.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut notes = Vec::new();
    let kept: BTreeSet<(usize, &str)> = if ranked.len() > limit {
        // One slot per step that loses items goes to its Other node.
        let mut keep = limit;
        loop {
            let kept: BTreeSet<(usize, &str)> = ranked.iter().take(keep).map(|x| x.0).collect();
            let others: BTreeSet<usize> = ranked
                .iter()
                .skip(keep)
                .map(|x| x.0 .0)
                .collect::<BTreeSet<_>>();
            if kept.len() + others.len() <= limit || keep == 0 {
                notes.push(format!(
                    "{} of {} nodes were merged into \"Other\" nodes (node limit {limit})",
                    ranked.len() - kept.len(),
                    ranked.len()
                ));
                break kept;
            }
            keep -= 1;
        }
    } else {
        ranked.iter().map(|x| x.0).collect()
    };
    let name = |step: usize, it: &str| -> String {
        if kept.contains(&(step, it)) {
            key(step, it)
        } else {
            key(step, "Other")
        }
    };
    let mut node_paths: BTreeMap<String, (usize, String, u64, u64)> = BTreeMap::new();
    let mut edge_paths: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut who: PathPersons = HashMap::new();
    let mut all: BTreeSet<&str> = BTreeSet::new();
    for (person, p) in paths {
        all.insert(person);
        let keys: Vec<String> = p
            .iter()
            .enumerate()
            .map(|(i, it)| name(i + 1, it))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let item = k.split_once('_').map(|x| x.1).unwrap_or_default();
            let n = node_paths
                .entry(k.clone())
                .or_insert((i + 1, item.to_string(), 0, 0));
            n.2 += 1;
            if i + 1 == keys.len() {
                n.3 += 1;
            }
            who.entry(k.clone()).or_default().insert(person.clone());
            if i > 0 {
                *edge_paths
                    .entry((keys[i - 1].clone(), k.clone()))
                    .or_default() += 1;
                who.entry(format!("{}>{}", keys[i - 1], k))
                    .or_default()
                    .insert(person.clone());
            }
        }
    }
    let total_persons = all.len() as u64;
    let mut nodes: Vec<PathNode> = node_paths
        .into_iter()
        .map(|(k, (step, item, n, drop))| PathNode {
            persons: who.get(&k).map_or(0, |s| s.len() as u64),
            key: k,
            step,
            item,
            paths: n,
            drop_offs: drop,
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.step
            .cmp(&b.step)
            .then(b.paths.cmp(&a.paths))
            .then(a.key.cmp(&b.key))
    });
    let mut edges: Vec<PathEdge> = edge_paths
        .into_iter()
        .map(|((s, t), n)| {
            let persons = who.get(&format!("{s}>{t}")).map_or(0, |x| x.len() as u64);
            PathEdge {
                source: s,
                target: t,
                paths: n,
                persons,
                person_share: if total_persons == 0 {
                    0.0
                } else {
                    persons as f64 / total_persons as f64
                },
            }
        })
        .collect();
    edges.sort_by(|a, b| {
        b.paths
            .cmp(&a.paths)
            .then(a.source.cmp(&b.source))
            .then(a.target.cmp(&b.target))
    });
    (
        PathsResult {
            nodes,
            edges,
            total_paths: paths.len() as u64,
            total_persons,
            notes,
            sql: String::new(),
            millis: 0.0,
        },
        who,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: serde_json::Value) -> PathsQuery {
        let mut v = v;
        v["date_range"] = serde_json::json!({"from": "2024-01-01"});
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn repeats_collapse_and_start_end_slice() {
        let p = s(&["A", "A", "B", "C", "B", "D"]);
        assert_eq!(
            shape_path(&p, &q(serde_json::json!({}))),
            Some(s(&["A", "B", "C", "B", "D"]))
        );
        assert_eq!(
            shape_path(&p, &q(serde_json::json!({"start": "C"}))),
            Some(s(&["C", "B", "D"]))
        );
        assert_eq!(
            shape_path(&p, &q(serde_json::json!({"end": "D", "steps": 3}))),
            Some(s(&["C", "B", "D"]))
        );
        assert_eq!(
            shape_path(
                &p,
                &q(serde_json::json!({"start": "A", "end": "D", "steps": 4}))
            ),
            Some(s(&["A", "...", "B", "D"]))
        );
        assert_eq!(shape_path(&p, &q(serde_json::json!({"start": "X"}))), None);
    }

    #[test]
    fn the_node_cap_keeps_an_explicit_other_node() {
        let paths: Vec<(String, Vec<String>)> = vec![
            ("p1".into(), s(&["A", "B"])),
            ("p2".into(), s(&["A", "B"])),
            ("p3".into(), s(&["A", "C"])),
            ("p4".into(), s(&["A", "D"])),
        ];
        let (r, who) = count(&paths, 3);
        let keys: Vec<&str> = r.nodes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, vec!["1_A", "2_B", "2_Other"]);
        assert_eq!(r.notes.len(), 1);
        let other = r.edges.iter().find(|e| e.target == "2_Other").unwrap();
        assert_eq!((other.paths, other.persons), (2, 2));
        assert_eq!(other.person_share, 0.5);
        assert_eq!(who["1_A>2_Other"].len(), 2);
    }
}
