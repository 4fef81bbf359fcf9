//! `stitchbook bench scale`: issue 18's larger-than-memory row. A PostHog export of N events
//! (100M by default) is generated gzipped, in parts of distinct users, then imported, modelled
//! and asked a funnel and a retention with DuckDB held to a memory limit (4 GB by default), as
//! a laptop would run it. Reports each stage's time and peak memory, the most temporary
//! (spill) disk DuckDB used, the workspace's size and the least free disk seen.
//!
//! The disk never fills: the run refuses to start without room for the export, the workspace
//! and spill, a sampler cancels the running job when free space falls under a reserve, and
//! every file the run made is deleted at the end, however it ended.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{bench_span, peak_rss_mb, remove_workspace, reset_peak_rss, BenchSpan};
use crate::generate::{GenFormat, GenerateOptions};
use crate::ingest::{import_paths, ImportOptions};
use crate::jobs::{CancelToken, JobCtx};
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Bytes per generated event the run plans for: gzip JSON (about 60), the workspace (about
/// 450) and DuckDB's spill while modelling.
const PLANNED_BYTES_PER_EVENT: u64 = 700;
/// The job is cancelled when the disk's free space falls under this.
const FREE_RESERVE: u64 = 3 << 30;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStage {
    pub stage: String,
    pub secs: f64,
    /// Peak resident memory of the process during the stage.
    pub peak_rss_mb: f64,
    /// Most temporary (spill) disk DuckDB held during the stage.
    pub peak_temp_mb: f64,
    /// What the stage produced, or how it failed.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleBench {
    pub events: u64,
    pub parts: usize,
    pub memory_limit_mb: u64,
    pub gzip_bytes: u64,
    pub persons: i64,
    pub stages: Vec<ScaleStage>,
    /// Import + model + funnel + retention, in seconds (generation not included).
    pub total_secs: f64,
    pub workspace_bytes: u64,
    pub min_free_bytes: u64,
    /// Whether every stage finished.
    pub completed: bool,
}

/// Size of a file, or of everything under a folder.
fn disk_bytes(p: &Path) -> u64 {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Watches the disk every half second while a stage runs: the spill folder's size, and the
/// free space, cancelling the stage's job when it falls under [`FREE_RESERVE`].
struct DiskWatch {
    stop: Arc<AtomicBool>,
    peak_temp: Arc<AtomicU64>,
    full: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl DiskWatch {
    fn start(dir: PathBuf, temp: PathBuf, cancel: CancelToken, min_free: Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_temp = Arc::new(AtomicU64::new(0));
        let full = Arc::new(AtomicBool::new(false));
        let (s, p, m, f) = (stop.clone(), peak_temp.clone(), min_free, full.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(disk_bytes(&temp), Ordering::SeqCst);
                if let Some(free) = super::free_bytes(&dir) {
                    m.fetch_min(free, Ordering::SeqCst);
                    if free < FREE_RESERVE && !f.swap(true, Ordering::SeqCst) {
                        cancel.cancel();
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        DiskWatch {
            stop,
            peak_temp,
            full,
            handle: Some(handle),
        }
    }

    /// Stop watching; returns (peak spill bytes, whether the disk ran short).
    fn finish(mut self) -> (u64, bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (
            self.peak_temp.load(Ordering::SeqCst),
            self.full.load(Ordering::SeqCst),
        )
    }
}

/// Generate `events` clean PostHog events as gzip parts of `part` events each, two parts at
/// a time (one per core). Each part has its own seed and user numbering, so the parts hold
/// distinct users over the same period, as one big product's export does.
fn generate_parts(dir: &Path, events: usize, part: usize) -> Result<Vec<PathBuf>> {
    let part = part.clamp(1, events.max(1));
    let n = events.div_ceil(part);
    let files: Vec<(usize, PathBuf, usize)> = (0..n)
        .map(|k| {
            let size = part.min(events - k * part);
            (k, dir.join(format!("scale-part-{k:03}.jsonl.gz")), size)
        })
        .collect();
    let next = AtomicU64::new(0);
    let failed: std::sync::Mutex<Option<EngineError>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                let Some((k, file, size)) = files.get(i) else {
                    break;
                };
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                let opts = GenerateOptions {
                    events: *size,
                    seed: 7_000 + *k as u64,
                    duplicate_rate: 0.0,
                    malformed_rate: 0.0,
                    person_offset: k * 1_000_000,
                    ..Default::default()
                };
                let r = crate::generate::write_generated(GenFormat::PostHog, file, &opts);
                let _ = std::fs::remove_file(crate::generate::truth_path(file));
                if let Err(e) = r {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                    break;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(files.into_iter().map(|(_, f, _)| f).collect())
}

/// Run the larger-than-memory bench in `dir`. `on_stage` hears each stage as it ends (the run
/// can take an hour).
pub fn bench_scale(
    dir: &Path,
    events: usize,
    part: usize,
    memory_limit_mb: u64,
    on_stage: &dyn Fn(&ScaleStage),
) -> Result<ScaleBench> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    super::ensure_free(
        dir,
        events,
        events as u64 * PLANNED_BYTES_PER_EVENT + FREE_RESERVE,
        "gzip export, workspace and spill",
    )?;
    let ws_path = dir.join("scale.duckdb");
    let mut parts: Vec<PathBuf> = Vec::new();
    let result = run(
        dir,
        &ws_path,
        events,
        part,
        memory_limit_mb,
        &mut parts,
        on_stage,
    );
    for f in &parts {
        let _ = std::fs::remove_file(f);
        let _ = std::fs::remove_file(crate::generate::truth_path(f));
    }
    remove_workspace(&ws_path);
    let _ = std::fs::remove_dir_all(temp_dir_of(&ws_path));
    result
}

fn temp_dir_of(ws_path: &Path) -> PathBuf {
    let mut t = ws_path.as_os_str().to_owned();
    t.push(".tmp");
    PathBuf::from(t)
}

fn run(
    dir: &Path,
    ws_path: &Path,
    events: usize,
    part: usize,
    memory_limit_mb: u64,
    parts: &mut Vec<PathBuf>,
    on_stage: &dyn Fn(&ScaleStage),
) -> Result<ScaleBench> {
    let mut stages = Stages {
        dir: dir.to_path_buf(),
        temp: temp_dir_of(ws_path),
        min_free: Arc::new(AtomicU64::new(u64::MAX)),
        rows: Vec::new(),
        total: 0.0,
        completed: true,
        on_stage,
    };

    reset_peak_rss();
    let t = Instant::now();
    *parts = generate_parts(dir, events, part)?;
    let gzip_bytes: u64 = parts.iter().map(|p| disk_bytes(p)).sum();
    stages.push(ScaleStage {
        stage: format!("generate {events} PostHog events, gzip JSON lines"),
        secs: t.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        peak_temp_mb: 0.0,
        outcome: format!(
            "{} files, {:.2} GB gzip",
            parts.len(),
            gzip_bytes as f64 / 1e9
        ),
    });

    remove_workspace(ws_path);
    let ws = Workspace::open(ws_path)?;
    crate::resources::ResourceSettings::set(
        &ws,
        crate::resources::MEMORY_KEY,
        &memory_limit_mb.to_string(),
    )?;
    if let Ok(t) = ws
        .conn()
        .query_row("SELECT current_setting('temp_directory')", [], |r| {
            r.get::<_, String>(0)
        })
    {
        stages.temp = PathBuf::from(t);
    }

    let imported = stages.run(
        format!("import ({memory_limit_mb} MB DuckDB memory limit)"),
        |ctx| {
            import_paths(&ws, parts, &ImportOptions::default(), ctx).and_then(|r| {
                if r.cancelled {
                    Err(EngineError::Cancelled)
                } else {
                    Ok(r)
                }
            })
        },
        |r| {
            let (read, loaded, duplicates, quarantined) = r.totals();
            format!(
                "{read} read: {loaded} loaded, {duplicates} duplicates, {quarantined} quarantined"
            )
        },
    );
    // The export has been read: free its disk for the model's spill.
    for f in parts.iter() {
        let _ = std::fs::remove_file(f);
    }
    let mut persons = 0;
    if imported.is_some() {
        let modelled = stages.run(
            "model, full build".to_string(),
            |ctx| crate::model::refresh(&ws, ctx),
            |r| format!("{} persons, {} sessions", r.persons, r.sessions),
        );
        if modelled.is_some() {
            let BenchSpan {
                now,
                persons: p,
                funnel,
                retention,
                ..
            } = bench_span(&ws)?;
            persons = p;
            stages.run(
                "4-step funnel, 14-day window".to_string(),
                |_| crate::insights::run(&ws, &funnel, now),
                |r| match r {
                    crate::insights::InsightResult::Funnel(f) => {
                        format!("{} persons enter", f.steps.first().map_or(0, |s| s.count))
                    }
                    _ => String::new(),
                },
            );
            stages.run(
                "weekly retention, 12 periods".to_string(),
                |_| crate::insights::run(&ws, &retention, now),
                |_| "answered".to_string(),
            );
        }
    }
    drop(ws);
    let workspace_bytes = super::workspace_bytes(ws_path);
    Ok(ScaleBench {
        events: events as u64,
        parts: parts.len(),
        memory_limit_mb,
        gzip_bytes,
        persons,
        total_secs: stages.total,
        workspace_bytes,
        min_free_bytes: stages.min_free.load(Ordering::SeqCst),
        completed: stages.completed,
        stages: stages.rows,
    })
}

/// The stages of a run as they end: each timed with its own peak memory, under a
/// [`DiskWatch`], its outcome (or where it failed) reported to `on_stage`.
struct Stages<'a> {
    dir: PathBuf,
    /// DuckDB's spill folder.
    temp: PathBuf,
    min_free: Arc<AtomicU64>,
    rows: Vec<ScaleStage>,
    /// Seconds of the stages after generation.
    total: f64,
    completed: bool,
    on_stage: &'a dyn Fn(&ScaleStage),
}

impl Stages<'_> {
    fn push(&mut self, s: ScaleStage) {
        (self.on_stage)(&s);
        self.rows.push(s);
    }

    /// Run one stage as a job; its value, or None when it failed (the row says how, and in
    /// which phase of the job).
    fn run<T>(
        &mut self,
        name: String,
        body: impl FnOnce(&JobCtx) -> Result<T>,
        outcome: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        let cancel = CancelToken::new();
        // The job's last phase, to say where a failed stage stopped.
        let last_phase = Arc::new(std::sync::Mutex::new(String::new()));
        let heard = last_phase.clone();
        let ctx = JobCtx::new(
            move |ev| {
                if let crate::jobs::JobEvent::Progress { phase, .. } = ev {
                    if let Ok(mut p) = heard.lock() {
                        p.clone_from(phase);
                    }
                }
            },
            cancel.clone(),
        );
        let watch = DiskWatch::start(
            self.dir.clone(),
            self.temp.clone(),
            cancel,
            self.min_free.clone(),
        );
        reset_peak_rss();
        let t = Instant::now();
        let r = body(&ctx);
        let secs = t.elapsed().as_secs_f64();
        let (peak_temp, full) = watch.finish();
        self.total += secs;
        let outcome = match &r {
            Ok(v) => outcome(v),
            Err(_) if full => {
                "stopped: the disk fell under the reserve, the job was cancelled".to_string()
            }
            Err(e) => {
                let phase = last_phase.lock().map(|p| p.clone()).unwrap_or_default();
                // DuckDB's advice after the first line is not the result.
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                if phase.is_empty() {
                    format!("failed: {first}")
                } else {
                    format!("failed in \"{phase}\": {first}")
                }
            }
        };
        self.push(ScaleStage {
            stage: name,
            secs,
            peak_rss_mb: peak_rss_mb(),
            peak_temp_mb: peak_temp as f64 / 1_048_576.0,
            outcome,
        });
        self.completed &= r.is_ok();
        r.ok()
    }
}
