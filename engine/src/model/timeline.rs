//! One person's events in order, a page at a time: what the session timeline viewer shows.
//! Each event carries the gap since the previous one, its page, its session (and whether it
//! opens one) and the identity merges it caused.

use serde::Serialize;
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// At most this many events per page.
pub const MAX_PAGE: usize = 5_000;

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TimelineEvent {
    /// 0-based position in the person's (or the session's) timeline.
    #[ts(type = "number")]
    pub index: i64,
    #[ts(type = "number")]
    pub event_seq: i64,
    pub ts_utc: String,
    /// Seconds since the previous event of the timeline (null for the first).
    pub gap_s: Option<f64>,
    pub event: String,
    pub kind: String,
    /// The page URL, by the vendor's key (`$current_url`, `page_location`, …).
    pub page: Option<String>,
    pub session_id: Option<String>,
    /// The first event of its session within this timeline.
    pub session_start: bool,
    pub distinct_id: Option<String>,
    /// Identity links this event carried, as "kind: from → into (outcome)".
    pub merges: Vec<String>,
    /// The event's properties as JSON text (rendered as text by the UI, never as HTML).
    pub properties: String,
    pub source_vendor: String,
    pub source_file: String,
    #[ts(type = "number")]
    pub source_line: i64,
}

/// Where each session begins in the timeline (for "next / previous session").
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TimelineSession {
    pub session_id: Option<String>,
    #[ts(type = "number")]
    pub start_index: i64,
    #[ts(type = "number")]
    pub events: i64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TimelinePage {
    pub person_id: String,
    /// Events in the whole timeline (not just this page).
    #[ts(type = "number")]
    pub total: i64,
    #[ts(type = "number")]
    pub offset: i64,
    pub events: Vec<TimelineEvent>,
    /// Every session of the timeline with its first index (only on the first page asked
    /// with `with_sessions`; empty otherwise).
    pub sessions: Vec<TimelineSession>,
    pub millis: f64,
}

/// The person's events (of one session when `session` is given), ordered by time then
/// ingestion order, from `offset`, at most `limit` (≤ [`MAX_PAGE`]).
pub fn page(
    ws: &Workspace,
    person_id: &str,
    session: Option<&str>,
    offset: usize,
    limit: usize,
    with_sessions: bool,
) -> Result<TimelinePage> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(EngineError::InvalidArgument(format!(
            "a timeline page holds 1 to {MAX_PAGE} events (asked for {limit})"
        )));
    }
    let started = std::time::Instant::now();
    // The person's events, numbered once (from the rebuild's `person_events`, sorted by
    // person); pages join back to `events` for the few rows shown.
    let base = "WITH t AS (
            SELECT pe.event_seq, pe.ts_utc, pe.session_id,
                   row_number() OVER w - 1 AS idx,
                   epoch_us(pe.ts_utc) - epoch_us(lag(pe.ts_utc) OVER w) AS gap_us,
                   pe.session_id IS DISTINCT FROM lag(pe.session_id) OVER w AS opens
            FROM person_events pe
            WHERE pe.person_id = ? AND (?::VARCHAR IS NULL OR pe.session_id = ?)
            WINDOW w AS (ORDER BY pe.ts_utc, pe.event_seq))";
    let conn = ws.conn();
    let total: i64 = conn.query_row(
        &format!("{base} SELECT count(*) FROM t"),
        duckdb::params![person_id, session, session],
        |r| r.get(0),
    )?;
    // 1. The page's positions, times, gaps and sessions from person_events.
    let from = offset as i64;
    let to = from + limit as i64;
    let mut st = conn.prepare(&format!(
        "{base} SELECT idx, event_seq, strftime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ'), gap_us / 1e6,
                session_id, opens AND session_id IS NOT NULL
         FROM t WHERE idx >= ? AND idx < ? ORDER BY idx"
    ))?;
    let mut events = st
        .query_map(
            duckdb::params![person_id, session, session, from, to],
            |r| {
                Ok(TimelineEvent {
                    index: r.get(0)?,
                    event_seq: r.get(1)?,
                    ts_utc: r.get(2)?,
                    gap_s: r.get(3)?,
                    event: String::new(),
                    kind: String::new(),
                    page: None,
                    session_id: r.get(4)?,
                    session_start: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                    distinct_id: None,
                    merges: Vec::new(),
                    properties: String::new(),
                    source_vendor: String::new(),
                    source_file: String::new(),
                    source_line: 0,
                })
            },
        )?
        .collect::<duckdb::Result<Vec<_>>>()?;
    // 2. Those events' details, by their sequence numbers (a bound IN list: the planner
    // prunes `events` by zone maps instead of hashing the whole table).
    if !events.is_empty() {
        let marks = vec!["?"; events.len()].join(", ");
        let mut st = conn.prepare(&format!(
            "SELECT event_seq, event_name, event_kind, sb_url(properties), distinct_id, event_uuid,
                    properties::VARCHAR, source_vendor, source_file, source_line
             FROM events WHERE event_seq IN ({marks})"
        ))?;
        let seqs: Vec<i64> = events.iter().map(|e| e.event_seq).collect();
        let mut details = std::collections::HashMap::new();
        let rows = st.query_map(duckdb::params_from_iter(seqs.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                (
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                ),
            ))
        })?;
        for row in rows {
            let (seq, d) = row?;
            details.insert(seq, d);
        }
        let mut uuids = Vec::new();
        for e in &mut events {
            if let Some((name, kind, page, distinct, uuid, props, vendor, file, line)) =
                details.remove(&e.event_seq)
            {
                e.event = name;
                e.kind = kind;
                e.page = page;
                e.distinct_id = distinct;
                e.properties = props;
                e.source_vendor = vendor;
                e.source_file = file;
                e.source_line = line;
                uuids.push(uuid);
            } else {
                uuids.push(String::new());
            }
        }
        // 3. The identity links those events carried.
        let marks = vec!["?"; uuids.len()].join(", ");
        let mut st = conn.prepare(&format!(
            "SELECT event_uuid, list(link_kind || ': ' || from_id || ' → ' || into_id || ' (' || outcome || ')' ORDER BY seq)
             FROM merge_log WHERE event_uuid IN ({marks}) GROUP BY event_uuid"
        ))?;
        let mut merges = std::collections::HashMap::new();
        let rows = st.query_map(duckdb::params_from_iter(uuids.iter()), |r| {
            Ok((r.get::<_, String>(0)?, crate::sql::text_list(r.get(1)?)))
        })?;
        for row in rows {
            let (u, m) = row?;
            merges.insert(u, m);
        }
        for (e, u) in events.iter_mut().zip(&uuids) {
            if let Some(m) = merges.get(u) {
                e.merges = m.clone();
            }
        }
    }
    let sessions = if with_sessions {
        let mut st = conn.prepare(&format!(
            "{base}, runs AS (
                SELECT idx, session_id, sum(CASE WHEN opens THEN 1 ELSE 0 END) OVER (ORDER BY idx) AS run FROM t)
             SELECT any_value(session_id), min(idx), count(*) FROM runs GROUP BY run ORDER BY min(idx)"
        ))?;
        let rows = st.query_map(duckdb::params![person_id, session, session], |r| {
            Ok(TimelineSession {
                session_id: r.get(0)?,
                start_index: r.get(1)?,
                events: r.get(2)?,
            })
        })?;
        rows.collect::<duckdb::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(TimelinePage {
        person_id: person_id.to_string(),
        total,
        offset: from,
        events,
        sessions,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_must_hold_at_least_one_event() {
        let ws = Workspace::in_memory().unwrap();
        let e = page(&ws, "p", None, 0, 0, false).unwrap_err();
        assert!(e.to_string().contains("1 to 5000"), "{e}");
    }
}
