//! Re-scanning an exported JSON-lines or CSV file as a stream: this thread reads (and
//! decompresses) batches of lines, worker threads parse and scan them with their own tallies,
//! merged at the end. Memory stays bounded by a few batches whatever the file's size.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::export::ExportFormat;
use super::scan::{EventRow, IdMap, Scanner};
use crate::jobs::{JobCtx, JobEvent};
use crate::{EngineError, Result};

/// Lines (or records) per batch handed to a worker.
const LINES: usize = 4096;

enum Batch {
    /// JSON lines and the row number of the first.
    Lines(u64, Vec<String>),
    /// Parsed CSV records.
    Rows(Vec<EventRow>),
}

/// One canonical JSON line (what the export writes).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source_file: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source_vendor: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts_utc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    distinct_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    anon_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    vendor_person_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
    #[serde(borrow)]
    person_properties: Option<&'a RawValue>,
    #[serde(borrow)]
    groups: Option<&'a RawValue>,
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00` (what the export writes) → µs since the epoch.
pub(crate) fn parse_ts(s: &str) -> Option<i64> {
    let day = crate::generate::date_to_micros(s.get(..10)?).ok()?;
    let t = s.get(11..19)?;
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (h, m, sec) = (num(0..2)?, num(3..5)?, num(6..8)?);
    let rest = s.get(19..)?;
    let frac = match rest.strip_prefix('.') {
        Some(f) => {
            let digits: String = f.chars().take_while(char::is_ascii_digit).collect();
            let mut v: i64 = digits.get(..digits.len().min(6))?.parse().unwrap_or(0);
            for _ in digits.len().min(6)..6 {
                v *= 10;
            }
            v
        }
        None => 0,
    };
    Some(day + ((h * 60 + m) * 60 + sec) * 1_000_000 + frac)
}

fn opt(c: Option<Cow<'_, str>>) -> Option<String> {
    c.map(Cow::into_owned)
}

fn raw(v: Option<&RawValue>) -> Option<String> {
    v.map(RawValue::get)
        .filter(|t| *t != "null")
        .map(str::to_string)
}

/// A reader for `path`, decompressed when it ends in `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    })
}

/// Scan an exported JSONL or CSV file (canonical columns, or vendor records) into `sc`.
pub(crate) fn scan_file(
    sc: &mut Scanner<'_>,
    conn: &duckdb::Connection,
    path: &Path,
    format: ExportFormat,
    vendor_shape: bool,
    ctx: &JobCtx,
) -> Result<u64> {
    let workers = sc.workers.max(1);
    let rules = sc.rules;
    let count_people = sc.count_people;
    let mut rule_conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        rule_conns.push(if rules.is_empty() {
            None
        } else {
            Some(conn.try_clone()?)
        });
    }
    let (tx, rx) = sync_channel::<Batch>(workers * 2);
    let rx: Arc<Mutex<Receiver<Batch>>> = Arc::new(Mutex::new(rx));
    let file_name = path.to_string_lossy().to_string();
    let (read, merged) = std::thread::scope(|s| {
        let handles: Vec<_> = rule_conns
            .into_iter()
            .map(|rc| {
                let rx = rx.clone();
                s.spawn(move || -> Result<Scanner<'_>> {
                    let mut w = Scanner::new(rules, rc)?;
                    w.count_people = count_people;
                    let empty = IdMap::default();
                    let mut ev = EventRow::default();
                    loop {
                        let batch = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        let Ok(batch) = batch else { break };
                        ctx.cancel.check()?;
                        match batch {
                            Batch::Lines(first, lines) => {
                                for (i, line) in lines.iter().enumerate() {
                                    let row = first + i as u64;
                                    if vendor_shape {
                                        w.vendor_record(row, line)?;
                                        continue;
                                    }
                                    let l: Line<'_> = serde_json::from_str(line).map_err(|e| {
                                        EngineError::InvalidArgument(format!(
                                            "re-reading the export, line {}: {:?} error at column {}",
                                            row + 1,
                                            e.classify(),
                                            e.column()
                                        ))
                                    })?;
                                    ev.row = row;
                                    ev.ts = l.ts_utc.as_deref().and_then(parse_ts);
                                    ev.name = opt(l.event_name);
                                    ev.file = opt(l.source_file);
                                    ev.vendor = opt(l.source_vendor);
                                    ev.top = [
                                        opt(l.distinct_id),
                                        opt(l.user_id),
                                        opt(l.anon_id),
                                        opt(l.session_id),
                                        opt(l.vendor_person_id),
                                    ];
                                    ev.json = [
                                        raw(l.properties),
                                        raw(l.person_properties),
                                        raw(l.groups),
                                        None,
                                    ];
                                    w.event(&ev.view(), &empty)?;
                                }
                            }
                            Batch::Rows(rows) => {
                                for r in &rows {
                                    w.event(&r.view(), &empty)?;
                                }
                            }
                        }
                    }
                    w.flush_rules()?;
                    Ok(w)
                })
            })
            .collect();
        let read = read_batches(path, format, vendor_shape, &tx, ctx, &file_name);
        drop(tx);
        let merged: Vec<Result<Scanner<'_>>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EngineError::InvalidArgument(
                        "a scan thread panicked".into(),
                    ))
                })
            })
            .collect();
        (read, merged)
    });
    let mut first_err = None;
    for r in merged {
        match r {
            Ok(w) => sc.merge(w),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let n = read?;
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(n)
}

/// Read the file into batches for the workers; the number of records read.
fn read_batches(
    path: &Path,
    format: ExportFormat,
    vendor_shape: bool,
    tx: &std::sync::mpsc::SyncSender<Batch>,
    ctx: &JobCtx,
    file_name: &str,
) -> Result<u64> {
    let mut n: u64 = 0;
    let report = |n: u64| {
        ctx.emit(
            JobEvent::Progress {
                file: file_name.to_string(),
                file_index: 0,
                phase: "verify".into(),
                bytes_done: n,
                bytes_total: 0,
                rows: n,
            },
            false,
        )
    };
    match format {
        ExportFormat::Jsonl => {
            let mut r = open(path)?;
            let mut batch = Vec::with_capacity(LINES);
            let mut first = 0u64;
            loop {
                let mut line = String::new();
                let got = r
                    .read_line(&mut line)
                    .map_err(|e| EngineError::io(path, e))?;
                if got == 0 {
                    break;
                }
                let t = line.trim_end_matches(['\n', '\r']);
                if t.trim().is_empty() {
                    continue;
                }
                if t.len() != line.len() {
                    line.truncate(t.len());
                }
                batch.push(line);
                n += 1;
                if batch.len() == LINES {
                    ctx.cancel.check()?;
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(LINES));
                    if tx.send(Batch::Lines(first, full)).is_err() {
                        return Ok(n);
                    }
                    first = n;
                    report(n);
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Batch::Lines(first, batch));
            }
        }
        ExportFormat::Csv if !vendor_shape => {
            let r: Box<dyn Read + Send> = open(path)?;
            let mut rd = csv::ReaderBuilder::new().has_headers(true).from_reader(r);
            let headers = rd
                .headers()
                .map_err(|e| EngineError::InvalidArgument(format!("re-reading the export: {e}")))?
                .clone();
            let col = |name: &str| headers.iter().position(|h| h == name);
            let idx = |names: &[&str]| names.iter().map(|n| col(n)).collect::<Vec<_>>();
            let top = idx(&super::export::TOP);
            let json = idx(&["properties", "person_properties", "groups"]);
            let (name, file, vendor, ts) = (
                col("event_name"),
                col("source_file"),
                col("source_vendor"),
                col("ts_utc"),
            );
            let mut rec = csv::StringRecord::new();
            let mut batch = Vec::with_capacity(LINES);
            loop {
                let more = rd.read_record(&mut rec).map_err(|e| {
                    EngineError::InvalidArgument(format!("re-reading the export: {e}"))
                })?;
                if !more {
                    break;
                }
                // Empty fields are NULLs, as DuckDB reads them.
                let get = |i: Option<usize>| {
                    i.and_then(|i| rec.get(i))
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                };
                let mut ev = EventRow {
                    row: n,
                    name: get(name),
                    file: get(file),
                    vendor: get(vendor),
                    ts: get(ts).as_deref().and_then(parse_ts),
                    ..EventRow::default()
                };
                for (k, i) in top.iter().enumerate() {
                    ev.top[k] = get(*i);
                }
                for (k, i) in json.iter().enumerate() {
                    ev.json[k] = get(*i);
                }
                batch.push(ev);
                n += 1;
                if batch.len() == LINES {
                    ctx.cancel.check()?;
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(LINES));
                    if tx.send(Batch::Rows(full)).is_err() {
                        return Ok(n);
                    }
                    report(n);
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Batch::Rows(batch));
            }
        }
        _ => {
            return Err(EngineError::InvalidArgument(format!(
                "{} exports are not re-read as a stream",
                format.as_str()
            )))
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for us in [0, 1_709_287_200_000_000, 1_709_287_200_123_456, -1] {
            assert_eq!(
                parse_ts(&crate::generate::rfc3339_micros(us)),
                Some(us),
                "{us}"
            );
        }
        assert_eq!(
            parse_ts("2024-03-01T10:00:00+00:00"),
            Some(1_709_287_200_000_000)
        );
        assert_eq!(parse_ts("yesterday"), None);
    }
}
