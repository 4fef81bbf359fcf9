//! The demo workspace, built from `sample-data/`: a team that moved from Amplitude (an Export
//! API zip for late November 2023) to PostHog (batch exports from January 2024), plus its
//! mobile backend's own CSV log imported with a column mapping.

use std::path::{Path, PathBuf};

use crate::ingest::{import_paths, ColumnMapping, ImportOptions};
use crate::workspace::Workspace;
use crate::{EngineError, JobCtx, Result};

/// The `sample-data` folder of the source tree this build came from (the app and the CLI
/// are run from a checkout).
pub fn source_sample_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-data")
}

/// The imports, in order: (path under `sample-data/`, mapping file).
const PARTS: [(&str, Option<&str>); 3] = [
    ("amplitude/demo_2023-11.zip", None),
    ("posthog", None),
    (
        "generic/app_events.csv",
        Some("generic/app_events.mapping.toml"),
    ),
];

/// Build the demo at `out` (replacing any previous one) from the `sample-data` folder, then
/// build the model. Returns the opened workspace.
pub fn build(sample_data: &Path, out: &Path, ctx: &JobCtx) -> Result<Workspace> {
    for (part, _) in PARTS {
        let p = sample_data.join(part);
        if !p.exists() {
            return Err(EngineError::unreadable(
                &p,
                "the demo's sample data is missing (expected in the project's sample-data folder)",
            ));
        }
    }
    for stale in [out.to_path_buf(), wal_of(out)] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| EngineError::io(&stale, e))?;
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    let ws = Workspace::open(out)?;
    for (part, mapping) in PARTS {
        let opts = ImportOptions {
            mapping: mapping
                .map(|m| ColumnMapping::load(&sample_data.join(m)))
                .transpose()?,
            ..ImportOptions::default()
        };
        let report = import_paths(&ws, &[sample_data.join(part)], &opts, ctx)?;
        if report.cancelled {
            return Err(EngineError::Cancelled);
        }
    }
    crate::model::rebuild(&ws, ctx)?;
    Ok(ws)
}

fn wal_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".wal");
    PathBuf::from(s)
}
