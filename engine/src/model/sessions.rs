//! Session assignment (semantics.md §2.6). Events that carry the vendor's client session id
//! keep it (scoped to the device where the vendor's ids are not globally unique: Amplitude
//! and RudderStack use the session's start time). Other events are split per device or
//! anonymous id: a new session when the gap since the previous event is strictly longer than
//! the timeout, when the session would last strictly longer than the maximum, and, if
//! enabled, at local midnight or when the campaign changes.

use duckdb::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
use duckdb::arrow::datatypes::DataType;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;

use super::ModelSettings;
use crate::jobs::JobCtx;
use crate::sql::arrow_column;
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

impl Acc {
    /// A session that begins with the event at `ts` (µs) numbered `seq`; [`Acc::add`] counts
    /// that event too.
    fn new(id: String, device: Option<String>, ts: i64, seq: i64) -> Self {
        Acc {
            id,
            person_key: None,
            device,
            started: ts,
            ended: ts,
            events: 0,
            pageviews: 0,
            autocaptures: 0,
            entry_seq: None,
            exit_seq: None,
            first_seq: seq,
        }
    }

    /// Count event `i` of a batch (events come in time order).
    fn add(&mut self, ts: i64, seq: i64, t: &Tail, i: usize) {
        self.ended = ts;
        self.events += 1;
        self.pageviews += i64::from(yes(&t.pages, i));
        self.autocaptures += i64::from(yes(&t.autocaptures, i));
        if yes(&t.urls, i) {
            self.entry_seq = self.entry_seq.or(Some(seq));
            self.exit_seq = Some(seq);
        }
    }
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
    // Whether the event has a page URL (entry and exit URLs are the first and last non-null).
    let has_url = "(sb_page(e.hot, e.page_url, e.properties) IS NOT NULL)";
    // The columns both session queries end with (see [`Tail`]).
    let tail = format!(
        "{person_key}, e.event_kind = 'page', e.event_name = '$autocapture', {has_url},
         NOT sb_placeholder_id(e.user_id)"
    );
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
        "SELECT {client_key} AS k, coalesce(e.anon_id, e.distinct_id), e.event_seq, epoch_us(e.ts_utc), {tail}
         FROM events e WHERE e.session_id IS NOT NULL AND {client_scope}
         ORDER BY k, e.ts_utc, e.event_seq"
    ))?;
    {
        let mut base = conn.appender_to_catalog_and_db("sess_base", "temp", "main")?;
        let mut acc: Option<Acc> = None;
        let mut first_key: Option<String> = None;
        let mut identified_key: Option<String> = None;
        each_batch(&mut st, &[], scoped, ctx, |batch| {
            let ks = arrow_column::<StringArray>(batch, 0, &DataType::Utf8)?;
            let devices = arrow_column::<StringArray>(batch, 1, &DataType::Utf8)?;
            let seqs = arrow_column::<Int64Array>(batch, 2, &DataType::Int64)?;
            let tss = arrow_column::<Int64Array>(batch, 3, &DataType::Int64)?;
            let t = Tail::read(batch, 4)?;
            for i in 0..batch.num_rows() {
                let k = ks.value(i);
                let (seq, ts) = (seqs.value(i), tss.value(i));
                let a = match &mut acc {
                    Some(a) if a.id == k => a,
                    _ => {
                        if let Some(mut a) = acc.take() {
                            a.person_key = identified_key.take().or(first_key.take());
                            flush(&mut base, &a, "client")?;
                        }
                        first_key = None;
                        identified_key = None;
                        acc.insert(Acc::new(k.to_string(), None, ts, seq))
                    }
                };
                a.add(ts, seq, &t, i);
                if a.device.is_none() && !devices.is_null(i) {
                    a.device = Some(devices.value(i).to_string());
                }
                if let Some(key) = t.key(i) {
                    if t.user(i) && identified_key.as_deref() != Some(key) {
                        identified_key = Some(key.to_string());
                    }
                    if first_key.is_none() {
                        first_key = Some(key.to_string());
                    }
                }
            }
            Ok(())
        })?;
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
            {tail}
         FROM events e
         WHERE e.session_id IS NULL AND coalesce(e.anon_id, e.distinct_id) IS NOT NULL AND {device_scope}
         ORDER BY device, e.ts_utc, e.event_seq"
    ))?;
    let mut app = conn.appender("event_sessions")?;
    let mut base = conn.appender_to_catalog_and_db("sess_base", "temp", "main")?;
    let mut split = Splitter::new(rules);
    let mut acc: Option<Acc> = None;
    let params = duckdb::params![
        settings.split_at_midnight,
        settings.time_zone,
        settings.split_on_campaign
    ];
    each_batch(&mut st, params, scoped, ctx, |batch| {
        let seq = arrow_column::<Int64Array>(batch, 0, &DataType::Int64)?;
        let device = arrow_column::<StringArray>(batch, 1, &DataType::Utf8)?;
        let ts = arrow_column::<Int64Array>(batch, 2, &DataType::Int64)?;
        let day = arrow_column::<Int64Array>(batch, 3, &DataType::Int64)?;
        let campaign = arrow_column::<StringArray>(batch, 4, &DataType::Utf8)?;
        let t = Tail::read(batch, 5)?;
        for i in 0..batch.num_rows() {
            let e = SplitEvent {
                event_seq: seq.value(i),
                device: device.value(i).to_string(),
                ts_us: ts.value(i),
                day: day.value(i),
                campaign: (!campaign.is_null(i)).then(|| campaign.value(i).to_string()),
            };
            let id = split.next(&e);
            app.append_row(duckdb::params![e.event_seq, id])?;
            let a = match &mut acc {
                Some(a) if a.id == id => {
                    // The session belongs to the latest identified user on it, else to
                    // whoever began it.
                    if t.user(i) {
                        if let Some(key) = t.key(i) {
                            a.person_key = Some(key.to_string());
                        }
                    }
                    a
                }
                _ => {
                    if let Some(a) = acc.take() {
                        flush(&mut base, &a, "inferred")?;
                    }
                    let mut a = Acc::new(id, Some(e.device), e.ts_us, e.event_seq);
                    a.person_key = t.key(i).map(str::to_string);
                    acc.insert(a)
                }
            };
            a.add(e.ts_us, e.event_seq, &t, i);
        }
        Ok(())
    })?;
    if let Some(a) = acc.take() {
        flush(&mut base, &a, "inferred")?;
    }
    app.flush()?;
    base.flush()?;
    Ok(())
}

/// Run `st` with `params` and hand its result to `f` one Arrow batch at a time, checking
/// for cancel about every 64k rows. Streamed (DuckDB produces chunks as they are asked
/// for: a materialised result would hold every event in memory at once, tens of GB at 100M
/// events) unless `materialise`, for a statement on the connection the caller writes on.
fn each_batch(
    st: &mut duckdb::Statement<'_>,
    params: &[&dyn duckdb::ToSql],
    materialise: bool,
    ctx: &JobCtx,
    mut f: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    if materialise {
        drop(st.query_arrow(params)?);
    } else {
        drop(st.stream_arrow(params)?);
    }
    let mut since_check = 0usize;
    while let Some(chunk) = st.step()? {
        let batch = RecordBatch::from(&chunk);
        f(&batch)?;
        since_check += batch.num_rows();
        if since_check >= 65_536 {
            since_check = 0;
            ctx.cancel.check()?;
        }
    }
    Ok(())
}

/// The columns both session queries end with, from a given column on: the person key, then
/// whether the event is a pageview, an autocapture, has a page URL, and has a real user id.
struct Tail {
    keys: StringArray,
    pages: BooleanArray,
    autocaptures: BooleanArray,
    urls: BooleanArray,
    users: BooleanArray,
}

impl Tail {
    fn read(batch: &RecordBatch, first: usize) -> Result<Self> {
        let flag = |i: usize| arrow_column::<BooleanArray>(batch, first + i, &DataType::Boolean);
        Ok(Tail {
            keys: arrow_column::<StringArray>(batch, first, &DataType::Utf8)?,
            pages: flag(1)?,
            autocaptures: flag(2)?,
            urls: flag(3)?,
            users: flag(4)?,
        })
    }

    fn key(&self, i: usize) -> Option<&str> {
        (!self.keys.is_null(i)).then(|| self.keys.value(i))
    }

    fn user(&self, i: usize) -> bool {
        yes(&self.users, i)
    }
}

/// A boolean column's value, NULL counting as false.
fn yes(a: &BooleanArray, i: usize) -> bool {
    !a.is_null(i) && a.value(i)
}
