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

/// One event's properties as JSON text (the timeline's inspector; rendered as text by the
/// UI, never as HTML).
pub fn event_properties(ws: &Workspace, event_seq: i64) -> Result<String> {
    let mut st = ws
        .conn()
        .prepare("SELECT properties::VARCHAR FROM events WHERE event_seq = ?")?;
    let mut rows = st.query([event_seq])?;
    match rows.next()? {
        Some(r) => Ok(r.get(0)?),
        None => Err(EngineError::InvalidArgument(format!(
            "no event has the sequence number {event_seq}"
        ))),
    }
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
            SELECT pe.*,
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
    // Everything a row shows was stored with the person's events at rebuild time, so a page
    // reads one person's contiguous rows; properties come one event at a time
    // ([`event_properties`]) for the inspector.
    let from = offset as i64;
    let to = from + limit as i64;
    let mut st = conn.prepare(&format!(
        "{base} SELECT t.idx, t.event_seq, strftime(t.ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ'), t.gap_us / 1e6,
                t.event_name, t.event_kind, t.page, t.session_id,
                t.opens AND t.session_id IS NOT NULL, t.distinct_id, coalesce(t.merges, []),
                t.source_vendor, t.source_file, t.source_line
         FROM t WHERE t.idx >= ? AND t.idx < ? ORDER BY t.idx"
    ))?;
    let events = st
        .query_map(
            duckdb::params![person_id, session, session, from, to],
            |r| {
                Ok(TimelineEvent {
                    index: r.get(0)?,
                    event_seq: r.get(1)?,
                    ts_utc: r.get(2)?,
                    gap_s: r.get(3)?,
                    event: r.get(4)?,
                    kind: r.get(5)?,
                    page: r.get(6)?,
                    session_id: r.get(7)?,
                    session_start: r.get::<_, Option<bool>>(8)?.unwrap_or(false),
                    distinct_id: r.get(9)?,
                    merges: crate::sql::text_list(r.get(10)?),
                    source_vendor: r.get(11)?,
                    source_file: r.get(12)?,
                    source_line: r.get(13)?,
                })
            },
        )?
        .collect::<duckdb::Result<Vec<_>>>()?;
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
