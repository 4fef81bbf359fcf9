//! `stitchbook bench targets`: issue 18's table of targets, measured in one run on one
//! generated PostHog export, each beside a peer run in the same process on the same data
//! where there is one (DuckDB's own reader, a full rebuild for the incremental pass).
//! Nothing here decides anything: it prints what it measured next to the goal.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{
    bench_import, bench_span, duckdb_read_json_auto, duckdb_read_posthog_typed, ensure_free,
    peak_rss_mb, remove_workspace, reset_peak_rss, workspace_bytes, write_clean, BenchSpan,
};
use crate::generate::GenFormat;
use crate::ingest::{import_paths, ImportOptions};
use crate::jobs::JobCtx;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRow {
    pub work: String,
    /// What Stitchbook measured, as shown.
    pub ours: String,
    /// The peer's figure in the same run, when there is one.
    pub peer: Option<String>,
    /// Peer time / our time (above 1: Stitchbook is faster).
    pub ratio: Option<f64>,
    /// The goal, as written there.
    pub target: String,
    /// Whether the goal was met (None where the goal has no number to compare).
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsBench {
    pub events: u64,
    pub persons: i64,
    pub file_bytes: u64,
    pub rows: Vec<TargetRow>,
}

fn secs(s: f64) -> String {
    format!("{s:.1} s")
}

fn mb(m: f64) -> String {
    format!("{m:.0} MB")
}

struct Table(Vec<TargetRow>);

impl Table {
    fn row(
        &mut self,
        work: String,
        ours: String,
        peer: Option<(String, f64, f64)>,
        target: &str,
        met: Option<bool>,
    ) {
        let (peer, ratio) = match peer {
            Some((text, peer_secs, our_secs)) => (Some(text), Some(peer_secs / our_secs.max(1e-9))),
            None => (None, None),
        };
        self.0.push(TargetRow {
            work,
            ours,
            peer,
            ratio,
            target: target.to_string(),
            met,
        });
    }
}

/// DuckDB's own reader on the file, in a database of its own: `read_json` with everything
/// inferred (see [`duckdb_read_json_auto`]), then told the columns. Returns (auto seconds,
/// typed seconds, peak memory of the auto read in MB).
fn duckdb_reads(dir: &Path, file: &Path) -> Result<(f64, f64, f64)> {
    let base_path = dir.join("targets-duckdb.duckdb");
    remove_workspace(&base_path);
    let base = duckdb::Connection::open(&base_path)?;
    reset_peak_rss();
    let auto = duckdb_read_json_auto(&base, file)?;
    let peak = peak_rss_mb();
    base.execute_batch("DROP TABLE t")?;
    let typed = duckdb_read_posthog_typed(&base, file)?;
    drop(base);
    remove_workspace(&base_path);
    Ok((auto, typed, peak))
}

/// Run every row: `events` PostHog events, then `update` more for the incremental pass, and
/// each other vendor's shape at `vendor_events` against DuckDB's reader.
pub fn bench_targets(
    dir: &Path,
    events: usize,
    update: usize,
    vendor_events: usize,
) -> Result<TargetsBench> {
    use crate::insights;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    // About 580 bytes of JSON per event, and about as much again for the workspace and
    // DuckDB's table: refuse to start when the disk cannot hold that.
    ensure_free(
        dir,
        events,
        events as u64 * 1_600,
        "the export, the workspace and DuckDB's table",
    )?;
    let mut table = Table(Vec::new());
    let file = dir.join("targets-posthog.jsonl");
    write_clean(GenFormat::PostHog, &file, events, 1000)?;
    let file_bytes = std::fs::metadata(&file)
        .map_err(|e| EngineError::io(&file, e))?
        .len();

    let (duck_auto, duck_typed, duck_peak) = duckdb_reads(dir, &file)?;

    let ws_path = dir.join("targets.duckdb");
    remove_workspace(&ws_path);
    let ws = Workspace::open(&ws_path)?;
    reset_peak_rss();
    let t = Instant::now();
    import_paths(
        &ws,
        std::slice::from_ref(&file),
        &ImportOptions::default(),
        &JobCtx::silent(),
    )?;
    let import_secs = t.elapsed().as_secs_f64();
    let import_peak = peak_rss_mb();
    let _ = std::fs::remove_file(&file);
    table.row(
        format!(
            "import {events} PostHog events (JSON lines, {:.2} GB)",
            file_bytes as f64 / 1e9
        ),
        secs(import_secs),
        Some((
            format!(
                "DuckDB read_json auto {} / typed {}",
                secs(duck_auto),
                secs(duck_typed)
            ),
            duck_auto,
            import_secs,
        )),
        "≤ DuckDB's read_json (auto); stretch: typed",
        Some(import_secs <= duck_auto),
    );

    reset_peak_rss();
    let t = Instant::now();
    let report = crate::model::refresh(&ws, &JobCtx::silent())?;
    let model_secs = t.elapsed().as_secs_f64();
    let model_peak = peak_rss_mb();
    table.row(
        format!("model, full rebuild ({} persons)", report.persons),
        secs(model_secs),
        None,
        "≤ 15 s; stretch 10 s",
        Some(model_secs <= 15.0),
    );

    // The insights: the 4-step funnel and weekly retention of `stitchbook bench insights`.
    let BenchSpan {
        now,
        persons,
        funnel,
        retention,
        ..
    } = bench_span(&ws)?;
    let t = Instant::now();
    let r = insights::run(&ws, &funnel, now)?;
    let first_funnel = t.elapsed().as_secs_f64();
    let entered = match &r {
        insights::InsightResult::Funnel(f) => f.steps.first().map_or(0, |s| s.count),
        _ => 0,
    };
    let drop_to_funnel = import_secs + model_secs + first_funnel;
    table.row(
        "drop the export → first funnel (import + model + funnel)".into(),
        secs(drop_to_funnel),
        None,
        "≤ 45 s",
        Some(drop_to_funnel <= 45.0),
    );
    let peak = import_peak.max(model_peak);
    table.row(
        "peak memory, import / model".into(),
        format!("{} / {}", mb(import_peak), mb(model_peak)),
        Some((
            format!("DuckDB read_json auto {}", mb(duck_peak)),
            duck_peak,
            peak,
        )),
        "≤ 2 GB",
        Some(peak <= 2048.0),
    );
    let t = Instant::now();
    insights::run(&ws, &funnel, now)?;
    let funnel_ms = t.elapsed().as_secs_f64() * 1000.0;
    table.row(
        format!("4-step funnel, 14-day window ({entered} persons enter)"),
        format!("{funnel_ms:.0} ms"),
        None,
        "≤ 0.4 s",
        Some(funnel_ms <= 400.0),
    );
    insights::run(&ws, &retention, now)?;
    let t = Instant::now();
    insights::run(&ws, &retention, now)?;
    let retention_ms = t.elapsed().as_secs_f64() * 1000.0;
    table.row(
        "weekly retention, 12 periods".into(),
        format!("{retention_ms:.0} ms"),
        None,
        "≤ 0.8 s",
        Some(retention_ms <= 800.0),
    );

    // One person's timeline, first page: the person with the most events.
    let busiest: Option<String> = ws
        .conn()
        .query_row(
            "SELECT person_id FROM profiles ORDER BY events DESC, person_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(p) = busiest {
        let t = Instant::now();
        let page = crate::model::timeline::page(&ws, &p, None, 0, 50, true)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        table.row(
            format!(
                "one person's timeline, first page (the busiest person: {} events)",
                page.total
            ),
            format!("{ms:.1} ms"),
            None,
            "≤ 20 ms",
            Some(ms <= 20.0),
        );
    }

    let t = Instant::now();
    crate::pii::scan(&ws, now, &JobCtx::silent())?;
    let scan_secs = t.elapsed().as_secs_f64();
    table.row(
        "PII scan".into(),
        secs(scan_secs),
        None,
        "≤ 20 s",
        Some(scan_secs <= 20.0),
    );
    let out_dir = dir.join("targets-export");
    let _ = std::fs::remove_dir_all(&out_dir);
    let t = Instant::now();
    let export = crate::pii::export(
        &ws,
        &crate::pii::RedactionRules::default(),
        &crate::pii::ExportOptions {
            out_dir: out_dir.clone(),
            format: crate::pii::ExportFormat::Jsonl,
            keep_from_us: None,
            salt: None,
            now_us: now,
            vendor_shape: false,
            include_quarantine: false,
        },
        &JobCtx::silent(),
    );
    let export_secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out_dir);
    table.row(
        "redacted JSON-lines export (verified)".into(),
        match &export {
            Ok(_) => secs(export_secs),
            Err(e) => format!("failed: {e}"),
        },
        None,
        "≤ 60 s",
        Some(export.is_ok() && export_secs <= 60.0),
    );

    if update > 0 {
        let more = dir.join("targets-more.jsonl");
        write_clean(GenFormat::PostHog, &more, update, 9000)?;
        import_paths(
            &ws,
            std::slice::from_ref(&more),
            &ImportOptions::default(),
            &JobCtx::silent(),
        )?;
        let _ = std::fs::remove_file(&more);
        let t = Instant::now();
        let r = crate::model::refresh(&ws, &JobCtx::silent())?;
        let update_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        crate::model::rebuild(&ws, &JobCtx::silent())?;
        let full_secs = t.elapsed().as_secs_f64();
        table.row(
            format!(
                "incremental model after importing {update} more events ({} persons recomputed{})",
                r.persons_touched,
                if r.incremental {
                    ""
                } else {
                    "; NOT incremental"
                }
            ),
            secs(update_secs),
            Some((
                format!("full rebuild of the same data {}", secs(full_secs)),
                full_secs,
                update_secs,
            )),
            "≤ 3 s",
            Some(update_secs <= 3.0),
        );
    }
    drop(ws);
    let ws_bytes = workspace_bytes(&ws_path);
    table.row(
        "workspace size".into(),
        format!("{:.2} GB", ws_bytes as f64 / 1e9),
        Some((
            format!("the export {:.2} GB", file_bytes as f64 / 1e9),
            file_bytes as f64,
            ws_bytes as f64,
        )),
        "(no goal)",
        None,
    );
    remove_workspace(&ws_path);

    if vendor_events > 0 {
        let vdir = dir.join("targets-vendors");
        for format in GenFormat::ALL
            .into_iter()
            .filter(|f| *f != GenFormat::PostHog)
        {
            let r = bench_import(&vdir, format, vendor_events, 1)?;
            table.row(
                format!(
                    "import {vendor_events} {} events ({})",
                    format.as_str(),
                    r.file_name
                ),
                secs(r.import_secs),
                Some((
                    format!("DuckDB's reader {}", secs(r.duckdb_read_json_secs)),
                    r.duckdb_read_json_secs,
                    r.import_secs,
                )),
                "≥ 0.8× DuckDB's reader",
                Some(r.ratio_to_duckdb >= 0.8),
            );
            let _ = std::fs::remove_dir_all(&vdir);
        }
    }
    Ok(TargetsBench {
        events: events as u64,
        persons,
        file_bytes,
        rows: table.0,
    })
}
