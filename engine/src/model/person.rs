//! Answers about persons: search, one person's ids, properties, merges, warnings and
//! sessions, and the chain of links that joined two of their ids.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PersonSummary {
    pub person_id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub is_identified: bool,
    pub distinct_ids: i64,
    pub created_at: Option<String>,
    pub last_seen: Option<String>,
    pub events: i64,
    pub sessions: i64,
    pub shared_device: bool,
}

/// One identity link as the merge log recorded it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct MergeEntry {
    pub seq: i64,
    pub ts_utc: Option<String>,
    pub kind: String,
    pub from_id: String,
    pub into_id: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub source_vendor: Option<String>,
    pub source_file: Option<String>,
    pub source_line: Option<i64>,
    pub event_uuid: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SessionRow {
    pub session_id: String,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
    pub source: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: i64,
    pub events: i64,
    pub pageviews: i64,
    pub entry_url: Option<String>,
    pub exit_url: Option<String>,
    pub is_bounce: Option<bool>,
    pub referrer: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PersonDetail {
    pub person: PersonSummary,
    /// The id asked about (for a person id: the id most links joined into).
    pub asked: String,
    pub ids: Vec<String>,
    #[ts(type = "Record<string, unknown> | null")]
    pub properties: Option<serde_json::Value>,
    /// Links applied to this person's ids, in replay order.
    pub merges: Vec<MergeEntry>,
    /// Refused links touching this person's ids, and shared-device notes.
    pub warnings: Vec<String>,
    pub sessions: Vec<SessionRow>,
    /// With `explain`: how each id joined (a chain of links from the asked id).
    pub explain: Option<Vec<ExplainStep>>,
}

/// One step of an explanation: `id` joined through `link`.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ExplainStep {
    pub id: String,
    pub via: String,
    pub link: MergeEntry,
}

const SUMMARY_SELECT: &str = "
    SELECT p.person_id, p.display_name, p.email, p.is_identified, p.distinct_ids,
        epoch_us(p.created_at), epoch_us(p.last_seen),
        coalesce(pr.events, 0), coalesce(pr.sessions, 0), p.shared_device
    FROM persons p LEFT JOIN profiles pr USING (person_id)";

/// The [`PersonSummary`]s of a statement over [`SUMMARY_SELECT`], read as Arrow batches (a
/// drill-down can ask for every person of a big workspace).
fn read_summaries(
    st: &mut duckdb::Statement<'_>,
    params: impl duckdb::Params,
) -> Result<Vec<PersonSummary>> {
    let mut out = Vec::new();
    for batch in st.query_arrow(params)? {
        out.extend(summaries_of(&batch)?);
    }
    Ok(out)
}

/// The [`PersonSummary`]s of a batch of [`SUMMARY_SELECT`]'s rows.
fn summaries_of(batch: &duckdb::arrow::record_batch::RecordBatch) -> Result<Vec<PersonSummary>> {
    use crate::sql::arrow_column;
    use duckdb::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
    use duckdb::arrow::datatypes::DataType;
    let text = |i| arrow_column::<StringArray>(batch, i, &DataType::Utf8);
    let int = |i| arrow_column::<Int64Array>(batch, i, &DataType::Int64);
    let flag = |i| arrow_column::<BooleanArray>(batch, i, &DataType::Boolean);
    let (id, name, email, identified) = (text(0)?, text(1)?, text(2)?, flag(3)?);
    let (ids, created, seen, events, sessions, shared) =
        (int(4)?, int(5)?, int(6)?, int(7)?, int(8)?, flag(9)?);
    let opt_text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let opt_time = |a: &Int64Array, i: usize| {
        (!a.is_null(i)).then(|| crate::generate::iso_utc_micros(a.value(i)))
    };
    Ok((0..batch.num_rows())
        .map(|i| PersonSummary {
            person_id: id.value(i).to_string(),
            display_name: opt_text(&name, i),
            email: opt_text(&email, i),
            is_identified: identified.value(i),
            distinct_ids: ids.value(i),
            created_at: opt_time(&created, i),
            last_seen: opt_time(&seen, i),
            events: events.value(i),
            sessions: sessions.value(i),
            shared_device: shared.value(i),
        })
        .collect())
}

/// Persons whose ids, email or name contain `search` (case-insensitive), most recently seen
/// first.
pub fn search(ws: &Workspace, text: Option<&str>, limit: usize) -> Result<Vec<PersonSummary>> {
    let pattern = format!(
        "%{}%",
        text.unwrap_or("")
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let sql = format!(
        "{SUMMARY_SELECT}
         WHERE ? = '%%' OR p.email ILIKE ? ESCAPE '\\' OR p.display_name ILIKE ? ESCAPE '\\'
            OR p.person_id IN (SELECT person_id FROM person_map WHERE distinct_id ILIKE ? ESCAPE '\\')
         ORDER BY p.last_seen DESC NULLS LAST, p.person_id
         LIMIT ?"
    );
    let mut st = ws.conn().prepare(&sql)?;
    read_summaries(
        &mut st,
        duckdb::params![pattern, pattern, pattern, pattern, limit as i64],
    )
}

fn merge_entry(r: &duckdb::Row<'_>) -> duckdb::Result<MergeEntry> {
    Ok(MergeEntry {
        seq: r.get(0)?,
        ts_utc: r.get(1)?,
        kind: r.get(2)?,
        from_id: r.get(3)?,
        into_id: r.get(4)?,
        outcome: r.get(5)?,
        reason: r.get(6)?,
        source_vendor: r.get(7)?,
        source_file: r.get(8)?,
        source_line: r.get(9)?,
        event_uuid: r.get(10)?,
    })
}

const MERGE_SELECT: &str = "SELECT seq, strftime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ'), link_kind, from_id, into_id, outcome, reason, source_vendor, source_file, source_line, event_uuid FROM merge_log";

/// Sessions, newest first; of one person when `person` is given.
pub fn sessions(ws: &Workspace, person: Option<&str>, limit: usize) -> Result<Vec<SessionRow>> {
    let mut st = ws.conn().prepare(
        "SELECT session_id, person_id, device_id, source,
            strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ'), strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ'),
            duration_s, events, pageviews, entry_url, exit_url, is_bounce, referrer, browser, os
         FROM sessions WHERE ? IS NULL OR person_id = ?
         ORDER BY started_at DESC, session_id LIMIT ?",
    )?;
    let rows = st.query_map(duckdb::params![person, person, limit as i64], |r| {
        Ok(SessionRow {
            session_id: r.get(0)?,
            person_id: r.get(1)?,
            device_id: r.get(2)?,
            source: r.get(3)?,
            started_at: r.get(4)?,
            ended_at: r.get(5)?,
            duration_s: r.get(6)?,
            events: r.get(7)?,
            pageviews: r.get(8)?,
            entry_url: r.get(9)?,
            exit_url: r.get(10)?,
            is_bounce: r.get(11)?,
            referrer: r.get(12)?,
            browser: r.get(13)?,
            os: r.get(14)?,
        })
    })?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// The person any of whose ids (or whose person id) is `id`; failing that, the most recently
/// seen person with that email address (case-insensitive).
pub fn person_of(ws: &Workspace, id: &str) -> Result<Option<String>> {
    let mut st = ws.conn().prepare(
        "SELECT person_id FROM (
            SELECT m.person_id, 0 AS rank, NULL::TIMESTAMPTZ AS seen FROM person_map m JOIN persons p USING (person_id) WHERE m.distinct_id = ?
            UNION ALL SELECT person_id, 0, NULL FROM persons WHERE person_id = ?
            UNION ALL SELECT person_id, 1, last_seen FROM persons WHERE lower(email) = lower(?))
         ORDER BY rank, seen DESC NULLS LAST, person_id LIMIT 1",
    )?;
    let mut rows = st.query(duckdb::params![id, id, id])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// Everything about the person that `id` resolves to.
pub fn detail(
    ws: &Workspace,
    id: &str,
    explain: bool,
    session_limit: usize,
) -> Result<PersonDetail> {
    let person_id = person_of(ws, id)?.ok_or_else(|| {
        EngineError::InvalidArgument(format!(
            "no person has the id \"{id}\" (search with `stitchbook persons <workspace> --search`)"
        ))
    })?;
    let conn = ws.conn();
    let mut st = conn.prepare(&format!("{SUMMARY_SELECT} WHERE p.person_id = ?"))?;
    let person = read_summaries(&mut st, [&person_id])?
        .pop()
        .ok_or_else(|| EngineError::InvalidArgument(format!("no person \"{person_id}\"")))?;
    let properties: Option<String> = conn.query_row(
        "SELECT properties::VARCHAR FROM persons WHERE person_id = ?",
        [&person_id],
        |r| r.get(0),
    )?;
    let properties = properties.and_then(|p| serde_json::from_str(&p).ok());
    let ids: Vec<String> = {
        let mut st = conn.prepare(
            "SELECT distinct_id FROM person_map WHERE person_id = ? ORDER BY distinct_id",
        )?;
        let rows = st.query_map([&person_id], |r| r.get(0))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let touching: Vec<MergeEntry> = {
        let mut st = conn.prepare(&format!(
            "{MERGE_SELECT} WHERE from_id IN (SELECT distinct_id FROM person_map WHERE person_id = ?)
                OR into_id IN (SELECT distinct_id FROM person_map WHERE person_id = ?)
             ORDER BY seq"
        ))?;
        let rows = st.query_map([&person_id, &person_id], merge_entry)?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let idset: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let merges: Vec<MergeEntry> = touching
        .iter()
        .filter(|m| {
            m.outcome == "applied"
                && idset.contains(m.from_id.as_str())
                && idset.contains(m.into_id.as_str())
        })
        .cloned()
        .collect();
    let mut warnings: Vec<String> = touching
        .iter()
        .filter(|m| m.outcome == "refused")
        .map(|m| {
            format!(
                "{} {} → {} refused: {}{}",
                m.kind,
                m.from_id,
                m.into_id,
                m.reason.as_deref().unwrap_or(""),
                source_of(m)
            )
        })
        .collect();
    {
        let mut st = conn.prepare(
            "SELECT device_id, users FROM shared_devices
             WHERE device_id IN (SELECT distinct_id FROM person_map WHERE person_id = ?)
                OR list_has_any(users, (SELECT list(distinct_id) FROM person_map WHERE person_id = ?))
             ORDER BY device_id",
        )?;
        let rows = st.query_map([&person_id, &person_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, duckdb::types::Value>(1)?))
        })?;
        for row in rows {
            let (device, users) = row?;
            let users = match users {
                duckdb::types::Value::List(v) => v
                    .into_iter()
                    .filter_map(|u| match u {
                        duckdb::types::Value::Text(s) => Some(s),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            warnings.push(format!(
                "shared device: {device} carried events of several identified users ({users}); its anonymous events stay with one person"
            ));
        }
    }
    // Asked by person id: explain from the id most links point into (the user id, usually).
    let start = if idset.contains(id) {
        id.to_string()
    } else {
        let mut into_count: HashMap<&str, usize> = HashMap::new();
        for m in &merges {
            *into_count.entry(m.into_id.as_str()).or_default() += 1;
        }
        into_count
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k.to_string())
            .or_else(|| ids.first().cloned())
            .unwrap_or_else(|| id.to_string())
    };
    let explain = explain.then(|| explain_from(&start, &merges));
    Ok(PersonDetail {
        person,
        asked: start,
        ids,
        properties,
        merges,
        warnings,
        sessions: sessions(ws, Some(&person_id), session_limit)?,
        explain,
    })
}

fn source_of(m: &MergeEntry) -> String {
    match (&m.source_file, m.source_line) {
        (Some(f), Some(l)) => format!(" ({f}:{l})"),
        _ => String::new(),
    }
}

/// Breadth-first from `start` over applied links (either direction): the first link that
/// reached each id. The chain for any id follows `via` back to `start`.
pub fn explain_from(start: &str, merges: &[MergeEntry]) -> Vec<ExplainStep> {
    let mut adj: HashMap<&str, Vec<(&str, &MergeEntry)>> = HashMap::new();
    for m in merges {
        adj.entry(m.from_id.as_str())
            .or_default()
            .push((m.into_id.as_str(), m));
        adj.entry(m.into_id.as_str())
            .or_default()
            .push((m.from_id.as_str(), m));
    }
    let mut seen: HashSet<&str> = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut steps = Vec::new();
    while let Some(id) = queue.pop_front() {
        let mut next = adj.get(id).cloned().unwrap_or_default();
        next.sort_by_key(|(_, m)| m.seq);
        for (other, m) in next {
            if seen.insert(other) {
                steps.push(ExplainStep {
                    id: other.to_string(),
                    via: id.to_string(),
                    link: m.clone(),
                });
                queue.push_back(other);
            }
        }
    }
    steps
}

/// The chain of links joining `a` to `b` (empty when they are the same id); None when no
/// chain of applied links joins them.
pub fn chain(ws: &Workspace, a: &str, b: &str) -> Result<Option<Vec<ExplainStep>>> {
    let d = detail(ws, a, true, 0)?;
    if a == b {
        return Ok(Some(Vec::new()));
    }
    let steps = d.explain.unwrap_or_default();
    let by_id: HashMap<&str, &ExplainStep> = steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = Vec::new();
    let mut cur = b;
    while cur != a {
        match by_id.get(cur) {
            Some(s) => {
                out.push((*s).clone());
                cur = s.via.as_str();
            }
            None => return Ok(None),
        }
    }
    out.reverse();
    Ok(Some(out))
}

/// A plain-text picture of every person and their sessions, for reviews and snapshot tests:
/// one line per person (their ids, identified or not, shared-device flag), then one line per
/// session, in time order.
pub fn render(ws: &Workspace) -> Result<String> {
    let conn = ws.conn();
    let mut st = conn.prepare(
        "SELECT p.person_id, p.is_identified, p.shared_device,
            (SELECT string_agg(distinct_id, ', ' ORDER BY distinct_id) FROM person_map m WHERE m.person_id = p.person_id),
            strftime(p.created_at, '%Y-%m-%d %H:%M:%S')
         FROM persons p ORDER BY p.created_at, 4",
    )?;
    let persons: Vec<(String, bool, bool, String, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<duckdb::Result<_>>()?;
    let mut sst = conn.prepare(
        "SELECT strftime(started_at, '%m-%d %H:%M:%S'), strftime(ended_at, '%H:%M:%S'), duration_s, events,
            pageviews, coalesce(is_bounce::VARCHAR, '-'), source, coalesce(entry_url, '-'), coalesce(exit_url, '-')
         FROM sessions WHERE person_id = ? ORDER BY started_at, session_id",
    )?;
    let mut out = String::new();
    for (pid, identified, shared, ids, created) in persons {
        out.push_str(&format!(
            "person {{{ids}}} {}{} since {created}\n",
            if identified {
                "identified"
            } else {
                "anonymous"
            },
            if shared { ", shared device" } else { "" }
        ));
        let rows = sst.query_map([&pid], |r| {
            Ok(format!(
                "  {} → {} {:>5}s {:>2} events {:>2} pageviews bounce={} {} {} → {}\n",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?
            ))
        })?;
        for line in rows {
            out.push_str(&line?);
        }
    }
    Ok(out)
}

/// Summaries of the given persons, in the given order (one query, however many).
pub fn summaries(ws: &Workspace, ids: &[String]) -> Result<Vec<PersonSummary>> {
    let conn = ws.conn();
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE wanted_persons (pos BIGINT, person_id VARCHAR)",
    )?;
    {
        let mut app = conn.appender_to_catalog_and_db("wanted_persons", "temp", "main")?;
        for (i, id) in ids.iter().enumerate() {
            app.append_row(duckdb::params![i as i64, id])?;
        }
        app.flush()?;
    }
    let mut st = conn.prepare(&format!(
        "{SUMMARY_SELECT} JOIN temp.wanted_persons w ON w.person_id = p.person_id ORDER BY w.pos"
    ))?;
    let out = read_summaries(&mut st, [])?;
    conn.execute_batch("DROP TABLE temp.wanted_persons")?;
    Ok(out)
}
