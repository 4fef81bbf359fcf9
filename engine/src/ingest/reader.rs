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
pub(super) struct Tap<R> {
    inner: R,
    pub(super) bytes: u64,
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
    pub(super) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Refuse anything but a regular file (or a link to one) before it is opened: opening a
/// named pipe blocks until something writes to it, and a device such as /dev/zero never ends.
pub fn ensure_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| EngineError::io(path, e))?;
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let what = if t.is_dir() && link {
        let target = std::fs::canonicalize(path).ok();
        let parent = path.parent().and_then(|p| std::fs::canonicalize(p).ok());
        match (target, parent) {
            (Some(t), Some(p)) if p.starts_with(&t) => format!(
                "a symbolic link to {}, a folder it is itself inside (a cycle); not followed",
                t.display()
            ),
            _ => "a symbolic link to a folder, not a file; import the folder itself".to_string(),
        }
    } else {
        format!(
            "{}, not a regular file; only files can be imported",
            special_kind(&t)
        )
    };
    Err(EngineError::unsupported(path, what))
}

fn special_kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// SHA-256 of a whole file.
pub fn hash_file(path: &Path) -> Result<String> {
    ensure_regular_file(path)?;
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

pub(super) fn open_tap(path: &Path) -> Result<Tap<File>> {
    let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    Ok(Tap {
        inner: f,
        bytes: 0,
        hasher: Sha256::new(),
    })
}

/// A decoded byte stream over a tapped file; gives the tap back at the end.
pub(super) enum Decoded {
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
    pub(super) fn new(tap: Tap<File>, c: Compression) -> Self {
        match c {
            Compression::None => Decoded::Plain(tap),
            Compression::Gzip => Decoded::Gzip(MultiGzDecoder::new(tap)),
        }
    }
    pub(super) fn tap(&self) -> &Tap<File> {
        match self {
            Decoded::Plain(t) => t,
            Decoded::Gzip(g) => g.get_ref(),
        }
    }
    pub(super) fn into_tap(self) -> Tap<File> {
        match self {
            Decoded::Plain(t) => t,
            Decoded::Gzip(g) => g.into_inner(),
        }
    }
}

pub(super) fn read_error(path: &Path, c: Compression, records: u64, e: io::Error) -> EngineError {
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
        append_line(&mut app, line_no, line, None)?;
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

/// A line read with bounded memory.
pub(super) enum Line<'b> {
    /// The whole line (without its line ending; a BOM stripped from line 1).
    Whole(&'b [u8]),
    /// A line longer than [`MAX_RECORD_BYTES`]: its first bytes and its full length. The rest
    /// was read past, never held.
    TooLong(&'b [u8], u64),
}

/// The next non-blank line of `r`, counting every line in `line_no`; None at the end. At most
/// `MAX_RECORD_BYTES` (plus a BOM and the line ending) of a line is ever held in `buf`: a
/// longer line, such as a decompressed bomb of one giant line, is read past and reported as
/// [`Line::TooLong`].
pub(super) fn next_line<'b>(
    r: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
    line_no: &mut i64,
) -> io::Result<Option<Line<'b>>> {
    let keep = MAX_RECORD_BYTES + 5;
    loop {
        buf.clear();
        let mut total: u64 = 0;
        // Whether the bytes read past (not kept) are all whitespace.
        let mut rest_blank = true;
        // Whether the line ends with "\n", the byte before it, and the last byte seen.
        let mut newline = false;
        let mut before_newline = 0u8;
        let mut prev = 0u8;
        loop {
            let avail = r.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            let (chunk, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..=i], true),
                None => (avail, false),
            };
            let take = chunk.len().min(keep - buf.len());
            if take > 0 {
                if buf.capacity() < buf.len() + take {
                    // Grow as a Vec would, but never past what is kept.
                    let want = (buf.len() + take).max(buf.capacity() * 2).min(keep);
                    buf.reserve_exact(want - buf.len());
                }
                buf.extend_from_slice(&chunk[..take]);
            }
            if rest_blank && take < chunk.len() {
                rest_blank = chunk[take..].iter().all(u8::is_ascii_whitespace);
            }
            total += chunk.len() as u64;
            if done {
                newline = true;
                before_newline = if chunk.len() >= 2 {
                    chunk[chunk.len() - 2]
                } else {
                    prev
                };
            }
            prev = chunk[chunk.len() - 1];
            let n = chunk.len();
            r.consume(n);
            if done {
                break;
            }
        }
        if total == 0 {
            return Ok(None);
        }
        *line_no += 1;
        let start = if *line_no == 1 && buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        // "\n", "\r\n", or a "\r" that ends the file.
        let cr = if newline { before_newline } else { prev } == b'\r';
        let ending = u64::from(newline) + u64::from(cr);
        let len = total - start as u64 - ending;
        if total == buf.len() as u64 {
            // The whole line is held.
            let end = buf.len() - ending as usize;
            if buf[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if len as usize <= MAX_RECORD_BYTES {
                return Ok(Some(Line::Whole(&buf[start..end])));
            }
            return Ok(Some(Line::TooLong(&buf[start..end], len)));
        }
        if rest_blank && buf[start..].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(Some(Line::TooLong(&buf[start..], len)));
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
        Ok(_) => append_too_long(app, line_no, bytes, bytes.len() as u64, member)?,
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

/// Append a line as read by [`next_line`].
pub(super) fn append_line(
    app: &mut duckdb::Appender<'_>,
    line_no: i64,
    line: Line<'_>,
    member: Option<(&str, i64)>,
) -> Result<()> {
    match line {
        Line::Whole(bytes) => append_record(app, line_no, bytes, member),
        Line::TooLong(head, len) => append_too_long(app, line_no, head, len, member),
    }
}

/// Quarantine a record over [`MAX_RECORD_BYTES`] from its first bytes and its length.
pub(super) fn append_too_long(
    app: &mut duckdb::Appender<'_>,
    line_no: i64,
    head: &[u8],
    len: u64,
    member: Option<(&str, i64)>,
) -> Result<()> {
    let (m, ml) = match member {
        Some((m, l)) => (Some(m), Some(l)),
        None => (None, None),
    };
    let shown = String::from_utf8_lossy(&head[..head.len().min(QUARANTINE_RAW_CHARS * 4)]);
    app.append_row(duckdb::params![
        line_no,
        truncate_chars(&shown, QUARANTINE_RAW_CHARS),
        too_long_reason(len),
        len as i64,
        m,
        ml
    ])?;
    Ok(())
}

fn too_long_reason(len: u64) -> String {
    format!(
        "record is {len} bytes; the limit is {} MiB",
        MAX_RECORD_BYTES / (1024 * 1024)
    )
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

/// Most columns a delimited file's header may have.
pub const MAX_COLUMNS: usize = 100_000;

/// Delimited records read with bounded memory: csv-core's parser over our own buffers, which
/// keep a record's field bytes up to [`MAX_RECORD_BYTES`] and its field ends up to a given
/// count. Anything beyond is read past and only counted, so a giant field (or a
/// decompressed bomb) is reported with its size rather than held.
struct Records<R> {
    core: csv_core::Reader,
    rdr: R,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// How much of `out` and `ends` the current record uses.
    kept_bytes: usize,
    kept_ends: usize,
    /// The current record's field bytes and field count, including what was not kept.
    bytes: u64,
    fields: u64,
}

impl<R: BufRead> Records<R> {
    fn new(rdr: R, delimiter: u8, quoting: bool) -> Self {
        Records {
            core: csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .quoting(quoting)
                .build(),
            rdr,
            out: Vec::new(),
            ends: Vec::new(),
            kept_bytes: 0,
            kept_ends: 0,
            bytes: 0,
            fields: 0,
        }
    }

    /// Read the next record, keeping at most `max_fields` + 1 field ends; false at the end.
    fn read(&mut self, max_fields: usize) -> io::Result<bool> {
        use csv_core::ReadRecordResult as R;
        self.kept_bytes = 0;
        self.kept_ends = 0;
        self.bytes = 0;
        self.fields = 0;
        let mut spill = [0u8; 8192];
        let mut spill_ends = [0usize; 64];
        loop {
            if self.kept_bytes == self.out.len() && self.out.len() <= MAX_RECORD_BYTES {
                let n = (self.out.len() * 2).clamp(64 * 1024, MAX_RECORD_BYTES + 1);
                self.out.resize(n, 0);
            }
            if self.kept_ends == self.ends.len() && self.ends.len() <= max_fields {
                let n = (self.ends.len() * 2).max(64).min(max_fields + 1);
                self.ends.resize(n, 0);
            }
            let keep_out = self.kept_bytes < self.out.len();
            let keep_ends = self.kept_ends < self.ends.len();
            let input = self.rdr.fill_buf()?;
            let out: &mut [u8] = if keep_out {
                &mut self.out[self.kept_bytes..]
            } else {
                &mut spill
            };
            let ends: &mut [usize] = if keep_ends {
                &mut self.ends[self.kept_ends..]
            } else {
                &mut spill_ends
            };
            let (res, nin, nout, nend) = self.core.read_record(input, out, ends);
            self.rdr.consume(nin);
            if keep_out {
                self.kept_bytes += nout;
            }
            if keep_ends {
                self.kept_ends += nend;
            }
            self.bytes += nout as u64;
            self.fields += nend as u64;
            match res {
                R::InputEmpty | R::OutputFull | R::OutputEndsFull => {}
                R::Record => return Ok(true),
                R::End => return Ok(false),
            }
        }
    }

    /// Whether the whole record was kept.
    fn whole(&self) -> bool {
        self.bytes as usize == self.kept_bytes && self.fields as usize == self.kept_ends
    }

    /// The kept fields (all of them when [`Self::whole`]; else the first ones, the last
    /// perhaps cut).
    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends[..self.kept_ends].iter().map_while(move |&end| {
            if start > self.kept_bytes {
                return None;
            }
            let f = &self.out[start..end.min(self.kept_bytes)];
            start = end;
            Some(f)
        })
    }

    /// The record's size as it stands in the file, less quotes: its field bytes and
    /// separators.
    fn size(&self) -> u64 {
        self.bytes + self.fields.saturating_sub(1)
    }

    /// The decoded stream underneath.
    fn get_ref(&self) -> &R {
        &self.rdr
    }

    fn into_inner(self) -> R {
        self.rdr
    }
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
    // Snowplow enriched TSV does not quote: JSON fields hold bare double quotes.
    let mut rec = Records::new(
        BufReader::with_capacity(1 << 20, Decoded::new(tap, compression)),
        delimiter,
        names.is_none(),
    );
    let io_err = |records: u64, e: io::Error| read_error(path, compression, records, e);
    let mut header = Vec::new();
    let mut headerless = false;
    if let Some(names) = names {
        header.extend(names.iter().map(|s| s.to_string()));
        headerless = true;
    } else if !rec.read(MAX_COLUMNS).map_err(|e| io_err(0, e))? {
        return Err(EngineError::unreadable(path, "the file is empty"));
    } else if rec.bytes > MAX_RECORD_BYTES as u64 {
        return Err(EngineError::unreadable(
            path,
            format!(
                "the header (record 1) is too long: {}",
                too_long_reason(rec.size())
            ),
        ));
    } else if rec.fields > MAX_COLUMNS as u64 {
        return Err(EngineError::unreadable(
            path,
            format!(
                "the header (record 1) has {} columns; the limit is {MAX_COLUMNS}",
                rec.fields
            ),
        ));
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
    let last: std::collections::HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let keys: Vec<Option<String>> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (last.get(h.as_str()) == Some(&i)).then(|| {
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
        let has = rec.read(header.len()).map_err(|e| io_err(records, e))?;
        if !has {
            break;
        }
        if rec.fields == 1
            && rec.whole()
            && rec
                .iter()
                .next()
                .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }
        records += 1;
        let line_no = records as i64;
        let bad = if rec.bytes > MAX_RECORD_BYTES as u64 {
            Some(too_long_reason(rec.size()))
        } else if rec.fields != header.len() as u64 {
            Some(format!(
                "expected {} fields{}, found {}",
                header.len(),
                if headerless {
                    " (the Snowplow enriched-event layout)"
                } else {
                    " as in the header"
                },
                rec.fields
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
            // The start of the record as it stood in the file, for the quarantine.
            let mut raw = String::new();
            for (i, f) in rec.iter().enumerate() {
                if raw.len() > QUARANTINE_RAW_CHARS * 4 {
                    break;
                }
                if i > 0 {
                    raw.push_str(sep);
                }
                raw.push_str(&String::from_utf8_lossy(
                    &f[..f.len().min(QUARANTINE_RAW_CHARS * 4)],
                ));
            }
            app.append_row(duckdb::params![
                line_no,
                truncate_chars(&raw, QUARANTINE_RAW_CHARS),
                reason,
                rec.size() as i64,
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
                rec.get_ref().get_ref().tap().bytes,
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
        rec.get_ref().get_ref().tap().bytes,
        records,
        true,
    );
    let sha256 = rec
        .into_inner()
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

type DocRecords = (
    Vec<serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
);

/// The records of one JSON document (an array, or a batch payload with its shared fields), or
/// of several documents one after the other: then each batch's shared fields are applied here
/// and any other object among them is a record of its own.
fn document_records(path: &Path, bytes: &[u8]) -> Result<DocRecords> {
    use serde_json::{Map, Value};
    let not_records = || {
        EngineError::unsupported(
            path,
            "a JSON document that is neither an array of records nor a {\"batch\": [...]} payload",
        )
    };
    let split = |doc: Value| -> Option<DocRecords> {
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

/// `path` as a pattern for DuckDB's file readers that matches exactly that file. DuckDB reads
/// any path holding `*`, `?` or `[` as a glob (so `events[1].parquet` would read
/// `events1.parquet`, and `events*.parquet` every match); a bound parameter is globbed too.
/// The path is made absolute and, in every component after the first (which DuckDB takes
/// literally), each of those characters is bracketed (`[*]`, `[?]`, `[[]`) so that it matches
/// only itself. DuckDB's own glob is then asked what the pattern names: exactly this file, or
/// the file is refused.
pub fn parquet_source(conn: &Connection, path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).map_err(|e| EngineError::io(path, e))?;
    let Some(text) = abs.to_str() else {
        return Err(EngineError::unreadable(
            path,
            "the file's path is not valid UTF-8, which the Parquet reader needs; rename it",
        ));
    };
    let mut pattern = String::with_capacity(text.len() + 8);
    let (mut first, mut named) = (true, false);
    for c in text.chars() {
        if !std::path::is_separator(c) {
            named = true;
        } else if named {
            first = false;
        }
        match c {
            '*' | '?' | '[' if !first => {
                pattern.push('[');
                pattern.push(c);
                pattern.push(']');
            }
            _ => pattern.push(c),
        }
    }
    let found: Vec<String> = conn
        .prepare("SELECT file FROM glob(?) LIMIT 2")?
        .query_map([&pattern], |r| r.get::<_, String>(0))?
        .collect::<duckdb::Result<_>>()?;
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let exact =
        found.len() == 1 && canon(Path::new(&found[0])).is_some_and(|f| Some(f) == canon(&abs));
    if !exact {
        return Err(EngineError::unreadable(
            path,
            format!(
                "the Parquet reader cannot open this file by its name (it matches {} file(s)); rename it without *, ? or [",
                found.len()
            ),
        ));
    }
    Ok(pattern)
}

/// Column names and DuckDB types of a Parquet file.
pub fn parquet_columns(conn: &Connection, path: &Path) -> Result<Vec<(String, String)>> {
    let p = parquet_source(conn, path)?;
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
    let source = parquet_source(conn, path)?;
    report(ctx, label, "reading parquet", 0, 0, true);
    // A row whose JSON text is over the record limit is quarantined like a long line.
    let mut sql = crate::sql::Sql::new(
        "INSERT INTO stg_raw SELECT file_row_number + 1, CASE WHEN strlen(j) > ",
    );
    sql.bind(MAX_RECORD_BYTES as i64)
        .push(" THEN left(j, ")
        .bind(QUARANTINE_RAW_CHARS as i64)
        .push(") ELSE j END, CASE WHEN strlen(j) > ")
        .bind(MAX_RECORD_BYTES as i64)
        .push(" THEN 'record is ' || strlen(j) || ")
        .bind(format!(
            " bytes; the limit is {} MiB",
            MAX_RECORD_BYTES / (1024 * 1024)
        ))
        .push(" END, strlen(j), NULL, NULL FROM (SELECT file_row_number, json_object(");
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
    sql.bind(source);
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

#[cfg(test)]
mod bounded_tests {
    use super::{next_line, Line, Records, MAX_RECORD_BYTES};
    use std::io::{BufReader, Cursor};

    /// A line number, and the whole line or the kept length and the full length.
    type Read = (i64, Result<Vec<u8>, (usize, u64)>);

    /// Every line of `text` read through a tiny buffer, so that line endings and BOMs fall
    /// across reads.
    fn lines(text: &[u8]) -> Vec<Read> {
        let mut r = BufReader::with_capacity(7, Cursor::new(text));
        let (mut buf, mut n, mut out) = (Vec::new(), 0, Vec::new());
        while let Some(l) = next_line(&mut r, &mut buf, &mut n).unwrap() {
            out.push((
                n,
                match l {
                    Line::Whole(b) => Ok(b.to_vec()),
                    Line::TooLong(head, len) => Err((head.len(), len)),
                },
            ));
        }
        out
    }

    #[test]
    fn lines_over_the_limit_are_measured_not_held() {
        let mut text = vec![0xEF, 0xBB, 0xBF];
        text.extend(vec![b'a'; MAX_RECORD_BYTES + 1]);
        text.extend(b"\r\n{}\r\n");
        text.extend(vec![b' '; MAX_RECORD_BYTES + 9]);
        text.extend(b"\n\n");
        text.extend(vec![b'b'; MAX_RECORD_BYTES]);
        text.extend(b"\nx\r");
        let got = lines(&text);
        assert_eq!(got.len(), 4, "the blank lines are not records");
        assert_eq!(got[0].0, 1);
        let Err((kept, len)) = got[0].1 else {
            panic!("line 1 is over the limit")
        };
        assert_eq!(
            len,
            MAX_RECORD_BYTES as u64 + 1,
            "BOM and CRLF are not counted"
        );
        assert!(kept <= MAX_RECORD_BYTES + 2);
        assert_eq!(got[1], (2, Ok(b"{}".to_vec())));
        // Exactly at the limit is still a record.
        assert_eq!(got[2].0, 5);
        assert_eq!(got[2].1.as_ref().map(Vec::len), Ok(MAX_RECORD_BYTES));
        assert_eq!(got[3], (6, Ok(b"x".to_vec())));
    }

    #[test]
    fn delimited_records_keep_at_most_the_limit() {
        let mut text = b"a,\"b\nc\",d\r\n\r\n".to_vec();
        text.extend(b"1,\"");
        text.extend(vec![b'\n'; MAX_RECORD_BYTES + 1]);
        text.extend(b"\",3\n");
        text.extend(b"x,y,z,w,v\nlast");
        let mut r = Records::new(BufReader::with_capacity(5, Cursor::new(text)), b',', true);
        let fields = |r: &Records<_>| -> Vec<Vec<u8>> { r.iter().map(<[u8]>::to_vec).collect() };
        assert!(r.read(3).unwrap());
        assert!(r.whole());
        assert_eq!(fields(&r), [b"a".to_vec(), b"b\nc".to_vec(), b"d".to_vec()]);
        // The blank line is skipped; the giant field is counted, not held.
        assert!(r.read(3).unwrap());
        assert!(!r.whole());
        assert_eq!(r.bytes, MAX_RECORD_BYTES as u64 + 3);
        assert_eq!(r.fields, 3);
        assert_eq!(r.size(), MAX_RECORD_BYTES as u64 + 5);
        assert_eq!(r.iter().next(), Some(&b"1"[..]));
        // More fields than asked for are counted; the first ones kept.
        assert!(r.read(3).unwrap());
        assert_eq!((r.fields, r.whole()), (5, false));
        assert_eq!(
            fields(&r)[..4],
            [b"x".to_vec(), b"y".to_vec(), b"z".to_vec(), b"w".to_vec()]
        );
        assert!(r.read(3).unwrap());
        assert_eq!(fields(&r), [b"last".to_vec()]);
        assert!(!r.read(3).unwrap());
    }
}
