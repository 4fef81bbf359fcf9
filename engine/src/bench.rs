//! `stitchbook bench import`: generate a file in a vendor's export shape, import it, and load
//! the same data, decompressed, with DuckDB's own reader (`read_json`, or `read_csv` for
//! Snowplow TSV) for comparison. Prints numbers; asserts nothing (speed targets are checked
//! by reading these numbers, not by timed tests).

pub mod scale;
pub mod targets;

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
    /// PostHog only: DuckDB's reader told the columns and their types (no schema inference),
    /// the stretch goal.
    pub duckdb_typed_secs: Option<f64>,
    /// PostHog only: the same import with every record mapped by the vendor's SQL (the Rust
    /// fast path off), for the fast path's gain in the same run.
    pub sql_mapping_secs: Option<f64>,
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

/// Delete a workspace file and its write-ahead log, if there.
fn remove_workspace(p: &Path) {
    let _ = std::fs::remove_file(p);
    let mut wal = p.as_os_str().to_owned();
    wal.push(".wal");
    let _ = std::fs::remove_file(wal);
}

/// Bytes a workspace file and its write-ahead log take on disk.
fn workspace_bytes(p: &Path) -> u64 {
    let mut wal = p.as_os_str().to_owned();
    wal.push(".wal");
    [p.to_path_buf(), wal.into()]
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Free bytes on the file system holding `dir` (from `df`), when it can be read.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let kb: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuse to start a bench of `events` events in `dir` when the disk has less than `need`
/// bytes free (`what` says what they hold).
fn ensure_free(dir: &Path, events: usize, need: u64, what: &str) -> Result<()> {
    match free_bytes(dir) {
        Some(free) if free < need => Err(EngineError::InvalidArgument(format!(
            "{} has {:.1} GB free; {events} events need about {:.1} GB ({what})",
            dir.display(),
            free as f64 / 1e9,
            need as f64 / 1e9
        ))),
        _ => Ok(()),
    }
}

/// Write `events` generated events in `format` to `file` with no duplicates and no malformed
/// records (the benches time clean data), leaving no ground-truth file beside it.
fn write_clean(format: GenFormat, file: &Path, events: usize, seed: u64) -> Result<()> {
    let opts = GenerateOptions {
        events,
        seed,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..Default::default()
    };
    write_generated(format, file, &opts)?;
    let _ = std::fs::remove_file(crate::generate::truth_path(file));
    Ok(())
}

/// DuckDB's own JSON-lines reader on `plain` into table `t` of `base`, everything inferred.
/// On big files the inferred schema of nested objects can miss a key that appears later
/// ("unknown key"); then only the top level is inferred, nested objects kept as JSON, as
/// Stitchbook keeps them. Returns the seconds of the read that succeeded.
fn duckdb_read_json_auto(base: &duckdb::Connection, plain: &Path) -> Result<f64> {
    let name = plain.to_string_lossy().to_string();
    let mut t = Instant::now();
    if base
        .execute(
            "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited')",
            [name.clone()],
        )
        .is_err()
    {
        let _ = base.execute_batch("DROP TABLE IF EXISTS t");
        t = Instant::now();
        base.execute(
            "CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited', maximum_depth = 1)",
            [name],
        )?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// DuckDB's reader told a PostHog export's columns and types (no inference) into table
/// `typed` of `base`: the stretch goal. Returns its seconds.
fn duckdb_read_posthog_typed(base: &duckdb::Connection, plain: &Path) -> Result<f64> {
    let t = Instant::now();
    base.execute(
        "CREATE TABLE typed AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
            uuid: 'VARCHAR', event: 'VARCHAR', distinct_id: 'VARCHAR', timestamp: 'TIMESTAMPTZ',
            created_at: 'TIMESTAMPTZ', properties: 'JSON', person_properties: 'JSON', person_id: 'VARCHAR'})",
        [plain.to_string_lossy().to_string()],
    )?;
    Ok(t.elapsed().as_secs_f64())
}

/// The span of a generated workspace's data and the headline insights over it: the
/// 4-step funnel (14-day window, 60 days) and weekly retention (12 periods).
struct BenchSpan {
    from: String,
    to60: String,
    to84: String,
    /// "Now" for the insights: 120 days after the first event.
    now: i64,
    persons: i64,
    funnel: crate::insights::Query,
    retention: crate::insights::Query,
}

fn bench_query(v: serde_json::Value) -> Result<crate::insights::Query> {
    serde_json::from_value(v).map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

fn bench_span(ws: &Workspace) -> Result<BenchSpan> {
    let (first, persons): (i64, i64) = ws.conn().query_row(
        "SELECT epoch_us(min(ts_utc)), (SELECT count(*) FROM persons) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let day = |us: i64| -> Result<String> {
        Ok(ws.conn().query_row(
            "SELECT strftime(make_timestamptz(?), '%Y-%m-%d')",
            [us],
            |r| r.get(0),
        )?)
    };
    let from = day(first)?;
    let to60 = day(first + 59 * 86_400_000_000)?;
    let to84 = day(first + 83 * 86_400_000_000)?;
    let funnel = bench_query(serde_json::json!({"kind": "funnel",
        "steps": [{"event": "signed_up"}, {"event": "created_project"},
                  {"event": "invited_teammate"}, {"event": "upgraded_plan"}],
        "date_range": {"from": from, "to": to60}, "window": 14, "window_unit": "day"}))?;
    let retention = bench_query(serde_json::json!({"kind": "retention",
        "start": {"event": "$pageview"}, "returning": {"event": "$pageview"},
        "period": "week", "intervals": 12, "date_range": {"from": from, "to": to84}}))?;
    Ok(BenchSpan {
        from,
        to60,
        to84,
        now: first + 120 * 86_400_000_000,
        persons,
        funnel,
        retention,
    })
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
    write_clean(format, &file, events, seed)?;
    let generate_secs = t0.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&file)
        .map_err(|e| EngineError::io(&file, e))?
        .len();

    let ws_path = dir.join("bench-workspace.duckdb");
    let base_path = dir.join("bench-baseline.duckdb");
    for p in [&ws_path, &base_path] {
        remove_workspace(p);
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
    let sql_mapping_secs = if format == GenFormat::PostHog {
        let sql_path = dir.join("bench-workspace-sql.duckdb");
        remove_workspace(&sql_path);
        let ws = Workspace::open(&sql_path)?;
        let t = Instant::now();
        import_paths(
            &ws,
            std::slice::from_ref(&file),
            &ImportOptions {
                sql_mapping_only: true,
                ..ImportOptions::default()
            },
            &JobCtx::silent(),
        )?;
        let secs = t.elapsed().as_secs_f64();
        drop(ws);
        remove_workspace(&sql_path);
        Some(secs)
    } else {
        None
    };
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
    let duckdb_read_json_secs = if format == GenFormat::Snowplow {
        let t = Instant::now();
        base.execute(
            "CREATE TABLE t AS SELECT * FROM read_csv(?, delim = '\t', header = false, quote = '', escape = '', all_varchar = true)",
            [plain.to_string_lossy().to_string()],
        )?;
        t.elapsed().as_secs_f64()
    } else {
        duckdb_read_json_auto(&base, &plain)?
    };
    let peak_rss_duckdb_mb = peak_rss_mb();
    let duckdb_typed_secs = if format == GenFormat::PostHog {
        Some(duckdb_read_posthog_typed(&base, &plain)?)
    } else {
        None
    };
    drop(base);

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
        duckdb_typed_secs,
        sql_mapping_secs,
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
    /// The incremental pass after importing more events, when asked for.
    pub update: Option<UpdateBench>,
}

/// One more export imported into the modelled workspace: the incremental model pass, beside
/// a full rebuild of the same data (the peer it replaces).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBench {
    pub events: u64,
    pub import_secs: f64,
    pub update_secs: f64,
    pub peak_rss_update_mb: f64,
    pub report: crate::model::RebuildReport,
    pub full_rebuild_secs: f64,
}

/// Generate `events` PostHog events as `files` exports (seeds 1..=files: the same user ids
/// recur across files, devices do not), import them one by one, then time a full rebuild.
/// With `update` > 0, then import one more export of that many events (another seed: some of
/// its users already have persons, its devices are new) and time the incremental model pass
/// beside a full rebuild of the same data.
pub fn bench_rebuild(
    dir: &Path,
    events: usize,
    files: usize,
    update: usize,
) -> Result<RebuildBench> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let ws_path = dir.join("bench-model.duckdb");
    remove_workspace(&ws_path);
    let ws = Workspace::open(&ws_path)?;
    let import_secs = import_generated(&ws, dir, events, files, 1000)?;
    reset_peak_rss();
    let t = Instant::now();
    let report = crate::model::rebuild(&ws, &JobCtx::silent())?;
    let rebuild_secs = t.elapsed().as_secs_f64();
    let peak_rss_rebuild_mb = peak_rss_mb();
    let update = if update > 0 {
        let import_secs = import_generated(&ws, dir, update, 1, 9000)?;
        reset_peak_rss();
        let t = Instant::now();
        let report = crate::model::refresh(&ws, &JobCtx::silent())?;
        let update_secs = t.elapsed().as_secs_f64();
        let peak_rss_update_mb = peak_rss_mb();
        let t = Instant::now();
        crate::model::rebuild(&ws, &JobCtx::silent())?;
        Some(UpdateBench {
            events: update as u64,
            import_secs,
            update_secs,
            peak_rss_update_mb,
            report,
            full_rebuild_secs: t.elapsed().as_secs_f64(),
        })
    } else {
        None
    };
    drop(ws);
    remove_workspace(&ws_path);
    Ok(RebuildBench {
        events: events as u64,
        files: files.max(1),
        import_secs,
        rebuild_secs,
        peak_rss_rebuild_mb,
        report,
        update,
    })
}

/// Import `events` generated PostHog events as `files` files (seeds from `seed`); returns
/// the import seconds.
fn import_generated(
    ws: &Workspace,
    dir: &Path,
    events: usize,
    files: usize,
    seed: u64,
) -> Result<f64> {
    let files = files.max(1);
    let mut import_secs = 0.0;
    for k in 0..files {
        let n = events / files + usize::from(k < events % files);
        let file = dir.join(format!("bench-model-{k}.jsonl"));
        write_clean(GenFormat::PostHog, &file, n, seed + k as u64)?;
        let t = Instant::now();
        import_paths(
            ws,
            std::slice::from_ref(&file),
            &ImportOptions::default(),
            &JobCtx::silent(),
        )?;
        import_secs += t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&file);
    }
    Ok(import_secs)
}

/// One timed insight.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightTiming {
    pub name: String,
    pub millis: f64,
    /// The goal in ms (issue 5): 1000 for insights, 300 for drill-downs.
    pub goal_millis: f64,
    /// A short summary of the answer, to show it is real.
    pub answer: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InsightsBench {
    pub events: u64,
    pub persons: u64,
    /// The workspace was reused from an earlier run.
    pub reused: bool,
    pub prepare_secs: f64,
    pub timings: Vec<InsightTiming>,
    pub peak_rss_mb: f64,
}

/// `stitchbook bench insights`: on a generated workspace of `events` PostHog events (kept in
/// `dir` and reused while it holds that many), time the insights and a drill-down.
/// Each is run twice; the second (warm) run is reported, as in the app.
pub fn bench_insights(dir: &Path, events: usize, files: usize) -> Result<InsightsBench> {
    use crate::insights::{self, Query};
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let ws_path = dir.join("bench-insights.duckdb");
    let t = Instant::now();
    let mut reused = false;
    if ws_path.exists() {
        let ws = Workspace::open(&ws_path)?;
        let n: i64 = ws
            .conn()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        reused = n as usize == events && !crate::model::is_stale(&ws)?;
    }
    if !reused {
        remove_workspace(&ws_path);
        let ws = Workspace::open(&ws_path)?;
        import_generated(&ws, dir, events, files, 1000)?;
        crate::model::rebuild(&ws, &JobCtx::silent())?;
    }
    let prepare_secs = t.elapsed().as_secs_f64();
    let ws = Workspace::open(&ws_path)?;
    let BenchSpan {
        from,
        to60,
        to84,
        now,
        persons,
        funnel,
        retention,
    } = bench_span(&ws)?;
    let q = bench_query;
    let cases: Vec<(&str, Query)> = vec![
        (
            "4-step ordered funnel, 14-day window, 60 days",
            funnel.clone(),
        ),
        ("weekly retention, 12 periods", retention),
        (
            "daily unique persons by browser, 60 days",
            q(serde_json::json!({"kind": "trends",
                "series": [{"event": "$pageview", "math": "unique_persons"}],
                "breakdown": {"type": "property", "property": "$browser"},
                "date_range": {"from": from, "to": to60}}))?,
        ),
        (
            "DAU, WAU, MAU, 60 days",
            q(serde_json::json!({"kind": "trends",
                "series": [{"math": "unique_persons"}, {"math": "weekly_active"},
                           {"math": "monthly_active"}],
                "date_range": {"from": from, "to": to60}}))?,
        ),
        (
            "weekly funnel trends by browser (the 4-step funnel)",
            q(
                serde_json::json!({"kind": "funnel", "display": "trends", "interval": "week",
                "steps": [{"event": "signed_up"}, {"event": "created_project"},
                          {"event": "invited_teammate"}, {"event": "upgraded_plan"}],
                "breakdown": {"property": "$browser"},
                "date_range": {"from": from, "to": to60}, "window": 14, "window_unit": "day"}),
            )?,
        ),
        (
            "weekly retention by the start event's browser, 12 periods",
            q(
                serde_json::json!({"kind": "retention", "start": {"event": "$pageview"},
                "returning": {"event": "$pageview"}, "period": "week", "intervals": 12,
                "breakdown": {"property": "$browser", "source": "event"},
                "date_range": {"from": from, "to": to84}}),
            )?,
        ),
        (
            "the 4-step funnel, only Chrome (a filter on a facts column)",
            q(serde_json::json!({"kind": "funnel",
                "steps": [{"event": "signed_up"}, {"event": "created_project"},
                          {"event": "invited_teammate"}, {"event": "upgraded_plan"}],
                "filters": [{"key": "$browser", "op": "equals", "value": "Chrome"}],
                "date_range": {"from": from, "to": to60}, "window": 14, "window_unit": "day"}))?,
        ),
        (
            "the 4-step funnel, last step plan = team (general path)",
            q(serde_json::json!({"kind": "funnel",
                "steps": [{"event": "signed_up"}, {"event": "created_project"},
                          {"event": "invited_teammate"}, {"event": "upgraded_plan",
                           "filters": [{"key": "plan", "op": "equals", "value": "team"}]}],
                "date_range": {"from": from, "to": to60}, "window": 14, "window_unit": "day"}))?,
        ),
        (
            "daily lifecycle, 60 days",
            q(
                serde_json::json!({"kind": "lifecycle", "event": "$pageview",
                "date_range": {"from": from, "to": to60}}),
            )?,
        ),
    ];
    reset_peak_rss();
    let mut timings = Vec::new();
    for (name, query) in &cases {
        let _ = insights::run(&ws, query, now)?;
        let t = Instant::now();
        let r = insights::run(&ws, query, now)?;
        let millis = t.elapsed().as_secs_f64() * 1000.0;
        let answer = match &r {
            insights::InsightResult::Funnel(f) => format!(
                "steps {:?}",
                f.steps.iter().map(|s| s.count).collect::<Vec<_>>()
            ),
            insights::InsightResult::Retention(r) => format!(
                "{} cohorts, first size {}",
                r.cohorts.len(),
                r.cohorts.first().map_or(0, |c| c.size)
            ),
            insights::InsightResult::Trends(t) => {
                format!("{} series × {} days", t.series.len(), t.dates.len())
            }
            insights::InsightResult::Lifecycle(l) => format!("{} periods", l.periods.len()),
            _ => String::new(),
        };
        timings.push(InsightTiming {
            name: name.to_string(),
            millis,
            goal_millis: 1000.0,
            answer,
        });
    }
    for (name, query, cell) in [
        ("drill: funnel drop-offs before step 2", &funnel, "-2"),
        (
            "drill: trend point (browser breakdown)",
            &cases[2].1,
            "0:10",
        ),
    ] {
        let _ = insights::drill(&ws, query, now, cell)?;
        let t = Instant::now();
        let persons = insights::drill(&ws, query, now, cell)?;
        timings.push(InsightTiming {
            name: name.to_string(),
            millis: t.elapsed().as_secs_f64() * 1000.0,
            goal_millis: 300.0,
            answer: format!("{} persons", persons.len()),
        });
    }
    // A drill with no run of its funnel before it (as the CLI's `drill`): the funnel is
    // computed again.
    ws.memo_put(String::new(), std::sync::Arc::new(()));
    let t = Instant::now();
    let dropped = insights::drill(&ws, &funnel, now, "-2")?;
    timings.push(InsightTiming {
        name: "drill: funnel drop-offs, no run before (cold)".to_string(),
        millis: t.elapsed().as_secs_f64() * 1000.0,
        goal_millis: 300.0,
        answer: format!("{} persons", dropped.len()),
    });
    Ok(InsightsBench {
        events: events as u64,
        persons: persons as u64,
        reused,
        prepare_secs,
        timings,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// `stitchbook bench pii`: the PII scan over generated PostHog events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PiiBench {
    pub events: u64,
    pub import_secs: f64,
    pub scan_secs: f64,
    pub events_per_sec: f64,
    pub values_checked: i64,
    pub values_per_sec: f64,
    pub findings: usize,
    /// Resident memory when the scan started (DuckDB's buffers from the import included).
    pub rss_before_scan_mb: f64,
    pub peak_rss_mb: f64,
}

/// Current resident set size of this process, from /proc (Linux).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Generate and import `events` PostHog events (emails, phones, IPs on them), then time a
/// full PII scan (events, persons, snapshots; findings stored).
/// With `existing`, that workspace is scanned as it is (nothing generated or imported; its
/// findings are replaced).
pub fn bench_pii(
    dir: &Path,
    events: usize,
    now_us: i64,
    existing: Option<&Path>,
) -> Result<PiiBench> {
    let (ws_path, import_secs) = match existing {
        Some(p) => (p.to_path_buf(), 0.0),
        None => {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
            let ws_path = dir.join("bench-pii.duckdb");
            remove_workspace(&ws_path);
            let ws = Workspace::open(&ws_path)?;
            let import_secs = import_generated(&ws, dir, events, 1, 1000)?;
            // A fresh connection, so the import's buffers are not counted against the scan.
            drop(ws);
            (ws_path, import_secs)
        }
    };
    let ws = Workspace::open(&ws_path)?;
    reset_peak_rss();
    let rss_before_scan_mb = rss_mb();
    let t = Instant::now();
    let r = crate::pii::scan(&ws, now_us, &JobCtx::silent())?;
    let scan_secs = t.elapsed().as_secs_f64();
    Ok(PiiBench {
        events: r.totals.events as u64,
        import_secs,
        scan_secs,
        events_per_sec: r.totals.events as f64 / scan_secs,
        values_checked: r.totals.values_checked,
        values_per_sec: r.totals.values_checked as f64 / scan_secs,
        findings: r.findings.len(),
        rss_before_scan_mb,
        peak_rss_mb: peak_rss_mb(),
    })
}
