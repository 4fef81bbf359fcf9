//! Containers to staging: every record of a file becomes one row of the temporary
//! `stg_raw(line, raw, pre_reason, raw_len, member, member_line)` table, as JSON object text,
//! with its 1-based record number (archives: also its member and line within the member). Reading is streaming Rust (exact line numbers, per-line UTF-8 checks,
//! gzip) feeding DuckDB's Appender; Parquet goes through DuckDB's own reader.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use duckdb::Connection;
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::sniff::{strip_bom, Compression, Container, Physical};
use crate::jobs::{JobCtx, JobEvent};
use crate::sql::ident;
use crate::{EngineError, Result};

/// Records longer than this are quarantined rather than parsed.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// How much of a bad record the quarantine keeps.
pub const QUARANTINE_RAW_CHARS: usize = 2000;

pub const STAGING_DDL: &str = "
CREATE OR REPLACE TEMP TABLE stg_raw (line BIGINT, raw VARCHAR, pre_reason VARCHAR, raw_len BIGINT, member VARCHAR, member_line BIGINT);
";

#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    /// Records found (blank lines are not records).
    pub records: u64,
    pub sha256: String,
    /// Column names, for delimited and Parquet files.
    pub columns: Option<Vec<String>>,
    /// Something the import log should say about how the file was read.
    pub note: Option<String>,
}

/// Counts and hashes the bytes of the underlying file as they are read.
struct Tap<R> {
    inner: R,
    bytes: u64,
    hasher: Sha256,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Tap<R> {
    /// Hash whatever the decoder left unread and return the digest.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a whole file.
pub fn hash_file(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut tap = Tap {
        inner: f,
        bytes: 0,
        hasher: Sha256::new(),
    };
    tap_finish(path, &mut tap)
}

fn tap_finish(path: &Path, tap: &mut Tap<File>) -> Result<String> {
    io::copy(tap, &mut io::sink()).map_err(|e| EngineError::io(path, e))?;
    Ok(hex(&tap.hasher.clone().finalize()))
}

/// Where a progress report comes from.
pub struct ProgressLabel<'a> {
    pub file: &'a str,
    pub file_index: usize,
    pub size: u64,
    /// Stop after this many records (an import preview); None reads the whole file.
    pub limit: Option<u64>,
}

impl ProgressLabel<'_> {
    /// True once `records` have been staged and the preview limit is reached.
    pub(super) fn done(&self, records: u64) -> bool {
        self.limit.is_some_and(|l| records >= l)
    }
}

/// Stream `path` into `stg_raw`. `names` gives the columns of a headerless delimited file
/// (Snowplow enriched TSV); otherwise the first row is the header.
pub fn stage_file(
    conn: &Connection,
    path: &Path,
    phys: Physical,
    names: Option<&[&str]>,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let delimited = |d: u8| Delimited {
        compression: phys.compression,
        delimiter: d,
        names,
    };
    match phys.container {
        Container::Jsonl => stage_lines(conn, path, phys.compression, ctx, label),
        Container::Csv => stage_delimited(conn, path, delimited(b','), ctx, label),
        Container::Tsv => stage_delimited(conn, path, delimited(b'\t'), ctx, label),
        Container::Parquet => stage_parquet(conn, path, ctx, label),
        Container::Json => stage_document(conn, path, phys.compression, ctx, label),
        Container::Zip => super::archive::stage_zip(conn, path, ctx, label),
    }
}

fn open_tap(path: &Path) -> Result<Tap<File>> {
    let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    Ok(Tap {
        inner: f,
        bytes: 0,
        hasher: Sha256::new(),
    })
}

/// A decoded byte stream over a tapped file; gives the tap back at the end.
enum Decoded {
    Plain(Tap<File>),
    Gzip(MultiGzDecoder<Tap<File>>),
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(t) => t.read(buf),
            Decoded::Gzip(g) => g.read(buf),
        }
    }
}

impl Decoded {
    fn new(tap: Tap<File>, c: Compression) -> Self {
        match c {
            Compression::None => Decoded::Plain(tap),
            Compression::Gzip => Decoded::Gzip(MultiGzDecoder::new(tap)),
        }
    }
    fn tap(&self) -> &Tap<File> {
        match self {
            Decoded::Plain(t) => t,
            Decoded::Gzip(g) => g.get_ref(),
        }
    }
    fn into_tap(self) -> Tap<File> {
        match self {
            Decoded::Plain(t) => t,
            Decoded::Gzip(g) => g.into_inner(),
        }
    }
}

fn read_error(path: &Path, c: Compression, records: u64, e: io::Error) -> EngineError {
    let what = match c {
        Compression::Gzip => "the gzip stream is truncated or corrupt",
        Compression::None => "read failed",
    };
    EngineError::unreadable(path, format!("{what} after record {records} ({e})"))
}

pub(super) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn stage_lines(
    conn: &Connection,
    path: &Path,
    compression: Compression,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let tap = open_tap(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, Decoded::new(tap, compression));
    let mut app = conn.appender_to_catalog_and_db("stg_raw", "temp", "main")?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut line_no: i64 = 0;
    let mut records: u64 = 0;
    while let Some(line) = next_line(&mut reader, &mut buf, &mut line_no)
        .map_err(|e| read_error(path, compression, records, e))?
    {
        records += 1;
        append_record(&mut app, line_no, line, None)?;
        if label.done(records) {
            break;
        }
        if records.is_multiple_of(8192) {
            ctx.cancel.check()?;
            report(
                ctx,
                label,
                "reading",
                reader.get_ref().tap().bytes,
                records,
                false,
            );
        }
    }
    app.flush()?;
    drop(app);
    let bytes = reader.get_ref().tap().bytes;
    report(ctx, label, "reading", bytes, records, true);
    let sha256 = reader
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

/// The next non-blank line of `r` (without its line ending; a BOM stripped from line 1),
/// counting every line in `line_no`; None at the end.
pub(super) fn next_line<'b>(
    r: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
    line_no: &mut i64,
) -> io::Result<Option<&'b [u8]>> {
    loop {
        buf.clear();
        if r.read_until(b'\n', buf)? == 0 {
            return Ok(None);
        }
        *line_no += 1;
        let mut end = buf.len();
        if buf[..end].ends_with(b"\n") {
            end -= 1;
        }
        if buf[..end].ends_with(b"\r") {
            end -= 1;
        }
        let start = if *line_no == 1 && buf[..end].starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        if !buf[start..end].iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(&buf[start..end]));
        }
    }
}

/// Append one record; `member` is the archive member and the line within it.
pub(super) fn append_record(
    app: &mut duckdb::Appender<'_>,
    line_no: i64,
    bytes: &[u8],
    member: Option<(&str, i64)>,
) -> Result<()> {
    let len = bytes.len() as i64;
    let (m, ml) = match member {
        Some((m, l)) => (Some(m), Some(l)),
        None => (None, None),
    };
    match std::str::from_utf8(bytes) {
        Ok(s) if bytes.len() <= MAX_RECORD_BYTES => {
            app.append_row(duckdb::params![line_no, s, None::<&str>, len, m, ml])?;
        }
        Ok(s) => {
            let reason = format!(
                "record is {} bytes; the limit is {} MiB",
                bytes.len(),
                MAX_RECORD_BYTES / (1024 * 1024)
            );
            app.append_row(duckdb::params![
                line_no,
                truncate_chars(s, QUARANTINE_RAW_CHARS),
                reason,
                len,
                m,
                ml
            ])?;
        }
        Err(e) => {
            let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
            let lossy =
                String::from_utf8_lossy(&bytes[..bytes.len().min(QUARANTINE_RAW_CHARS * 4)]);
            app.append_row(duckdb::params![
                line_no,
                truncate_chars(&lossy, QUARANTINE_RAW_CHARS),
                reason,
                len,
                m,
                ml
            ])?;
        }
    }
    Ok(())
}

pub(super) fn report(
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
    phase: &str,
    bytes: u64,
    rows: u64,
    force: bool,
) {
    ctx.emit(
        JobEvent::Progress {
            file: label.file.to_string(),
            file_index: label.file_index,
            phase: phase.to_string(),
            bytes_done: bytes,
            bytes_total: label.size,
            rows,
        },
        force,
    );
}

struct Delimited<'a> {
    compression: Compression,
    delimiter: u8,
    names: Option<&'a [&'a str]>,
}

fn stage_delimited(
    conn: &Connection,
    path: &Path,
    how: Delimited<'_>,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let Delimited {
        compression,
        delimiter,
        names,
    } = how;
    let tap = open_tap(path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // Snowplow enriched TSV does not quote: JSON fields hold bare double quotes.
        .quoting(names.is_none())
        .delimiter(delimiter)
        .buffer_capacity(1 << 20)
        .from_reader(Decoded::new(tap, compression));
    let mut rec = csv::ByteRecord::new();
    let csv_err = |records: u64, e: csv::Error| -> EngineError {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => read_error(path, compression, records, io),
            other => EngineError::unreadable(
                path,
                format!("CSV error after record {records}: {other:?}"),
            ),
        }
    };
    let mut header = Vec::with_capacity(rec.len());
    let mut headerless = false;
    if let Some(names) = names {
        header.extend(names.iter().map(|s| s.to_string()));
        headerless = true;
    } else if !rdr.read_byte_record(&mut rec).map_err(|e| csv_err(0, e))? {
        return Err(EngineError::unreadable(path, "the file is empty"));
    }
    for (i, f) in rec.iter().enumerate().filter(|_| !headerless) {
        let f = if i == 0 { strip_bom(f) } else { f };
        let name = std::str::from_utf8(f).map_err(|_| {
            EngineError::unreadable(
                path,
                format!("the header's column {} is not valid UTF-8", i + 1),
            )
        })?;
        header.push(name.trim().to_string());
    }
    // Each column's JSON key, quoted once; a repeated column name keeps its last column.
    let keys: Vec<Option<String>> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (!header[i + 1..].contains(h)).then(|| {
                let mut k = String::new();
                push_json_str(&mut k, h);
                k
            })
        })
        .collect();
    let mut text = String::with_capacity(4096);
    let mut app = conn.appender_to_catalog_and_db("stg_raw", "temp", "main")?;
    let mut records: u64 = 0;
    let sep = if delimiter == b'\t' { "\t" } else { "," };
    loop {
        let has = rdr
            .read_byte_record(&mut rec)
            .map_err(|e| csv_err(records, e))?;
        if !has {
            break;
        }
        if rec.len() == 1
            && rec
                .get(0)
                .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }
        records += 1;
        let line_no = records as i64;
        let bad = if rec.len() != header.len() {
            Some(format!(
                "expected {} fields{}, found {}",
                header.len(),
                if headerless {
                    " (the Snowplow enriched-event layout)"
                } else {
                    " as in the header"
                },
                rec.len()
            ))
        } else {
            // The record as a JSON object of strings, written directly. Headerless Snowplow
            // rows leave out empty fields (empty means null there).
            let mut bad = None;
            text.clear();
            text.push('{');
            for ((name, key), f) in header.iter().zip(&keys).zip(rec.iter()) {
                let Some(key) = key else { continue };
                match std::str::from_utf8(f) {
                    Ok(v) => {
                        if headerless && v.is_empty() {
                            continue;
                        }
                        if text.len() > 1 {
                            text.push(',');
                        }
                        text.push_str(key);
                        text.push(':');
                        push_json_str(&mut text, v);
                    }
                    Err(_) => {
                        bad = Some(format!("invalid UTF-8 in column \"{name}\""));
                        break;
                    }
                }
            }
            text.push('}');
            if bad.is_none() {
                append_record(&mut app, line_no, text.as_bytes(), None)?;
            }
            bad
        };
        if let Some(reason) = bad {
            // The record as it stood in the file, for the quarantine.
            let raw: Vec<String> = rec
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let raw = raw.join(sep);
            let joined_len: usize = rec.iter().map(|f| f.len() + 1).sum();
            app.append_row(duckdb::params![
                line_no,
                truncate_chars(&raw, QUARANTINE_RAW_CHARS),
                reason,
                joined_len.saturating_sub(1) as i64,
                None::<&str>,
                None::<i64>
            ])?;
        }
        if label.done(records) {
            break;
        }
        if records.is_multiple_of(8192) {
            ctx.cancel.check()?;
            report(
                ctx,
                label,
                "reading",
                rdr.get_ref().tap().bytes,
                records,
                false,
            );
        }
    }
    app.flush()?;
    drop(app);
    report(
        ctx,
        label,
        "reading",
        rdr.get_ref().tap().bytes,
        records,
        true,
    );
    let sha256 = rdr
        .into_inner()
        .into_tap()
        .finish()
        .map_err(|e| EngineError::io(path, e))?;
    Ok(ReadStats {
        records,
        sha256,
        columns: Some(header),
        note: None,
    })
}

/// Append `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Largest single JSON document read whole (a JSON array or a `{"batch": [...]}` payload).
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024 * 1024;

type Records = (
    Vec<serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
);

/// The records of one JSON document (an array, or a batch payload with its shared fields), or
/// of several documents one after the other: then each batch's shared fields are applied here
/// and any other object among them is a record of its own.
fn document_records(path: &Path, bytes: &[u8]) -> Result<Records> {
    use serde_json::{Map, Value};
    let not_records = || {
        EngineError::unsupported(
            path,
            "a JSON document that is neither an array of records nor a {\"batch\": [...]} payload",
        )
    };
    let split = |doc: Value| -> Option<Records> {
        match doc {
            Value::Array(a) => Some((a, Map::new())),
            Value::Object(mut o) => match o.remove("batch") {
                Some(Value::Array(a)) => {
                    o.remove("messageId");
                    Some((a, o))
                }
                _ => None,
            },
            _ => None,
        }
    };
    let mut docs: Vec<Value> = serde_json::Deserializer::from_slice(strip_bom(bytes))
        .into_iter::<Value>()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| EngineError::unreadable(path, format!("not a valid JSON document ({e})")))?;
    if docs.len() == 1 {
        return docs.pop().and_then(split).ok_or_else(not_records);
    }
    let mut all = Vec::new();
    for doc in docs {
        if !(doc.is_array() || doc.get("batch").is_some_and(Value::is_array)) {
            if !doc.is_object() {
                return Err(not_records());
            }
            all.push(doc);
            continue;
        }
        let (records, shared) = split(doc).ok_or_else(not_records)?;
        all.extend(records.into_iter().map(|r| match r {
            Value::Object(mut o) => {
                for (k, v) in &shared {
                    if !o.contains_key(k) {
                        o.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(o)
            }
            other => other,
        }));
    }
    Ok((all, Map::new()))
}

/// One JSON document holding many records: an array of records, or a Segment-style batch
/// `{"batch": [...], "context": ..., "sentAt": ...}` whose batch-level fields (other than its
/// own `messageId`) apply to every record that lacks them. Several documents may follow one
/// another (e.g. one batch payload per line). Records are numbered by their position, from 1.
fn stage_document(
    conn: &Connection,
    path: &Path,
    compression: Compression,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let tap = open_tap(path)?;
    let mut decoded = Decoded::new(tap, compression);
    let mut bytes = Vec::new();
    (&mut decoded)
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, compression, 0, e))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(EngineError::unreadable(
            path,
            "a single JSON document over 1 GiB; export as JSON lines instead",
        ));
    }
    report(ctx, label, "reading", decoded.tap().bytes, 0, true);
    let (records, shared) = document_records(path, &bytes)?;
    let mut app = conn.appender_to_catalog_and_db("stg_raw", "temp", "main")?;
    let mut n: u64 = 0;
    for rec in records {
        n += 1;
        let rec = match rec {
            serde_json::Value::Object(mut o) => {
                for (k, v) in &shared {
                    if !o.contains_key(k) {
                        o.insert(k.clone(), v.clone());
                    }
                }
                serde_json::Value::Object(o)
            }
            other => other,
        };
        let text = rec.to_string();
        append_record(&mut app, n as i64, text.as_bytes(), None)?;
        if label.done(n) {
            break;
        }
        if n.is_multiple_of(8192) {
            ctx.cancel.check()?;
        }
    }
    app.flush()?;
    drop(app);
    let sha256 = decoded
        .into_tap()
        .finish()
        .map_err(|e| EngineError::io(path, e))?;
    report(ctx, label, "reading", label.size, n, true);
    Ok(ReadStats {
        records: n,
        sha256,
        columns: None,
        note: None,
    })
}

/// Column names and DuckDB types of a Parquet file.
pub fn parquet_columns(conn: &Connection, path: &Path) -> Result<Vec<(String, String)>> {
    let p = path.to_string_lossy().to_string();
    let mut stmt = conn.prepare("DESCRIBE SELECT * FROM read_parquet(?)")?;
    let rows = stmt
        .query_map([&p], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .and_then(|it| it.collect::<duckdb::Result<Vec<_>>>())
        .map_err(|e| EngineError::unreadable(path, format!("not a readable Parquet file ({e})")))?;
    Ok(rows)
}

fn stage_parquet(
    conn: &Connection,
    path: &Path,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let cols = parquet_columns(conn, path)?;
    if cols.is_empty() {
        return Err(EngineError::unreadable(
            path,
            "the Parquet file has no columns",
        ));
    }
    report(ctx, label, "reading parquet", 0, 0, true);
    let mut sql = crate::sql::Sql::new(
        "INSERT INTO stg_raw SELECT file_row_number + 1, j, NULL, strlen(j), NULL, NULL FROM (SELECT file_row_number, json_object(",
    );
    for (i, (name, ty)) in cols.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(name.clone());
        sql.push(", ");
        let col = ident(name);
        // Timestamps become explicit UTC ISO text; naive Parquet timestamps are UTC by the
        // vendors' definitions (PostHog: "TIMESTAMP (µs, UTC)").
        if ty.starts_with("TIMESTAMP") {
            sql.push(&format!("strftime({col}, '%Y-%m-%dT%H:%M:%S.%f') || 'Z'"));
        } else {
            sql.push(&col);
        }
    }
    sql.push(")::VARCHAR AS j FROM read_parquet(");
    sql.bind(path.to_string_lossy().to_string());
    sql.push(", file_row_number = true)");
    if let Some(l) = label.limit {
        sql.push(" ORDER BY file_row_number LIMIT ").bind(l as i64);
    }
    sql.push(")");
    let n = sql
        .execute(conn)
        .map_err(|e| EngineError::from(e).cancelled_if(ctx.cancel.is_cancelled()))?;
    ctx.cancel.check()?;
    report(ctx, label, "reading parquet", label.size, n as u64, true);
    let sha256 = hash_file(path)?;
    Ok(ReadStats {
        records: n as u64,
        sha256,
        columns: Some(cols.into_iter().map(|c| c.0).collect()),
        note: None,
    })
}

#[cfg(test)]
mod json_str_tests {
    #[test]
    fn json_strings_escape_like_serde() {
        for s in [
            "plain",
            "a \"q\" b",
            "back\\slash",
            "tab\tnl\ncr\r",
            "nul\u{0}x\u{1f}",
            "ünï €",
            "",
        ] {
            let mut out = String::new();
            super::push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
