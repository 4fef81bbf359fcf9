//! `stitchbook bench import`: generate a PostHog-style JSON lines file, import it, and load
//! the same file with DuckDB's own `read_json` for comparison. Prints numbers; asserts
//! nothing (speed targets are checked by reading these numbers, not by timed tests).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::generate::{write_posthog_jsonl, GenerateOptions};
use crate::ingest::{import_paths, ImportOptions};
use crate::jobs::JobCtx;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchResult {
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

pub fn bench_import(dir: &Path, events: usize, seed: u64) -> Result<BenchResult> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let file = dir.join("bench-posthog.jsonl");
    let t0 = Instant::now();
    let opts = GenerateOptions {
        events,
        seed,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..Default::default()
    };
    write_posthog_jsonl(&file, &opts)?;
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

    let base = duckdb::Connection::open(&base_path)?;
    reset_peak_rss();
    let t2 = Instant::now();
    base.execute(
        "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')",
        [file.to_string_lossy().to_string()],
    )?;
    let duckdb_read_json_secs = t2.elapsed().as_secs_f64();
    drop(base);
    let peak_rss_duckdb_mb = peak_rss_mb();

    let n = events as f64;
    Ok(BenchResult {
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
