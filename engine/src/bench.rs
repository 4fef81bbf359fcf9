//! `stitchbook bench import`: generate a file in a vendor's export shape, import it, and load
//! the same data, decompressed, with DuckDB's own reader (`read_json`, or `read_csv` for
//! Snowplow TSV) for comparison. Prints numbers; asserts nothing (speed targets are checked
//! by reading these numbers, not by timed tests).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::generate::{write_generated, GenFormat, GenerateOptions};
use crate::ingest::{import_paths, ImportOptions};
use crate::jobs::JobCtx;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchResult {
    pub format: String,
    /// The file as imported: name and container.
    pub file_name: String,
    pub events: u64,
    pub file_bytes: u64,
    pub generate_secs: f64,
    pub import_secs: f64,
    pub import_events_per_sec: f64,
    pub import_mb_per_sec: f64,
    pub duckdb_read_json_secs: f64,
    pub duckdb_events_per_sec: f64,
    pub ratio_to_duckdb: f64,
    /// Peak RSS during our import.
    pub peak_rss_import_mb: f64,
    /// Peak RSS during DuckDB's own read_json load.
    pub peak_rss_duckdb_mb: f64,
    pub loaded: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub steps: Vec<crate::ingest::StepTiming>,
}

/// Reset the kernel's peak-RSS mark for this process (Linux: writing 5 to clear_refs), so
/// each phase's peak is its own. Harmless where unsupported.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process since the last reset, from /proc (Linux).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The file name the bench generates for a format: the shape users receive (Amplitude: the
/// Export API zip; Segment and RudderStack: gzip S3 logs).
fn bench_file_name(format: GenFormat) -> &'static str {
    match format {
        GenFormat::PostHog => "bench-posthog.jsonl",
        GenFormat::Amplitude => "bench-amplitude.zip",
        GenFormat::Mixpanel => "bench-mixpanel.jsonl",
        GenFormat::Segment => "bench-segment.json.gz",
        GenFormat::RudderStack => "bench-rudderstack.json.gz",
        GenFormat::Ga4 => "bench-ga4.jsonl",
        GenFormat::Snowplow => "bench-snowplow.tsv",
    }
}

/// The same records, decompressed into one plain file for DuckDB's reader.
fn decompressed(file: &Path, out: &Path) -> Result<()> {
    use std::io::{Read, Write};
    let name = file.to_string_lossy().to_string();
    let io_err = |e: std::io::Error| EngineError::io(out, e);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io_err)?);
    if name.ends_with(".zip") {
        let f = std::fs::File::open(file).map_err(|e| EngineError::io(file, e))?;
        let mut z = zip::ZipArchive::new(std::io::BufReader::new(f))
            .map_err(|e| EngineError::unreadable(file, e.to_string()))?;
        let mut names: Vec<(usize, String)> = (0..z.len())
            .filter_map(|i| {
                z.name_for_index(i)
                    .and_then(|n| n.ok())
                    .map(|n| (i, n.to_string()))
            })
            .collect();
        names.sort_by(|a, b| crate::ingest::archive::natural_cmp(&a.1, &b.1));
        for (i, _) in names {
            let m = z
                .by_index(i)
                .map_err(|e| EngineError::unreadable(file, e.to_string()))?;
            let mut gz = flate2::read::MultiGzDecoder::new(m);
            std::io::copy(&mut gz, &mut w).map_err(io_err)?;
        }
    } else if name.ends_with(".gz") {
        let f = std::fs::File::open(file).map_err(|e| EngineError::io(file, e))?;
        let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = gz.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(io_err)?;
        }
    } else {
        std::fs::copy(file, out).map_err(io_err)?;
        return Ok(());
    }
    w.flush().map_err(io_err)
}

pub fn bench_import(
    dir: &Path,
    format: GenFormat,
    events: usize,
    seed: u64,
) -> Result<BenchResult> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let file = dir.join(bench_file_name(format));
    let t0 = Instant::now();
    let opts = GenerateOptions {
        events,
        seed,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..Default::default()
    };
    write_generated(format, &file, &opts)?;
    let generate_secs = t0.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&file)
        .map_err(|e| EngineError::io(&file, e))?
        .len();

    let ws_path = dir.join("bench-workspace.duckdb");
    let base_path = dir.join("bench-baseline.duckdb");
    for p in [&ws_path, &base_path] {
        let _ = std::fs::remove_file(p);
        let mut wal = p.as_os_str().to_owned();
        wal.push(".wal");
        let _ = std::fs::remove_file(wal);
    }

    let ws = Workspace::open(&ws_path)?;
    reset_peak_rss();
    let t1 = Instant::now();
    let report = import_paths(
        &ws,
        std::slice::from_ref(&file),
        &ImportOptions::default(),
        &JobCtx::silent(),
    )?;
    let import_secs = t1.elapsed().as_secs_f64();
    drop(ws);
    let peak_rss_import_mb = peak_rss_mb();
    let (_, loaded, duplicates, quarantined) = report.totals();
    let steps = report
        .files
        .first()
        .map(|f| f.timings.clone())
        .unwrap_or_default();

    let plain = dir.join(format!("{}.plain", bench_file_name(format)));
    decompressed(&file, &plain)?;
    let base = duckdb::Connection::open(&base_path)?;
    reset_peak_rss();
    let t2 = Instant::now();
    let reader = if format == GenFormat::Snowplow {
        "CREATE TABLE t AS SELECT * FROM read_csv(?, delim = '\t', header = false, quote = '', escape = '', all_varchar = true)"
    } else {
        "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')"
    };
    base.execute(reader, [plain.to_string_lossy().to_string()])?;
    let duckdb_read_json_secs = t2.elapsed().as_secs_f64();
    drop(base);
    let peak_rss_duckdb_mb = peak_rss_mb();

    let _ = std::fs::remove_file(&plain);
    let n = events as f64;
    Ok(BenchResult {
        format: format.as_str().to_string(),
        file_name: bench_file_name(format).to_string(),
        events: events as u64,
        file_bytes,
        generate_secs,
        import_secs,
        import_events_per_sec: n / import_secs,
        import_mb_per_sec: file_bytes as f64 / 1e6 / import_secs,
        duckdb_read_json_secs,
        duckdb_events_per_sec: n / duckdb_read_json_secs,
        ratio_to_duckdb: duckdb_read_json_secs / import_secs,
        peak_rss_import_mb,
        peak_rss_duckdb_mb,
        loaded,
        duplicates,
        quarantined,
        steps,
    })
}

/// `stitchbook bench rebuild`: the model rebuild over generated PostHog data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildBench {
    pub events: u64,
    pub files: usize,
    pub import_secs: f64,
    pub rebuild_secs: f64,
    pub peak_rss_rebuild_mb: f64,
    pub report: crate::model::RebuildReport,
}

/// Generate `events` PostHog events as `files` exports (seeds 1..=files: the same user ids
/// recur across files, devices do not), import them one by one, then time a full rebuild.
pub fn bench_rebuild(dir: &Path, events: usize, files: usize) -> Result<RebuildBench> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let ws_path = dir.join("bench-model.duckdb");
    let _ = std::fs::remove_file(&ws_path);
    let mut wal = ws_path.as_os_str().to_owned();
    wal.push(".wal");
    let _ = std::fs::remove_file(wal);
    let ws = Workspace::open(&ws_path)?;
    let files = files.max(1);
    let mut import_secs = 0.0;
    for k in 0..files {
        let n = events / files + usize::from(k < events % files);
        let file = dir.join(format!("bench-model-{k}.jsonl"));
        let opts = GenerateOptions {
            events: n,
            seed: 1000 + k as u64,
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            ..Default::default()
        };
        write_generated(GenFormat::PostHog, &file, &opts)?;
        let t = Instant::now();
        import_paths(
            &ws,
            std::slice::from_ref(&file),
            &ImportOptions::default(),
            &JobCtx::silent(),
        )?;
        import_secs += t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(crate::generate::truth_path(&file));
    }
    reset_peak_rss();
    let t = Instant::now();
    let report = crate::model::rebuild(&ws, &JobCtx::silent())?;
    let rebuild_secs = t.elapsed().as_secs_f64();
    let peak_rss_rebuild_mb = peak_rss_mb();
    Ok(RebuildBench {
        events: events as u64,
        files,
        import_secs,
        rebuild_secs,
        peak_rss_rebuild_mb,
        report,
    })
}
