//! The fast path for the commonest export: PostHog events as JSON lines (plain or gzip).
//!
//! Lines are read once, in order, on the calling thread; batches of them are parsed on every
//! core with `serde_json` (borrowing from the line: the properties object is kept as the text
//! it arrived as, never rebuilt), mapped onto the canonical columns and appended to
//! `stg_events` as Arrow batches. The vendor's SQL never sees those records.
//!
//! The fast mapper only maps what it is certain of. A record it is not sure about (invalid
//! JSON or UTF-8, a missing, empty or oddly typed field, an id with surrounding blanks, a time
//! written in an unusual way, a `$groupidentify`, a repeated key, ...) is staged in `stg_raw`
//! exactly as the general reader stages it and mapped afterwards by the vendor's SQL
//! (`posthog_events.sql`), so every reject reason and every edge case keeps one definition.
//! A test maps the same files both ways and compares every column.
//!
//! Why `serde_json` and not a SIMD parser: the record is parsed once into borrowed slices
//! (`RawValue`), so most of the bytes (the properties) are only validated and skipped;
//! `serde_json` is already a dependency and is exactly RFC 8259 (what it refuses goes to the
//! SQL path, which refuses or accepts it as before). Measured figures are in the README.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::BufReader;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::reader::{self, Decoded, Line, ProgressLabel, ReadStats};
use super::sniff::Compression;
use crate::jobs::JobCtx;
use crate::{EngineError, Result};

/// The record shapes with a fast mapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// PostHog batch export, events model (`posthog_events.sql`).
    PostHogEvents,
}

/// Lines per batch handed to a parsing thread, and bytes at which a batch is cut earlier.
const BATCH_LINES: usize = 8192;
const BATCH_BYTES: usize = 8 << 20;

/// A batch of records for a parsing thread; `seq` orders the batches.
struct Task {
    seq: u64,
    data: Vec<u8>,
    /// (line number, start, end) of each record in `data`.
    lines: Vec<(i64, usize, usize)>,
}

impl Task {
    fn new(seq: u64) -> Self {
        Task {
            seq,
            data: Vec::with_capacity(BATCH_BYTES + (1 << 16)),
            lines: Vec::with_capacity(BATCH_LINES),
        }
    }

    fn full(&self) -> bool {
        self.lines.len() >= BATCH_LINES || self.data.len() >= BATCH_BYTES
    }
}

/// A parsed batch: the mapped rows, and the records left for the vendor's SQL.
struct Done {
    seq: u64,
    data: Vec<u8>,
    batch: std::result::Result<Option<RecordBatch>, String>,
    /// Records left for the vendor's SQL: (line number, start, end) in `data`.
    deferred: Vec<(i64, usize, usize)>,
}

/// The calling thread's end of the pipeline: parsed batches come back in any order and are
/// appended in file order (a reorder buffer keyed by batch number).
struct Sink<'c, 'p> {
    path: &'p Path,
    raw: duckdb::Appender<'c>,
    events: duckdb::Appender<'c>,
    rx: mpsc::Receiver<Done>,
    pending: BTreeMap<u64, Done>,
    /// The number of the next batch to append.
    next: u64,
}

impl Sink<'_, '_> {
    fn append(&mut self, d: Done) -> Result<()> {
        let batch = d.batch.map_err(|e| {
            EngineError::unreadable(self.path, format!("its records could not be staged ({e})"))
        })?;
        if let Some(b) = batch {
            self.events.append_record_batch(b)?;
        }
        for &(line, a, b) in &d.deferred {
            reader::append_record(&mut self.raw, line, &d.data[a..b], None)?;
        }
        Ok(())
    }

    /// Append the batches that are back, in order; with `until`, wait until every batch
    /// before that number is appended.
    fn drain(&mut self, until: Option<u64>) -> Result<()> {
        loop {
            while let Some(d) = self.pending.remove(&self.next) {
                self.next += 1;
                self.append(d)?;
            }
            let got = match until {
                Some(n) if self.next < n => Some(self.rx.recv().map_err(|_| {
                    EngineError::unreadable(
                        self.path,
                        "a parsing thread stopped before the file was read",
                    )
                })?),
                _ => self.rx.try_recv().ok(),
            };
            match got {
                Some(d) => {
                    self.pending.insert(d.seq, d);
                }
                None => return Ok(()),
            }
        }
    }
}

/// Stream `path` (JSON lines) into the staging tables `stg_events` (records mapped here) and
/// `stg_raw` (records left for the vendor's SQL), which the caller has created.
pub fn stage(
    conn: &Connection,
    path: &Path,
    compression: Compression,
    shape: Shape,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let tap = reader::open_tap(path)?;
    let mut rdr = BufReader::with_capacity(1 << 20, Decoded::new(tap, compression));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16);
    // Bounded: at most a few batches are in flight, whatever the file holds.
    let (task_tx, task_rx) = mpsc::sync_channel::<Task>(workers);
    let task_rx = Arc::new(Mutex::new(task_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut sink = Sink {
        path,
        raw: conn.appender_to_catalog_and_db("stg_raw", "temp", "main")?,
        events: conn.appender_to_catalog_and_db("stg_events", "temp", "main")?,
        rx: done_rx,
        pending: BTreeMap::new(),
        next: 0,
    };
    let mut records: u64 = 0;

    std::thread::scope(|s| -> Result<()> {
        for _ in 0..workers {
            let rx = Arc::clone(&task_rx);
            let tx = done_tx.clone();
            s.spawn(move || loop {
                let task = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                let Ok(task) = task else { return };
                let seq = task.seq;
                // A bug in the mapper fails this file's import, not the process.
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    map_task(shape, task)
                }))
                .unwrap_or_else(|_| Done {
                    seq,
                    data: Vec::new(),
                    batch: Err("the record mapper failed on this batch".into()),
                    deferred: Vec::new(),
                });
                if tx.send(done).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);

        // Batches sent so far; the one being filled is number `sent`.
        let mut sent = 0u64;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut line_no: i64 = 0;
        let mut task = Task::new(sent);
        let read = (|| -> Result<()> {
            let send = |task: Task| {
                task_tx
                    .send(task)
                    .map_err(|_| EngineError::unreadable(path, "a parsing thread stopped"))
            };
            loop {
                let line = reader::next_line(&mut rdr, &mut buf, &mut line_no)
                    .map_err(|e| reader::read_error(path, compression, records, e))?;
                let Some(line) = line else { break };
                records += 1;
                match line {
                    Line::Whole(bytes) => {
                        let start = task.data.len();
                        task.data.extend_from_slice(bytes);
                        task.lines.push((line_no, start, task.data.len()));
                    }
                    too_long @ Line::TooLong(..) => {
                        reader::append_line(&mut sink.raw, line_no, too_long, None)?;
                    }
                }
                let last = label.done(records);
                if task.full() || last {
                    sent += 1;
                    send(std::mem::replace(&mut task, Task::new(sent)))?;
                    ctx.cancel.check()?;
                    sink.drain(None)?;
                    let bytes = rdr.get_ref().tap().bytes;
                    reader::report(ctx, label, "reading", bytes, records, false);
                }
                if last {
                    break;
                }
            }
            if !task.lines.is_empty() {
                sent += 1;
                send(std::mem::replace(&mut task, Task::new(sent)))?;
            }
            Ok(())
        })();
        // Closing the channel lets the threads finish; every sent batch is appended.
        drop(task_tx);
        read?;
        sink.drain(Some(sent))
    })?;
    sink.raw.flush()?;
    sink.events.flush()?;
    drop(sink);
    let bytes = rdr.get_ref().tap().bytes;
    reader::report(ctx, label, "reading", bytes, records, true);
    let sha256 = rdr
        .into_inner()
        .into_tap()
        .finish()
        .map_err(|e| EngineError::io(path, e))?;
    Ok(ReadStats {
        records,
        sha256,
        columns: None,
        note: None,
    })
}

fn schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let t = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("line", DataType::Int64, false),
        s("event_uuid"),
        s("dedupe_key"),
        s("event_name"),
        s("event_kind"),
        t("ts_utc"),
        t("received_at_utc"),
        s("distinct_id"),
        s("user_id"),
        s("anon_id"),
        s("session_id"),
        s("vendor_person_id"),
        s("properties"),
        s("person_properties"),
        s("groups"),
        s("reject_reason"),
        s("page_url"),
        s("browser"),
        s("os"),
        s("device_type"),
        Field::new("hot", DataType::Boolean, true),
    ]))
}

/// Builders for one batch of `stg_events` rows.
struct Columns {
    line: Int64Builder,
    uuid: StringBuilder,
    dedupe: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    received: TimestampMicrosecondBuilder,
    distinct_id: StringBuilder,
    user_id: StringBuilder,
    anon_id: StringBuilder,
    session_id: StringBuilder,
    person_id: StringBuilder,
    properties: StringBuilder,
    person_properties: StringBuilder,
    groups: StringBuilder,
    reason: StringBuilder,
    page_url: StringBuilder,
    browser: StringBuilder,
    os: StringBuilder,
    device_type: StringBuilder,
    hot: BooleanBuilder,
}

impl Columns {
    fn new(rows: usize, bytes: usize) -> Self {
        let s = |b: usize| StringBuilder::with_capacity(rows, b);
        let t = || TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        Columns {
            line: Int64Builder::with_capacity(rows),
            uuid: s(rows * 36),
            dedupe: s(rows * 36),
            name: s(rows * 12),
            kind: s(rows * 5),
            ts: t(),
            received: t(),
            distinct_id: s(rows * 36),
            user_id: s(rows * 16),
            anon_id: s(rows * 36),
            session_id: s(rows * 36),
            person_id: s(0),
            properties: s(bytes),
            person_properties: s(0),
            groups: s(0),
            reason: s(0),
            page_url: s(rows * 32),
            browser: s(rows * 8),
            os: s(rows * 8),
            device_type: s(rows * 8),
            hot: BooleanBuilder::with_capacity(rows),
        }
    }

    fn push(&mut self, line: i64, r: &Mapped<'_>) {
        self.line.append_value(line);
        self.uuid.append_value(&r.uuid);
        self.dedupe.append_value(&r.uuid);
        self.name.append_value(&r.event);
        self.kind.append_value(r.kind);
        self.ts.append_value(r.ts);
        self.received.append_option(r.received);
        self.distinct_id.append_value(&r.distinct_id);
        self.user_id.append_option(r.user_id.as_deref());
        self.anon_id.append_option(r.anon_id.as_deref());
        self.session_id.append_option(r.session_id.as_deref());
        self.person_id.append_option(r.person_id.as_deref());
        self.properties.append_value(&r.properties);
        self.person_properties
            .append_option(r.person_properties.as_deref());
        self.groups.append_option(r.groups.as_deref());
        self.reason.append_null();
        self.page_url.append_option(r.page_url.as_deref());
        self.browser.append_option(r.browser.as_deref());
        self.os.append_option(r.os.as_deref());
        self.device_type.append_option(r.device_type.as_deref());
        self.hot.append_value(true);
    }

    fn finish(mut self) -> std::result::Result<RecordBatch, String> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.line.finish()),
            Arc::new(self.uuid.finish()),
            Arc::new(self.dedupe.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received.finish()),
            Arc::new(self.distinct_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.anon_id.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.person_id.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.person_properties.finish()),
            Arc::new(self.groups.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.page_url.finish()),
            Arc::new(self.browser.finish()),
            Arc::new(self.os.finish()),
            Arc::new(self.device_type.finish()),
            Arc::new(self.hot.finish()),
        ];
        RecordBatch::try_new(schema(), cols).map_err(|e| e.to_string())
    }
}

fn map_task(shape: Shape, task: Task) -> Done {
    let mut cols = Columns::new(task.lines.len(), task.data.len());
    let mut deferred = Vec::new();
    let mut mapped = 0usize;
    for &(line, a, b) in &task.lines {
        let rec = &task.data[a..b];
        let m = match shape {
            Shape::PostHogEvents => map_posthog(rec),
        };
        match m {
            Some(m) => {
                mapped += 1;
                cols.push(line, &m);
            }
            None => deferred.push((line, a, b)),
        }
    }
    let batch = if mapped == 0 {
        Ok(None)
    } else {
        cols.finish().map(Some)
    };
    Done {
        seq: task.seq,
        data: task.data,
        batch,
        deferred,
    }
}

/// One PostHog record mapped onto the canonical columns (those the fast path fills).
#[derive(Debug, PartialEq)]
pub struct Mapped<'a> {
    pub uuid: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub kind: &'static str,
    pub ts: i64,
    pub received: Option<i64>,
    pub distinct_id: Cow<'a, str>,
    pub user_id: Option<Cow<'a, str>>,
    pub anon_id: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub person_id: Option<Cow<'a, str>>,
    pub properties: Cow<'a, str>,
    pub person_properties: Option<Cow<'a, str>>,
    pub groups: Option<String>,
    /// The hot columns: `sb_url(properties)` and `properties ->> '$."$browser"'` etc.
    pub page_url: Option<Cow<'a, str>>,
    pub browser: Option<Cow<'a, str>>,
    pub os: Option<Cow<'a, str>>,
    pub device_type: Option<Cow<'a, str>>,
}

/// A JSON text that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of an object that a mapper reads, by name, as raw JSON; the rest are skipped.
/// A name given twice marks the object `repeated` (the SQL path decides those).
struct Picked<'a, const N: usize> {
    values: [Option<&'a RawValue>; N],
    repeated: bool,
}

struct PickVisitor<const N: usize> {
    names: &'static [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for PickVisitor<N> {
    type Value = Picked<'de, N>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Picked {
            values: [None; N],
            repeated: false,
        };
        while let Some(k) = m.next_key::<Text<'de>>()? {
            match self.names.iter().position(|n| *n == k.0) {
                Some(i) => {
                    let v: &'de RawValue = m.next_value()?;
                    if out.values[i].is_some() {
                        out.repeated = true;
                    }
                    out.values[i] = Some(v);
                }
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

fn pick<'a, const N: usize>(
    text: &'a str,
    names: &'static [&'static str; N],
) -> Option<Picked<'a, N>> {
    let mut d = serde_json::Deserializer::from_str(text);
    let p = d.deserialize_map(PickVisitor { names }).ok()?;
    d.end().ok()?;
    Some(p)
}

/// A member's JSON value, by its type.
enum J<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Obj(&'a str),
    Other,
}

fn classify(v: Option<&RawValue>) -> Option<J<'_>> {
    let Some(v) = v else {
        return Some(J::Absent);
    };
    let t = v.get().trim_start();
    Some(match t.as_bytes().first() {
        Some(b'"') => J::Str(serde_json::from_str::<Text<'_>>(t).ok()?.0),
        Some(b'n') => J::Null,
        Some(b'{') => J::Obj(t),
        _ => J::Other,
    })
}

/// `sb_idv` where the fast path is sure: absent, null and "" are no id; a string is the id
/// when it has no surrounding blanks and does not start like JSON. Anything else: None
/// (left to the SQL).
fn id<'a>(j: J<'a>) -> Option<Option<Cow<'a, str>>> {
    match j {
        J::Absent | J::Null => Some(None),
        J::Str(s) if s.is_empty() => Some(None),
        J::Str(s) => {
            let first = s.chars().next()?;
            let last = s.chars().next_back()?;
            if first == '{' || first == '[' || first.is_whitespace() || last.is_whitespace() {
                None
            } else {
                Some(Some(s))
            }
        }
        _ => None,
    }
}

const TOP: [&str; 8] = [
    "uuid",
    "event",
    "distinct_id",
    "timestamp",
    "created_at",
    "properties",
    "person_properties",
    "person_id",
];

const PROPS: [&str; 17] = [
    "$session_id",
    "$device_id",
    "$user_id",
    "$anon_distinct_id",
    "$is_identified",
    "$groups",
    "$group_type",
    "$group_key",
    // sb_url's keys, in its order (the last one is `$context`.page.url)
    "$current_url",
    "url",
    "[Amplitude] Page URL",
    "page_location",
    "page_url",
    "$context",
    "$browser",
    "$os",
    "$device_type",
];

/// Map one PostHog events record as `posthog_events.sql` does, or None when the record is
/// left to that SQL.
pub fn map_posthog(line: &[u8]) -> Option<Mapped<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    // A \uD800-\uDFFF escape: surrogates are judged by the SQL's JSON reader.
    if memchr::memmem::find_iter(line, b"\\u").any(|i| matches!(line.get(i + 2), Some(b'd' | b'D')))
    {
        return None;
    }
    let top = pick(text, &TOP)?;
    if top.repeated {
        return None;
    }
    let [uuid, event, distinct_id, timestamp, created_at, properties, person_properties, person_id] =
        top.values;
    let uuid = id(classify(uuid)?)??;
    let J::Str(event) = classify(event)? else {
        return None;
    };
    if event.trim().is_empty() || event == "$groupidentify" {
        return None;
    }
    let J::Str(ts) = classify(timestamp)? else {
        return None;
    };
    let ts = parse_time(&ts)?;
    let received = match classify(created_at)? {
        J::Str(s) => Some(parse_time(&s)?),
        _ => None,
    };
    let distinct_id = id(classify(distinct_id)?)??;
    let person_id = id(classify(person_id)?)?;
    let person_properties = match classify(person_properties)? {
        J::Absent | J::Null => None,
        J::Obj(t) => Some(minified(t)),
        _ => return None,
    };
    let (properties, pr) = match classify(properties)? {
        J::Absent | J::Null => (Cow::Borrowed("{}"), None),
        J::Obj(t) => {
            let pr = pick(t, &PROPS)?;
            if pr.repeated {
                return None;
            }
            (minified(t), Some(pr.values))
        }
        _ => return None,
    };
    let [session, device, user, anon, identified, groups, _group_type, _group_key, u1, u2, u3, u4, u5, context, browser, os, device_type] =
        pr.unwrap_or([None; 17]);
    // sb_url: the first URL key holding a value; a non-string value or a `$context` object
    // (whose page.url comes last) is left to the SQL.
    let mut page_url = None;
    for u in [u1, u2, u3, u4, u5] {
        match classify(u)? {
            J::Absent | J::Null => {}
            J::Str(s) => {
                page_url = Some(s);
                break;
            }
            _ => return None,
        }
    }
    if page_url.is_none() && !matches!(classify(context)?, J::Absent | J::Null) {
        return None;
    }
    // `->>`: a string's text; other values are left to the SQL.
    let text = |v| match classify(v)? {
        J::Absent | J::Null => Some(None),
        J::Str(s) => Some(Some(s)),
        _ => None,
    };
    let (browser, os, device_type) = (text(browser)?, text(os)?, text(device_type)?);
    let session_id = id(classify(session)?)?;
    let device_id = id(classify(device)?)?;
    let user_prop = id(classify(user)?)?;
    let anon_distinct = id(classify(anon)?)?;
    let is_identified = match classify(identified)? {
        J::Str(s) => s == "true",
        J::Other => identified.is_some_and(|v| v.get().trim() == "true"),
        _ => false,
    };
    let groups = match classify(groups)? {
        J::Absent | J::Null => None,
        J::Obj(t) => groups_map(t)?,
        _ => return None,
    };
    let identify = event == "$identify";
    let user_id = match user_prop {
        Some(u) => Some(u),
        None if is_identified || identify => Some(distinct_id.clone()),
        None => None,
    };
    let anon_id = match device_id {
        Some(d) => Some(d),
        None if identify => anon_distinct,
        None => None,
    };
    let kind = match event.as_ref() {
        "$identify" => "identify",
        "$create_alias" => "alias",
        "$merge_dangerously" => "merge",
        "$set" => "person_update",
        "$pageview" => "page",
        "$screen" => "screen",
        _ => "track",
    };
    Some(Mapped {
        uuid,
        event,
        kind,
        ts,
        received,
        distinct_id,
        user_id,
        anon_id,
        session_id,
        person_id,
        properties,
        person_properties,
        groups,
        page_url,
        browser,
        os,
        device_type,
    })
}

/// `sb_groups_map`: {type: key or [keys]} as {"type":["key", ...]}, in the object's order;
/// Some(None) for an empty object. None (left to the SQL) unless every value is a string or an
/// array of strings, each without surrounding blanks and characters JSON would escape, and no
/// type is given twice.
fn groups_map(obj: &str) -> Option<Option<String>> {
    struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Entries<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Entries<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> std::result::Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(k) = m.next_key::<Text<'de>>()? {
                        out.push((k.0, m.next_value()?));
                    }
                    Ok(Entries(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    struct Strings<'a>(Vec<&'a RawValue>);
    impl<'de> Deserialize<'de> for Strings<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Strings<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an array")
                }
                fn visit_seq<A: SeqAccess<'de>>(
                    self,
                    mut s: A,
                ) -> std::result::Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(v) = s.next_element()? {
                        out.push(v);
                    }
                    Ok(Strings(out))
                }
            }
            d.deserialize_seq(V)
        }
    }
    let plain = |s: &str| {
        !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
            && !s.starts_with(char::is_whitespace)
            && !s.ends_with(char::is_whitespace)
    };
    let entries = serde_json::from_str::<Entries<'_>>(obj).ok()?.0;
    if entries.is_empty() {
        return Some(None);
    }
    let mut out = String::from("{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if !plain(k) || entries[..i].iter().any(|(e, _)| e == k) {
            return None;
        }
        let values: Vec<Cow<'_, str>> = match classify(Some(v))? {
            J::Str(s) => vec![s],
            J::Other if v.get().trim_start().starts_with('[') => {
                let items = serde_json::from_str::<Strings<'_>>(v.get()).ok()?.0;
                let mut vs = Vec::with_capacity(items.len());
                for it in items {
                    let J::Str(s) = classify(Some(it))? else {
                        return None;
                    };
                    vs.push(s);
                }
                vs
            }
            _ => return None,
        };
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":[");
        let mut first = true;
        for s in &values {
            if !plain(s) {
                return None;
            }
            if s.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        out.push(']');
    }
    out.push('}');
    Some(Some(out))
}

/// A JSON text without the blanks between its tokens (strings kept byte for byte).
fn minified(t: &str) -> Cow<'_, str> {
    let b = t.as_bytes();
    if !b.iter().any(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t')) {
        return Cow::Borrowed(t);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut in_str = false;
    let mut escaped = false;
    for &c in b {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
            out.push(c);
        } else if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            out.push(c);
        }
    }
    // Only ASCII blanks outside strings were removed: the text is still UTF-8.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(t),
    }
}

/// Microseconds since the epoch of `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|±HH:MM|±HHMM|±HH]`, the
/// way `sb_ts` reads it (no offset is UTC); None for anything else, which the SQL decides.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1 || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n = end - start;
        if n == 0 || n > 6 {
            return None;
        }
        micros = num(start..end)? * 10i64.pow((6 - n) as u32);
        i = end;
    }
    let offset_secs = match &b[i..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [_, _] => (num(i + 1..i + 3)?, 0),
                [_, _, b':', _, _] => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                [_, _, _, _] => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                _ => return None,
            };
            if om > 59 || oh > 18 || (oh == 18 && om > 0) {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = crate::timefmt::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_sb_ts_reads_them() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_time("2024-01-01T03:16:45.5+00:00"),
            Some(1_704_079_005_500_000)
        );
        assert_eq!(
            parse_time("2024-01-01T05:16:45.000000+02:00"),
            parse_time("2024-01-01T03:16:45Z")
        );
        assert_eq!(
            parse_time("2024-01-01T00:00:00-0530"),
            parse_time("2024-01-01T05:30:00Z")
        );
        assert_eq!(
            parse_time("2024-02-29T00:00:00-05"),
            parse_time("2024-02-29T05:00:00Z")
        );
        // Left to the SQL: impossible dates and offsets, more than 6 fractional digits,
        // dates alone, zone names, lowercase separators.
        for s in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+18:30",
            "2024-01-01T00:00:00+19",
            "2024-01-01T00:00:00.1234567Z",
            "2024-01-01",
            "2024-01-01T00:00:00 UTC",
            "2024-01-01t00:00:00",
            "2024-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_time(s), None, "{s}");
        }
    }

    #[test]
    fn a_plain_record_is_mapped_and_odd_ones_are_left_to_the_sql() {
        let rec = br#"{"uuid":"u1","event":"$identify","distinct_id":"user_1","timestamp":"2024-01-01T00:00:00Z","properties":{"$anon_distinct_id":"anon_1","$session_id":"s1","$groups":{"company":"c1","team":["t1",""]},"x": [1, 2]}}"#;
        let m = map_posthog(rec).expect("mapped");
        assert_eq!(m.kind, "identify");
        assert_eq!(m.user_id.as_deref(), Some("user_1"));
        assert_eq!(m.anon_id.as_deref(), Some("anon_1"));
        assert_eq!(m.session_id.as_deref(), Some("s1"));
        assert_eq!(
            m.groups.as_deref(),
            Some(r#"{"company":["c1"],"team":["t1"]}"#)
        );
        assert!(m.properties.ends_with(r#""x":[1,2]}"#));
        for odd in [
            &br#"{"uuid":"u1","event":"e","distinct_id":" user","timestamp":"2024-01-01T00:00:00Z"}"#[..],
            br#"{"uuid":"u1","event":"e","distinct_id":"user","timestamp":"2024-01-01"}"#,
            br#"{"uuid":"u1","event":"e","distinct_id":"user","distinct_id":"other","timestamp":"2024-01-01T00:00:00Z"}"#,
            br#"{"uuid":"u1","event":"e","distinct_id":"user","timestamp":"2024-01-01T00:00:00Z","properties":"{}"}"#,
            br#"{"uuid":"u1","event":"e","distinct_id":7,"timestamp":"2024-01-01T00:00:00Z"}"#,
            br#"{"event":"e","distinct_id":"user","timestamp":"2024-01-01T00:00:00Z"}"#,
            br#"{"uuid":"u1","event":"e","distinct_id":"user","timestamp":"2024-01-01T00:00:00Z",}"#,
            br#"{"uuid":"u1","event":"e\ud800","distinct_id":"user","timestamp":"2024-01-01T00:00:00Z"}"#,
            br#"["uuid"]"#,
        ] {
            assert!(map_posthog(odd).is_none(), "{}", String::from_utf8_lossy(odd));
        }
    }
}
