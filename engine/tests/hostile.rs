//! Hostile files (issue 17, items 6 and 7): decompression bombs, giant fields, device files,
//! pipes and symlink cycles, out-of-range numbers and impossible UTC offsets in time fields,
//! and Parquet file names holding glob characters. The big files are generated here, at run
//! time, into a temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use stitchbook_engine::ingest::{
    expand_paths, import_paths, FileOutcome, FormatOverride, ImportOptions, ImportStatus,
};
use stitchbook_engine::{JobCtx, Workspace};

/// Tests that measure or use a lot of memory run one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn count(ws: &Workspace, sql: &str) -> i64 {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn import_one(ws: &Workspace, path: &Path, format: Option<&str>) -> FileOutcome {
    let opts = ImportOptions {
        format: format.map(|f| FormatOverride::parse(f).unwrap()),
        ..Default::default()
    };
    let mut r = import_paths(ws, &[path.to_path_buf()], &opts, &JobCtx::silent()).unwrap();
    assert_eq!(r.files.len(), 1);
    r.files.remove(0)
}

fn rows(o: &FileOutcome) -> (u64, u64, u64, u64) {
    (
        o.rows_read,
        o.rows_loaded,
        o.rows_duplicate,
        o.rows_quarantined,
    )
}

fn strings(ws: &Workspace, sql: &str) -> Vec<String> {
    ws.conn()
        .prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Run `f` on another thread; fail the test if it takes longer than `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

// ---------------------------------------------------------------------------------------------
// Decompressed records over the record limit

const MIB: usize = 1024 * 1024;
/// How much the bombs expand to: far over the 64 MiB record limit.
const BOMB_BYTES: u64 = 1024 * MIB as u64;

/// Gzip members that decompress to `BOMB_BYTES` of `fill` (no line break): 64 MiB compressed
/// once and repeated, since gzip members may be concatenated.
fn bomb_members(fill: u8) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&vec![fill; 64 * MIB]).unwrap();
    let member = enc.finish().unwrap();
    let mut out = Vec::new();
    for _ in 0..BOMB_BYTES / (64 * MIB as u64) {
        out.extend_from_slice(&member);
    }
    out
}

fn gz(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// A gzip stream: `before`, then a bomb of `fill`, then `after`.
fn gzip_bomb(before: &str, fill: u8, after: &str) -> Vec<u8> {
    let mut out = gz(before);
    out.extend(bomb_members(fill));
    out.extend(gz(after));
    out
}

/// Peak resident memory (KiB) since the last reset; None where Linux's counters are absent.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Import `path`, asserting that the peak resident memory grows by less than 512 MiB while a
/// file expands to `BOMB_BYTES` (reading the bomb whole would grow it by at least 1 GiB).
fn import_bounded(ws: &Workspace, path: &Path) -> FileOutcome {
    let measured = cfg!(target_os = "linux") && reset_peak();
    let before = peak_kib();
    let o = import_one(ws, path, None);
    if measured {
        let grew = peak_kib().unwrap() - before.unwrap();
        assert!(
            grew < 512 * 1024,
            "{}: peak memory grew by {} MiB",
            path.display(),
            grew / 1024
        );
    }
    o
}

fn posthog_line(uuid: &str) -> String {
    format!(
        r#"{{"uuid":"{uuid}","event":"$pageview","distinct_id":"d1","timestamp":"2024-03-01T10:00:00Z","properties":{{}}}}"#
    )
}

fn amplitude_line(uuid: &str) -> String {
    format!(
        r#"{{"uuid":"{uuid}","event_type":"a","amplitude_id":1,"user_id":"u1","device_id":"dev1","event_time":"2024-03-01 10:00:00.000000"}}"#
    )
}

#[test]
fn decompressed_records_over_the_limit_are_quarantined_in_bounded_memory() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let limit_reason = format!("record is {BOMB_BYTES} bytes; the limit is 64 MiB");

    // A gzip JSON-lines file whose line 2 is one giant line; lines 1 and 3 load.
    let gzip = dir.path().join("bomb.jsonl.gz");
    std::fs::write(
        &gzip,
        gzip_bomb(
            &format!("{}\n", posthog_line("u1")),
            b'x',
            &format!("\n{}\n", posthog_line("u3")),
        ),
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_bounded(&ws, &gzip);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(&o), (3, 2, 0, 1));
    let (line, reason, len, raw): (i64, String, i64, String) = ws
        .conn()
        .query_row(
            "SELECT source_line, reason, raw_length, raw FROM quarantine",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (line, reason.as_str(), len),
        (2, limit_reason.as_str(), BOMB_BYTES as i64)
    );
    assert_eq!(
        raw,
        "x".repeat(2000),
        "the quarantine keeps the record's start"
    );

    // An Amplitude zip whose gzip member holds the giant line: quarantined with its member.
    let zip_path = dir.path().join("bomb.zip");
    let member = "187520/187520_2024-03-01_10#1.json.gz";
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file(member, opts).unwrap();
        z.write_all(&gzip_bomb(
            &format!("{}\n", amplitude_line("a1")),
            b'y',
            &format!("\n{}\n", amplitude_line("a3")),
        ))
        .unwrap();
        z.finish().unwrap();
    }
    let ws = Workspace::in_memory().unwrap();
    let o = import_bounded(&ws, &zip_path);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(o.vendor.as_deref(), Some("amplitude"));
    assert_eq!(rows(&o), (3, 2, 0, 1));
    let (file, line, reason): (String, i64, String) = ws
        .conn()
        .query_row(
            "SELECT source_file, source_line, reason FROM quarantine",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(file.ends_with(&format!("bomb.zip!/{member}")), "{file}");
    assert_eq!((line, reason.as_str()), (2, limit_reason.as_str()));

    // A gzip CSV whose record 2 has one giant quoted field (holding line breaks, so no line
    // reader could split it): quarantined; records 1 and 3 load.
    let csv = dir.path().join("bomb.csv.gz");
    let mut bytes = gz(
        "uuid,event,distinct_id,timestamp,properties\nc1,$pageview,d1,2024-03-01T10:00:00Z,{}\nc2,$pageview,d1,2024-03-01T10:00:01Z,\"",
    );
    bytes.extend(bomb_members(b'\n'));
    bytes.extend(gz("\"\nc3,$pageview,d1,2024-03-01T10:00:02Z,{}\n"));
    std::fs::write(&csv, bytes).unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_bounded(&ws, &csv);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(o.container.as_deref(), Some("csv"));
    assert_eq!(rows(&o), (3, 2, 0, 1));
    let (line, reason, len): (i64, String, i64) = ws
        .conn()
        .query_row(
            "SELECT source_line, reason, raw_length FROM quarantine",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // The record's size: its field bytes and the four commas between its five fields.
    let size = "c2$pageviewd12024-03-01T10:00:01Z".len() as u64 + BOMB_BYTES + 4;
    assert_eq!(
        (line, reason, len),
        (
            2,
            format!("record is {size} bytes; the limit is 64 MiB"),
            size as i64
        )
    );
    assert_eq!(
        strings(&ws, "SELECT event_uuid FROM events ORDER BY 1"),
        ["c1", "c3"]
    );
}

#[test]
fn a_csv_field_over_the_limit_in_a_plain_file_is_quarantined() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("wide.csv");
    let mut text = String::from("uuid,event,distinct_id,timestamp,properties\n");
    text.push_str("c1,$pageview,d1,2024-03-01T10:00:00Z,{}\n");
    text.push_str("c2,$pageview,d1,2024-03-01T10:00:01Z,\"");
    text.push_str(&"z".repeat(65 * MIB));
    text.push_str("\"\nc3,$pageview,d1,2024-03-01T10:00:02Z,{}\n");
    std::fs::write(&csv, text).unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &csv, None);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(&o), (3, 2, 0, 1));
    // The quarantine shows the record as it stood in the file, with its size there.
    let (line, reason, len, raw): (i64, String, i64, String) = ws
        .conn()
        .query_row(
            "SELECT source_line, reason, raw_length, raw FROM quarantine",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let head = "c2,$pageview,d1,2024-03-01T10:00:01Z,";
    let size = head.len() + 65 * MIB;
    assert_eq!(
        (line, reason, len),
        (
            2,
            format!("record is {size} bytes; the limit is 64 MiB"),
            size as i64
        )
    );
    assert_eq!(raw, format!("{head}{}", "z".repeat(2000 - head.len())));
}

#[test]
fn a_parquet_row_over_the_limit_is_quarantined() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("big.parquet");
    let scratch = Workspace::in_memory().unwrap();
    scratch
        .conn()
        .execute_batch(&format!(
            "COPY (SELECT * FROM (VALUES
                ('p1', '$pageview', 'd1', TIMESTAMPTZ '2024-03-01 10:00:00+00', '{{}}'),
                ('p2', '$pageview', 'd1', TIMESTAMPTZ '2024-03-01 10:00:01+00', '{{\"blob\":\"' || repeat('x', 65 * 1024 * 1024) || '\"}}'),
                ('p3', '$pageview', 'd1', TIMESTAMPTZ '2024-03-01 10:00:02+00', '{{}}'))
              t(uuid, event, distinct_id, timestamp, properties)) TO '{}' (FORMAT parquet)",
            pq.display()
        ))
        .unwrap();
    drop(scratch);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &pq, None);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(&o), (3, 2, 0, 1));
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE source_line = 2 AND reason LIKE 'record is % bytes; the limit is 64 MiB' AND length(raw) <= 2000"
        ),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Device files, pipes and symlink cycles

#[cfg(unix)]
#[test]
fn pipes_and_devices_are_refused_at_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a pipe for reading blocks until a writer comes: the import must not open it.
    let f = fifo.clone();
    let o = within(60, "importing a named pipe", move || {
        let ws = Workspace::in_memory().unwrap();
        import_one(&ws, &f, None)
    });
    assert_eq!(o.status, ImportStatus::Failed);
    let msg = o.message.unwrap_or_default();
    assert!(
        msg.contains("events.jsonl") && msg.contains("named pipe"),
        "{msg}"
    );
    // The import wizard's preview shows it with its problem (and does not fail the others).
    let f = fifo.clone();
    let problem = within(60, "previewing a named pipe", move || {
        stitchbook_engine::ingest::preview::preview(&f, &ImportOptions::default(), 10)
            .unwrap()
            .problem
            .unwrap_or_default()
    });
    assert!(
        problem.contains("events.jsonl") && problem.contains("named pipe"),
        "{problem}"
    );

    // A device that never ends.
    let o = within(60, "importing /dev/zero", || {
        let ws = Workspace::in_memory().unwrap();
        import_one(&ws, Path::new("/dev/zero"), None)
    });
    assert_eq!(o.status, ImportStatus::Failed);
    let msg = o.message.unwrap_or_default();
    assert!(
        msg.contains("/dev/zero") && msg.contains("character device"),
        "{msg}"
    );

    // In a folder, the pipe is listed and refused by name; the other files load.
    std::fs::write(
        dir.path().join("good.jsonl"),
        format!("{}\n", posthog_line("g1")),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let r = within(60, "importing a folder holding a pipe", move || {
        let ws = Workspace::in_memory().unwrap();
        import_paths(&ws, &[d], &ImportOptions::default(), &JobCtx::silent()).unwrap()
    });
    let got: Vec<(String, ImportStatus)> = r
        .files
        .iter()
        .map(|f| (name_of(&f.path), f.status))
        .collect();
    assert_eq!(
        got,
        [
            ("events.jsonl".to_string(), ImportStatus::Failed),
            ("good.jsonl".to_string(), ImportStatus::Complete)
        ]
    );
}

fn name_of(p: &str) -> String {
    Path::new(p)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string()
}

#[cfg(unix)]
#[test]
fn symlink_cycles_in_a_folder_are_detected_and_named() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("exports");
    let sub = root.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(root.join("a.jsonl"), format!("{}\n", posthog_line("a1"))).unwrap();
    std::fs::write(sub.join("b.jsonl"), format!("{}\n", posthog_line("b1"))).unwrap();
    // Links back up the tree (cycles), and a second way into a folder already read.
    symlink("..", sub.join("up")).unwrap();
    symlink(".", root.join("self")).unwrap();
    symlink("sub", root.join("zz_again")).unwrap();

    let r = root.clone();
    let files = within(60, "listing a folder with symlink cycles", move || {
        expand_paths(&[r]).unwrap()
    });
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a.jsonl", "self", "sub/b.jsonl", "sub/up"]);

    let r = root.clone();
    let report = within(60, "importing a folder with symlink cycles", move || {
        let ws = Workspace::in_memory().unwrap();
        import_paths(&ws, &[r], &ImportOptions::default(), &JobCtx::silent()).unwrap()
    });
    let loaded: u64 = report.files.iter().map(|f| f.rows_loaded).sum();
    assert_eq!(loaded, 2, "each real file once");
    let mut refusals: Vec<String> = report
        .files
        .iter()
        .filter(|f| f.status == ImportStatus::Failed)
        .map(|f| f.message.clone().unwrap_or_default())
        .collect();
    refusals.sort();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    // Each refusal names the link and says why.
    let root = std::fs::canonicalize(&root).unwrap();
    for (msg, link) in refusals.iter().zip(["exports/self", "exports/sub/up"]) {
        assert!(
            msg.contains(&format!("{link}: a symbolic link to {}", root.display()))
                && msg.contains("(a cycle)"),
            "{msg}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Out-of-range numbers and impossible offsets in time fields

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn out_of_range_numbers_in_time_fields_quarantine_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();

    // Mixpanel: properties.time in seconds or milliseconds.
    let times = [
        "1709287200",
        "1e22",
        "-1e22",
        "9223372036854775807",
        "-9223372036854775808",
        "\"Infinity\"",
        "\"-Infinity\"",
    ];
    let text: String = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{{\"event\":\"e\",\"properties\":{{\"time\":{t},\"distinct_id\":\"u1\",\"$insert_id\":\"i{i}\",\"$mp_api_timestamp_ms\":1e300}}}}\n"
            )
        })
        .collect();
    let mp = write(dir.path(), "mixpanel.jsonl", &text);
    let o = import_one(&ws, &mp, Some("mixpanel"));
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(&o), (7, 1, 0, 6));
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE reason LIKE 'properties.time % is out of range'"
        ),
        6
    );
    // An out-of-range receive time is only left out.
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE ts_utc = TIMESTAMPTZ '2024-03-01 10:00:00+00' AND received_at_utc IS NULL"
        ),
        1
    );

    // GA4: event_timestamp in microseconds, as text.
    let ga: String = [
        "1709287200000000",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775806",
        "1e22",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| {
        format!(
            "{{\"event_date\":\"20240301\",\"event_timestamp\":\"{t}\",\"event_name\":\"page_view\",\"user_pseudo_id\":\"p{i}\"}}\n"
        )
    })
    .collect();
    let ga = write(dir.path(), "ga4.jsonl", &ga);
    let o = import_one(&ws, &ga, None);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!((o.vendor.as_deref(), rows(&o)), (Some("ga4"), (5, 1, 0, 4)));
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE reason LIKE 'event_timestamp \"%\" is not an integer of microseconds%'"
        ),
        4
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE NOT isfinite(ts_utc)"
        ),
        0
    );

    // RudderStack data-lake rows: epoch numbers whose unit follows from their size.
    let rs: String = ["1709287200000", "9223372036854775807", "1e22", "-1e300"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{{\"id\":\"r{i}\",\"anonymous_id\":\"a1\",\"event\":\"e\",\"context_library_name\":\"x\",\"received_at\":{t}}}\n"
            )
        })
        .collect();
    let rs = write(dir.path(), "rudder.jsonl", &rs);
    let o = import_one(&ws, &rs, None);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(
        (o.vendor.as_deref(), rows(&o)),
        (Some("rudderstack"), (4, 1, 0, 3))
    );

    // A generic file with a mapping: epoch milliseconds.
    let gen = write(
        dir.path(),
        "generic.csv",
        "name,at,user\nsignup,1709287200000,u1\nsignup,9223372036854775807,u2\nsignup,-9223372036854775808,u3\nsignup,1e22,u4\n",
    );
    let opts = ImportOptions {
        mapping: Some(stitchbook_engine::ingest::ColumnMapping {
            event: "name".into(),
            timestamp: "at".into(),
            timestamp_format: "epoch_ms".into(),
            user_id: Some("user".into()),
            anon_id: None,
            session_id: None,
            distinct_id: None,
            event_id: None,
        }),
        ..Default::default()
    };
    let r = import_paths(&ws, &[gen], &opts, &JobCtx::silent()).unwrap();
    let o = &r.files[0];
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(o), (4, 1, 0, 3));
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE NOT isfinite(ts_utc)"
        ),
        0
    );
}

#[test]
fn impossible_utc_offsets_are_quarantined_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = [
        ("ok-z", "2024-03-01T10:00:00Z", Some("2024-03-01 10:00:00")),
        (
            "ok-530",
            "2024-03-01T10:00:00+05:30",
            Some("2024-03-01 04:30:00"),
        ),
        (
            "ok-0530",
            "2024-03-01T10:00:00.250+0530",
            Some("2024-03-01 04:30:00.25"),
        ),
        (
            "ok-14",
            "2024-03-01T10:00:00+14:00",
            Some("2024-02-29 20:00:00"),
        ),
        (
            "ok-m12",
            "2024-03-01T10:00:00-12:00",
            Some("2024-03-01 22:00:00"),
        ),
        (
            "ok-18",
            "2024-03-01T10:00:00-18",
            Some("2024-03-02 04:00:00"),
        ),
        ("bad-99", "2024-03-01T10:00:00+99:00", None),
        ("bad-m25", "2024-03-01T10:00:00-25:00", None),
        ("bad-1461", "2024-03-01T10:00:00+14:61", None),
        ("bad-1830", "2024-03-01T10:00:00+18:30", None),
        ("bad-9999", "2024-03-01 10:00:00.123456-9999", None),
    ];
    let text: String = stamps
        .iter()
        .map(|(id, ts, _)| {
            format!(
                "{{\"uuid\":\"{id}\",\"event\":\"e\",\"distinct_id\":\"d1\",\"timestamp\":\"{ts}\",\"properties\":{{}}}}\n"
            )
        })
        .collect();
    let p = write(dir.path(), "offsets.jsonl", &text);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.status, ImportStatus::Complete, "{:?}", o.message);
    assert_eq!(rows(&o), (11, 6, 0, 5));
    for (id, ts, utc) in stamps {
        match utc {
            Some(utc) => {
                let got: String = ws
                    .conn()
                    .query_row(
                        "SELECT strftime(ts_utc, '%Y-%m-%d %H:%M:%S.%g') FROM events WHERE event_uuid = ?",
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                let want = if utc.contains('.') {
                    format!("{utc:0<23}")
                } else {
                    format!("{utc}.000")
                };
                assert_eq!(got, want, "{ts}");
            }
            None => {
                let offset = &ts[ts.rfind(['+', '-']).unwrap()..];
                let reason: String = ws
                    .conn()
                    .query_row(
                        "SELECT reason FROM quarantine WHERE raw LIKE '%\"uuid\":\"' || ? || '\"%'",
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(
                    reason,
                    format!("unparseable timestamp \"{ts}\": the UTC offset {offset} is impossible (offsets lie within -18:00..+18:00)")
                );
            }
        }
    }

    // Vendors that fall back to another time field say why the first one was refused.
    let seg = write(
        dir.path(),
        "segment.jsonl",
        "{\"type\":\"track\",\"messageId\":\"m1\",\"event\":\"e\",\"anonymousId\":\"a1\",\"timestamp\":\"2024-03-01T10:00:00-25:00\"}\n",
    );
    let o = import_one(&ws, &seg, None);
    assert_eq!(rows(&o), (1, 0, 0, 1), "{:?}", o.message);
    assert_eq!(
        count(&ws, "SELECT count(*) FROM quarantine WHERE reason LIKE 'no parseable timestamp %: the UTC offset -25:00 is impossible%'"),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Parquet file names

fn write_posthog_parquet(conn: &duckdb::Connection, out: &Path, uuid: &str) {
    conn.execute_batch(&format!(
        "COPY (SELECT '{uuid}' AS uuid, '$pageview' AS event, 'd1' AS distinct_id,
                TIMESTAMPTZ '2024-03-01 10:00:00+00' AS timestamp, '{{}}' AS properties)
         TO '{}' (FORMAT parquet)",
        out.display()
    ))
    .unwrap();
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_parquet_file_name_is_a_name_not_a_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd[1]");
    let plain = dir.path().join("odd1");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    let scratch = Workspace::in_memory().unwrap();
    // Each file holds one event named after the file; the glob-looking names have plain
    // neighbours that their pattern would match.
    let files = [
        (dir.path().join("events[1].parquet"), "brackets"),
        (dir.path().join("events1.parquet"), "neighbour1"),
        (dir.path().join("events*.parquet"), "star"),
        (dir.path().join("events?.parquet"), "question"),
        (dir.path().join("eventsA.parquet"), "neighbourA"),
        (odd.join("events.parquet"), "odd-folder"),
        (plain.join("events.parquet"), "plain-folder"),
    ];
    for (path, uuid) in &files {
        write_posthog_parquet(scratch.conn(), path, uuid);
    }
    for (path, uuid) in &files {
        let ws = Workspace::in_memory().unwrap();
        let o = import_one(&ws, path, None);
        assert_eq!(
            o.status,
            ImportStatus::Complete,
            "{}: {:?}",
            path.display(),
            o.message
        );
        assert_eq!(
            strings(&ws, "SELECT event_uuid FROM events"),
            [uuid.to_string()],
            "{} loads exactly its own rows",
            path.display()
        );
        let sha: String = ws
            .conn()
            .query_row("SELECT content_sha256 FROM imports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sha, sha256_hex(path), "{}", path.display());
    }
}

#[test]
fn a_mapping_that_fails_in_the_database_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "mapped.csv", "name,at\nsignup,2024-03-01\n");
    // A strptime pattern DuckDB does not know fails the whole mapping statement.
    let opts = ImportOptions {
        mapping: Some(stitchbook_engine::ingest::ColumnMapping {
            event: "name".into(),
            timestamp: "at".into(),
            timestamp_format: "%Y-%m-%Q".into(),
            user_id: None,
            anon_id: None,
            session_id: None,
            distinct_id: Some("name".into()),
            event_id: None,
        }),
        ..Default::default()
    };
    let ws = Workspace::in_memory().unwrap();
    let r = import_paths(&ws, &[csv], &opts, &JobCtx::silent()).unwrap();
    let o = &r.files[0];
    assert_eq!(o.status, ImportStatus::Failed);
    let msg = o.message.clone().unwrap_or_default();
    assert!(
        msg.contains("mapped.csv: its records could not be mapped ("),
        "{msg}"
    );
}
