//! Zip archives of JSON-lines members, as the Amplitude Export API returns them
//! (formats.md §2.1): `<project>/<project>_<YYYY-MM-DD>_<H>#<n>.json.gz`, each member gzip
//! (or, leniently, plain) JSON lines. Members are read in natural order (`_9#` before
//! `_10#`), as PostHog's importer does, and every record keeps its member and line within
//! the member (`source_file` = `outer.zip!/member`).

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use duckdb::Connection;
use flate2::read::MultiGzDecoder;

use super::reader::{append_line, next_line, report, truncate_chars, ProgressLabel, ReadStats};
use crate::jobs::{JobCtx, JobEvent};
use crate::{EngineError, Result};

const DATA_SUFFIXES: &[&str] = &[
    ".json.gz",
    ".jsonl.gz",
    ".ndjson.gz",
    ".json",
    ".jsonl",
    ".ndjson",
];

/// Natural order: runs of digits compare as numbers, so `_9#2` < `_10#1` and `#2` < `#10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = trim_zeros(dx);
                let ty = trim_zeros(dy);
                let o = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

/// The archive's members: data members (by index, natural order) and everything else.
pub struct Members {
    pub data: Vec<(usize, String)>,
    pub skipped: Vec<String>,
}

fn open(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>> {
    let f = File::open(path).map_err(|e| EngineError::io(path, e))?;
    zip::ZipArchive::new(BufReader::new(f))
        .map_err(|e| EngineError::unreadable(path, format!("not a readable zip archive ({e})")))
}

fn list(path: &Path, z: &mut zip::ZipArchive<BufReader<File>>) -> Result<Members> {
    let mut data = Vec::new();
    let mut skipped = Vec::new();
    for i in 0..z.len() {
        let f = z.by_index_raw(i).map_err(|e| {
            EngineError::unreadable(path, format!("zip entry {} is unreadable ({e})", i + 1))
        })?;
        if f.is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let lower = name.to_ascii_lowercase();
        let base = lower.rsplit('/').next().unwrap_or(&lower);
        if !base.starts_with('.')
            && !lower.starts_with("__macosx/")
            && DATA_SUFFIXES.iter().any(|s| lower.ends_with(s))
        {
            data.push((i, name));
        } else {
            skipped.push(name);
        }
    }
    data.sort_by(|a, b| natural_cmp(&a.1, &b.1));
    if data.is_empty() {
        let seen = if skipped.is_empty() {
            "it is empty".to_string()
        } else {
            format!(
                "found: {}",
                skipped
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(EngineError::unsupported(
            path,
            format!("the zip archive holds no .json.gz or .json members ({seen})"),
        ));
    }
    Ok(Members { data, skipped })
}

/// A member's decoded byte stream: gzip when it starts with the gzip magic, otherwise plain
/// text, which must then look like JSON lines.
fn decoded<'a, R: Read + 'a>(path: &Path, name: &str, inner: R) -> Result<Box<dyn BufRead + 'a>> {
    let mut b = BufReader::with_capacity(1 << 20, inner);
    let head = b.fill_buf().map_err(|e| member_error(path, name, 0, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(b),
        )));
    }
    let first = head.iter().find(|c| !c.is_ascii_whitespace()).copied();
    match first {
        None | Some(b'{') => Ok(Box::new(b)),
        Some(_) => {
            let shown: Vec<String> = head.iter().take(8).map(|c| format!("{c:02x}")).collect();
            Err(EngineError::unreadable(
                path,
                format!(
                    "zip member {name} is neither gzip nor JSON lines (it starts with bytes {})",
                    shown.join(" ")
                ),
            ))
        }
    }
}

fn member_error(path: &Path, name: &str, line: i64, e: io::Error) -> EngineError {
    EngineError::unreadable(
        path,
        format!("zip member {name} is truncated or corrupt after its line {line} ({e}); nothing from this archive was loaded"),
    )
}

/// The first ~256 KiB of the first data member, decompressed: for sniffing the vendor.
pub fn head(path: &Path) -> Result<Vec<u8>> {
    let mut z = open(path)?;
    let m = list(path, &mut z)?;
    let (i, name) = &m.data[0];
    let f = z
        .by_index(*i)
        .map_err(|e| EngineError::unreadable(path, format!("zip member {name}: {e}")))?;
    let mut r = decoded(path, name, f)?;
    let mut out = Vec::new();
    // A damaged member is reported when it is read in full.
    let _ = (&mut r).take(256 * 1024).read_to_end(&mut out);
    Ok(out)
}

/// Stage every record of every data member into `stg_raw`.
pub fn stage_zip(
    conn: &Connection,
    path: &Path,
    ctx: &JobCtx,
    label: &ProgressLabel<'_>,
) -> Result<ReadStats> {
    let mut z = open(path)?;
    let members = list(path, &mut z)?;
    let note = (!members.skipped.is_empty()).then(|| {
        format!(
            "skipped {} zip member(s) that are not JSON lines: {}",
            members.skipped.len(),
            members
                .skipped
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    if let Some(n) = &note {
        ctx.emit(
            JobEvent::Warning {
                message: format!("{}: {n}", label.file),
            },
            true,
        );
    }
    let mut app = conn.appender_to_catalog_and_db("stg_raw", "temp", "main")?;
    let mut records: u64 = 0;
    let mut bytes_done: u64 = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    for (i, name) in &members.data {
        let f = z
            .by_index(*i)
            .map_err(|e| EngineError::unreadable(path, format!("zip member {name}: {e}")))?;
        let compressed = f.compressed_size();
        let mut r = decoded(path, name, f)?;
        let mut line_no: i64 = 0;
        while let Some(line) = next_line(&mut r, &mut buf, &mut line_no)
            .map_err(|e| member_error(path, name, line_no, e))?
        {
            records += 1;
            append_line(
                &mut app,
                records as i64,
                line,
                Some((truncate_chars(name, 1000), line_no)),
            )?;
            if label.done(records) {
                break;
            }
            if records.is_multiple_of(8192) {
                ctx.cancel.check()?;
                report(ctx, label, "reading", bytes_done, records, false);
            }
        }
        if label.done(records) {
            break;
        }
        bytes_done += compressed;
        ctx.cancel.check()?;
        report(ctx, label, "reading", bytes_done, records, false);
    }
    app.flush()?;
    drop(app);
    report(ctx, label, "reading", label.size, records, true);
    Ok(ReadStats {
        records,
        sha256: super::reader::hash_file(path)?,
        columns: None,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_of_amplitude_members() {
        let mut v = vec![
            "1/1_2020-11-24_10#1.json.gz",
            "1/1_2020-11-24_9#10.json.gz",
            "1/1_2020-11-24_9#2.json.gz",
            "1/1_2020-11-23_23#1.json.gz",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "1/1_2020-11-23_23#1.json.gz",
                "1/1_2020-11-24_9#2.json.gz",
                "1/1_2020-11-24_9#10.json.gz",
                "1/1_2020-11-24_10#1.json.gz",
            ]
        );
        assert_eq!(natural_cmp("a007", "a7"), Ordering::Less);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
    }
}
