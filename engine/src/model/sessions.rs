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

/// Per-session aggregates the splitter accumulates (the same columns the client-session
/// SQL computes), appended to `sess_base`.
struct Acc {
    id: String,
    person_key: Option<String>,
    device: Option<String>,
    started: i64,
    ended: i64,
    events: i64,
    pageviews: i64,
    autocaptures: i64,
    entry_seq: Option<i64>,
    exit_seq: Option<i64>,
    first_seq: i64,
}

fn flush(app: &mut duckdb::Appender<'_>, a: &Acc, source: &str) -> Result<()> {
    let ts = |us: i64| duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, us);
    app.append_row(duckdb::params![
        a.id,
        a.person_key,
        a.device,
        source,
        ts(a.started),
        ts(a.ended),
        a.events,
        a.pageviews,
        a.autocaptures,
        a.entry_seq,
        a.exit_seq,
        a.first_seq
    ])?;
    Ok(())
}

/// The client session key of an event `e` (the vendor's session id, scoped to the device
/// where the vendor's ids are not globally unique).
pub const CLIENT_KEY: &str = "e.source_vendor || ':' || CASE WHEN e.source_vendor IN ('amplitude', 'rudderstack')
                THEN coalesce(e.anon_id, e.distinct_id, '') || '#' || e.session_id ELSE e.session_id END";

/// Fill `event_sessions` and `temp.sess_base` (one row per session): client sessions
/// aggregated in SQL, inferred ones while they are split. Every session when `scoped` is
/// false; else only the client sessions in `temp.upd_client(k)` and the inferred sessions of
/// the devices in `temp.upd_devices(device)` (an incremental model pass).
pub fn assign(
    conn: &Connection,
    settings: &ModelSettings,
    person_key: &str,
    scoped: bool,
    reader: &Connection,
    ctx: &JobCtx,
    phase: &dyn Fn(&str),
) -> Result<()> {
    // The events stream from `reader`, a second connection, while the rows go into this
    // pass's transaction on `conn` through appenders: a statement on `conn` would end a
    // streaming result open on it. A scoped pass reads its scope from `conn`'s temp tables,
    // so it reads there, materialised (it is small).
    let src = if scoped { conn } else { reader };
    let open = |st: &mut duckdb::Statement<'_>, params: &[&dyn duckdb::ToSql]| -> Result<()> {
        if scoped {
            drop(st.query_arrow(params)?);
        } else {
            drop(st.stream_arrow(params)?);
        }
        Ok(())
    };
    // Whether the event has a page URL (entry and exit URLs are the first and last non-null).
    let has_url = "(sb_page(e.hot, e.page_url, e.properties) IS NOT NULL)";
    let client_key = CLIENT_KEY;
    let (client_scope, device_scope) = if scoped {
        (
            format!("{client_key} IN (SELECT k FROM temp.upd_client)"),
            "coalesce(e.anon_id, e.distinct_id) IN (SELECT device FROM temp.upd_devices)"
                .to_string(),
        )
    } else {
        ("TRUE".to_string(), "TRUE".to_string())
    };
    phase("client sessions");
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE sess_base (session_id VARCHAR, person_key VARCHAR, device_id VARCHAR,
             source VARCHAR, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, events BIGINT, pageviews BIGINT,
             autocaptures BIGINT, entry_seq BIGINT, exit_seq BIGINT, first_seq BIGINT);
         INSERT INTO event_sessions SELECT e.event_seq, {client_key} FROM events e WHERE e.session_id IS NOT NULL AND {client_scope};"
    ))?;
    // One row per client session, aggregated while the session's events stream by in time
    // order (a sort spills to disk; a hash aggregate of string states did not fit a memory
    // limit at scale). The person: of the latest event with a user id, else of the first
    // event that has a person key; the device: the first event's.
    let mut st = src.prepare(&format!(
        "SELECT {client_key} AS k, coalesce(e.anon_id, e.distinct_id), e.event_seq, epoch_us(e.ts_utc),
            {person_key}, e.event_kind = 'page', e.event_name = '$autocapture', {has_url},
            NOT sb_placeholder_id(e.user_id)
         FROM events e WHERE e.session_id IS NOT NULL AND {client_scope}
         ORDER BY k, e.ts_utc, e.event_seq"
    ))?;
    open(&mut st, &[])?;
    {
        let mut base = conn.appender_to_catalog_and_db("sess_base", "temp", "main")?;
        let mut acc: Option<Acc> = None;
        let mut first_key: Option<String> = None;
        let mut identified_key: Option<String> = None;
        let mut n = 0usize;
        while let Some(chunk) = st.step()? {
            use crate::sql::arrow_column;
            use duckdb::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
            use duckdb::arrow::datatypes::DataType;
            let batch = duckdb::arrow::record_batch::RecordBatch::from(&chunk);
            let ks = arrow_column::<StringArray>(&batch, 0, &DataType::Utf8)?;
            let devices = arrow_column::<StringArray>(&batch, 1, &DataType::Utf8)?;
            let seqs = arrow_column::<Int64Array>(&batch, 2, &DataType::Int64)?;
            let tss = arrow_column::<Int64Array>(&batch, 3, &DataType::Int64)?;
            let keys = arrow_column::<StringArray>(&batch, 4, &DataType::Utf8)?;
            let flag = |i: usize| arrow_column::<BooleanArray>(&batch, i, &DataType::Boolean);
            let (pages, autocaptures, urls, users) = (flag(5)?, flag(6)?, flag(7)?, flag(8)?);
            let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            let yes = |a: &BooleanArray, i: usize| !a.is_null(i) && a.value(i);
            for i in 0..batch.num_rows() {
                n += 1;
                let k = ks.value(i);
                let (seq, ts) = (seqs.value(i), tss.value(i));
                let key = text(&keys, i);
                if acc.as_ref().is_none_or(|a| a.id != k) {
                    if let Some(mut a) = acc.take() {
                        a.person_key = identified_key.take().or(first_key.take());
                        flush(&mut base, &a, "client")?;
                    }
                    first_key = None;
                    identified_key = None;
                    acc = Some(Acc {
                        id: k.to_string(),
                        person_key: None,
                        device: None,
                        started: ts,
                        ended: ts,
                        events: 0,
                        pageviews: 0,
                        autocaptures: 0,
                        entry_seq: None,
                        exit_seq: None,
                        first_seq: seq,
                    });
                }
                if let Some(a) = acc.as_mut() {
                    a.ended = ts;
                    a.events += 1;
                    a.pageviews += i64::from(yes(&pages, i));
                    a.autocaptures += i64::from(yes(&autocaptures, i));
                    if a.device.is_none() {
                        a.device = text(&devices, i);
                    }
                    if yes(&urls, i) {
                        a.entry_seq = a.entry_seq.or(Some(seq));
                        a.exit_seq = Some(seq);
                    }
                    if key.is_some() {
                        if yes(&users, i) {
                            identified_key.clone_from(&key);
                        }
                        if first_key.is_none() {
                            first_key = key;
                        }
                    }
                }
            }
            if n % 65_536 < batch.num_rows() {
                ctx.cancel.check()?;
            }
        }
        if let Some(mut a) = acc.take() {
            a.person_key = identified_key.take().or(first_key.take());
            flush(&mut base, &a, "client")?;
        }
        base.flush()?;
    }
    ctx.cancel.check()?;
    phase("inferred sessions");
    let rules = SplitRules::from_settings(settings);
    let mut st = src.prepare(&format!(
        "SELECT e.event_seq, coalesce(e.anon_id, e.distinct_id) AS device, epoch_us(e.ts_utc),
            CASE WHEN ? THEN CAST(timezone(?, e.ts_utc) AS DATE) - DATE '1970-01-01' ELSE 0 END,
            CASE WHEN ? THEN nullif(concat_ws('|', e.properties ->> '$.utm_source', e.properties ->> '$.utm_medium',
                e.properties ->> '$.utm_campaign', e.properties ->> '$.gclid'), '') END,
            {person_key}, e.event_kind = 'page', e.event_name = '$autocapture', {has_url},
            NOT sb_placeholder_id(e.user_id)
         FROM events e
         WHERE e.session_id IS NULL AND coalesce(e.anon_id, e.distinct_id) IS NOT NULL AND {device_scope}
         ORDER BY device, e.ts_utc, e.event_seq"
    ))?;
    // Streamed chunk by chunk: a materialised result would hold every event's row in memory
    // at once (tens of GB at 100M events), beyond DuckDB's memory limit.
    open(
        &mut st,
        duckdb::params![
            settings.split_at_midnight,
            settings.time_zone,
            settings.split_on_campaign
        ],
    )?;
    let mut app = conn.appender("event_sessions")?;
    let mut base = conn.appender_to_catalog_and_db("sess_base", "temp", "main")?;
    let mut split = Splitter::new(rules);
    let mut acc: Option<Acc> = None;
    let mut n = 0usize;
    while let Some(chunk) = st.step()? {
        use crate::sql::arrow_column;
        use duckdb::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
        use duckdb::arrow::datatypes::DataType;
        let batch = duckdb::arrow::record_batch::RecordBatch::from(&chunk);
        let seq = arrow_column::<Int64Array>(&batch, 0, &DataType::Int64)?;
        let device = arrow_column::<StringArray>(&batch, 1, &DataType::Utf8)?;
        let ts = arrow_column::<Int64Array>(&batch, 2, &DataType::Int64)?;
        let day = arrow_column::<Int64Array>(&batch, 3, &DataType::Int64)?;
        let campaign = arrow_column::<StringArray>(&batch, 4, &DataType::Utf8)?;
        let keys = arrow_column::<StringArray>(&batch, 5, &DataType::Utf8)?;
        let flag = |i: usize| arrow_column::<BooleanArray>(&batch, i, &DataType::Boolean);
        let (pages, autocaptures, urls, users) = (flag(6)?, flag(7)?, flag(8)?, flag(9)?);
        let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        let yes = |a: &BooleanArray, i: usize| !a.is_null(i) && a.value(i);
        for i in 0..batch.num_rows() {
            n += 1;
            let e = SplitEvent {
                event_seq: seq.value(i),
                device: device.value(i).to_string(),
                ts_us: ts.value(i),
                day: day.value(i),
                campaign: text(&campaign, i),
            };
            let (key, page, autocapture, url, user) = (
                text(&keys, i),
                yes(&pages, i),
                yes(&autocaptures, i),
                yes(&urls, i),
                yes(&users, i),
            );
            let id = split.next(&e);
            app.append_row(duckdb::params![e.event_seq, id])?;
            match &mut acc {
                Some(a) if a.id == id => {
                    a.ended = e.ts_us;
                    a.events += 1;
                    a.pageviews += i64::from(page);
                    a.autocaptures += i64::from(autocapture);
                    // The session belongs to the latest identified user on it, else to whoever
                    // began it.
                    if user && key.is_some() {
                        a.person_key = key;
                    }
                    if url {
                        a.entry_seq = a.entry_seq.or(Some(e.event_seq));
                        a.exit_seq = Some(e.event_seq);
                    }
                }
                _ => {
                    if let Some(a) = acc.take() {
                        flush(&mut base, &a, "inferred")?;
                    }
                    acc = Some(Acc {
                        id,
                        person_key: key,
                        device: Some(e.device.clone()),
                        started: e.ts_us,
                        ended: e.ts_us,
                        events: 1,
                        pageviews: i64::from(page),
                        autocaptures: i64::from(autocapture),
                        entry_seq: url.then_some(e.event_seq),
                        exit_seq: url.then_some(e.event_seq),
                        first_seq: e.event_seq,
                    });
                }
            }
        }
        if n % 65_536 < batch.num_rows() {
            ctx.cancel.check()?;
        }
    }
    if let Some(a) = acc.take() {
        flush(&mut base, &a, "inferred")?;
    }
    app.flush()?;
    base.flush()?;
    Ok(())
}
