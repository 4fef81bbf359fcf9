//! Recognise a file's vendor, record kind, container and compression from its content
//! (formats.md §0.1), never from its name.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    PostHog,
    Amplitude,
    Mixpanel,
    Segment,
    RudderStack,
    Snowplow,
    Heap,
    Ga4,
    Generic,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::PostHog => "posthog",
            Vendor::Amplitude => "amplitude",
            Vendor::Mixpanel => "mixpanel",
            Vendor::Segment => "segment",
            Vendor::RudderStack => "rudderstack",
            Vendor::Snowplow => "snowplow",
            Vendor::Heap => "heap",
            Vendor::Ga4 => "ga4",
            Vendor::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<Vendor> {
        Some(match s.to_ascii_lowercase().as_str() {
            "posthog" => Vendor::PostHog,
            "amplitude" => Vendor::Amplitude,
            "mixpanel" => Vendor::Mixpanel,
            "segment" => Vendor::Segment,
            "rudderstack" | "rudder" => Vendor::RudderStack,
            "snowplow" => Vendor::Snowplow,
            "heap" => Vendor::Heap,
            "ga4" => Vendor::Ga4,
            "generic" => Vendor::Generic,
            _ => return None,
        })
    }

    pub fn display(self) -> &'static str {
        match self {
            Vendor::PostHog => "PostHog",
            Vendor::Amplitude => "Amplitude",
            Vendor::Mixpanel => "Mixpanel",
            Vendor::Segment => "Segment",
            Vendor::RudderStack => "RudderStack",
            Vendor::Snowplow => "Snowplow",
            Vendor::Heap => "Heap",
            Vendor::Ga4 => "GA4",
            Vendor::Generic => "generic",
        }
    }
}

/// What the records in a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum RecordKind {
    Events,
    /// PostHog persons model: distinct_id → person_id with properties.
    Persons,
    /// Amplitude merged-ids file.
    MergedIds,
    /// A PostHog batch-export manifest listing other files.
    Manifest,
    /// Raw capture HTTP requests (PostHog's requests_dump): not an export.
    CaptureDump,
    /// Warehouse / data-lake rows with flattened snake_case columns (Segment, RudderStack).
    WarehouseRows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Jsonl,
    /// One JSON document: an array of records or `{"batch": [...]}`.
    Json,
    Csv,
    Tsv,
    Parquet,
    Zip,
}

impl Container {
    pub fn as_str(self) -> &'static str {
        match self {
            Container::Jsonl => "jsonl",
            Container::Json => "json",
            Container::Csv => "csv",
            Container::Tsv => "tsv",
            Container::Parquet => "parquet",
            Container::Zip => "zip",
        }
    }

    pub fn parse(s: &str) -> Option<Container> {
        Some(match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Container::Jsonl,
            "json" => Container::Json,
            "csv" => Container::Csv,
            "tsv" => Container::Tsv,
            "parquet" => Container::Parquet,
            "zip" => Container::Zip,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub vendor: Vendor,
    pub kind: RecordKind,
    pub container: Container,
    pub compression: Compression,
    /// Records are wrapped as Airbyte messages `{"stream", "data", "emitted_at"}`; the
    /// `events` stream's `data` is the vendor record.
    pub airbyte: bool,
}

/// The physical layer only: how to get records out of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Physical {
    pub container: Container,
    pub compression: Compression,
}

const PREFIX_BYTES: usize = 256 * 1024;

/// Read the start of a file (decompressed) and decide its container.
pub fn physical(path: &Path) -> Result<(Physical, Vec<u8>)> {
    super::reader::ensure_regular_file(path)?;
    let mut f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut head = Vec::with_capacity(PREFIX_BYTES);
    (&mut f)
        .take(PREFIX_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| EngineError::io(path, e))?;
    if head.is_empty() {
        return Err(EngineError::unreadable(path, "the file is empty"));
    }
    if head.starts_with(b"PAR1") {
        return Ok((phys(Container::Parquet, Compression::None), head));
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok((phys(Container::Zip, Compression::None), head));
    }
    let (compression, text) = if head.starts_with(&[0x1f, 0x8b]) {
        let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
        let mut out = Vec::with_capacity(PREFIX_BYTES);
        match MultiGzDecoder::new(f)
            .take(PREFIX_BYTES as u64)
            .read_to_end(&mut out)
        {
            Ok(_) => {}
            // A gzip shorter than our prefix that ends early is truncated; a longer one that
            // is damaged further on is caught while reading.
            Err(e) => {
                if out.is_empty() {
                    return Err(EngineError::unreadable(
                        path,
                        format!("not a readable gzip stream ({e})"),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(EngineError::unreadable(path, "the gzip stream is empty"));
        }
        (Compression::Gzip, out)
    } else {
        (Compression::None, head)
    };
    if text.starts_with(&[0xFF, 0xFE]) || text.starts_with(&[0xFE, 0xFF]) {
        return Err(EngineError::unreadable(
            path,
            "the file is UTF-16 encoded; Stitchbook reads UTF-8 (re-save the file as UTF-8)",
        ));
    }
    let body = strip_bom(&text);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(EngineError::unreadable(
            path,
            "the file contains no records (only whitespace)",
        ));
    };
    let container = match body[first] {
        b'{' => {
            // One record per line, or a single pretty-printed document? A `{"batch": [...]}`
            // payload is a document of records even when written on one line.
            let line = first_line(&body[first..]);
            match serde_json::from_slice::<Value>(line) {
                Ok(v) if v.get("batch").is_some_and(Value::is_array) => Container::Json,
                Ok(_) => Container::Jsonl,
                Err(_) if line.len() == body.len() - first && looks_batch(line) => Container::Json,
                Err(_) if looks_multiline_doc(&body[first..]) => Container::Json,
                Err(_) => Container::Jsonl,
            }
        }
        b'[' => Container::Json,
        _ => {
            let line = first_line(&body[first..]);
            let tabs = line.iter().filter(|&&b| b == b'\t').count();
            let commas = line.iter().filter(|&&b| b == b',').count();
            if line.starts_with(b"###") {
                Container::Jsonl
            } else if tabs > commas {
                Container::Tsv
            } else if commas > 0 {
                Container::Csv
            } else {
                return Err(EngineError::unsupported(
                    path,
                    "not an analytics export: the content is neither JSON lines, JSON, CSV, TSV nor Parquet",
                ));
            }
        }
    };
    Ok((phys(container, compression), text))
}

fn phys(container: Container, compression: Compression) -> Physical {
    Physical {
        container,
        compression,
    }
}

pub fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(b)
}

fn first_line(b: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', b).unwrap_or(b.len());
    let l = &b[..end];
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// The start of a `{"batch": [...]}` document longer than the sniffed prefix: a top-level
/// `batch` key whose value is an array.
pub fn looks_batch(b: &[u8]) -> bool {
    top_level_keys(b).iter().any(|k| k == "batch")
        && memchr::memmem::find_iter(b, b"\"batch\"").any(|i| {
            let rest = &b[i + 7..];
            let rest = &rest[rest.iter().take_while(|c| c.is_ascii_whitespace()).count()..];
            rest.strip_prefix(b":")
                .is_some_and(|r| r.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'['))
        })
}

/// The first JSON value of a document (of a stream of documents, or of a prefix cut short).
pub fn first_document(b: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(strip_bom(b))
        .into_iter::<Value>()
        .next()
        .and_then(|r| r.ok())
}

/// A `{` line that does not parse alone but whose following lines are indented: a
/// pretty-printed single document rather than broken JSON lines.
fn looks_multiline_doc(b: &[u8]) -> bool {
    let line = first_line(b);
    let rest = &b[(line.len() + 1).min(b.len())..];
    line.iter().filter(|c| !c.is_ascii_whitespace()).count() <= 2
        && rest
            .first()
            .is_some_and(|c| *c == b' ' || *c == b'\t' || *c == b'"')
}

/// A headerless Snowplow enriched event line (formats.md §0.1): 131 tab-separated fields,
/// field 1 a platform code, field 6 a UUID, field 3 a `YYYY-MM-DD HH:MM:SS` time.
pub fn looks_snowplow_enriched(fields: &[String]) -> bool {
    const PLATFORMS: &[&str] = &["web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot"];
    fields.len() == 131
        && PLATFORMS.contains(&fields[1].as_str())
        && fields[6].len() == 36
        && fields[6].matches('-').count() == 4
        && fields[3].len() >= 19
        && fields[3].as_bytes()[4] == b'-'
        && fields[3].as_bytes()[10] == b' '
}

/// Whether the first line of a delimited file names `field` (i.e. is a header).
pub fn has_header_field(path: &Path, compression: Compression, field: &str) -> bool {
    first_record(path, compression, 1 << 20)
        .map(|l| {
            l.split(|&b| b == b'\t' || b == b',')
                .any(|f| f.trim_ascii() == field.as_bytes())
        })
        .unwrap_or(false)
}

/// The first non-blank line of a (possibly gzip) JSON-lines file, read whole up to `limit`
/// bytes: for sniffing records longer than the prefix.
pub fn first_record(path: &Path, compression: Compression, limit: usize) -> Result<Vec<u8>> {
    use std::io::BufRead;
    let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let inner: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(MultiGzDecoder::new(f)),
        Compression::None => Box::new(f),
    };
    let mut r = std::io::BufReader::new(inner.take(limit as u64));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| EngineError::io(path, e))?;
        if n == 0 || !line.iter().all(u8::is_ascii_whitespace) {
            return Ok(line);
        }
    }
}

/// Which vendor and record kind a JSON record's keys say it is.
pub fn classify_keys(obj: &Map<String, Value>) -> Option<(Vendor, RecordKind)> {
    let has = |k: &str| obj.contains_key(k);
    if has("path") && has("method") && (has("output") || has("body")) {
        return Some((Vendor::PostHog, RecordKind::CaptureDump));
    }
    if has("scope") && has("merge_time") && has("merged_amplitude_id") {
        return Some((Vendor::Amplitude, RecordKind::MergedIds));
    }
    if has("event_type") && (has("amplitude_id") || has("$insert_id") || has("event_time")) {
        return Some((Vendor::Amplitude, RecordKind::Events));
    }
    if has("uuid") && has("event") && has("distinct_id") && has("timestamp") {
        return Some((Vendor::PostHog, RecordKind::Events));
    }
    if has("person_id")
        && has("distinct_id")
        && (has("person_version") || has("person_distinct_id_version") || has("is_deleted"))
    {
        return Some((Vendor::PostHog, RecordKind::Persons));
    }
    if has("files") && obj.len() == 1 {
        return Some((Vendor::PostHog, RecordKind::Manifest));
    }
    if has("event_date") && has("event_timestamp") && has("event_name") {
        return Some((Vendor::Ga4, RecordKind::Events));
    }
    if has("batch") && obj.get("batch").is_some_and(Value::is_array) {
        return Some((Vendor::Segment, RecordKind::Events));
    }
    let segment_type = obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| ["track", "page", "screen", "identify", "group", "alias"].contains(&t));
    if segment_type && has("messageId") {
        let rudder_channel = obj
            .get("channel")
            .and_then(Value::as_str)
            .is_some_and(|c| ["web", "mobile", "server", "sources"].contains(&c));
        return Some(if has("rudderId") || rudder_channel {
            (Vendor::RudderStack, RecordKind::Events)
        } else {
            (Vendor::Segment, RecordKind::Events)
        });
    }
    if obj.keys().any(|k| k.starts_with("context_"))
        && obj.get("received_at").is_some_and(Value::is_number)
    {
        return Some((Vendor::RudderStack, RecordKind::WarehouseRows));
    }
    if has("event")
        && obj
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key("time"))
    {
        return Some((Vendor::Mixpanel, RecordKind::Events));
    }
    None
}

/// Classify from a list of column names (CSV header, Parquet schema).
pub fn classify_columns(cols: &[String]) -> Option<(Vendor, RecordKind)> {
    let lower: Vec<String> = cols.iter().map(|c| c.trim().to_ascii_lowercase()).collect();
    if lower.len() >= 4 && lower[..4] == ["app_id", "platform", "etl_tstamp", "collector_tstamp"] {
        return Some((Vendor::Snowplow, RecordKind::Events));
    }
    let mut obj = Map::new();
    for c in cols {
        obj.insert(c.trim().to_string(), Value::Null);
    }
    // Values are unknown here, so the value-based checks in classify_keys cannot fire;
    // handle the column-only shapes first.
    let has = |k: &str| lower.iter().any(|c| c == k);
    if has("uuid") && has("event") && has("distinct_id") && has("timestamp") {
        return Some((Vendor::PostHog, RecordKind::Events));
    }
    if has("event_date") && has("event_timestamp") && has("event_name") {
        return Some((Vendor::Ga4, RecordKind::Events));
    }
    if has("event_type") && (has("amplitude_id") || has("$insert_id") || has("event_time")) {
        return Some((Vendor::Amplitude, RecordKind::Events));
    }
    if has("anonymous_id") && has("received_at") && has("id") {
        return Some(
            if lower.iter().any(|c| c == "channel" || c == "event_text") {
                (Vendor::RudderStack, RecordKind::WarehouseRows)
            } else {
                (Vendor::Segment, RecordKind::WarehouseRows)
            },
        );
    }
    classify_keys(&obj)
}

/// Classify JSON-lines text: the first records that parse decide.
pub fn classify_jsonl(text: &[u8]) -> Option<(Vendor, RecordKind)> {
    classify_jsonl_all(text).into_iter().next().map(|(c, _)| c)
}

/// Every distinct classification among the first 50 records, with the first line (1-based,
/// within `text`) where each appears. More than one means the file is ambiguous.
pub fn classify_jsonl_all(text: &[u8]) -> Vec<((Vendor, RecordKind), usize)> {
    let body = strip_bom(text);
    let mut found: Vec<((Vendor, RecordKind), usize)> = Vec::new();
    let mut seen = 0;
    let mut line_no = 0;
    for raw in body.split(|&b| b == b'\n') {
        line_no += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.starts_with(b"###") {
            continue;
        }
        seen += 1;
        if seen > 50 {
            break;
        }
        let obj = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(obj)) => obj,
            // A record longer than the sniffed prefix, or nested deeper than serde_json
            // allows: judge by its top-level key names.
            _ => top_level_keys(line)
                .into_iter()
                .map(|k| (k, Value::Null))
                .collect(),
        };
        if let Some(c) = classify_keys(&obj) {
            if !found.iter().any(|(f, _)| *f == c) {
                found.push((c, line_no));
            }
        }
    }
    found
}

/// Key names at depth 1 of a JSON object, read by a byte scanner that tolerates truncated
/// input and any nesting depth. Non-object input gives no keys.
pub fn top_level_keys(b: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    let start = b.iter().position(|c| !c.is_ascii_whitespace());
    if start.map(|i| b[i]) != Some(b'{') {
        return keys;
    }
    let mut depth = 0usize;
    let mut i = start.unwrap_or(0);
    let mut expect_key = false;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Scan the string.
                let s = i + 1;
                let mut j = s;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if j >= b.len() {
                    break;
                }
                if depth == 1 && expect_key {
                    if let Ok(Value::String(k)) = serde_json::from_slice::<Value>(&b[i..=j]) {
                        keys.push(k);
                    }
                    expect_key = false;
                }
                i = j;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    keys
}

/// JSON lines of Airbyte record messages: classify the vendor records inside `data`.
pub fn classify_airbyte(text: &[u8]) -> Option<(Vendor, RecordKind)> {
    let mut wrapped = 0;
    for raw in strip_bom(text).split(|&b| b == b'\n') {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        if !(obj.contains_key("stream") && obj.contains_key("emitted_at")) {
            return None;
        }
        wrapped += 1;
        if let Some(Value::Object(data)) = obj.get("data") {
            if let Some(c) = classify_keys(data) {
                return Some(c);
            }
        }
        if wrapped > 200 {
            break;
        }
    }
    None
}

/// Column names of the first line of delimited text.
/// The first line's tab-separated fields, unquoted (Snowplow TSV does not quote).
pub fn tab_fields(text: &[u8]) -> Vec<String> {
    first_line(strip_bom(text))
        .split(|&b| b == b'\t')
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

pub fn header_columns(text: &[u8], delimiter: u8) -> Vec<String> {
    let body = strip_bom(text);
    let line = first_line(body);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(line);
    match rdr.records().next() {
        Some(Ok(r)) => r.iter().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Key names seen in the first JSON record, for error messages.
pub fn first_keys(text: &[u8]) -> Vec<String> {
    for raw in strip_bom(text).split(|&b| b == b'\n') {
        if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(raw) {
            return obj.keys().take(12).cloned().collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn posthog_event_keys() {
        let o = obj(
            json!({"uuid": "u", "event": "e", "distinct_id": "d", "timestamp": "t", "properties": {}}),
        );
        assert_eq!(
            classify_keys(&o),
            Some((Vendor::PostHog, RecordKind::Events))
        );
    }

    #[test]
    fn segment_vs_rudder() {
        let s = obj(json!({"type": "track", "messageId": "m", "event": "x"}));
        assert_eq!(
            classify_keys(&s),
            Some((Vendor::Segment, RecordKind::Events))
        );
        let r = obj(json!({"type": "track", "messageId": "m", "channel": "sources"}));
        assert_eq!(
            classify_keys(&r),
            Some((Vendor::RudderStack, RecordKind::Events))
        );
    }

    #[test]
    fn mixpanel_amplitude_ga4() {
        let m = obj(json!({"event": "x", "properties": {"time": 1}}));
        assert_eq!(
            classify_keys(&m),
            Some((Vendor::Mixpanel, RecordKind::Events))
        );
        let a = obj(json!({"event_type": "x", "amplitude_id": 1, "event_time": "t"}));
        assert_eq!(
            classify_keys(&a),
            Some((Vendor::Amplitude, RecordKind::Events))
        );
        let g = obj(json!({"event_date": "20240101", "event_timestamp": "1", "event_name": "x"}));
        assert_eq!(classify_keys(&g), Some((Vendor::Ga4, RecordKind::Events)));
    }

    #[test]
    fn capture_dump_is_recognised() {
        let d = obj(json!({"path": "/e/", "method": "POST", "body": "..", "output": []}));
        assert_eq!(
            classify_keys(&d),
            Some((Vendor::PostHog, RecordKind::CaptureDump))
        );
    }

    #[test]
    fn snowplow_header() {
        let cols: Vec<String> = ["app_id", "platform", "etl_tstamp", "collector_tstamp", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            classify_columns(&cols),
            Some((Vendor::Snowplow, RecordKind::Events))
        );
    }

    #[test]
    fn top_level_keys_of_truncated_and_deep_records() {
        let t = br#"{"uuid":"u","event":"e","properties":{"a":{"b":[1,{"c":2}]},"x\"y":1},"distinct_id":"d","timestamp":"2024-01-01T00:00:00Z","blob":"xxxxxxxx"#;
        assert_eq!(
            top_level_keys(t),
            vec![
                "uuid",
                "event",
                "properties",
                "distinct_id",
                "timestamp",
                "blob"
            ]
        );
        let deep = format!(
            "{{\"k\":{}1{}, \"z\": 2}}",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        assert_eq!(top_level_keys(deep.as_bytes()), vec!["k", "z"]);
        assert!(top_level_keys(b"[1,2]").is_empty());
    }

    #[test]
    fn batch_documents_are_recognised_when_cut_short() {
        assert!(looks_batch(
            br#"{"context": {}, "batch" : [{"type": "track", "ev"#
        ));
        assert!(!looks_batch(br#"{"batch": 3, "x": ["#));
        assert!(!looks_batch(br#"{"context": {"batch": [1]}, "type": "tr"#));
        assert!(!looks_batch(
            br#"{"type": "track", "properties": {"batch": ["#
        ));
    }

    #[test]
    fn unknown_keys_are_none() {
        assert_eq!(classify_keys(&obj(json!({"a": 1}))), None);
    }
}
