//! Session assignment (semantics.md §2.6). Events that carry the vendor's client session id
//! keep it (scoped to the device where the vendor's ids are not globally unique: Amplitude
//! and RudderStack use the session's start time). Other events are split per device or
//! anonymous id: a new session when the gap since the previous event is strictly longer than
//! the timeout, when the session would last strictly longer than the maximum, and, if
//! enabled, at local midnight or when the campaign changes.

use duckdb::Connection;

use super::ModelSettings;
use crate::jobs::JobCtx;
use crate::Result;

/// One event as the splitter sees it.
#[derive(Debug, Clone)]
pub struct SplitEvent {
    pub event_seq: i64,
    pub device: String,
    pub ts_us: i64,
    /// Local calendar day (days since 1970-01-01 in the workspace time zone).
    pub day: i64,
    /// utm source / medium / campaign (and gclid), when the event carries any.
    pub campaign: Option<String>,
}

/// The rules that cut a device's event stream into sessions.
#[derive(Debug, Clone, Copy)]
pub struct SplitRules {
    pub timeout_us: i64,
    pub max_length_us: i64,
    pub split_at_midnight: bool,
    pub split_on_campaign: bool,
}

impl SplitRules {
    pub fn from_settings(s: &ModelSettings) -> Self {
        SplitRules {
            timeout_us: s.session_timeout_seconds * 1_000_000,
            max_length_us: s.session_max_length_seconds * 1_000_000,
            split_at_midnight: s.split_at_midnight,
            split_on_campaign: s.split_on_campaign,
        }
    }
}

/// Incremental splitter over events ordered by (device, time, sequence).
pub struct Splitter {
    rules: SplitRules,
    current: Option<(String, i64, i64, i64, Option<String>)>, // device, start, last, day, campaign
}

impl Splitter {
    pub fn new(rules: SplitRules) -> Self {
        Splitter {
            rules,
            current: None,
        }
    }

    /// The session id of the next event.
    pub fn next(&mut self, e: &SplitEvent) -> String {
        let r = self.rules;
        let new = match &self.current {
            None => true,
            Some((dev, start, last, day, campaign)) => {
                *dev != e.device
                    || e.ts_us - last > r.timeout_us
                    || e.ts_us - start > r.max_length_us
                    || (r.split_at_midnight && e.day != *day)
                    || (r.split_on_campaign
                        && e.campaign.is_some()
                        && e.campaign.as_deref() != campaign.as_deref())
            }
        };
        if new {
            self.current = Some((
                e.device.clone(),
                e.ts_us,
                e.ts_us,
                e.day,
                e.campaign.clone(),
            ));
        } else if let Some(c) = &mut self.current {
            c.2 = e.ts_us;
            c.3 = e.day;
            if e.campaign.is_some() {
                c.4 = e.campaign.clone();
            }
        }
        match &self.current {
            Some((dev, start, ..)) => format!("inferred:{dev}@{start}"),
            None => format!("inferred:{}@{}", e.device, e.ts_us),
        }
    }
}

/// Fill `event_sessions` for every event.
pub fn assign(conn: &Connection, settings: &ModelSettings, ctx: &JobCtx) -> Result<()> {
    conn.execute_batch(
        "INSERT INTO event_sessions
         SELECT event_seq, source_vendor || ':' || CASE WHEN source_vendor IN ('amplitude', 'rudderstack')
                THEN coalesce(anon_id, distinct_id, '') || '#' || session_id ELSE session_id END
         FROM events WHERE session_id IS NOT NULL",
    )?;
    let rules = SplitRules::from_settings(settings);
    let mut st = conn.prepare(
        "SELECT event_seq, coalesce(anon_id, distinct_id) AS device, epoch_us(ts_utc),
            CASE WHEN ? THEN CAST(timezone(?, ts_utc) AS DATE) - DATE '1970-01-01' ELSE 0 END,
            CASE WHEN ? THEN nullif(concat_ws('|', properties ->> '$.utm_source', properties ->> '$.utm_medium',
                properties ->> '$.utm_campaign', properties ->> '$.gclid'), '') END
         FROM events
         WHERE session_id IS NULL AND coalesce(anon_id, distinct_id) IS NOT NULL
         ORDER BY device, ts_utc, event_seq",
    )?;
    let rows = st.query_map(
        duckdb::params![
            settings.split_at_midnight,
            settings.time_zone,
            settings.split_on_campaign
        ],
        |r| {
            Ok(SplitEvent {
                event_seq: r.get(0)?,
                device: r.get(1)?,
                ts_us: r.get(2)?,
                day: r.get(3)?,
                campaign: r.get(4)?,
            })
        },
    )?;
    let mut app = conn.appender("event_sessions")?;
    let mut split = Splitter::new(rules);
    for (n, e) in rows.enumerate() {
        let e = e?;
        let id = split.next(&e);
        app.append_row(duckdb::params![e.event_seq, id])?;
        if n % 65_536 == 0 {
            ctx.cancel.check()?;
        }
    }
    app.flush()?;
    Ok(())
}
