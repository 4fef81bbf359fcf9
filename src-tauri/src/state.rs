//! The app's managed state: the open workspace, a workspace to open on first use, and the
//! cancel tokens of running jobs by the job id the UI minted.
//!
//! The open workspace has two handles on one DuckDB database: jobs (import, rebuild, scans)
//! write on one, every query reads on the other, so the window keeps answering while a job
//! runs. DuckDB isolates them: queries see the data as it was before the job's transaction.
//! Each handle's lock serialises the work on it, always off the UI thread; the lock on the
//! slot itself is only held to look at it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use stitchbook_engine::{CancelToken, Workspace};

pub struct OpenWorkspace {
    /// The path as shown.
    pub path: String,
    /// Jobs: import, model builds, PII scans and exports.
    pub writer: Mutex<Workspace>,
    /// Queries, settings and small edits.
    pub reader: Mutex<Workspace>,
}

impl OpenWorkspace {
    pub fn new(ws: Workspace) -> stitchbook_engine::Result<Self> {
        let reader = ws.try_clone()?;
        Ok(OpenWorkspace {
            path: ws.path().to_string_lossy().to_string(),
            writer: Mutex::new(ws),
            reader: Mutex::new(reader),
        })
    }
}

pub struct AppState {
    pub open: Mutex<Option<Arc<OpenWorkspace>>>,
    /// A workspace named on the command line or by the demo, opened on first use.
    pub pending: Mutex<Option<PathBuf>>,
    pub jobs: Mutex<HashMap<String, CancelToken>>,
    /// The files last picked in the import wizard, referred to by position.
    pub import_files: Mutex<Vec<PathBuf>>,
}

impl AppState {
    pub fn new(initial: Option<PathBuf>) -> Self {
        AppState {
            open: Mutex::new(None),
            pending: Mutex::new(initial),
            jobs: Mutex::new(HashMap::new()),
            import_files: Mutex::new(Vec::new()),
        }
    }
}

/// `--workspace <path>` (or a bare path), else `STITCHBOOK_WORKSPACE`, else the demo
/// workspace in the app data folder when it exists.
pub fn initial_workspace(mut args: impl Iterator<Item = String>) -> Option<PathBuf> {
    let mut chosen = None;
    while let Some(a) = args.next() {
        if a == "--workspace" {
            chosen = args.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--workspace=") {
            chosen = Some(PathBuf::from(v));
        } else if !a.starts_with('-') {
            chosen = Some(PathBuf::from(a));
        }
    }
    chosen
        .or_else(|| std::env::var_os("STITCHBOOK_WORKSPACE").map(PathBuf::from))
        .or_else(|| demo_path().filter(|p| p.exists()))
}

/// Where the demo workspace lives (the `directories` data folder).
pub fn demo_path() -> Option<PathBuf> {
    Workspace::default_dir().map(|d| d.join("demo.duckdb"))
}
