//! The app's managed state: the open workspace, if any.

use std::path::PathBuf;
use std::sync::Mutex;

use stitchbook_engine::Workspace;

pub struct AppState {
    pub workspace: Mutex<Option<Workspace>>,
    /// A workspace named on the command line or by the demo, opened on first use.
    pub pending: Mutex<Option<PathBuf>>,
}

impl AppState {
    pub fn new(initial: Option<PathBuf>) -> Self {
        AppState {
            workspace: Mutex::new(None),
            pending: Mutex::new(initial),
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
        .or_else(|| {
            Workspace::default_dir()
                .map(|d| d.join("demo.duckdb"))
                .filter(|p| p.exists())
        })
}
